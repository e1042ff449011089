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

from gateway.durations import Duration
from gateway.model import Instant, Observation, Severity
from gateway.registry import Options


class RuleOptions(Options):
    """Keys every rule accepts; a rule's own model subclasses this."""

    severity: Severity | None = None
    escalate_after: Duration | None = None
    cooldown: Duration | None = None
    # Limit the rule to these device ids of its site (default: every suitable device).
    devices: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class SiteDevice:
    id: str
    kind: str
    protocol: str


@dataclass(frozen=True, slots=True)
class RuleSite:
    """What a rule knows of its site."""

    site_id: str
    resident_id: str | None
    timezone: ZoneInfo
    language: str  # "zh" | "en"
    devices: tuple[SiteDevice, ...] = ()

    def devices_of(self, *kinds: str) -> tuple[SiteDevice, ...]:
        return tuple(d for d in self.devices if d.kind in kinds)


@dataclass(frozen=True, slots=True)
class Raise:
    key: str  # distinguishes conditions of one rule (e.g. per door); "" when there is one
    message: str
    device_ids: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None  # overrides the rule's severity for this alert
    at: Instant | None = None  # when the condition began, if earlier than now


@dataclass(frozen=True, slots=True)
class Clear:
    key: str
    details: dict[str, Any] = field(default_factory=dict)


Signal = Raise | Clear


class Rule(ABC):
    type_name: ClassVar[str]
    default_severity: ClassVar[Severity] = Severity.MEDIUM
    # sos/fall: only a person can clear them, by acknowledging on the platform.
    clear_on_ack: ClassVar[bool] = False

    def __init__(self, site: RuleSite, options: RuleOptions) -> None:
        self.site = site
        self.options = options

    @property
    def severity(self) -> Severity:
        return self.options.severity or self.default_severity

    def t(self, zh: str, en: str) -> str:
        """The alert message in the gateway's language."""
        return zh if self.site.language == "zh" else en

    def watches(self, device_id: str) -> bool:
        return self.options.devices is None or device_id in self.options.devices

    @abstractmethod
    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]: ...

    def on_tick(self, now: Instant) -> list[Signal]:
        return []

    def next_deadline(self) -> float | None:
        """Monotonic time at which `on_tick` must next run, or None."""
        return None

    def snapshot(self, now: Instant) -> dict[str, Any]:
        """JSON-able state to persist; `restore` must accept it after a restart."""
        return {}

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        """Rebuild state saved at `saved_at` (an earlier boot's clocks) as of `now`."""
        return None
