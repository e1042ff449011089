"""Door and access rules: `door_night`, `door_held_open`, `access_denied_repeated`."""

from __future__ import annotations

from collections import deque
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
    ago,
    back,
    span_text,
)
from hearthgate.rules.schedule import Schedule


class _TimedAlertRule(Rule):
    """An alert that stays open for `cooldown` after the last event that raised it.

    Here `cooldown` *is* the alert's life, so the engine's generic cooldown is off.
    """

    engine_cooldown: ClassVar[bool] = False

    def __init__(self, site: RuleSite, options: RuleOptions) -> None:
        super().__init__(site, options)
        self.clear_at: dict[str, float] = {}  # key -> mono

    def _hold(self, key: str, now: Instant) -> bool:
        """Keep `key` open for another cooldown; True if it was not open yet."""
        new = key not in self.clear_at
        self.clear_at[key] = now.mono + self.cooldown
        return new

    def on_tick(self, now: Instant) -> list[Signal]:
        out: list[Signal] = []
        for key, at in list(self.clear_at.items()):
            if at <= now.mono:
                del self.clear_at[key]
                out.append(Clear(key))
        return out

    def next_deadline(self) -> float | None:
        return min(self.clear_at.values(), default=None)

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {"clear_in": {k: at - now.mono for k, at in self.clear_at.items()}}

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.clear_at = {k: saved_at.mono + float(v) for k, v in state.get("clear_in", {}).items()}


class DoorNightOptions(RuleOptions):
    quiet_hours: TimeRangeField = TimeRange.parse("22:00-06:00")


class DoorNightRule(_TimedAlertRule):
    type_name: ClassVar[str] = "door_night"
    input_kinds: ClassVar[tuple[str, ...] | None] = DOOR_KINDS
    default_severity = Severity.HIGH
    default_cooldown = 30 * 60.0
    options: DoorNightOptions

    def __init__(self, site: RuleSite, options: DoorNightOptions) -> None:
        super().__init__(site, options)
        self.schedule = Schedule(options.quiet_hours, site.timezone)
        self.doors = self.watched(*DOOR_KINDS)

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.device_id not in self.doors or obs.metric != "door_open" or obs.value is not True:
            return []
        if not self.schedule.inside(now.wall):
            return []
        if not self._hold("", now):
            return []
        return [
            Raise(
                "",
                self.t("夜间开门", "Door opened at night"),
                (obs.device_id,),
                {"opened_at": self.local(now), "quiet_hours": str(self.options.quiet_hours)},
            )
        ]


class DoorHeldOpenOptions(RuleOptions):
    after: Duration = 10 * 60.0


class DoorHeldOpenRule(Rule):
    type_name: ClassVar[str] = "door_held_open"
    input_kinds: ClassVar[tuple[str, ...] | None] = DOOR_KINDS
    default_severity = Severity.MEDIUM
    options: DoorHeldOpenOptions

    def __init__(self, site: RuleSite, options: DoorHeldOpenOptions) -> None:
        super().__init__(site, options)
        self.doors = self.watched(*DOOR_KINDS)
        self.opened: dict[str, tuple[float, str]] = {}  # door -> (mono, ISO) while open
        self.raised: set[str] = set()

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.device_id not in self.doors:
            return []
        door = obs.device_id
        if obs.metric == "door_open" and obs.value is True:
            self.opened.setdefault(door, (now.mono, self.local(now)))
        elif (obs.metric == "door_open" and obs.value is False) or (
            obs.metric == "alive" and obs.value is False
        ):
            # An unreachable contact says nothing about the door: stop judging it.
            self.opened.pop(door, None)
            if door in self.raised:
                self.raised.discard(door)
                return [Clear(door, {"closed_at": self.local(now)})]
        return []

    def on_tick(self, now: Instant) -> list[Signal]:
        out: list[Signal] = []
        for door, (since, since_at) in self.opened.items():
            if door in self.raised or now.mono < since + self.options.after:
                continue
            self.raised.add(door)
            out.append(
                Raise(
                    door,
                    self.t(
                        f"门已打开超过{span_text(self, self.options.after)}",
                        f"Door open for more than {span_text(self, self.options.after)}",
                    ),
                    (door,),
                    {"opened_at": since_at, "after_s": int(self.options.after)},
                )
            )
        return out

    def next_deadline(self) -> float | None:
        return min(
            (t + self.options.after for d, (t, _) in self.opened.items() if d not in self.raised),
            default=None,
        )

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            "opened": {d: [ago(t, now), iso] for d, (t, iso) in self.opened.items()},
            "raised": sorted(self.raised),
        }

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        for d, (age, iso) in state.get("opened", {}).items():
            t = back(age, saved_at)
            if t is not None:
                self.opened[d] = (t, iso)
        self.raised = set(state.get("raised", []))


class AccessDeniedOptions(RuleOptions):
    count: int = Field(default=3, ge=2, le=1000)
    within: Duration = 5 * 60.0


class AccessDeniedRepeatedRule(_TimedAlertRule):
    type_name: ClassVar[str] = "access_denied_repeated"
    input_kinds: ClassVar[tuple[str, ...] | None] = ("access_controller",)
    default_severity = Severity.MEDIUM
    default_cooldown = 15 * 60.0
    options: AccessDeniedOptions

    def __init__(self, site: RuleSite, options: AccessDeniedOptions) -> None:
        super().__init__(site, options)
        self.controllers = self.watched("access_controller")
        self.denied: dict[str, deque[float]] = {}

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.device_id not in self.controllers or obs.metric != "card":
            return []
        if obs.attrs.get("granted") is not False:
            return []
        times = self.denied.setdefault(obs.device_id, deque())
        times.append(now.mono)
        while times and times[0] < now.mono - self.options.within:
            times.popleft()
        if len(times) < self.options.count:
            return []
        if not self._hold(obs.device_id, now):
            return []
        return [
            Raise(
                obs.device_id,
                self.t(
                    f"{span_text(self, self.options.within)}内刷卡被拒{len(times)}次",
                    f"{len(times)} denied card reads within {span_text(self, self.options.within)}",
                ),
                (obs.device_id,),
                {"count": len(times), "within_s": int(self.options.within),
                 "last_at": self.local(now)},
            )
        ]

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            **super().snapshot(now),
            "denied": {d: [now.mono - t for t in ts] for d, ts in self.denied.items()},
        }

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        super().restore(state, saved_at, now)
        for d, ages in state.get("denied", {}).items():
            self.denied[d] = deque(saved_at.mono - float(a) for a in ages)


RULE_SPECS = (
    RuleSpec(
        "door_night", DoorNightOptions, DoorNightRule, kinds=frozenset(DOOR_KINDS),
        description="a door opens inside `quiet_hours`; clears after `cooldown`",
    ),
    RuleSpec(
        "door_held_open", DoorHeldOpenOptions, DoorHeldOpenRule,
        kinds=frozenset(DOOR_KINDS),
        description="a door stays open longer than `after`",
    ),
    RuleSpec(
        "access_denied_repeated", AccessDeniedOptions, AccessDeniedRepeatedRule,
        kinds=frozenset({"access_controller"}),
        description="`count` denied card reads within `within` at one controller",
    ),
)


