"""Daily schedules (`active_hours`, `quiet_hours`) read on the wall clock in the site's zone.

Durations are measured on the monotonic clock; only *which part* of an interval lies
inside a schedule is read from the wall clock. Boundaries are found by building the
local times of today's and tomorrow's start/end with zoneinfo and converting them to
UTC, so a day of 23 or 25 hours (DST) is handled by the zone database, not by us.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hearthgate.core.durations import TimeRange


class Schedule:
    """A `TimeRange` bound to a zone; `None` range means "all day"."""

    def __init__(self, rng: TimeRange | None, tz: ZoneInfo) -> None:
        self.rng = rng
        self.tz = tz
        # Segments looked up lately: [start, end) in UTC, inside or not. Most calls ask
        # about the current or the next segment, so this saves the zone arithmetic.
        self._segs: list[tuple[datetime, datetime, bool]] = []

    def inside(self, at: datetime) -> bool:
        if self.rng is None:
            return True
        return self._segment(at)[2]

    def _segment(self, at: datetime) -> tuple[datetime, datetime, bool]:
        for seg in self._segs:
            if seg[0] <= at < seg[1]:
                return seg
        assert self.rng is not None
        local = at.astimezone(self.tz)
        marks: list[datetime] = []
        for offset in (-1, 0, 1, 2):
            day = local.date() + timedelta(days=offset)
            for t in (self.rng.start, self.rng.end):
                marks.append(datetime.combine(day, t, tzinfo=self.tz).astimezone(UTC))
        start = max(m for m in marks if m <= at)
        end = min(m for m in marks if m > at)
        seg = (start, end, self.rng.contains(local.time()))
        self._segs = [seg, *self._segs[:3]]
        return seg

    def seconds_inside(self, start: datetime, end: datetime) -> float:
        """Seconds of the wall interval [start, end) that fall inside the schedule."""
        if end <= start:
            return 0.0
        if self.rng is None:
            return (end - start).total_seconds()
        total = 0.0
        t = start
        while t < end:
            _, seg_end, inside = self._segment(t)
            stop = min(seg_end, end)
            if inside:
                total += (stop - t).total_seconds()
            t = stop
        return total

    def wall_needed(self, start: datetime, needed: float, limit: float = 8 * 86400.0) -> float:
        """Wall seconds from `start` until `needed` seconds inside the schedule have passed.

        Capped at `limit` (a caller re-asks later; the cap only bounds the walk).
        """
        if needed <= 0:
            return 0.0
        if self.rng is None:
            return needed
        t = start
        left = needed
        horizon = start + timedelta(seconds=limit)
        while t < horizon:
            _, seg_end, inside = self._segment(t)
            span = (seg_end - t).total_seconds()
            if inside:
                if span >= left:
                    return (t - start).total_seconds() + left
                left -= span
            t = seg_end
        return limit
