"""Rules that watch for something *not* happening: `no_water`, `inactivity`, `no_exit`.

Each counts time since the last sign of life (water used, motion, the door opened).
Only time that can be blamed on the resident is counted:
- not while the site is away (presence), when `pause_when_away` is on;
- not while every sensor the rule reads is offline (`device_offline` speaks then);
- for `active_hours`, only the part of the time inside the daily range.
Counting is done in pieces between moments when one of those conditions can change,
on the monotonic clock; only the schedule reads the wall clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from hearthgate.core.durations import Duration, TimeRange, TimeRangeField
from hearthgate.core.model import Instant, Observation, Severity
from hearthgate.rules.base import (
    DOOR_KINDS,
    Clear,
    Raise,
    Rule,
    RuleOptions,
    RuleSite,
    RuleSpec,
    Signal,
    SiteExpectation,
    ago,
    back,
    span_text,
)
from hearthgate.rules.schedule import Schedule
from hearthgate.rules.site_state import MOTION_KINDS

EPS = 1e-6


class AbsenceOptions(RuleOptions):
    window: Duration = 12 * 3600.0
    # Count only time inside this daily range (site time zone); unset: all day.
    active_hours: TimeRangeField | None = None
    # Do not count time while the resident is away (inferred from door and motion).
    pause_when_away: bool = True


class AbsenceRule(Rule):
    absence: ClassVar[bool] = True
    sensor_kinds: ClassVar[tuple[str, ...]] = ()
    event_key: ClassVar[str] = "last_event_at"
    options: AbsenceOptions

    def __init__(self, site: RuleSite, options: AbsenceOptions) -> None:
        super().__init__(site, options)
        self.schedule = Schedule(options.active_hours, site.timezone)
        self.sensors = self.watched(*self.sensor_kinds)
        self.counted = 0.0  # seconds counted since the last sign of life
        self.last_mono: float | None = None  # counted up to here
        self.last_wall: datetime | None = None
        self.last_event_at: str | None = None  # ISO, site offset
        self.since: str | None = None  # when counting began (start, or last event)
        self.raised = False
        self._deadline: float | None = None
        self._presence_version = -1

    # -- coverage ---------------------------------------------------------------

    def inputs(self) -> tuple[str, ...] | None:
        return self.sensors

    def blind_reason(self, now: Instant) -> str | None:
        """Its sensors offline, or the resident away (time is not counted then), or both."""
        reasons = [r for r in (
            super().blind_reason(now),
            "resident away" if self.options.pause_when_away
            and self.site.state.presence.away_at(now.mono) else None,
        ) if r]
        return "; ".join(reasons) or None

    # -- what a subclass says ---------------------------------------------------

    def is_sign_of_life(self, obs: Observation) -> bool:
        raise NotImplementedError

    def message(self) -> str:
        raise NotImplementedError

    # -- state machine ----------------------------------------------------------

    def start(self, now: Instant) -> None:
        self.last_mono, self.last_wall = now.mono, now.wall
        self.since = self.local(now)
        self._plan()

    def _counting_at(self, t: float, offline_at: float | None) -> bool:
        if self.options.pause_when_away and self.site.state.presence.away_at(t):
            return False
        return offline_at is None or t < offline_at

    def _advance(self, now: Instant) -> None:
        if self.last_mono is None:
            self.start(now)
            return
        a, b = self.last_mono, now.mono
        if b > a:
            presence = self.site.state.presence
            offline_at = self.site.state.health.all_offline_at(self.sensors)
            t = a
            while t < b:
                cut = b
                for mono, _ in presence.history:
                    if t < mono < cut:
                        cut = mono
                        break
                pending = presence.next_change(t)
                if pending is not None and pending < cut:
                    cut = pending
                if offline_at is not None and t < offline_at < cut:
                    cut = offline_at
                if self._counting_at(t, offline_at):
                    self.counted += self.schedule.seconds_inside(
                        now.wall - timedelta(seconds=b - t), now.wall - timedelta(seconds=b - cut)
                    )
                t = cut
            self.last_mono = b
        self.last_wall = now.wall

    def _check(self, now: Instant) -> list[Signal]:
        if self.raised or self.counted < self.options.window - EPS:
            return []
        self.raised = True
        details: dict[str, Any] = {
            "window_s": int(self.options.window),
            self.event_key: self.last_event_at,
        }
        if self.last_event_at is None:
            details["watching_since"] = self.since
        if self.options.active_hours is not None:
            details["active_hours"] = str(self.options.active_hours)
        return [Raise("", self.message(), self.sensors, details)]

    def _plan(self) -> None:
        self._deadline = None
        if self.raised or self.last_mono is None or self.last_wall is None:
            return
        last = self.last_mono
        presence = self.site.state.presence
        offline_at = self.site.state.health.all_offline_at(self.sensors)
        candidates: list[float] = []
        pending = presence.next_change(last)
        if pending is not None and self.options.pause_when_away:
            candidates.append(pending)
        if self._counting_at(last, offline_at):
            need = self.options.window - self.counted
            candidates.append(last + self.schedule.wall_needed(self.last_wall, need))
            if offline_at is not None and offline_at > last:
                candidates.append(offline_at)
        self._deadline = min(candidates) if candidates else None

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        presence = self.site.state.presence
        if obs.device_id not in self.sensors and presence.version == self._presence_version:
            # Nothing this rule reads changed: accounting can wait for the next event
            # or deadline (presence and health are looked up by time then).
            return []
        self._presence_version = presence.version
        self._advance(now)
        out: list[Signal] = []
        if obs.device_id in self.sensors and self.is_sign_of_life(obs):
            self.counted = 0.0
            self.last_event_at = self.since = self.local(now)
            if self.raised:
                self.raised = False
                out.append(Clear("", {self.event_key: self.last_event_at}))
        else:
            out = self._check(now)
        self._plan()
        return out

    def on_tick(self, now: Instant) -> list[Signal]:
        self._advance(now)
        out = self._check(now)
        self._plan()
        return out

    def next_deadline(self) -> float | None:
        return self._deadline

    def snapshot(self, now: Instant) -> dict[str, Any]:
        self._advance(now)
        self._plan()
        return {
            "counted": self.counted,
            "last_event_at": self.last_event_at,
            "since": self.since,
            "raised": self.raised,
        }

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.counted = float(state.get("counted", 0.0))
        self.last_event_at = state.get("last_event_at")
        self.since = state.get("since")
        self.raised = bool(state.get("raised", False))
        # Count the downtime the engine credits (saved_at.mono .. now.mono) like any
        # other time: schedule, presence and sensor health as they were saved.
        self.last_mono, self.last_wall = saved_at.mono, saved_at.wall
        self._advance(now)
        self._plan()


class NoWaterOptions(AbsenceOptions):
    window: Duration = 12 * 3600.0
    # Smallest increase (m³) that counts as use; unset: any increase (one meter step).
    min_use: float | None = Field(default=None, gt=0)


class NoWaterRule(AbsenceRule):
    type_name: ClassVar[str] = "no_water"
    default_severity = Severity.HIGH
    sensor_kinds = ("water_meter",)
    event_key = "last_use_at"
    options: NoWaterOptions

    def __init__(self, site: RuleSite, options: NoWaterOptions) -> None:
        super().__init__(site, options)
        self.anchors: dict[str, float] = {}  # meter reading at the last use

    def is_sign_of_life(self, obs: Observation) -> bool:
        return water_used(self.anchors, obs, self.options.min_use)

    def message(self) -> str:
        return self.t(
            f"{span_text(self, self.options.window)}未用水",
            f"No water used for {span_text(self, self.options.window)}",
        )

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {**super().snapshot(now), "anchors": self.anchors}

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.anchors = {k: float(v) for k, v in state.get("anchors", {}).items()}
        super().restore(state, saved_at, now)


def water_used(anchors: dict[str, float], obs: Observation, min_use: float | None) -> bool:
    """Did this cumulative reading show use since the anchor? Moves the anchor.

    A reading below the anchor (meter replaced or rolled over) or one the driver marks
    as a new baseline (`Observation.baseline_reset`) sets a new anchor and is not use.
    """
    if obs.metric != "water_total_m3" or isinstance(obs.value, bool | str):
        return False
    value = float(obs.value)
    anchor = anchors.get(obs.device_id)
    if anchor is None or value < anchor or obs.baseline_reset:
        anchors[obs.device_id] = value
        return False
    if value - anchor >= (min_use if min_use is not None else 1e-9) - 1e-12:
        anchors[obs.device_id] = value
        return True
    return False


class InactivityOptions(AbsenceOptions):
    window: Duration = 4 * 3600.0
    active_hours: TimeRangeField | None = TimeRange.parse("07:00-22:00")


class InactivityRule(AbsenceRule):
    type_name: ClassVar[str] = "inactivity"
    default_severity = Severity.HIGH
    # Motion counts from whichever device reports it, a presence radar's too; `presence`
    # alone never does (still presence is not a sign that the resident is well).
    sensor_kinds = MOTION_KINDS
    event_key = "last_motion_at"

    def is_sign_of_life(self, obs: Observation) -> bool:
        return obs.metric in ("motion", "occupancy") and obs.value is True

    def message(self) -> str:
        return self.t(
            f"{span_text(self, self.options.window)}未检测到活动",
            f"No movement for {span_text(self, self.options.window)}",
        )


class NoExitOptions(AbsenceOptions):
    window: Duration = 3 * 86400.0


class NoExitRule(AbsenceRule):
    type_name: ClassVar[str] = "no_exit"
    default_severity = Severity.MEDIUM
    sensor_kinds = DOOR_KINDS
    event_key = "last_open_at"

    def is_sign_of_life(self, obs: Observation) -> bool:
        return obs.metric == "door_open" and obs.value is True

    def message(self) -> str:
        return self.t(
            f"{span_text(self, self.options.window)}未出门",
            f"Door not opened for {span_text(self, self.options.window)}",
        )


RULE_SPECS = (
    RuleSpec(
        "no_water", NoWaterOptions, NoWaterRule, kinds=frozenset({"water_meter"}),
        description="no water used for `window` (not counted while away or meters offline)",
        expected=SiteExpectation(
            kinds=frozenset({"water_meter"}),
            unwatched="device '{device}' is a water meter but site '{site}' has no"
            " 'no_water' rule: nobody hears if the water stops",
            hint="add {type: no_water, window: 12h} to the site's rules",
            each_device=True,
        ),
    ),
    RuleSpec(
        "inactivity", InactivityOptions, InactivityRule, kinds=frozenset(MOTION_KINDS),
        description="no motion (from a motion sensor or a radar that reports movement) for"
        " `window`, counting only `active_hours` while home",
    ),
    RuleSpec(
        "no_exit", NoExitOptions, NoExitRule, kinds=frozenset(DOOR_KINDS),
        description="the door has not opened for `window`",
    ),
)


__all__ = ["AbsenceRule", "ago", "back", "water_used"]
