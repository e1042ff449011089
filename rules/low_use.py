"""`low_use`: unusually little water or electricity used so far today.

A day on which the resident stays in bed unwell, or cannot get to the kitchen, shows in the
meters before anyone calls: no kettle, no cooking, fewer flushes. At each of the `checks`
of the day (12:00, 16:00, 20:00) the use since 00:00 is compared with the same figure on
the resident's ordinary days: less than `factor` times the lowest of the days kept raises.

Learned per site like the other routine rules (`routine_model.DailyFigures`: per day one
figure per quantity and check, four weeks at most, in the engine snapshot). Until then, and
as the least a learned threshold may be, the fixed fallback `water_l` / `min_kwh` (the
`no_power_use` default): learning only tightens, and `factor` (at most 0.8) keeps a day
that is within a fifth of the lowest ordinary day from ever raising it.

Judged at meter readings, never on a timer: use only grows, so the first reading after a
check is the earliest honest judgement, and a meter that stops reporting cannot fake a
quiet day. A total that drops (meter replaced, rolled over), a reading the driver marks as
a new baseline, or a step too large to be use (a glitch) sets a new base and is not use;
readings that are not numbers are ignored. Both are counted in `bad_readings`.

A day is judged and learned only if it was counted from 00:00 (a reading before midnight
on every meter of the quantity) and the resident was away no more than `AWAY_LIMIT` of it
(presence): a day out is not a quiet day at home. A day that raised the alert is not
learned: it was not usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, ClassVar

from pydantic import Field, field_validator

from hearthgate.core.model import Instant, Observation, Severity
from hearthgate.rules.base import Clear, Raise, Rule, RuleSite, RuleSpec, Signal
from hearthgate.rules.routine import RoutineOptions, RoutineRule
from hearthgate.rules.routine_model import usual_high
from hearthgate.rules.site_state import PresenceState

# A day with more time away than this is neither judged nor learned.
AWAY_LIMIT = 3 * 3600.0
# The night, 00:00 to this, is what the home uses by itself (a fridge, standby, the odd
# flush): the lowest night of the days kept, as a rate, is taken off before comparing, so
# that a fridge's 1.7 kWh a day does not hide a day on which nothing else was switched on.
NIGHT_END = time(5, 0)


@dataclass(frozen=True)
class Quantity:
    """What a meter kind measures, in the units a care worker reads."""

    name: str  # the alert key and `details.quantity`
    kind: str
    metric: str
    scale: float  # meter unit -> shown unit
    unit_en: str
    unit_zh: str
    what_en: str
    what_zh: str
    # One reading's step beyond this is no household's use (2 m³ of water in 5 minutes,
    # 50 kWh): a glitch or a swapped meter, taken as a new base.
    max_step: float


WATER = Quantity("water", "water_meter", "water_total_m3", 1000.0, "L", "升", "water", "用水",
                 2.0)
POWER = Quantity("power", "power_meter", "energy_total_kwh", 1.0, "kWh", "千瓦时",
                 "electricity", "用电", 50.0)
QUANTITIES = (WATER, POWER)


class LowUseOptions(RoutineOptions):
    # When the day's use so far is judged (local time; the first reading at or after each).
    checks: tuple[time, ...] = (time(12, 0), time(16, 0), time(20, 0))
    # Less than this times the lowest ordinary day (by the same check) raises. At most 0.8:
    # the floor; a day within a fifth of the lowest ordinary one is never unusual.
    factor: float = Field(default=0.5, ge=0.2, le=0.8)
    # The fixed fallback while learning, and the least a learned threshold may be: litres
    # of water, and kWh (no_power_use's default), used since 00:00 by a check.
    water_l: float = Field(default=5.0, ge=0.0, le=500.0)
    min_kwh: float = Field(default=0.1, ge=0.0, le=50.0)

    @field_validator("checks")
    @classmethod
    def _checks(cls, value: tuple[time, ...]) -> tuple[time, ...]:
        if not value or len(value) > 8:
            raise ValueError("give 1 to 8 times of day, like ['12:00', '20:00']")
        if any(t.second or t.microsecond or t.tzinfo or t == time(0) for t in value):
            raise ValueError("checks are times of day HH:MM after 00:00, without a time zone")
        return tuple(sorted(set(value)))


def meter_step(anchors: dict[str, float], device: str, value: float, reset: bool,
               max_step: float) -> float | None:
    """The use a cumulative reading adds since the anchor (moving it), or None when the
    reading sets a new base instead: the first one, a drop, a driver's reset, a glitch."""
    anchor = anchors.get(device)
    anchors[device] = value
    if anchor is None or reset or value < anchor or value - anchor > max_step:
        return None
    return value - anchor


class LowUseRule(RoutineRule):
    """Unusually little water or electricity used so far today (learned)."""

    type_name: ClassVar[str] = "low_use"
    default_severity = Severity.MEDIUM
    absence: ClassVar[bool] = True
    input_kinds: ClassVar[tuple[str, ...] | None] = (WATER.kind, POWER.kind)
    history_key = "water@day"
    figure_limit = 1e5  # litres or kWh by a check: more is corrupt
    options: LowUseOptions

    def __init__(self, site: RuleSite, options: LowUseOptions) -> None:
        super().__init__(site, options)
        self.meters = {q.name: self.watched(q.kind) for q in QUANTITIES}
        self.quantity_of = {m: q for q in QUANTITIES for m in self.meters[q.name]}
        self.anchors: dict[str, float] = {}
        self.used: dict[str, float] = {}  # today's use so far, per quantity (shown units)
        self.whole: dict[str, bool] = {}  # today counted from 00:00, per quantity
        self.away_s = 0.0  # today's time away
        self.last_reading: float | None = None  # monotonic, for the time away
        self.raised_on: dict[str, tuple[str, float]] = {}  # quantity -> (day, threshold)
        self.bad_readings = 0
        self.fixed_by: dict[str, str | None] = {}  # quantity -> the fixed rule that watches
        self.keys = {q.name: [(c, _key(q, c)) for c in options.checks] for q in QUANTITIES}

    # -- coverage --------------------------------------------------------------------

    def blind_reason(self, now: Instant) -> str | None:
        """Meters offline, the resident away, still learning: each said, joined."""
        away = self.options.pause_when_away and self.site.state.presence.away_at(now.mono)
        reasons = [r for r in (
            self.site.state.health.offline_text(self.inputs() or (), now.mono),
            "resident away" if away else None,
            super().blind_reason(now),
        ) if r]
        return "; ".join(reasons) or None

    def alongside(self, others: tuple[Rule, ...]) -> None:
        # While learning, a day of no use at all is what `no_water` / `no_power_use` say
        # (their fixed windows): the fixed fallback would only repeat them.
        self.fixed_by = {q.name: next((r.type_name for r in others if r.type_name == rule),
                                      None)
                         for q, rule in ((WATER, "no_water"), (POWER, "no_power_use"))}

    @property
    def meanwhile(self) -> str:
        others = sorted({r for r in self.fixed_by.values() if r})
        return (" and ".join(others) + (" watch" if len(others) > 1 else " watches")
                if others else "fixed threshold")

    # -- inputs ----------------------------------------------------------------------

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        q = self.quantity_of.get(obs.device_id)
        if q is None or obs.metric != q.metric:
            return []
        local = self.clock.local(now)
        out = self._new_day(now, local)
        value = obs.value
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(
                value) or value < 0:
            self.bad_readings += 1
            return out
        self._count_away(now)
        based = obs.device_id in self.anchors
        step = meter_step(self.anchors, obs.device_id, float(value), obs.baseline_reset,
                          q.max_step)
        if step is None:
            # A drop or a glitch; the first reading and a driver's reset are expected.
            self.bad_readings += based and not obs.baseline_reset
        elif q.name in self.used:  # counted from 00:00
            self.used[q.name] += step * q.scale
        return out + self._judge(q, now, local)

    def on_tick(self, now: Instant) -> list[Signal]:
        return []

    def next_deadline(self) -> float | None:
        return None

    # -- the day ---------------------------------------------------------------------

    def _count_away(self, now: Instant) -> None:
        last, self.last_reading = self.last_reading, now.mono
        presence = self.site.state.presence
        if last is None or not self.options.pause_when_away:
            return
        # Home (or unknown) since before the last reading, nothing pending: not away in
        # between; the history need not be searched (readings are most observations).
        settled = (presence.state != PresenceState.AWAY and presence.pending_away_at is None
                   and (presence.changed_at is None or presence.changed_at < last))
        if not settled and presence.away_between(last, now.mono):
            self.away_s += now.mono - last

    def _usual(self) -> bool:
        return self.away_s <= AWAY_LIMIT

    def _roll(self, now: Instant, local: datetime | None = None) -> None:
        today = (local or self.clock.local(now)).date()
        if self.figures.day is None or today == self.figures.day:
            self.figures.roll(today)
            return
        for q in QUANTITIES:
            if self.whole.get(q.name) and q.name in self.used:
                self.figures.today[f"{q.name}@day"] = self.used[q.name]
            if not self.whole.get(q.name) or q.name in self.raised_on:
                for key in [k for k in self.figures.today if k.startswith(f"{q.name}@")]:
                    del self.figures.today[key]
        self.figures.roll(today, keep=self._usual() and bool(self.figures.today))
        # From 00:00 only if every meter of the quantity has a base from before midnight.
        self.whole = {q.name: bool(self.meters[q.name]) and all(
            m in self.anchors for m in self.meters[q.name]) for q in QUANTITIES}
        self.used = {q.name: 0.0 for q in QUANTITIES if self.whole[q.name]}
        self.away_s = 0.0

    def _new_day(self, now: Instant, local: datetime) -> list[Signal]:
        self._roll(now, local)
        today = local.date().isoformat()
        out: list[Signal] = []
        for name, (day, _) in list(self.raised_on.items()):
            if day != today:
                del self.raised_on[name]
                out.append(Clear(name, {"reason": "new day"}))
        return out

    def threshold(self, q: Quantity, check: time) -> tuple[float, list[float] | None]:
        fixed = self.options.water_l if q is WATER else self.options.min_kwh
        series = self.figures.learned(_key(q, check), self.options.min_days)
        if series is None:
            return fixed, None
        by_itself = self.by_itself(q) * (check.hour + check.minute / 60)
        active = max(0.0, min(series) - by_itself)
        return max(fixed, by_itself + self.options.factor * active), series

    def by_itself(self, q: Quantity) -> float:
        """What the home uses an hour by itself: the lowest night of the days kept."""
        nights = self.figures.learned(f"{q.name}@night", self.options.min_days)
        return min(nights) / (NIGHT_END.hour + NIGHT_END.minute / 60) if nights else 0.0

    def _judge(self, q: Quantity, now: Instant, local: datetime) -> list[Signal]:
        used = self.used.get(q.name)
        if used is None:
            return []  # not counted from 00:00: nothing to compare
        health = self.site.state.health
        if not all(health.online_at(m, now.mono) for m in self.meters[q.name]):
            return []  # a meter not heard: its use is unknown (device_offline says so)
        clock = local.time().replace(tzinfo=None)
        today = self.figures.today
        passed = [c for c, key in self.keys[q.name] if c <= clock and key not in today]
        for c in passed:
            self.figures.note_first(_key(q, c), used)
        if clock >= NIGHT_END:
            self.figures.note_first(f"{q.name}@night", used)
        if q.name in self.raised_on:
            # Cleared by use that reaches what is usual by the next check: the fridge alone
            # creeping past the last check's figure is not the resident back to normal.
            day, clear_at = self.raised_on[q.name]
            if passed:
                clear_at = max(clear_at, self._next_threshold(q, passed[-1]))
                self.raised_on[q.name] = (day, clear_at)
            if used >= clear_at:
                del self.raised_on[q.name]
                return [Clear(q.name, {"used": _round(used), "unit": q.unit_en})]
            return []
        if not passed:
            return []
        check = passed[-1]
        away = self.options.pause_when_away and self.site.state.presence.away_at(now.mono)
        if away or not self._usual():
            return []
        limit, series = self.threshold(q, check)
        if used >= limit or (series is None and self.fixed_by.get(q.name)):
            return []
        self.raised_on[q.name] = (local.date().isoformat(), self._next_threshold(q, check))
        return [Raise(q.name, self.message(q, check, used, limit, series),
                      self.meters[q.name], self.details(q, check, used, limit, series, local))]

    def _next_threshold(self, q: Quantity, check: time) -> float:
        later = [c for c in self.options.checks if c > check]
        return self.threshold(q, later[0])[0] if later else math.inf

    # -- what the care worker reads ------------------------------------------------

    def message(self, q: Quantity, check: time, used: float, limit: float,
                series: list[float] | None) -> str:
        at = f"{check:%H:%M}"
        today_zh, today_en = f"00:00 以来 {_fmt(used)} {q.unit_zh}", \
            f"{_fmt(used)} {q.unit_en} since 00:00"
        if series is None:
            return self.t(
                f"{q.what_zh}偏少：{at} 前不足 {_fmt(limit)} {q.unit_zh}（仍在学习作息）；"
                f"{today_zh}",
                f"low {q.what_en} use: less than {_fmt(limit)} {q.unit_en} by {at} (still"
                f" learning the routine); {today_en}",
            )
        usual, n = min(series), len(series)
        return self.t(
            f"{q.what_zh}偏少：通常 {at} 前至少 {_fmt(usual)} {q.unit_zh}（{n} 天）；{today_zh}",
            f"low {q.what_en} use: usually at least {_fmt(usual)} {q.unit_en} by {at}"
            f" ({n} days); {today_en}",
        )

    def details(self, q: Quantity, check: time, used: float, limit: float,
                series: list[float] | None, local: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {
            "quantity": q.name, "unit": q.unit_en, "used": _round(used),
            "threshold": _round(limit), "check": f"{check:%H:%M}",
            "days_learned": len(series) if series else 0,
        }
        if series:
            out["usual_by_check"] = _round(min(series))
            out["by_itself_per_h"] = _round(self.by_itself(q))
        day = self.figures.days.get(f"{q.name}@day", [])
        if len(day) >= self.options.min_days:
            # The typical whole day, for "usually 180 L a day": the middle of the days kept.
            out["usual_day"] = _round(sorted(day)[len(day) // 2])
            out["usual_day_high"] = _round(usual_high(day))
        return out

    # -- persistence -----------------------------------------------------------------

    def extra_snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            "anchors": self.anchors, "used": self.used, "whole": self.whole,
            "away_s": self.away_s, "last_reading_age": None if self.last_reading is None
            else now.mono - self.last_reading,
            # inf (open until the day ends) is not JSON: saved as None.
            "raised_on": {k: [d, None if math.isinf(t) else t]
                          for k, (d, t) in self.raised_on.items()},
            "bad_readings": self.bad_readings,
        }

    def restore_extra(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        names = {q.name for q in QUANTITIES}

        def numbers(data: Any, keys: set[str] | None = None) -> dict[str, float]:
            if not isinstance(data, dict):
                self.corrupt += 1
                return {}
            out = {}
            for k, v in data.items():
                if (keys is None or k in keys) and _number(v) and v >= 0:
                    out[str(k)] = float(v)
                else:
                    self.corrupt += 1
            return out

        self.anchors = numbers(state.get("anchors"), set(self.quantity_of))
        self.used = numbers(state.get("used"), names)
        whole = state.get("whole")
        self.whole = {k: v is True for k, v in whole.items() if k in names} if isinstance(
            whole, dict) else {}
        away = state.get("away_s")
        self.away_s = float(away) if _number(away) and away >= 0 else 0.0
        age = state.get("last_reading_age")
        self.last_reading = saved_at.mono - float(age) if _number(age) else None
        self.raised_on = {}
        raised = state.get("raised_on")
        if isinstance(raised, dict):
            for k, v in raised.items():
                if k in names and isinstance(v, list) and len(v) == 2 and isinstance(
                        v[0], str) and (v[1] is None or _number(v[1])):
                    self.raised_on[k] = (v[0], math.inf if v[1] is None else float(v[1]))
                else:
                    self.corrupt += 1
        bad = state.get("bad_readings")
        self.bad_readings = int(bad) if _number(bad) else 0


def _key(q: Quantity, check: time) -> str:
    return f"{q.name}@{check:%H:%M}"


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _round(v: float) -> float:
    return round(v, 3 if v < 10 else 1)


def _fmt(v: float) -> str:
    return f"{v:.1f}" if v < 10 else f"{v:.0f}"


RULE_SPECS = (
    RuleSpec(
        "low_use", LowUseOptions, LowUseRule,
        kinds=frozenset({WATER.kind, POWER.kind}),
        description="unusually little water or electricity used so far today, against the"
        " resident's own ordinary days (learned)",
    ),
)
