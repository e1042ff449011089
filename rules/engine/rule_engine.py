"""`RuleEngine`: the rules of every site, fed observations and ticks, as one pure machine."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from hearthgate.core.model import AlertTransition, Instant, Observation, Severity
from hearthgate.rules.base import Rule, Signal
from hearthgate.rules.coverage import SiteCoverage, site_coverage
from hearthgate.rules.engine.clocks import (
    DISTRUST_WALL_FOR,
    MAX_DOWNTIME_CREDIT,
    WallClockTrust,
)
from hearthgate.rules.engine.deadlines import RuleDeadlines
from hearthgate.rules.engine.lifecycle import (
    MAX_ESCALATIONS,
    AlertLifecycle,
    OpenAlert,
    site_of,
)
from hearthgate.rules.engine.snapshot import (
    is_current,
    restore_alerts,
    restore_rules,
    restore_sites,
    saved_clocks,
    take_snapshot,
)
from hearthgate.rules.site_state import SiteState

log = logging.getLogger("hearthgate.rules")


class RuleEngine:
    """The rules of every site, turning observations and ticks into alert transitions.

    Pure: no I/O, no sleeping. The service feeds it observations (`on_observation`) and
    acknowledgements (`acknowledge`), calls `on_tick` when `next_deadline()` has come,
    stores `snapshot()` and publishes every transition the calls return. After a restart,
    `restore` carries on from the last snapshot. `snapshot(now, only=...)` takes the state
    of some sites only (the sites of an alert commit, or `changed` since their last
    save), so that what is written per alert does not grow with the other sites.
    Durations run on the monotonic clock of the `Instant`s it is given; the wall clock is
    distrusted after a suspect restore (docs/rules.md, "Restarts and clock jumps").

    Build one from a config with `hearthgate.engine_builder.build_engine`.

    Args:
        rules_by_site: The rules of each site, by site id, in the config's order (an
            alert names its rule by site and position).
        escalate_after: Seconds an unacknowledged alert waits before it is published
            again as `escalated`, per severity, over `DEFAULT_ESCALATE_AFTER` (None:
            never). A rule's own `escalate_after` option wins.
        max_escalations: How many times one alert is escalated at most.
        max_downtime_credit: How much longer than the monotonic clock proves a wall-clock
            gap across a restart may be and still be credited as downtime, in seconds.
        distrust_wall_for: After a restore that did not believe the wall clock, how long
            schedules and timestamps run on the saved wall time plus elapsed monotonic
            time, unless the system clock steps first, in seconds.

    Attributes:
        rules_by_site: The rules it was built with.
        open: The open alerts, by alert id.
        sites: Presence and device health of each site, shared by its rules.
        changed: Sites whose state moved since their last `snapshot` (an observation, a
            rule tick, an alert transition or acknowledgement).
        run: A token for this engine instance, to store with its snapshots: parts saved
            by the same instance are aged by its monotonic clock (`split_snapshot`).

    Raises:
        UnknownAlert: From `acknowledge`, when the alert is not open.
    """

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
        self._alerts = AlertLifecycle(rules_by_site, escalate_after, max_escalations)
        self._clocks = WallClockTrust(max_downtime_credit, distrust_wall_for)
        self._deadlines = RuleDeadlines()
        self._started = False
        self.changed: set[str] = set()
        self.run = uuid.uuid4().hex
        # Coverage, kept per site: a site's is computed again only when something of it
        # moved (an observation, a tick of its rules, an acknowledgement, a restore) or
        # when the moment it may change by itself has come (a device offline by silence,
        # the resident counted away). Once a second over every site, it was a third of
        # the gateway's CPU with 600 sites, on the loop an SOS waits for.
        self._coverage: dict[str, SiteCoverage] = {}
        self._coverage_until: dict[str, float] = {}
        self._coverage_stale: set[str] = set(rules_by_site)
        self._coverage_list: list[SiteCoverage] = []
        self.sites: dict[str, SiteState] = {}
        for rules in rules_by_site.values():
            for rule in rules:
                self.sites.setdefault(rule.site.site_id, rule.site.state)
        for site_id, rules in rules_by_site.items():
            if site_id in self.sites:
                self.sites[site_id].rules = tuple(rules)

    @property
    def open(self) -> dict[str, OpenAlert]:
        return self._alerts.open

    @property
    def escalate_after(self) -> dict[Severity, float | None]:
        return self._alerts.escalate_after

    @property
    def max_escalations(self) -> int:
        return self._alerts.max_escalations

    @property
    def max_downtime_credit(self) -> float:
        return self._clocks.max_downtime_credit

    @property
    def distrust_wall_for(self) -> float:
        return self._clocks.distrust_wall_for

    # -- inputs ---------------------------------------------------------------

    def on_observation(self, obs: Observation, now: Instant) -> list[AlertTransition]:
        now = self._engine_time(now)
        obs = self._clocks.estimated_observation(obs)
        self._moved((obs.site_id,))
        out: list[AlertTransition] = []
        said: list[tuple[int, Rule, list[Signal]]] = []
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
                said.append((index, rule, signals))
        # After the rules: they account time up to now with the site as it was.
        state = self.sites.get(obs.site_id)
        if state is not None:
            state.observe(obs, now)
        for index, rule, signals in said:
            try:
                signals = rule.with_site(signals, now)
            except Exception:
                log.exception("rule %s of site %s failed", rule.type_name, obs.site_id)
            out += self._alerts.apply(rule, index, signals, now)
        for index, rule in enumerate(self.rules_by_site.get(obs.site_id, ())):
            self._deadlines.refresh(obs.site_id, index, rule)
        return out

    def on_tick(self, now: Instant) -> list[AlertTransition]:
        now = self._engine_time(now)
        out: list[AlertTransition] = []
        for site_id, index in self._deadlines.pop_due(now.mono):
            self._moved((site_id,))
            rule = self.rules_by_site[site_id][index]
            try:
                signals = rule.on_tick(now)
            except Exception:
                log.exception("rule %s of site %s failed", rule.type_name, site_id)
                signals = []
            out += self._alerts.apply(rule, index, signals, now)
            self._deadlines.refresh(site_id, index, rule)
        out += self._alerts.release_pending(now)
        out += self._alerts.close_orphans(now)
        out += self._alerts.escalate(now)
        self._moved({t.site_id for t in out})
        return out

    def acknowledge(self, alert_id: str, by: str, now: Instant) -> list[AlertTransition]:
        """Acknowledge an open alert on behalf of `by`; returns its clearing, if any.

        Raises:
            UnknownAlert: `alert_id` is not open.
        """
        site_id = self.site_of_alert(alert_id)
        out = self._alerts.acknowledge(alert_id, by, self._engine_time(now))
        if site_id is not None:
            self._moved((site_id,))
        return out

    def _moved(self, site_ids: Collection[str]) -> None:
        """Something of these sites changed: their state is to be saved again
        (`changed`) and their coverage asked again (`coverage`)."""
        self.changed.update(site_ids)
        self._coverage_stale.update(site_ids)

    def site_of_alert(self, alert_id: str) -> str | None:
        """The site of an open alert (None when it is not open)."""
        alert = self._alerts.open.get(alert_id)
        return site_of(alert.rule_key) if alert is not None else None

    def mark_test(self, alert_id: str) -> AlertTransition | None:
        """Mark an open alert as a walk test's (`AlertLifecycle.mark_test`)."""
        return self._alerts.mark_test(alert_id)

    def next_deadline(self) -> float | None:
        """Monotonic time at which `on_tick` must next run; -inf before the first call."""
        if not self._started or self._alerts.orphans:
            return -math.inf
        candidates = (
            self._deadlines.earliest(),
            self._alerts.next_deadline(),
            self._clocks.distrust_until,
        )
        return min((d for d in candidates if d is not None), default=None)

    def coverage(self, now: Instant) -> list[SiteCoverage]:
        """Per site, the rules watching at `now` and the blind ones with the reason, in the
        config's order. The same list object while no site's coverage changed."""
        now = self._clocks.estimated(now)
        until = self._coverage_until
        due = [s for s, t in until.items() if t <= now.mono] if until else []
        stale = self._coverage_stale
        if not stale and not due:
            return self._coverage_list
        moved = False
        for site_id in (*stale, *due):
            rules = self.rules_by_site.get(site_id)
            if rules is None:
                continue
            fresh = site_coverage(site_id, rules, now)
            if self._coverage.get(site_id) != fresh:
                self._coverage[site_id] = fresh
                moved = True
            state = self.sites.get(site_id)
            times = () if state is None else (state.health.next_offline(now.mono),
                                               state.presence.next_change(now.mono))
            at = min((t for t in times if t is not None), default=None)
            if at is None:
                until.pop(site_id, None)
            else:
                until[site_id] = at
        stale.clear()
        if moved:
            self._coverage_list = [self._coverage[s] for s in self.rules_by_site
                                   if s in self._coverage]
        return self._coverage_list

    def coverage_deadline(self, now: Instant) -> float | None:
        """Monotonic moment after `now` at which coverage may change with nothing heard: a
        device of some site falls offline by silence, or a site's resident counts as away.
        (A rule's own reasons, such as a routine learnt, change at its deadlines.)"""
        self.coverage(now)
        return min(self._coverage_until.values(), default=None)

    def open_alerts(self) -> list[AlertTransition]:
        return [a.transition for a in self._alerts.open.values()]

    # -- persistence ----------------------------------------------------------

    def snapshot(self, now: Instant, only: Collection[str] | None = None) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-able data; with `only`,
        of those sites only (to be stored as parts: `split_snapshot`)."""
        now = self._engine_time(now)
        state = take_snapshot(now, self._alerts, self.sites, self.rules_by_site, only)
        if only is None:
            self.changed.clear()
            self._refresh_all()  # rules bring their accounting up to date while saving
        else:
            self.changed.difference_update(only)
            for site_id in only:
                for index, rule in enumerate(self.rules_by_site.get(site_id, ())):
                    self._deadlines.refresh(site_id, index, rule)
        return state

    def downtime_credit(self, saved_mono: float, saved_wall: datetime, now: Instant) -> float:
        """Seconds of downtime to count since a save at (`saved_mono`, `saved_wall`).

        Sets the engine's wall-clock distrust as a side effect (see `clocks`).
        """
        return self._clocks.downtime_credit(saved_mono, saved_wall, now)

    def restore(self, state: dict[str, Any], now: Instant) -> None:
        """Load a snapshot from an earlier run. Rules whose config changed start afresh.

        Downtime is credited as `downtime_credit` decides, to rule windows and to
        escalation clocks alike. A snapshot of another version is ignored.
        """
        if not is_current(state):
            return
        saved_mono, saved_wall = saved_clocks(state)
        credit = self._clocks.restarted(saved_mono, saved_wall, now)
        self._started = True
        now = Instant(now.mono, now.wall + self._clocks.shift)
        saved_at = Instant(now.mono - credit, saved_wall)
        restore_alerts(self._alerts, state, saved_at, now, credit)
        restore_sites(self.sites, state, saved_at, now)
        restored = restore_rules(self.rules_by_site, state, saved_at, now)
        # An open alert no rule would clear must not leave the platform waiting.
        self._alerts.orphan_unclearable(restored)
        self._refresh_all()
        self._coverage_stale.update(self.rules_by_site)

    # -- clocks and deadlines -------------------------------------------------

    def _engine_time(self, now: Instant) -> Instant:
        """`now` as the engine uses it: after a suspect restore, on the estimated wall."""
        self._clocks.observe(now)
        if not self._started:
            self._start(now)
        return self._clocks.estimated(now)

    def _start(self, now: Instant) -> None:
        self._started = True
        for state in self.sites.values():
            state.start(now)
        for rules in self.rules_by_site.values():
            for rule in rules:
                rule.start(now)
        self._refresh_all()
        self._coverage_stale.update(self.rules_by_site)

    def _refresh_all(self) -> None:
        for site_id, rules in self.rules_by_site.items():
            for index, rule in enumerate(rules):
                self._deadlines.refresh(site_id, index, rule)
