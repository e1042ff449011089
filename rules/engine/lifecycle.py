"""The lifecycle of alerts: raised, escalated, acknowledged, cleared, and the cooldown after.

One open alert per (site, rule, key). Every transition gets its own event_id; the alert_id
is stable from raised to cleared. An unacknowledged alert is re-published as `escalated`
after `escalate_after` (per severity, overridable per rule), a bounded number of times.
Acknowledgement stops escalation, and clears alerts whose rule says only a person can clear
them (sos, fall). After an alert clears, the same condition may raise again only after the
rule's `cooldown` (a raise inside it waits, and is dropped if the condition ends first).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from hearthgate.core.model import AlertState, AlertTransition, Instant, Severity, new_id
from hearthgate.rules.base import Clear, Raise, Rule, Signal

log = logging.getLogger("hearthgate.rules")

DEFAULT_ESCALATE_AFTER: dict[Severity, float | None] = {
    Severity.CRITICAL: 5 * 60.0,
    Severity.HIGH: 15 * 60.0,
    Severity.MEDIUM: 60 * 60.0,
    Severity.LOW: None,
}
MAX_ESCALATIONS = 3


def site_of(key: str) -> str:
    """The site a rule key or snapshot key ("<site>/<rule index>/...") belongs to."""
    return key.split("/", 1)[0]


class UnknownAlert(LookupError):
    """An acknowledgement names an alert that is not open (never raised, or cleared)."""


@dataclass
class OpenAlert:
    """An alert raised and not cleared yet, with its escalation clock."""

    transition: AlertTransition  # the latest transition of this alert
    rule_key: str  # "<site>/<rule index>/<signal key>"
    escalations: int = 0
    next_escalation: float | None = None  # monotonic
    acked_by: str | None = None
    presses: int = 1  # raises of this condition folded into it (SOS presses), counting the first


class AlertLifecycle:
    """The open alerts of an engine and their transitions.

    Args:
        rules_by_site: The engine's rules; a rule key names one by site id and index.
        escalate_after: Seconds an unacknowledged alert waits before it is escalated, per
            severity, over `DEFAULT_ESCALATE_AFTER` (None: never).
        max_escalations: How many times one alert is escalated at most.
    """

    def __init__(
        self,
        rules_by_site: dict[str, list[Rule]],
        escalate_after: dict[Severity, float | None] | None,
        max_escalations: int,
    ) -> None:
        self.rules_by_site = rules_by_site
        self.escalate_after = dict(DEFAULT_ESCALATE_AFTER, **(escalate_after or {}))
        self.max_escalations = max_escalations
        self.open: dict[str, OpenAlert] = {}  # by alert_id
        # The same alerts by site: an alert commit stores its own site's, and must not go
        # over every other site's open alerts to find them (`snapshot.take_snapshot`).
        self.open_by_site: dict[str, dict[str, OpenAlert]] = {}
        self.by_rule_key: dict[str, str] = {}  # rule_key -> alert_id
        self.quiet_until: dict[str, float] = {}  # rule_key -> mono (cooldown)
        self.pending: dict[str, tuple[Rule, Raise]] = {}  # raises waiting for cooldown
        self.orphans: list[str] = []  # alert ids to close at the next tick

    def apply(
        self, rule: Rule, index: int, signals: list[Signal], now: Instant
    ) -> list[AlertTransition]:
        """The transitions that `signals` of rule `index` of its site cause."""
        out: list[AlertTransition] = []
        for signal in signals:
            rule_key = f"{rule.site.site_id}/{index}/{signal.key}"
            alert_id = self.by_rule_key.get(rule_key)
            if isinstance(signal, Raise):
                if alert_id is not None:
                    if signal.news is not None:
                        out.append(self._news(self.open[alert_id], signal, now))
                    continue
                if self.quiet_until.get(rule_key, -math.inf) > now.mono:
                    self.pending[rule_key] = (rule, signal)
                else:
                    out.append(self._raise(rule, rule_key, signal, now))
            elif isinstance(signal, Clear):
                self.pending.pop(rule_key, None)
                if alert_id is not None:
                    out.append(self._close(self.open[alert_id], now, signal.details, rule))
        return out

    def release_pending(self, now: Instant) -> list[AlertTransition]:
        """Raise what waited for a cooldown that has passed."""
        out: list[AlertTransition] = []
        for rule_key, (rule, signal) in list(self.pending.items()):
            if self.quiet_until.get(rule_key, -math.inf) <= now.mono:
                del self.pending[rule_key]
                self.quiet_until.pop(rule_key, None)
                out.append(self._raise(rule, rule_key, signal, now))
        return out

    def close_orphans(self, now: Instant) -> list[AlertTransition]:
        """Clear the alerts that no rule would ever clear (see `orphan_unclearable`)."""
        out: list[AlertTransition] = []
        for alert_id in self.orphans:
            alert = self.open.get(alert_id)
            if alert is not None:
                out.append(self._close(alert, now, {"closed_because": "rules changed"}, None))
        self.orphans.clear()
        return out

    def orphan_unclearable(self, restored: set[tuple[str, int]]) -> None:
        """After a restore: mark for closing the open alerts no rule would ever clear.

        That is an alert whose rule is gone, changed type, or starts afresh (is not in
        `restored`, by site id and index), unless only a person clears it anyway.
        """
        for alert in self.open.values():
            site_id, index, _ = alert.rule_key.split("/", 2)
            rule = self.rule_for(alert.rule_key)
            same = rule is not None and rule.type_name == alert.transition.type
            if not same or not (rule.clear_on_ack or (site_id, int(index)) in restored):
                self.orphans.append(alert.transition.alert_id)

    def escalate(self, now: Instant) -> list[AlertTransition]:
        """Escalate every alert whose escalation clock has run out."""
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
                details={
                    **alert.transition.details,
                    "escalation": alert.escalations,
                    "reason": "unacknowledged",
                },
            )
            rule = self.rule_for(alert.rule_key)
            after = self._escalate_after(rule, alert.transition.severity) if rule else None
            more = alert.escalations < self.max_escalations and after
            alert.next_escalation = now.mono + after if more and after else None
            out.append(alert.transition)
        return out

    def _news(self, alert: OpenAlert, signal: Raise, now: Instant) -> AlertTransition:
        """An `escalated` transition for news about an open alert (an SOS pressed again).

        Published at once, outside the escalation count and clock: a press after the
        escalations ran out is heard too, and the regular escalations go on as before.
        """
        alert.presses += 1
        alert.transition = replace(
            alert.transition,
            event_id=new_id(now.wall),
            state=AlertState.ESCALATED,
            ts=now.wall,
            device_ids=signal.device_ids,
            details={
                **alert.transition.details,
                **signal.details,
                "reason": signal.news,
                "presses": alert.presses,
            },
        )
        return alert.transition

    def acknowledge(self, alert_id: str, by: str, now: Instant) -> list[AlertTransition]:
        """Stop escalating `alert_id`; clear it if its rule says a person clears it.

        Raises:
            UnknownAlert: `alert_id` is not open.
        """
        alert = self.open.get(alert_id)
        if alert is None:
            raise UnknownAlert(alert_id)
        alert.acked_by = by
        alert.next_escalation = None
        rule = self.rule_for(alert.rule_key)
        # A test alert is cleared by its acknowledgement: the installer is done with it.
        if rule is None or rule.clear_on_ack or alert.transition.test:
            return [self._close(alert, now, {"acknowledged_by": by}, None)]
        return []

    def mark_test(self, alert_id: str) -> AlertTransition | None:
        """Mark an open alert as raised during a walk test: it is never escalated, and its
        later transitions carry `test` too. Returns the marked transition (None: not open)."""
        alert = self.open.get(alert_id)
        if alert is None:
            return None
        alert.transition = replace(alert.transition, test=True)
        alert.next_escalation = None
        return alert.transition

    def next_deadline(self) -> float | None:
        """The earliest escalation or end of a cooldown that a raise waits for."""
        best: float | None = None
        for a in self.open.values():
            if a.next_escalation is not None and (best is None or a.next_escalation < best):
                best = a.next_escalation
        for rule_key in self.pending:
            q = self.quiet_until.get(rule_key, -math.inf)
            if best is None or q < best:
                best = q
        return best

    def adopt(self, alert: OpenAlert) -> None:
        """Take `alert` as open (from a snapshot)."""
        self.open[alert.transition.alert_id] = alert
        self.open_by_site.setdefault(site_of(alert.rule_key), {})[
            alert.transition.alert_id] = alert
        self.by_rule_key[alert.rule_key] = alert.transition.alert_id

    def rule_for(self, rule_key: str) -> Rule | None:
        site_id, index, _ = rule_key.split("/", 2)
        rules = self.rules_by_site.get(site_id, [])
        i = int(index)
        return rules[i] if 0 <= i < len(rules) else None

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
        self.adopt(
            OpenAlert(transition, rule_key, next_escalation=now.mono + after if after else None)
        )
        log.info(
            "alert raised: %s at %s",
            rule.type_name,
            rule.site.site_id,
            extra={"alert_id": transition.alert_id, "site_id": rule.site.site_id},
        )
        return transition

    def _close(
        self, alert: OpenAlert, now: Instant, details: dict[str, Any], rule: Rule | None
    ) -> AlertTransition:
        del self.open[alert.transition.alert_id]
        site = site_of(alert.rule_key)
        of_site = self.open_by_site.get(site, {})
        of_site.pop(alert.transition.alert_id, None)
        if not of_site:
            self.open_by_site.pop(site, None)
        self.by_rule_key.pop(alert.rule_key, None)
        if rule is not None and rule.cooldown > 0 and getattr(rule, "engine_cooldown", True):
            self.quiet_until[alert.rule_key] = now.mono + rule.cooldown
        return replace(
            alert.transition,
            event_id=new_id(now.wall),
            state=AlertState.CLEARED,
            ts=now.wall,
            details={**alert.transition.details, **details},
        )

    def _escalate_after(self, rule: Rule | None, severity: Severity) -> float | None:
        if rule is not None and rule.options.escalate_after is not None:
            return rule.options.escalate_after or None
        return self.escalate_after.get(severity)
