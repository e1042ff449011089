"""A rule is a small state machine with no I/O and no sleeping.

The engine calls `on_observation(obs, now)` for every observation of the rule's
site and `on_tick(now)` when `next_deadline()` has come. Both return *signals*:
`Raise(key, ...)` (this condition holds) or `Clear(key)` (it no longer holds).
The engine turns signals into alert transitions, keeps one open alert per rule
and key, escalates, handles acknowledgement and persists everything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from hearthgate.core.durations import Duration
from hearthgate.core.model import Instant, Observation, Severity, isoformat
from hearthgate.core.options import Options
from hearthgate.rules.site_state import DeviceHealth, Presence, SiteState


class RuleOptions(Options):
    """Keys every rule accepts; a rule's own model subclasses this."""

    severity: Severity | None = None
    # How long an unacknowledged alert waits before it is published again as
    # `escalated`; 0 turns escalation off for this rule. Default: per severity.
    escalate_after: Duration | None = None
    # After an alert of this rule clears, a new one for the same condition waits this long.
    cooldown: Duration | None = None
    # Limit the rule to these device ids of its site (default: every suitable device).
    devices: tuple[str, ...] | None = None


# Device kinds that report `door_open`: door contacts, and door controllers (an OSDP
# reader's door input). Every door rule (door_night, door_held_open, no_exit) watches all
# of them: a door is a door, whatever reports it.
DOOR_KINDS: tuple[str, ...] = ("door_contact", "access_controller")


@dataclass(frozen=True, slots=True)
class SiteDevice:
    id: str
    kind: str
    protocol: str
    name: str | None = None  # what installers called it ("Bathroom pull-cord")
    room: str | None = None  # where it is (`bathroom`, ...), as the config's `room:` says


@dataclass(frozen=True, slots=True)
class RuleSite:
    """What a rule knows of its site."""

    site_id: str
    resident_id: str | None
    timezone: ZoneInfo
    language: str  # "zh" | "en"
    devices: tuple[SiteDevice, ...] = ()
    # Shared by the site's rules and owned by the engine (presence, device health).
    state: SiteState = field(
        default_factory=lambda: SiteState(Presence(False), DeviceHealth({})), compare=False
    )

    def devices_of(self, *kinds: str) -> tuple[SiteDevice, ...]:
        return tuple(d for d in self.devices if d.kind in kinds)

    def label(self, device_id: str) -> str:
        """A device as a care worker reads it: its name and id, or the id."""
        for d in self.devices:
            if d.id == device_id and d.name:
                return f"{d.name} ({device_id})"
        return device_id


@dataclass(frozen=True, slots=True)
class Raise:
    key: str  # distinguishes conditions of one rule (e.g. per door); "" when there is one
    message: str
    device_ids: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None  # overrides the rule's severity for this alert
    at: Instant | None = None  # when the condition began, if earlier than now
    # News while this condition's alert is still open (an SOS pressed again): the engine
    # publishes it at once as an `escalated` transition with `details.reason` = this, the
    # signal's device_ids and details, however many escalations the alert already had.
    # None: a raise while the alert is open is the same condition still holding (ignored).
    news: str | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    key: str
    details: dict[str, Any] = field(default_factory=dict)


Signal = Raise | Clear


class Rule(ABC):
    type_name: ClassVar[str]
    default_severity: ClassVar[Severity] = Severity.MEDIUM
    default_cooldown: ClassVar[float] = 0.0
    # sos/fall: only a person can clear them, by acknowledging on the platform.
    clear_on_ack: ClassVar[bool] = False
    # An absence rule notices a resident who stops living as usual (no water, no motion,
    # no exit) without anyone pressing a button; `check` and coverage ask for one per site.
    absence: ClassVar[bool] = False
    # The device kinds it reads (its site's devices of them, as `watched`); `inputs()` gives
    # their ids. None: it reads no kind in particular and is never blind for its devices.
    input_kinds: ClassVar[tuple[str, ...] | None] = None
    # A rule about the devices themselves (offline, battery, tamper), not the resident:
    # coverage does not count it as watching the resident.
    device_health: ClassVar[bool] = False

    def __init__(self, site: RuleSite, options: RuleOptions) -> None:
        self.site = site
        self.options = options

    @property
    def severity(self) -> Severity:
        return self.options.severity or self.default_severity

    @property
    def cooldown(self) -> float:
        c = self.options.cooldown
        return self.default_cooldown if c is None else c

    def local(self, now: Instant) -> str:
        """`now` as ISO 8601 with the site's offset (for details)."""
        return isoformat(now.wall, self.site.timezone)

    def watched(self, *kinds: str) -> tuple[str, ...]:
        """Ids of the site's devices of these kinds that this rule reads."""
        return tuple(d.id for d in self.site.devices_of(*kinds) if self.watches(d.id))

    def t(self, zh: str, en: str) -> str:
        """The alert message in the gateway's language."""
        return zh if self.site.language == "zh" else en

    def watches(self, device_id: str) -> bool:
        return self.options.devices is None or device_id in self.options.devices

    # -- coverage: is this rule watching now? (docs/rules.md, "Coverage") ------------

    def inputs(self) -> tuple[str, ...] | None:
        """The device ids this rule cannot watch without: it is blind while every one of
        them is offline. None: it needs none in particular (device health rules)."""
        return None if self.input_kinds is None else self.watched(*self.input_kinds)

    def blind_reason(self, now: Instant) -> str | None:
        """Why this rule cannot do its job at `now`, for `P/status` coverage and
        `hearthgate status`, or None while it watches.

        The base reads `inputs()`: `"water-301 offline"` while all of them are offline (with
        the driver's reason, `"pir-301 offline (zigbee2mqtt bridge offline)"`). A rule with
        more reasons (the resident away, a routine still being learnt) overrides this and
        joins its own to `super().blind_reason(now)`. Pure and cheap. Asked again only
        when the site moved (an observation, a tick of its rules, an acknowledgement) or
        when a device of it goes offline by silence or its presence changes: a reason that
        changes with time alone needs a `next_deadline()` (docs/rules.md, "Coverage").
        """
        devices = self.inputs()
        if devices is None:
            return None
        return self.site.state.health.offline_text(devices, now.mono)

    def with_site(self, signals: list[Signal], now: Instant) -> list[Signal]:
        """The signals `on_observation` returned, handed back once the site state has taken
        that observation in (presence, device health): a rule whose alert describes the
        site as it is now (device_offline's coverage note) completes them here."""
        return signals

    def alongside(self, others: tuple[Rule, ...]) -> None:
        """Called once, before `start` or `restore`, with the site's other rules: a rule that
        would only repeat another's alert for the same event (a routine rule still learning
        beside the fixed rule it will replace) finds it here. Pure: no signal, no I/O."""
        return None

    @abstractmethod
    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]: ...

    def start(self, now: Instant) -> None:
        """Called once before the first observation or tick when nothing was restored."""
        return None

    def on_tick(self, now: Instant) -> list[Signal]:
        return []

    def next_deadline(self) -> float | None:
        """Monotonic time at which `on_tick` must next run, or None."""
        return None

    def snapshot(self, now: Instant) -> dict[str, Any]:
        """JSON-able state to persist; `restore` must accept it after a restart."""
        return {}

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        """Rebuild state saved at `saved_at` as of `now`.

        `saved_at.mono` is the moment of the save translated into *this* boot's
        monotonic clock (the engine applies its downtime policy), so a rule stores
        ages (`now.mono - t`) and restores `saved_at.mono - age`.
        """
        return None


def ago(t: float | None, now: Instant) -> float | None:
    """A monotonic moment as an age, for snapshots (monotonic clocks restart at boot)."""
    return None if t is None else now.mono - t


def back(age: Any, saved_at: Instant) -> float | None:
    """An age from a snapshot as a monotonic moment of this boot."""
    return None if age is None else saved_at.mono - float(age)


def span_text(rule: Rule, seconds: float) -> str:
    """A window for a message: `12 小时` / `12 h`, `1 小时 30 分钟` / `1 h 30 min`, `30 分钟` /
    `30 min`, `3 天` / `3 days`, `20 秒` / `20 s`. Whole units only: a care worker reads
    "40 分钟", not "0.666667 h", and a short test window reads "2 秒", not "0.0333333 分钟"."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return rule.t(f"{seconds / 86400:g} 天", f"{seconds / 86400:g} days")
    if seconds < 60:
        return rule.t(f"{round(seconds)} 秒", f"{round(seconds)} s")
    minutes = round(seconds / 60)
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return rule.t(f"{hours} 小时 {rest} 分钟", f"{hours} h {rest} min")
    if hours:
        return rule.t(f"{hours} 小时", f"{hours} h")
    return rule.t(f"{minutes} 分钟", f"{minutes} min")


@dataclass(frozen=True)
class SiteExpectation:
    """Where a site is expected to have a rule type, and what `hearthgate check` warns if not.

    The messages are `str.format` templates over `site` (the site's id) and, in
    `unwatched`, `device` (the device's id); the hint is given as written.

    Args:
        kinds: a site with a device of one of these kinds should have the rule.
        unwatched: the warning, at the device's `kind:`, when such a site lacks the rule.
        hint: what to add, given with `unwatched`.
        each_device: warn at every such device rather than at the first one only.
        idle: the warning, at the rule's `type:`, when a site has the rule but no such device.
        absent: the warning, at the site's `id:`, when a site has neither the rule nor such a
            device.
    """

    kinds: frozenset[str]
    unwatched: str
    hint: str | None = None
    each_device: bool = False
    idle: str | None = None
    absent: str | None = None


@dataclass(frozen=True)
class RuleSpec:
    """A rule type (`sites[].rules[].type`): its option model and its state machine.

    Each rule module declares its specs in `RULE_SPECS`; `hearthgate.registry` lists them.

    Args:
        name: what `type:` says.
        options: the model the rule's keys are validated by.
        cls: the state machine the engine runs.
        kinds: device kinds whose observations the rule reads; empty means any kind.
        description: one line, for the JSON Schema.
        expected: where a site should have the rule, for `hearthgate check`; None: nowhere
            in particular.
        history: seconds of raw observations the rule reads back from the store (a routine
            learnt over weeks); the store keeps raw observations at least this long
            (`gateway.retention.observations`, docs/privacy.md). 0: none.
    """

    name: str
    options: type[Options]
    cls: type[Rule]
    kinds: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    expected: SiteExpectation | None = None
    history: float = 0.0

