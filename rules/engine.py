"""The rules engine: signals from rules become alert transitions with a lifecycle.

One open alert per (site, rule, key). Every transition gets its own event_id;
the alert_id is stable from raised to cleared. An unacknowledged alert is
re-published as `escalated` after `escalate_after` (per severity, overridable
per rule), a bounded number of times. Acknowledgement stops escalation, and
clears alerts whose rule says only a person can clear them (sos, fall).

Pure: no I/O, no sleeping. The service feeds it observations and ticks, stores
its snapshot, and publishes what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.model import AlertState, AlertTransition, Instant, Observation, Severity, new_id
from gateway.registry import RULES
from rules.base import Clear, Raise, Rule, RuleSite, Signal, SiteDevice

log = logging.getLogger("hearthgate.rules")

DEFAULT_ESCALATE_AFTER: dict[Severity, float | None] = {
    Severity.CRITICAL: 5 * 60.0,
    Severity.HIGH: 15 * 60.0,
    Severity.MEDIUM: 60 * 60.0,
    Severity.LOW: None,
}
MAX_ESCALATIONS = 3


class UnknownAlert(LookupError):
    pass


@dataclass
class OpenAlert:
    transition: AlertTransition  # the latest transition of this alert
    rule_key: str  # "<site>/<rule index>/<signal key>"
    escalations: int = 0
    next_escalation: float | None = None  # monotonic
    acked_by: str | None = None


class RuleEngine:
    def __init__(
        self,
        rules_by_site: dict[str, list[Rule]],
        *,
        escalate_after: dict[Severity, float | None] | None = None,
        max_escalations: int = MAX_ESCALATIONS,
    ) -> None:
        self.rules_by_site = rules_by_site
        self.escalate_after = dict(DEFAULT_ESCALATE_AFTER, **(escalate_after or {}))
        self.max_escalations = max_escalations
        self.open: dict[str, OpenAlert] = {}  # by alert_id
        self._by_rule_key: dict[str, str] = {}  # rule_key -> alert_id

    @classmethod
    def from_config(cls, config: Any) -> RuleEngine:
        """Build every site's rules from a loaded `GatewayConfig`."""
        tz = ZoneInfo(config.gateway.timezone)
        rules_by_site: dict[str, list[Rule]] = {}
        for site in config.sites:
            devices = tuple(
                SiteDevice(d.id, d.kind, d.protocol) for d in config.devices if d.site == site.id
            )
            rsite = RuleSite(site.id, site.resident, tz, config.gateway.language, devices)
            rules_by_site[site.id] = [
                RULES[rc.type].cls(rsite, rc.options) for rc in site.rules
            ]
        return cls(rules_by_site)

    # -- inputs ---------------------------------------------------------------

    def on_observation(self, obs: Observation, now: Instant) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        for index, rule in enumerate(self.rules_by_site.get(obs.site_id, ())):
            if not rule.watches(obs.device_id):
                continue
            try:
                signals = rule.on_observation(obs, now)
            except Exception:
                # One broken rule must not silence the others.
                log.exception("rule %s of site %s failed", rule.type_name, obs.site_id)
                continue
            out += self._apply(rule, index, signals, now)
        return out

    def on_tick(self, now: Instant) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        for site_id, rules in self.rules_by_site.items():
            for index, rule in enumerate(rules):
                deadline = rule.next_deadline()
                if deadline is None or deadline > now.mono:
                    continue
                try:
                    signals = rule.on_tick(now)
                except Exception:
                    log.exception("rule %s of site %s failed", rule.type_name, site_id)
                    continue
                out += self._apply(rule, index, signals, now)
        out += self._escalate(now)
        return out

    def acknowledge(self, alert_id: str, by: str, now: Instant) -> list[AlertTransition]:
        alert = self.open.get(alert_id)
        if alert is None:
            raise UnknownAlert(alert_id)
        alert.acked_by = by
        alert.next_escalation = None
        rule = self._rule_for(alert.rule_key)
        if rule is not None and rule.clear_on_ack:
            return [self._close(alert, now, {"acknowledged_by": by})]
        return []

    def next_deadline(self) -> float | None:
        deadlines = [
            d
            for rules in self.rules_by_site.values()
            for rule in rules
            if (d := rule.next_deadline()) is not None
        ]
        deadlines += [a.next_escalation for a in self.open.values() if a.next_escalation]
        return min(deadlines, default=None)

    # -- lifecycle ------------------------------------------------------------

    def _apply(
        self, rule: Rule, index: int, signals: list[Signal], now: Instant
    ) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        for signal in signals:
            rule_key = f"{rule.site.site_id}/{index}/{signal.key}"
            alert_id = self._by_rule_key.get(rule_key)
            if isinstance(signal, Raise) and alert_id is None:
                out.append(self._raise(rule, rule_key, signal, now))
            elif isinstance(signal, Clear) and alert_id is not None:
                out.append(self._close(self.open[alert_id], now, signal.details))
        return out

    def _raise(self, rule: Rule, rule_key: str, signal: Raise, now: Instant) -> AlertTransition:
        severity = signal.severity or rule.severity
        began = signal.at or now
        transition = AlertTransition(
            event_id=new_id(now.wall),
            alert_id=new_id(began.wall),
            state=AlertState.RAISED,
            type=rule.type_name,
            severity=severity,
            site_id=rule.site.site_id,
            resident_id=rule.site.resident_id,
            device_ids=signal.device_ids,
            raised_at=now.wall,
            ts=now.wall,
            message=signal.message,
            details=signal.details,
        )
        after = self._escalate_after(rule, severity)
        alert = OpenAlert(
            transition, rule_key, next_escalation=now.mono + after if after else None
        )
        self.open[transition.alert_id] = alert
        self._by_rule_key[rule_key] = transition.alert_id
        log.info(
            "alert raised: %s at %s", rule.type_name, rule.site.site_id,
            extra={"alert_id": transition.alert_id, "site_id": rule.site.site_id},
        )
        return transition

    def _close(self, alert: OpenAlert, now: Instant, details: dict[str, Any]) -> AlertTransition:
        del self.open[alert.transition.alert_id]
        self._by_rule_key.pop(alert.rule_key, None)
        return replace(
            alert.transition,
            event_id=new_id(now.wall),
            state=AlertState.CLEARED,
            ts=now.wall,
            details={**alert.transition.details, **details},
        )

    def _escalate(self, now: Instant) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        for alert in self.open.values():
            if alert.next_escalation is None or alert.next_escalation > now.mono:
                continue
            alert.escalations += 1
            alert.transition = replace(
                alert.transition,
                event_id=new_id(now.wall),
                state=AlertState.ESCALATED,
                ts=now.wall,
                details={**alert.transition.details, "escalation": alert.escalations},
            )
            rule = self._rule_for(alert.rule_key)
            after = self._escalate_after(rule, alert.transition.severity) if rule else None
            more = alert.escalations < self.max_escalations and after
            alert.next_escalation = now.mono + after if more and after else None
            out.append(alert.transition)
        return out

    def _escalate_after(self, rule: Rule | None, severity: Severity) -> float | None:
        if rule is not None and rule.options.escalate_after is not None:
            return rule.options.escalate_after or None
        return self.escalate_after.get(severity)

    def _rule_for(self, rule_key: str) -> Rule | None:
        site_id, index, _ = rule_key.split("/", 2)
        rules = self.rules_by_site.get(site_id, [])
        i = int(index)
        return rules[i] if i < len(rules) else None

    # -- persistence ----------------------------------------------------------

    def snapshot(self, now: Instant) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-able data."""
        return {
            "version": 1,
            "saved_mono": now.mono,
            "saved_wall": now.wall.isoformat(),
            "alerts": [
                {
                    "rule_key": a.rule_key,
                    "escalations": a.escalations,
                    "escalate_in": (
                        max(0.0, a.next_escalation - now.mono) if a.next_escalation else None
                    ),
                    "acked_by": a.acked_by,
                    "transition": _transition_to_json(a.transition),
                }
                for a in self.open.values()
            ],
            "rules": {
                f"{site_id}/{i}/{rule.type_name}": rule.snapshot(now)
                for site_id, rules in self.rules_by_site.items()
                for i, rule in enumerate(rules)
            },
        }

    def restore(self, state: dict[str, Any], now: Instant) -> None:
        """Load a snapshot from an earlier run. Rules whose config changed start afresh.

        Escalation clocks resume with the time that was left when the snapshot was
        taken: downtime is not counted, so a restart never escalates early.
        """
        if state.get("version") != 1:
            return
        saved_at = Instant(float(state["saved_mono"]), datetime.fromisoformat(state["saved_wall"]))
        for item in state.get("alerts", []):
            transition = _transition_from_json(item["transition"])
            if self._rule_for(item["rule_key"]) is None:
                continue
            escalate_in = item.get("escalate_in")
            alert = OpenAlert(
                transition,
                item["rule_key"],
                escalations=int(item.get("escalations", 0)),
                next_escalation=now.mono + escalate_in if escalate_in is not None else None,
                acked_by=item.get("acked_by"),
            )
            self.open[transition.alert_id] = alert
            self._by_rule_key[alert.rule_key] = transition.alert_id
        saved_rules = state.get("rules", {})
        for site_id, rules in self.rules_by_site.items():
            for i, rule in enumerate(rules):
                saved = saved_rules.get(f"{site_id}/{i}/{rule.type_name}")
                if saved:
                    try:
                        rule.restore(saved, saved_at, now)
                    except Exception:
                        log.exception("could not restore rule %s of %s", rule.type_name, site_id)

    def open_alerts(self) -> list[AlertTransition]:
        return [a.transition for a in self.open.values()]


def _transition_to_json(t: AlertTransition) -> dict[str, Any]:
    return {
        "event_id": t.event_id,
        "alert_id": t.alert_id,
        "state": str(t.state),
        "type": t.type,
        "severity": str(t.severity),
        "site_id": t.site_id,
        "resident_id": t.resident_id,
        "device_ids": list(t.device_ids),
        "raised_at": t.raised_at.isoformat(),
        "ts": t.ts.isoformat(),
        "message": t.message,
        "details": t.details,
    }


def _transition_from_json(d: dict[str, Any]) -> AlertTransition:
    return AlertTransition(
        event_id=d["event_id"],
        alert_id=d["alert_id"],
        state=AlertState(d["state"]),
        type=d["type"],
        severity=Severity(d["severity"]),
        site_id=d["site_id"],
        resident_id=d.get("resident_id"),
        device_ids=tuple(d.get("device_ids", ())),
        raised_at=datetime.fromisoformat(d["raised_at"]),
        ts=datetime.fromisoformat(d["ts"]),
        message=d.get("message", ""),
        details=d.get("details", {}),
    )


transition_to_json = _transition_to_json
transition_from_json = _transition_from_json
