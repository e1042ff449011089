"""What the routine rules learn of a resident, and the clock they read the time of day on.

Kept compact, as per-day aggregates (a number per day and key, at most `HISTORY_DAYS` days),
never raw series: this is what the engine snapshot stores for each routine rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hearthgate.core.model import Instant

# How many days of history the routine model keeps (and therefore needs from the store):
# four weeks, so that a weekly habit is seen four times.
HISTORY_DAYS = 28
# Days of history before a learned figure replaces the fixed window.
MIN_DAYS = 14
# A wall clock that moves this much further than the monotonic clock between two readings
# has stepped (NTP slews smaller errors).
STEP_TOLERANCE = 60.0


class RoutineClock:
    """The time of day as the routine rules read it: a wall reading plus monotonic time.

    Anchored on the engine's wall clock when a rule starts or is restored (the engine has
    applied its clock policy by then), it then counts on the monotonic clock only, so a
    wall-clock step while running (±12 h at an NTP sync) moves no routine deadline and
    files no day's figures under the wrong hour. A step is taken up at the next restart,
    through the engine's policy. Small slews (under `STEP_TOLERANCE`) are followed.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.anchor: tuple[float, datetime] | None = None  # (mono, wall)

    def local(self, now: Instant) -> datetime:
        if self.anchor is None:
            self.anchor = (now.mono, now.wall)
        mono, wall = self.anchor
        believed = wall + timedelta(seconds=now.mono - mono)
        if abs((now.wall - believed).total_seconds()) <= STEP_TOLERANCE:
            self.anchor = (now.mono, now.wall)  # follow the slew
            believed = now.wall
        return believed.astimezone(self.tz)

    def at_mono(self, now: Instant, mono: float) -> datetime:
        """The local time of another monotonic moment, on this clock."""
        return self.local(now) + timedelta(seconds=mono - now.mono)

    def mono_of(self, now: Instant, local: datetime) -> float:
        """The monotonic moment of a local time, on this clock."""
        return now.mono + (local - self.local(now)).total_seconds()

    def snapshot(self, now: Instant) -> str:
        return self.local(now).isoformat()

    def restore(self, saved: str, saved_at: Instant, now: Instant) -> None:
        # The engine's estimate of the wall at the save's monotonic moment is its saved wall
        # plus the credited downtime; ours is what we believed then.
        self.anchor = (saved_at.mono, datetime.fromisoformat(saved))


def usual_high(values: list[float]) -> float:
    """The high end of what is usual: the highest of the days kept.

    The highest, not a percentile: a false alarm on the resident's latest ordinary day
    costs more trust than a learned threshold a little looser than it could be.
    """
    return max(values)


@dataclass
class DailyFigures:
    """One figure per day and key (the latest up time, the longest stillness in a room …).

    `today` gathers the running day's figure per key; `close_day` files it. At most
    `HISTORY_DAYS` days are kept per key. Bad entries in a restored history (wrong types,
    negative or absurd numbers) are dropped and counted in `dropped`, never a crash: the
    rule then falls back to its fixed window until it has learned again.
    """

    days: dict[str, list[float]] = field(default_factory=dict)
    today: dict[str, float] = field(default_factory=dict)
    day: date | None = None
    days_seen: int = 0  # days filed, whatever their keys (for "still learning")
    dropped: int = 0

    def note_max(self, key: str, value: float) -> None:
        self.today[key] = max(value, self.today.get(key, 0.0))

    def note_first(self, key: str, value: float) -> None:
        self.today.setdefault(key, value)

    def roll(self, today: date, *, keep: bool = True) -> None:
        """Move to `today`, filing the running day's figures if `keep`."""
        if self.day is None:
            self.day = today
            return
        if today == self.day:
            return
        if keep:
            for key, value in self.today.items():
                series = self.days.setdefault(key, [])
                series.append(value)
                del series[:-HISTORY_DAYS]
            self.days_seen = min(self.days_seen + 1, HISTORY_DAYS)
        self.today = {}
        self.day = today

    def learned(self, key: str, min_days: int) -> list[float] | None:
        series = self.days.get(key, [])
        return series if len(series) >= min_days else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "today": self.today,
            "day": self.day.isoformat() if self.day else None,
            "days_seen": self.days_seen,
        }

    @classmethod
    def restore(cls, data: Any, limit: float) -> DailyFigures:
        """Rebuild from a snapshot; values outside [0, limit] and malformed entries dropped."""
        out = cls()
        if not isinstance(data, dict):
            out.dropped += 1
            return out

        def good(v: Any) -> bool:
            ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= limit
            if not ok:
                out.dropped += 1
            return ok

        days = data.get("days", {})
        if isinstance(days, dict):
            for key, series in days.items():
                if isinstance(series, list):
                    out.days[str(key)] = [float(v) for v in series if good(v)][-HISTORY_DAYS:]
                else:
                    out.dropped += 1
        else:
            out.dropped += 1
        today = data.get("today", {})
        if isinstance(today, dict):
            out.today = {str(k): float(v) for k, v in today.items() if good(v)}
        try:
            out.day = date.fromisoformat(data["day"]) if data.get("day") else None
        except (TypeError, ValueError):
            out.dropped += 1
        seen = data.get("days_seen", 0)
        out.days_seen = int(seen) if good(seen) and seen <= HISTORY_DAYS else 0
        return out
