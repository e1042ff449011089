"""The rules engine: signals from rules become alert transitions with a lifecycle.

One open alert per (site, rule, key). Every transition gets its own event_id;
the alert_id is stable from raised to cleared. An unacknowledged alert is
re-published as `escalated` after `escalate_after` (per severity, overridable
per rule), a bounded number of times. Acknowledgement stops escalation, and
clears alerts whose rule says only a person can clear them (sos, fall). After an
alert clears, the same condition may raise again only after the rule's `cooldown`
(a raise inside it waits, and is dropped if the condition ends first).

Pure: no I/O, no sleeping. The service feeds it observations and ticks, stores
its snapshot, and publishes what it returns.

Time policy (docs/rules.md, "Restarts and clock jumps"):
- durations and deadlines run on the monotonic clock; only schedules read the wall;
- a snapshot stores ages, the monotonic and the wall time of the save;
- on restore the downtime credited is the wall-clock gap when it is plausible (not
  shorter than what the monotonic clock proves, and at most `max_downtime_credit`
  longer), else only what the monotonic clock proves (0 after a reboot); then the
  wall clock is not trusted either: schedules and timestamps run on the saved wall
  time plus elapsed monotonic time until the system clock jumps (NTP synced) or
  `distrust_wall_for` has passed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from hearthgate.core.model import (
    AlertState,
    AlertTransition,
    Instant,
    Observation,
    Severity,
    new_id,
)
from hearthgate.rules.base import Clear, Raise, Rule, Signal
from hearthgate.rules.site_state import SiteState

log = logging.getLogger("hearthgate.rules")

DEFAULT_ESCALATE_AFTER: dict[Severity, float | None] = {
    Severity.CRITICAL: 5 * 60.0,
    Severity.HIGH: 15 * 60.0,
    Severity.MEDIUM: 60 * 60.0,
    Severity.LOW: None,
}
MAX_ESCALATIONS = 3
MAX_DOWNTIME_CREDIT = 3600.0
DISTRUST_WALL_FOR = 3600.0
# Wall and monotonic clocks may disagree by this much between two readings before we
# call it a jump (NTP slews small errors; steps are large).
WALL_JUMP_TOLERANCE = 60.0
SNAPSHOT_VERSION = 2


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
        max_downtime_credit: float = MAX_DOWNTIME_CREDIT,
        distrust_wall_for: float = DISTRUST_WALL_FOR,
    ) -> None:
        self.rules_by_site = rules_by_site
        self.escalate_after = dict(DEFAULT_ESCALATE_AFTER, **(escalate_after or {}))
        self.max_escalations = max_escalations
        self.max_downtime_credit = max_downtime_credit
        self.distrust_wall_for = distrust_wall_for
        self.open: dict[str, OpenAlert] = {}  # by alert_id
        self._by_rule_key: dict[str, str] = {}  # rule_key -> alert_id
        self._quiet_until: dict[str, float] = {}  # rule_key -> mono (cooldown)
        self._pending: dict[str, tuple[Rule, Raise]] = {}  # raises waiting for cooldown
        self._started = False
        self._last_clock: tuple[float, datetime] | None = None
        self._wall_shift = timedelta(0)
        self._distrust_until: float | None = None
        self._orphans: list[str] = []  # alert ids to close at the next tick (see restore)
        # Rule deadlines in a heap with lazy deletion: an entry counts only while it
        # equals `_deadline_of[(site, index)]`, so next_deadline is not O(rules).
        self._heap: list[tuple[float, int, str, int]] = []
        self._deadline_of: dict[tuple[str, int], float | None] = {}
        self._seq = itertools.count()
        self.sites: dict[str, SiteState] = {}
        for rules in rules_by_site.values():
            for rule in rules:
                self.sites.setdefault(rule.site.site_id, rule.site.state)

    # -- clocks ---------------------------------------------------------------

    def _clock(self, now: Instant) -> Instant:
        """`now` as the engine uses it: after a suspect restore, on the estimated wall."""
        last, self._last_clock = self._last_clock, (now.mono, now.wall)
        if last is not None:
            drift = (now.wall - last[1]).total_seconds() - (now.mono - last[0])
            if abs(drift) > WALL_JUMP_TOLERANCE:
                log.warning("wall clock jumped by %+.0f s", drift)
                if self._distrust_until is not None:
                    self._trust_wall("the system clock was set")
        if self._distrust_until is not None and now.mono >= self._distrust_until:
            self._trust_wall(f"no clock step within {self.distrust_wall_for:.0f} s")
        if not self._started:
            self._start(now)
        if self._wall_shift:
            return Instant(now.mono, now.wall + self._wall_shift)
        return now

    def _trust_wall(self, why: str) -> None:
        log.info("trusting the system wall clock again (%s)", why)
        self._wall_shift = timedelta(0)
        self._distrust_until = None

    def _start(self, now: Instant) -> None:
        self._started = True
        for state in self.sites.values():
            state.start(now)
        for rules in self.rules_by_site.values():
            for rule in rules:
                rule.start(now)
        self._refresh_all()

    def _refresh(self, site_id: str, index: int, rule: Rule) -> None:
        key = (site_id, index)
        d = rule.next_deadline()
        if self._deadline_of.get(key) != d:
            self._deadline_of[key] = d
            if d is not None:
                heapq.heappush(self._heap, (d, next(self._seq), site_id, index))

    def _refresh_all(self) -> None:
        for site_id, rules in self.rules_by_site.items():
            for index, rule in enumerate(rules):
                self._refresh(site_id, index, rule)

    def _earliest_rule_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            d, _, site_id, index = heap[0]
            if self._deadline_of.get((site_id, index)) == d:
                return d
            heapq.heappop(heap)
        return None

    # -- inputs ---------------------------------------------------------------

    def on_observation(self, obs: Observation, now: Instant) -> list[AlertTransition]:
        now = self._clock(now)
        if self._wall_shift:
            obs = replace(obs, at=Instant(obs.at.mono, obs.at.wall + self._wall_shift))
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
            if signals:
                out += self._apply(rule, index, signals, now)
        # After the rules: they account time up to now with the site as it was.
        state = self.sites.get(obs.site_id)
        if state is not None:
            state.observe(obs, now)
        for index, rule in enumerate(self.rules_by_site.get(obs.site_id, ())):
            self._refresh(obs.site_id, index, rule)
        return out

    def on_tick(self, now: Instant) -> list[AlertTransition]:
        now = self._clock(now)
        out: list[AlertTransition] = []
        due: list[tuple[str, int]] = []
        while self._heap and self._heap[0][0] <= now.mono:
            d, _, site_id, index = heapq.heappop(self._heap)
            key = (site_id, index)
            if self._deadline_of.get(key) == d:
                self._deadline_of[key] = None  # re-pushed by _refresh below
                due.append(key)
        for site_id, index in due:
            rule = self.rules_by_site[site_id][index]
            try:
                signals = rule.on_tick(now)
            except Exception:
                log.exception("rule %s of site %s failed", rule.type_name, site_id)
                signals = []
            out += self._apply(rule, index, signals, now)
            self._refresh(site_id, index, rule)
        for rule_key, (rule, signal) in list(self._pending.items()):
            if self._quiet_until.get(rule_key, -math.inf) <= now.mono:
                del self._pending[rule_key]
                self._quiet_until.pop(rule_key, None)
                out.append(self._raise(rule, rule_key, signal, now))
        for alert_id in self._orphans:
            alert = self.open.get(alert_id)
            if alert is not None:
                out.append(self._close(alert, now, {"closed_because": "rules changed"}, None))
        self._orphans.clear()
        out += self._escalate(now)
        return out

    def acknowledge(self, alert_id: str, by: str, now: Instant) -> list[AlertTransition]:
        now = self._clock(now)
        alert = self.open.get(alert_id)
        if alert is None:
            raise UnknownAlert(alert_id)
        alert.acked_by = by
        alert.next_escalation = None
        rule = self._rule_for(alert.rule_key)
        if rule is None or rule.clear_on_ack:
            return [self._close(alert, now, {"acknowledged_by": by}, None)]
        return []

    def next_deadline(self) -> float | None:
        """Monotonic time at which `on_tick` must next run; -inf before the first call."""
        if not self._started or self._orphans:
            return -math.inf
        best = self._earliest_rule_deadline()
        for a in self.open.values():
            if a.next_escalation is not None and (best is None or a.next_escalation < best):
                best = a.next_escalation
        for rule_key in self._pending:
            q = self._quiet_until.get(rule_key, -math.inf)
            if best is None or q < best:
                best = q
        if self._distrust_until is not None and (best is None or self._distrust_until < best):
            best = self._distrust_until
        return best

    # -- lifecycle ------------------------------------------------------------

    def _apply(
        self, rule: Rule, index: int, signals: list[Signal], now: Instant
    ) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        for signal in signals:
            rule_key = f"{rule.site.site_id}/{index}/{signal.key}"
            alert_id = self._by_rule_key.get(rule_key)
            if isinstance(signal, Raise):
                if alert_id is not None:
                    continue
                if self._quiet_until.get(rule_key, -math.inf) > now.mono:
                    self._pending[rule_key] = (rule, signal)
                else:
                    out.append(self._raise(rule, rule_key, signal, now))
            elif isinstance(signal, Clear):
                self._pending.pop(rule_key, None)
                if alert_id is not None:
                    out.append(self._close(self.open[alert_id], now, signal.details, rule))
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
        alert = OpenAlert(transition, rule_key, next_escalation=now.mono + after if after else None)
        self.open[transition.alert_id] = alert
        self._by_rule_key[rule_key] = transition.alert_id
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
        self._by_rule_key.pop(alert.rule_key, None)
        if rule is not None and rule.cooldown > 0 and getattr(rule, "engine_cooldown", True):
            self._quiet_until[alert.rule_key] = now.mono + rule.cooldown
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
        return rules[i] if 0 <= i < len(rules) else None

    # -- persistence ----------------------------------------------------------

    def snapshot(self, now: Instant) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-able data."""
        now = self._clock(now)
        state = self._snapshot(now)
        self._refresh_all()  # rules bring their accounting up to date while saving
        return state

    def _snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
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
            "quiet_in": {k: q - now.mono for k, q in self._quiet_until.items() if q > now.mono},
            "pending": {
                k: {
                    "key": s.key,
                    "message": s.message,
                    "device_ids": list(s.device_ids),
                    "details": s.details,
                    "severity": str(s.severity) if s.severity else None,
                }
                for k, (_, s) in self._pending.items()
            },
            "sites": {site_id: s.snapshot(now) for site_id, s in self.sites.items()},
            "rules": {
                f"{site_id}/{i}/{rule.type_name}": rule.snapshot(now)
                for site_id, rules in self.rules_by_site.items()
                for i, rule in enumerate(rules)
            },
        }

    def downtime_credit(self, saved_mono: float, saved_wall: datetime, now: Instant) -> float:
        """Seconds of downtime to count, and whether the wall clock can be believed.

        Sets the engine's wall-clock distrust as a side effect (see the module doc).
        """
        proven = max(0.0, now.mono - saved_mono)  # the monotonic clock never overstates
        claimed = (now.wall - saved_wall).total_seconds()
        if proven - WALL_JUMP_TOLERANCE <= claimed <= proven + self.max_downtime_credit:
            return max(proven, claimed)
        log.warning(
            "wall clock moved %+.0f s while the gateway was down (monotonic proves %.0f s):"
            " counting %.0f s of downtime and not trusting the wall clock yet",
            claimed, proven, proven,
        )
        self._wall_shift = saved_wall + timedelta(seconds=proven) - now.wall
        self._distrust_until = now.mono + self.distrust_wall_for
        return proven

    def restore(self, state: dict[str, Any], now: Instant) -> None:
        """Load a snapshot from an earlier run. Rules whose config changed start afresh.

        Downtime is credited as `downtime_credit` decides, to rule windows and to
        escalation clocks alike.
        """
        if state.get("version") != SNAPSHOT_VERSION:
            log.warning("ignoring a rules snapshot of version %s", state.get("version"))
            return
        saved_mono = float(state["saved_mono"])
        saved_wall = datetime.fromisoformat(state["saved_wall"])
        self._last_clock = None
        credit = self.downtime_credit(saved_mono, saved_wall, now)
        self._last_clock = (now.mono, now.wall)
        self._started = True
        now = Instant(now.mono, now.wall + self._wall_shift)
        saved_at = Instant(now.mono - credit, saved_wall)
        for item in state.get("alerts", []):
            transition = _transition_from_json(item["transition"])
            escalate_in = item.get("escalate_in")
            alert = OpenAlert(
                transition,
                item["rule_key"],
                escalations=int(item.get("escalations", 0)),
                next_escalation=(
                    now.mono + max(0.0, escalate_in - credit) if escalate_in is not None else None
                ),
                acked_by=item.get("acked_by"),
            )
            self.open[transition.alert_id] = alert
            self._by_rule_key[alert.rule_key] = transition.alert_id
        for k, q in state.get("quiet_in", {}).items():
            self._quiet_until[k] = saved_at.mono + float(q)
        for k, p in state.get("pending", {}).items():
            rule = self._rule_for(k)
            if rule is not None:
                self._pending[k] = (
                    rule,
                    Raise(
                        p["key"], p["message"], tuple(p["device_ids"]), p["details"],
                        Severity(p["severity"]) if p.get("severity") else None,
                    ),
                )
        saved_sites = state.get("sites", {})
        for site_id, site_state in self.sites.items():
            try:
                site_state.restore(saved_sites.get(site_id, {}), saved_at.mono, now)
            except Exception:
                log.exception("could not restore the state of site %s", site_id)
                site_state.start(now)
        saved_rules = state.get("rules", {})
        restored: set[tuple[str, int]] = set()
        for site_id, rules in self.rules_by_site.items():
            for i, rule in enumerate(rules):
                saved = saved_rules.get(f"{site_id}/{i}/{rule.type_name}")
                try:
                    if saved is None:
                        rule.start(now)
                    else:
                        rule.restore(saved, saved_at, now)
                        restored.add((site_id, i))
                except Exception:
                    log.exception("could not restore rule %s of %s", rule.type_name, site_id)
                    rule.start(now)
        # An open alert whose rule is gone, changed type, or starts afresh would never be
        # cleared by it: close it at the next tick so the platform is not left waiting.
        for alert in self.open.values():
            site_id, index, _ = alert.rule_key.split("/", 2)
            rule = self._rule_for(alert.rule_key)
            same = rule is not None and rule.type_name == alert.transition.type
            if not same or not (rule.clear_on_ack or (site_id, int(index)) in restored):
                self._orphans.append(alert.transition.alert_id)
        self._refresh_all()

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
