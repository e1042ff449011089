"""`sos` and `fall`: raised the moment the device says so; only a person clears them.

One press is one alert: while an alert is open, a further press is part of it, and it is
news (the resident still needs help, or a second person is pressing): each one is published
at once as an `escalated` transition with `details.reason: "pressed_again"`, the press count
and the button pressed (contract, alert types). A radio's repeats of one press are not
presses. The platform's acknowledgement clears the alert.
"""

from __future__ import annotations

from typing import ClassVar

from hearthgate.core.durations import Duration
from hearthgate.core.model import Instant, Observation, Severity, isoformat
from hearthgate.rules.base import (
    Raise,
    Rule,
    RuleOptions,
    RuleSite,
    RuleSpec,
    Signal,
    SiteExpectation,
)


class SosOptions(RuleOptions):
    # Presses this close to the one that began the call are the radio repeating it: part
    # of the same call, even if it was acknowledged in between. Kept short, because a
    # press after an acknowledgement is news (the resident still needs help); the drivers
    # already fold a press's radio repeats (2.5–3 s) into one.
    repeat_window: Duration = 3.0


class SosRule(Rule):
    type_name: ClassVar[str] = "sos"
    metric: ClassVar[str] = "sos"
    input_kinds: ClassVar[tuple[str, ...] | None] = ("sos_button",)
    default_severity = Severity.CRITICAL
    clear_on_ack = True
    options: SosOptions

    def __init__(self, site: RuleSite, options: SosOptions) -> None:
        super().__init__(site, options)
        # Per button: the press that began its latest call (monotonic). Repeats are judged
        # per button, so a second button pressed a second later is a press of its own.
        self.last_press: dict[str, float] = {}

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.metric != self.metric or obs.value is not True:
            return []
        # The window is anchored on the press that began the call, not the latest one:
        # someone pressing again and again must raise a new alert once the window has
        # passed and the first was acknowledged, however short the gaps between presses.
        last = self.last_press.get(obs.device_id)
        if last is not None and now.mono - last < self.options.repeat_window:
            return []
        self.last_press[obs.device_id] = now.mono
        details = {"pressed_at": isoformat(obs.at.wall, self.site.timezone)}
        if "action" in obs.attrs:
            details["action"] = obs.attrs["action"]
        return [
            Raise(
                key="",
                message=self.t("紧急呼叫（SOS）", "Emergency call (SOS)"),
                device_ids=(obs.device_id,),
                details=details,
                news="pressed_again",
            )
        ]

    def snapshot(self, now: Instant) -> dict[str, object]:
        # Ages, for the repeat window across a restart (a radio repeat heard after a
        # quick restart is still a repeat).
        return {"press_ages": {d: now.mono - t for d, t in self.last_press.items()}}

    def restore(self, state: dict[str, object], saved_at: Instant, now: Instant) -> None:
        ages = state.get("press_ages", {})
        if isinstance(ages, dict):
            self.last_press = {str(d): saved_at.mono - float(a) for d, a in ages.items()}


class FallRule(SosRule):
    type_name: ClassVar[str] = "fall"
    metric: ClassVar[str] = "fall"
    input_kinds: ClassVar[tuple[str, ...] | None] = ("fall_sensor", "sos_button")

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        return [
            Raise(
                key=s.key,
                message=self.t("检测到跌倒", "Fall detected"),
                device_ids=s.device_ids,
                details=s.details,
                news=s.news,
            )
            for s in super().on_observation(obs, now)
            if isinstance(s, Raise)
        ]


RULE_SPECS = (
    RuleSpec(
        "sos",
        SosOptions,
        SosRule,
        kinds=frozenset({"sos_button"}),
        description="an SOS press raises a critical alert at once; cleared when acknowledged",
        # Every site should be able to call for help.
        expected=SiteExpectation(
            kinds=frozenset({"sos_button"}),
            unwatched="site '{site}' has an SOS button ('{device}') but no 'sos' rule:"
            " a press raises no alert",
            hint="add {type: sos} to the site's rules",
            idle="site '{site}' has an 'sos' rule but no sos_button device: it can never fire",
            absent="site '{site}' has no SOS device (sos_button)",
        ),
    ),
    RuleSpec(
        "fall",
        SosOptions,
        FallRule,
        kinds=frozenset({"fall_sensor", "sos_button"}),
        description="a fall report raises a critical alert at once; cleared when acknowledged",
    ),
)

