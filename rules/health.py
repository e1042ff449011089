"""Device health rules: `device_offline`, `battery_low`, `tamper`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from hearthgate.core.durations import Duration
from hearthgate.core.model import Instant, Observation, Severity, isoformat
from hearthgate.rules.base import (
    Clear,
    Raise,
    Rule,
    RuleOptions,
    RuleSite,
    RuleSpec,
    Signal,
    span_text,
)
from hearthgate.rules.coverage import site_coverage


class DeviceOfflineOptions(RuleOptions):
    # Silence that makes a device of the site offline, unless the device sets its own
    # `offline_after` or says nothing while well (hearthgate.core.health has the policy).
    after: Duration | None = Field(default=None, gt=0)


class DeviceOfflineRule(Rule):
    type_name: ClassVar[str] = "device_offline"
    default_severity = Severity.MEDIUM
    default_cooldown = 10 * 60.0
    device_health = True
    options: DeviceOfflineOptions

    def __init__(self, site: RuleSite, options: DeviceOfflineOptions) -> None:
        super().__init__(site, options)
        self.watched_ids = tuple(d.id for d in site.devices if self.watches(d.id))
        self.raised: set[str] = set()

    def _raise(self, device_id: str, reason: str, now: Instant) -> Raise:
        health = self.site.state.health
        thr = health.thresholds.get(device_id)
        details: dict[str, Any] = {"reason": reason, "last_seen_at": None}
        seen = health.last_seen_wall.get(device_id)
        if seen:
            details["last_seen_at"] = isoformat(datetime.fromisoformat(seen), self.site.timezone)
        if thr is not None:
            details["after_s"] = int(thr)
        label = self.site.label(device_id)
        text = (
            self.t(f"设备无法连接：{label}", f"Device unreachable: {label}")
            if reason == "unreachable"
            else self.t(
                f"设备离线：{label}（{span_text(self, thr or 0)}无数据）",
                f"Device offline: {label} (silent for {span_text(self, thr or 0)})",
            )
        )
        self.raised.add(device_id)
        return Raise(device_id, text, (device_id,), details)

    def _with_coverage(self, signal: Raise, now: Instant) -> Raise:
        """The alert says so when the site is left without any absence rule watching
        (`details.coverage`: "room-301: only SOS is watched", `details.watching`)."""
        state = self.site.state
        cov = site_coverage(self.site.site_id, state.rules, now)
        if not cov.absence_blind:
            return signal
        return replace(signal, details={**signal.details, "coverage": cov.note(),
                                        "watching": list(cov.watching_resident)})

    def with_site(self, signals: list[Signal], now: Instant) -> list[Signal]:
        # `alive: false` raised in on_observation, before the site's health took it in.
        return [self._with_coverage(s, now) if isinstance(s, Raise) else s for s in signals]

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        d = obs.device_id
        if d not in self.watched_ids:
            return []
        if obs.metric == "alive" and obs.value is False:
            return [] if d in self.raised else [self._raise(d, "unreachable", now)]
        if d in self.raised:
            self.raised.discard(d)
            return [Clear(d, {"back_at": self.local(now)})]
        return []

    def on_tick(self, now: Instant) -> list[Signal]:
        out: list[Signal] = []
        health = self.site.state.health
        for d in self.watched_ids:
            if d in self.raised:
                continue
            off = health.offline_at(d)
            if off is not None and off <= now.mono:
                out.append(self._with_coverage(self._raise(
                    d, "silent" if health.alive.get(d, True) else "unreachable", now), now))
        return out

    def next_deadline(self) -> float | None:
        health = self.site.state.health
        best: float | None = None
        for d in self.watched_ids:
            if d in self.raised:
                continue
            off = health.offline_at(d)
            if off is not None and (best is None or off < best):
                best = off
        return best

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {"raised": sorted(self.raised)}

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.raised = set(state.get("raised", [])) & set(self.watched_ids)


class BatteryLowOptions(RuleOptions):
    below: float = Field(default=15.0, gt=0, le=100)
    # Clears only at `below + hysteresis` %, so a battery hovering at the line does not flap.
    hysteresis: float = Field(default=5.0, ge=0, le=50)


class BatteryLowRule(Rule):
    type_name: ClassVar[str] = "battery_low"
    device_health = True
    default_severity = Severity.LOW
    options: BatteryLowOptions

    def __init__(self, site: RuleSite, options: BatteryLowOptions) -> None:
        super().__init__(site, options)
        self.raised: set[str] = set()

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        d = obs.device_id
        low: bool | None = None
        pct: float | None = None
        if obs.metric == "battery_pct" and not isinstance(obs.value, bool | str):
            pct = float(obs.value)
            if pct < self.options.below:
                low = True
            elif pct >= self.options.below + self.options.hysteresis:
                low = False
        elif obs.metric == "battery_low" and isinstance(obs.value, bool):
            low = obs.value
        if low is True and d not in self.raised:
            self.raised.add(d)
            label = self.site.label(d)
            text = (
                self.t(f"电池电量低：{label}（{pct:g}%）", f"Battery low: {label} ({pct:g} %)")
                if pct is not None
                else self.t(f"电池电量低：{label}", f"Battery low: {label}")
            )
            return [Raise(d, text, (d,), {"battery_pct": pct, "below": self.options.below})]
        if low is False and d in self.raised:
            self.raised.discard(d)
            return [Clear(d, {"battery_pct": pct})]
        return []

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {"raised": sorted(self.raised)}

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.raised = set(state.get("raised", []))


class TamperOptions(RuleOptions):
    pass


class TamperRule(Rule):
    type_name: ClassVar[str] = "tamper"
    device_health = True
    default_severity = Severity.MEDIUM
    options: TamperOptions

    def __init__(self, site: RuleSite, options: TamperOptions) -> None:
        super().__init__(site, options)
        self.raised: set[str] = set()

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.metric != "tamper" or not isinstance(obs.value, bool):
            return []
        d = obs.device_id
        if obs.value and d not in self.raised:
            self.raised.add(d)
            return [
                Raise(
                    d,
                    self.t(f"设备被拆动：{self.site.label(d)}",
                           f"Device tampered with: {self.site.label(d)}"),
                    (d,),
                    {"at": self.local(now)},
                )
            ]
        if not obs.value and d in self.raised:
            self.raised.discard(d)
            return [Clear(d)]
        return []

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {"raised": sorted(self.raised)}

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.raised = set(state.get("raised", []))


RULE_SPECS = (
    RuleSpec(
        "device_offline", DeviceOfflineOptions, DeviceOfflineRule,
        description="a device of the site is silent longer than `after` or unreachable",
    ),
    RuleSpec(
        "battery_low", BatteryLowOptions, BatteryLowRule,
        description="battery below `below` % (clears at `below + hysteresis`)",
    ),
    RuleSpec("tamper", TamperOptions, TamperRule, description="a device reports tamper"),
)


