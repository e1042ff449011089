"""Rules that learn the resident's own routine: `not_up`, `stillness`, `night_bathroom`.

Each learns from its site's own observations (`routine_model.DailyFigures`: one figure per
day and key, four weeks at most, kept in the engine snapshot, so in the store) and, until it
has `min_days` days, watches with its fixed window instead, which is never looser than the
fixed rules of the profile. A learned threshold is clamped between the installer's floor
and that fixed window: learning only ever tightens, and never below the floor.

Activity is what a person does: a motion sensor's or radar's `motion: true`, a door
opening or closing. A radar's `presence: true` says someone is there, not that they are
well: it moves where the resident was last seen, but stillness goes on counting, and the
message says "present but not moving". Where the resident was last seen is the `room:` of
the device that saw them.

The time of day comes from a `RoutineClock` (wall clock at start or restore, monotonic
after), so a wall-clock step while running moves nothing. Time while the site is away
(presence) is neither judged nor learned.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from hearthgate.core.durations import Duration, TimeRange, TimeRangeField
from hearthgate.core.model import Instant, Observation, Severity, isoformat
from hearthgate.rules.absence import InactivityRule
from hearthgate.rules.base import (
    Clear,
    Raise,
    Rule,
    RuleOptions,
    RuleSite,
    RuleSpec,
    Signal,
    ago,
    back,
    span_text,
)
from hearthgate.rules.routine_model import (
    HISTORY_DAYS,
    MIN_DAYS,
    DailyFigures,
    RoutineClock,
    usual_high,
)
from hearthgate.rules.schedule import Schedule

BATHROOMS = frozenset({"bathroom", "toilet", "wc", "restroom", "卫生间", "浴室", "厕所", "洗手间"})
BEDROOMS = frozenset({"bedroom", "卧室"})
ACTIVITY_METRICS = frozenset({"motion", "presence", "door_open"})
ACTIVITY_KINDS = frozenset({"motion_sensor", "presence_sensor", "door_contact"})
DAY = 86400.0
# Presence says "away" 30 minutes after the door closed with no motion (site_state).
AWAY_SETTLE = 40 * 60.0


class RoutineOptions(RuleOptions):
    # Days of history before the learned figure replaces the fixed window.
    min_days: int = Field(default=MIN_DAYS, ge=3, le=HISTORY_DAYS)
    pause_when_away: bool = True


class RoutineRule(Rule):
    """What the routine rules share: activity, where the resident was last seen, learning."""

    history_key: ClassVar[str] = "figures"
    # Largest figure that can be true (seconds or minutes of the day): anything larger in a
    # restored history is corrupt.
    figure_limit: ClassVar[float] = DAY
    options: RoutineOptions

    def __init__(self, site: RuleSite, options: RoutineOptions) -> None:
        super().__init__(site, options)
        self.clock = RoutineClock(site.timezone)
        self.figures = DailyFigures()
        self.rooms = {
            d.id: (d.room or "").lower() for d in site.devices if d.kind in ACTIVITY_KINDS
        }
        self.kinds = {d.id: d.kind for d in site.devices}
        self.last_kind: str | None = None
        self.last_activity: float | None = None  # monotonic
        self.last_room: str = ""
        self.last_device: str | None = None
        self.present = False  # a radar says someone is in the last room, still
        self.raised = False
        self.corrupt = 0  # bad history entries dropped at the last restore

    # -- what the coverage view reads ------------------------------------------------

    def learning(self) -> tuple[int, int] | None:
        """(days learned, days needed) while still learning; None once learned."""
        seen = self.figures.days_seen
        return (seen, self.options.min_days) if seen < self.options.min_days else None

    def blind_reason(self, now: Instant) -> str | None:
        """Why this rule is not watching with the resident's own routine, or None.

        While learning it still watches, with its fixed window: the reason says so.
        """
        state = self.learning()
        if state is None:
            return None
        return f"still learning ({state[0]} of {state[1]} days; {self.meanwhile} meanwhile)"

    @property
    def meanwhile(self) -> str:
        """What watches while this rule learns: its own fixed window, or another rule."""
        return "fixed window"

    # -- inputs ----------------------------------------------------------------------

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.metric not in ACTIVITY_METRICS or obs.device_id not in self.rooms:
            return []  # meters and heartbeats: most observations, so kept cheap
        self._roll(now)
        if obs.metric == "presence":
            if obs.value is True:
                self.last_room, self.last_device = self.rooms[obs.device_id], obs.device_id
            self.present = obs.value is True
            return []
        active = (obs.metric == "motion" and obs.value is True) or obs.metric == "door_open"
        if not active:
            return []
        if self.last_activity is not None:
            began = self.last_activity
            if not self._away_between(began, now.mono):
                self.learn(self.clock.at_mono(now, began), now.mono - began, self.last_room)
        self.last_activity = now.mono
        self.last_kind = self.kinds.get(obs.device_id)
        self.last_room, self.last_device = self.rooms[obs.device_id], obs.device_id
        self.present = False
        signals = self.on_activity(now)
        if self.raised:
            self.raised = False
            signals.append(Clear("", {"activity_at": self.local(now), "device": obs.device_id}))
        return signals

    def on_tick(self, now: Instant) -> list[Signal]:
        self._roll(now)
        if self.raised:
            return []
        deadline = self.deadline(now)
        if deadline is None or now.mono < deadline:
            return []
        if self.options.pause_when_away and self.site.state.presence.away_at(now.mono):
            self.skip(now)
            self.refresh(now)
            return []
        signal = self.judge(now)
        if signal is None:
            self.skip(now)
            self.refresh(now)
            return []
        self.raised = True
        return [signal]

    def next_deadline(self) -> float | None:
        return None if self.raised else self._deadline

    # -- for the rule types ----------------------------------------------------------

    _deadline: float | None = None

    def learn(self, began: datetime, seconds: float, room: str) -> None:
        """A stillness of `seconds` that began at `began` (local) in `room` has ended."""

    def on_activity(self, now: Instant) -> list[Signal]:
        return []

    def deadline(self, now: Instant) -> float | None:
        """Monotonic moment of the next judgement; also kept for `next_deadline`."""
        return None

    def judge(self, now: Instant) -> Raise | None:
        return None

    def skip(self, now: Instant) -> None:
        """The deadline passed without an alert (away, or outside the rule's hours)."""

    def refresh(self, now: Instant) -> None:
        self._deadline = self.deadline(now)

    def since_text(self, now: Instant) -> str:
        if self.last_activity is None:
            return self.t("无活动记录", "no movement seen yet")
        at = self.clock.at_mono(now, self.last_activity)
        return self.t(f"{at:%H:%M} 以来无活动", f"no movement since {at:%H:%M}")

    def common_details(self, now: Instant) -> dict[str, Any]:
        out: dict[str, Any] = {"days_learned": len(self.figures.days.get(self.history_key, []))}
        if self.last_activity is not None:
            out["last_motion_at"] = isoformat(
                self.clock.at_mono(now, self.last_activity), self.site.timezone
            )
        if self.last_room:
            out["last_room"] = self.last_room
        if self.present:
            out["present_not_moving"] = True
        return out

    def _away_between(self, a: float, b: float) -> bool:
        return self.options.pause_when_away and self.site.state.presence.away_between(a, b)

    def _roll(self, now: Instant) -> None:
        self.figures.roll(self.clock.local(now).date())

    # -- persistence -----------------------------------------------------------------

    def start(self, now: Instant) -> None:
        self._roll(now)
        self.refresh(now)

    def snapshot(self, now: Instant) -> dict[str, Any]:
        self.refresh(now)
        return {
            "clock": self.clock.snapshot(now),
            "figures": self.figures.snapshot(),
            "last_activity_age": ago(self.last_activity, now),
            "last_room": self.last_room,
            "last_device": self.last_device,
            "last_kind": self.last_kind,
            "present": self.present,
            "raised": self.raised,
            **self.extra_snapshot(now),
        }

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        try:
            self.clock.restore(str(state["clock"]), saved_at, now)
        except (KeyError, TypeError, ValueError):
            self.clock = RoutineClock(self.site.timezone)
        self.figures = DailyFigures.restore(state.get("figures"), self.figure_limit)
        self.corrupt = self.figures.dropped
        try:
            self.last_activity = back(state.get("last_activity_age"), saved_at)
        except (TypeError, ValueError):
            self.last_activity = None
            self.corrupt += 1
        self.last_room = str(state.get("last_room") or "")
        self.last_device = state.get("last_device")
        self.last_kind = state.get("last_kind")
        self.present = state.get("present") is True
        self.raised = state.get("raised") is True
        self.restore_extra(state, saved_at, now)
        self._roll(now)
        self.refresh(now)

    def extra_snapshot(self, now: Instant) -> dict[str, Any]:
        return {}

    def restore_extra(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        return None


def _days(rule: Rule, n: int) -> str:
    return rule.t(f"{n} 天", f"{n} days")


# -- not_up -------------------------------------------------------------------------


class NotUpOptions(RoutineOptions):
    # Getting up is the first movement outside the bedroom (and bathroom) in this range;
    # its end is the fixed deadline, used while learning: today's inactivity rule (07:00
    # plus 4 h) raises by 11:00, and this is never later.
    morning: TimeRangeField = TimeRange.parse("04:30-11:00")
    # How long after the usual time the alert comes; never less than 15 minutes. The usual
    # time is already the latest of the days kept: on issue 16's scenario suite a further
    # 15 minutes kept false alarms at about 0.4 a resident-month, and 30 cost 15 minutes
    # more on every incident for about 0.2 fewer (docs/rules.md, "Measured").
    margin: Duration = Field(default=15 * 60.0, ge=15 * 60.0, le=4 * 3600.0)

    @field_validator("morning")
    @classmethod
    def _not_looser(cls, value: TimeRange) -> TimeRange:
        if value.crosses_midnight or value.end > time(11, 0):
            raise ValueError(
                f"'{value}' ends after 11:00: the alert would come later than the fixed"
                " inactivity window already raises it (use an end of 11:00 or earlier)"
            )
        return value


class NotUpRule(RoutineRule):
    """Not up by the usual time plus a margin (learned: the latest ordinary getting-up)."""

    type_name: ClassVar[str] = "not_up"
    default_severity = Severity.HIGH
    history_key = "up_min"
    figure_limit = 24 * 60.0
    options: NotUpOptions

    def __init__(self, site: RuleSite, options: NotUpOptions) -> None:
        super().__init__(site, options)
        rooms = set(self.rooms.values())
        # Without rooms beyond bedroom and bathroom, any movement counts as up.
        self.up_rooms = rooms - BEDROOMS - BATHROOMS - {""}
        self.done_day: str | None = None  # the day judged or seen up

    def usual_minute(self) -> tuple[float, int] | None:
        series = self.figures.learned(self.history_key, self.options.min_days)
        return (usual_high(series), len(series)) if series else None

    def _deadline_local(self, now: Instant) -> datetime:
        local = self.clock.local(now)
        start = self.options.morning.start
        latest = self.options.morning.end
        day0 = datetime.combine(local.date(), time(0), tzinfo=self.site.timezone)
        fixed = datetime.combine(local.date(), latest, tzinfo=self.site.timezone)
        usual = self.usual_minute()
        if usual is None:
            return fixed
        learned = day0 + timedelta(minutes=usual[0], seconds=self.options.margin)
        earliest = datetime.combine(local.date(), start, tzinfo=self.site.timezone)
        return max(earliest + timedelta(seconds=self.options.margin), min(learned, fixed))

    def on_activity(self, now: Instant) -> list[Signal]:
        local = self.clock.local(now)
        if self.options.morning.contains(local.time()) and (
            not self.up_rooms or self.last_room in self.up_rooms
        ):
            minute = local.hour * 60 + local.minute + local.second / 60
            self.figures.note_first(self.history_key, minute)
            self.done_day = local.date().isoformat()
        self.refresh(now)
        return []

    def deadline(self, now: Instant) -> float | None:
        local = self.clock.local(now)
        if self.done_day == local.date().isoformat():
            # Tomorrow's judgement; computed then (the deadline refreshes at each tick).
            tomorrow = datetime.combine(
                local.date() + timedelta(days=1), self.options.morning.start,
                tzinfo=self.site.timezone,
            )
            return self.clock.mono_of(now, tomorrow)
        moment = self._deadline_local(now)
        if local < datetime.combine(local.date(), self.options.morning.start,
                                    tzinfo=self.site.timezone):
            return self.clock.mono_of(now, moment)
        return self.clock.mono_of(now, max(moment, local))

    def on_tick(self, now: Instant) -> list[Signal]:
        local = self.clock.local(now)
        if self.done_day != local.date().isoformat() and local >= self._deadline_local(now):
            out = super().on_tick(now)
        else:
            out = []
        self.refresh(now)
        return out

    def judge(self, now: Instant) -> Raise | None:
        local = self.clock.local(now)
        self.done_day = local.date().isoformat()
        usual = self.usual_minute()
        since = self.since_text(now)
        details = self.common_details(now)
        details["days_learned"] = usual[1] if usual else 0
        if usual is None:
            at = f"{self.options.morning.end:%H:%M}"
            message = self.t(f"{at} 仍未起床（仍在学习作息）；{since}",
                             f"not up by {at} (still learning the routine); {since}")
        else:
            minutes = round(usual[0])
            at = f"{minutes // 60:02d}:{minutes % 60:02d}"
            details["usual_up_by"] = at
            message = self.t(f"通常 {at} 前起床（{_days(self, usual[1])}）；{since}",
                             f"usually up by {at} ({_days(self, usual[1])}); {since}")
        details["deadline"] = isoformat(self._deadline_local(now), self.site.timezone)
        return Raise("", message, (self.last_device,) if self.last_device else (), details)

    def skip(self, now: Instant) -> None:
        self.done_day = self.clock.local(now).date().isoformat()

    def extra_snapshot(self, now: Instant) -> dict[str, Any]:
        return {"done_day": self.done_day}

    def restore_extra(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        done = state.get("done_day")
        self.done_day = done if isinstance(done, str) else None


# -- stillness and night_bathroom ------------------------------------------------------


class StillnessOptions(RoutineOptions):
    # The fixed window, and the most a learned one may be: today's `inactivity` window.
    window: Duration = Field(default=4 * 3600.0, ge=20 * 60.0, le=4 * 3600.0)
    # The least a learned window may be: the floor.
    min_window: Duration = Field(default=45 * 60.0, ge=20 * 60.0, le=4 * 3600.0)
    # How far beyond the usual longest stillness (at that time and place) is unusual. 1.3:
    # 1.5 times an awake resident's longest unseen sitting (45 min) is 68 min, over the hour
    # a long lie may last; see docs/rules.md, "Measured", for what the suite assumes.
    factor: float = Field(default=1.3, ge=1.2, le=4.0)
    active_hours: TimeRangeField = TimeRange.parse("07:00-22:00")


class StillnessRule(RoutineRule):
    """Still for far longer than usual at this time of day and in this room."""

    type_name: ClassVar[str] = "stillness"
    default_severity = Severity.HIGH
    history_key = "__any__"
    block_hours: ClassVar[int] = 3
    options: StillnessOptions

    # While its fixed window applies, `stillness` leaves the alert to an `inactivity` rule
    # of the site that raises it no later: one alert for one stillness (docs/rules.md).
    defers_while_learning: ClassVar[bool] = True

    def __init__(self, site: RuleSite, options: StillnessOptions) -> None:
        super().__init__(site, options)
        self.schedule = Schedule(options.active_hours, site.timezone)
        self.skipped = False  # the current stillness was judged and let go
        self.cover: InactivityRule | None = None

    def alongside(self, others: tuple[Rule, ...]) -> None:
        if self.defers_while_learning:
            self.cover = next((r for r in others if isinstance(r, InactivityRule)
                               and covers(r, self.options)), None)

    @property
    def meanwhile(self) -> str:
        return "inactivity watches" if self.cover is not None else "fixed window"

    def covered(self, now: Instant) -> bool:
        """The covering inactivity rule can hear motion (not every sensor offline)."""
        cover = self.cover
        return cover is not None and bool(cover.sensors) and (
            cover.site.state.health.offline_text(cover.sensors, now.mono) is None)

    def key(self, began: datetime, room: str) -> str:
        return f"{room or '-'}@{began.hour // self.block_hours}"

    def applies(self, began: datetime, room: str) -> bool:
        return self.schedule.inside(began)

    def learn(self, began: datetime, seconds: float, room: str) -> None:
        if self.applies(began, room):
            self.figures.note_max(self.key(began, room), seconds)
            self.figures.note_max(self.history_key, 1.0)  # a day with something learned

    def window(self, began: datetime, room: str) -> tuple[float, list[float] | None]:
        series = self.figures.learned(self.key(began, room), self.options.min_days)
        if series is None:
            return self.options.window, None
        learned = self.options.factor * usual_high(series)
        floor = min(self.options.min_window, self.options.window)
        return max(floor, min(self.options.window, learned)), series

    def on_activity(self, now: Instant) -> list[Signal]:
        self.skipped = False
        self.refresh(now)
        return []

    def deadline(self, now: Instant) -> float | None:
        if self.last_activity is None or self.skipped:
            return None
        began = self.clock.at_mono(now, self.last_activity)
        if not self.applies(began, self.last_room):
            # A stillness that began outside the hours (in bed at night) is not judged here:
            # the morning is `not_up`'s.
            return None
        wait = self.window(began, self.last_room)[0]
        if self.last_kind == "door_contact":
            # The resident may have gone out: give presence the time to say "away" first.
            wait = max(wait, AWAY_SETTLE)
        return self.last_activity + wait

    def judge(self, now: Instant) -> Raise | None:
        assert self.last_activity is not None
        if not self.schedule.inside(self.clock.local(now)):
            return None
        began = self.clock.at_mono(now, self.last_activity)
        seconds, series = self.window(began, self.last_room)
        if series is None and self.covered(now):
            return None  # the fixed window is inactivity's, which raises no later
        details = self.common_details(now)
        details["window_s"] = round(seconds)
        room = self.last_room or self.t("家中", "the home")
        since = self.since_text(now)
        still = self.t(f"有人在但不动，{since}", f"present but not moving, {since}") if (
            self.present) else since
        if series is None:
            details["days_learned"] = 0
            message = self.t(
                f"在{room}静止超过 {span_text(self, seconds)}（仍在学习作息）；{still}",
                f"still in {room} for over {span_text(self, seconds)} (still learning the"
                f" routine); {still}",
            )
        else:
            usual = usual_high(series)
            details["days_learned"] = len(series)
            details["usual_still_s"] = round(usual)
            message = self.t(
                f"此时在{room}通常最多静止 {round(usual / 60)} 分钟（{_days(self, len(series))}）；"
                f"{still}",
                f"usually still at most {round(usual / 60)} min in {room} at this time"
                f" ({_days(self, len(series))}); {still}",
            )
        if self.present and self.last_activity is not None:
            details["present_not_moving"] = True
        return Raise("", message, (self.last_device,) if self.last_device else (), details)

    def skip(self, now: Instant) -> None:
        self.skipped = True

    def extra_snapshot(self, now: Instant) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def restore_extra(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.skipped = state.get("skipped") is True


def covers(rule: InactivityRule, options: StillnessOptions) -> bool:
    """Does this inactivity rule raise, for any stillness `stillness` would judge with its
    fixed window, no later than it? Its window no longer, its hours around the stillness
    rule's, and not paused while away when stillness is not.

    It counts from the last motion (a door opening does not restart it) and counts every
    active hour, so it is never later than a fixed-window stillness on these terms.
    """
    hours, mine = rule.options.active_hours, options.active_hours
    around = hours is None or (
        not hours.crosses_midnight and not mine.crosses_midnight
        and hours.start <= mine.start and mine.end <= hours.end)
    return (rule.options.window <= options.window and around
            and (options.pause_when_away or not rule.options.pause_when_away))


class NightBathroomOptions(StillnessOptions):
    # Fixed window while learning, and the most a learned one may be.
    window: Duration = Field(default=60 * 60.0, ge=15 * 60.0, le=2 * 3600.0)
    min_window: Duration = Field(default=15 * 60.0, ge=10 * 60.0, le=2 * 3600.0)
    factor: float = Field(default=3.0, ge=1.5, le=6.0)
    active_hours: TimeRangeField = TimeRange.parse("22:00-07:00")


class NightBathroomRule(StillnessRule):
    """Last seen in the bathroom at night, and nothing since for far longer than a visit."""

    type_name: ClassVar[str] = "night_bathroom"
    default_severity = Severity.HIGH
    defers_while_learning = False  # inactivity does not count the night
    options: NightBathroomOptions

    def key(self, began: datetime, room: str) -> str:
        return "bathroom"

    def applies(self, began: datetime, room: str) -> bool:
        return room in BATHROOMS and self.schedule.inside(began)

    def judge(self, now: Instant) -> Raise | None:
        assert self.last_activity is not None
        began = self.clock.at_mono(now, self.last_activity)
        seconds, series = self.window(began, self.last_room)
        details = self.common_details(now)
        details["window_s"] = round(seconds)
        if series is None:
            details["days_learned"] = 0
            message = self.t(
                f"夜间 {began:%H:%M} 进入卫生间后无活动（仍在学习作息）",
                f"last seen in the bathroom at {began:%H:%M} at night, nothing since"
                " (still learning the routine)",
            )
        else:
            usual = usual_high(series)
            details["days_learned"] = len(series)
            details["usual_visit_s"] = round(usual)
            minutes, days = max(1, round(usual / 60)), _days(self, len(series))
            message = self.t(
                f"夜间如厕通常 {minutes} 分钟内结束（{days}）；{began:%H:%M} 进入卫生间后无活动",
                f"night-time bathroom visits usually end within {minutes} min ({days});"
                f" in the bathroom since {began:%H:%M}, nothing since",
            )
        return Raise("", message, (self.last_device,) if self.last_device else (), details)


KINDS = frozenset(ACTIVITY_KINDS)

RULE_SPECS = (
    RuleSpec(
        "not_up", NotUpOptions, NotUpRule, kinds=KINDS,
        description="not up by the resident's usual time plus a margin (learned)",
    ),
    RuleSpec(
        "stillness", StillnessOptions, StillnessRule, kinds=KINDS,
        description="still far longer than usual at this time of day and in this room"
        " (learned)",
    ),
    RuleSpec(
        "night_bathroom", NightBathroomOptions, NightBathroomRule, kinds=KINDS,
        description="last seen in the bathroom at night and nothing since for far longer"
        " than a usual visit (learned)",
    ),
)
