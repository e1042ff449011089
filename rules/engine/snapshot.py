"""The engine's state as JSON-able data, to carry on after a restart.

A snapshot stores ages (monotonic clocks restart at boot), the monotonic and the wall time
of the save; `saved_at` on restore is the moment of the save translated into this boot's
monotonic clock, after the downtime credit (see `clocks`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from hearthgate.core.model import AlertState, AlertTransition, Instant, Severity
from hearthgate.rules.base import Raise, Rule
from hearthgate.rules.engine.lifecycle import AlertLifecycle, OpenAlert, site_of
from hearthgate.rules.site_state import SiteState

log = logging.getLogger("hearthgate.rules")

SNAPSHOT_VERSION = 2
# The stored form, split per site (`split_snapshot`): a small header row and one row per
# site, so that an alert commit writes its own site's state and not every other site's.
SPLIT_VERSION = 3


def take_snapshot(
    now: Instant,
    alerts: AlertLifecycle,
    sites: dict[str, SiteState],
    rules_by_site: dict[str, list[Rule]],
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """The snapshot as of `now` (the engine's time); of the sites in `only` when given.

    With `only`, the work is that of those sites (their open alerts are found by site), not
    of every site: an SOS's commit takes its own site's state."""
    def mine(key: str) -> bool:
        return only is None or site_of(key) in only

    if only is None:
        open_alerts: Iterable[OpenAlert] = alerts.open.values()
        site_ids: Iterable[str] = sites
        rule_sites: Iterable[str] = rules_by_site
    else:
        open_alerts = [a for s in only for a in alerts.open_by_site.get(s, {}).values()]
        site_ids = [s for s in only if s in sites]
        rule_sites = [s for s in only if s in rules_by_site]
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
                "presses": a.presses,
                "transition": transition_to_json(a.transition),
            }
            for a in open_alerts
        ],
        "quiet_in": {
            k: q - now.mono for k, q in alerts.quiet_until.items() if q > now.mono and mine(k)
        },
        "pending": {
            k: {
                "key": s.key,
                "message": s.message,
                "device_ids": list(s.device_ids),
                "details": s.details,
                "severity": str(s.severity) if s.severity else None,
            }
            for k, (_, s) in alerts.pending.items()
            if mine(k)
        },
        "sites": {site_id: sites[site_id].snapshot(now) for site_id in site_ids},
        "rules": {
            f"{site_id}/{i}/{rule.type_name}": rule.snapshot(now)
            for site_id in rule_sites
            for i, rule in enumerate(rules_by_site[site_id])
        },
    }


def split_snapshot(
    state: dict[str, Any], run: str | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A snapshot (of all sites or some) as the store keeps it: a header and one part per site.

    Each part carries the clocks of its save and `run` (the engine instance that took it):
    parts not rewritten since keep theirs, and `join_snapshot` ages them by the difference.
    """
    clocks: dict[str, Any] = {"saved_mono": state["saved_mono"],
                              "saved_wall": state["saved_wall"], "run": run}
    header = {**clocks, "version": SPLIT_VERSION}
    parts: dict[str, dict[str, Any]] = {}

    def part(site_id: str) -> dict[str, Any]:
        if site_id not in parts:
            parts[site_id] = {**clocks, "alerts": [], "quiet_in": {}, "pending": {},
                              "rules": {}}
        return parts[site_id]

    for alert in state.get("alerts", []):
        part(site_of(str(alert.get("rule_key", ""))))["alerts"].append(alert)
    for key in ("quiet_in", "pending", "rules"):
        for k, v in (state.get(key) or {}).items():
            part(site_of(k))[key][k] = v
    for site_id, site_state in (state.get("sites") or {}).items():
        part(site_id)["site"] = site_state
    return header, parts


def join_snapshot(header: dict[str, Any], parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The snapshot `restore` reads, from the stored header and parts (`split_snapshot`).

    Its clocks are those of the newest save: the header's, or a part's saved after it by the
    same engine instance (`run`; an alert commit writes its site's part without the header);
    "ages" says, per site, how many seconds before that its part was saved: by the monotonic
    clock when the same engine instance saved both, else by the wall clock.
    """
    newest = header
    for part in parts.values():
        if (part.get("run") is not None and part.get("run") == header.get("run")
                and float(part["saved_mono"]) > float(newest["saved_mono"])):
            newest = part
    out: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "saved_mono": newest["saved_mono"],
        "saved_wall": newest["saved_wall"],
        "alerts": [], "quiet_in": {}, "pending": {}, "sites": {}, "rules": {}, "ages": {},
    }
    h_mono, h_wall = saved_clocks(newest)
    for site_id, part in parts.items():
        if part.get("run") is not None and part.get("run") == header.get("run"):
            age = h_mono - float(part["saved_mono"])
        else:
            age = (h_wall - datetime.fromisoformat(part["saved_wall"])).total_seconds()
        out["ages"][site_id] = max(0.0, age)
        out["alerts"] += part.get("alerts", [])
        for key in ("quiet_in", "pending", "rules"):
            out[key].update(part.get(key) or {})
        if "site" in part:
            out["sites"][site_id] = part["site"]
    return out


def part_entries(part: dict[str, Any]) -> int:
    """How many entries a stored part holds (what `forget` reports when it erases one)."""
    return (len(part.get("alerts", [])) + len(part.get("quiet_in") or {})
            + len(part.get("pending") or {}) + len(part.get("rules") or {})
            + (1 if "site" in part else 0))


def _aged(saved_at: Instant, age: float) -> Instant:
    return Instant(saved_at.mono - age, saved_at.wall - timedelta(seconds=age))


def is_current(state: dict[str, Any]) -> bool:
    """Whether `state` is a snapshot of this version (others are ignored, with a warning)."""
    if state.get("version") != SNAPSHOT_VERSION:
        log.warning("ignoring a rules snapshot of version %s", state.get("version"))
        return False
    return True


def saved_clocks(state: dict[str, Any]) -> tuple[float, datetime]:
    """The monotonic and the wall time of the save."""
    return float(state["saved_mono"]), datetime.fromisoformat(state["saved_wall"])


def restore_alerts(
    alerts: AlertLifecycle, state: dict[str, Any], saved_at: Instant, now: Instant, credit: float
) -> None:
    """Open alerts, cooldowns and raises waiting for them; escalation clocks get `credit`
    (and, for a site saved before the newest save, its age: `join_snapshot`)."""
    ages: dict[str, float] = state.get("ages") or {}
    for item in state.get("alerts", []):
        transition = transition_from_json(item["transition"])
        escalate_in = item.get("escalate_in")
        waited = credit + ages.get(site_of(str(item["rule_key"])), 0.0)
        alerts.adopt(
            OpenAlert(
                transition,
                item["rule_key"],
                escalations=int(item.get("escalations", 0)),
                next_escalation=(
                    now.mono + max(0.0, escalate_in - waited) if escalate_in is not None else None
                ),
                acked_by=item.get("acked_by"),
                presses=int(item.get("presses", 1)),
            )
        )
    for k, q in state.get("quiet_in", {}).items():
        alerts.quiet_until[k] = saved_at.mono - ages.get(site_of(k), 0.0) + float(q)
    for k, p in state.get("pending", {}).items():
        rule = alerts.rule_for(k)
        if rule is not None:
            alerts.pending[k] = (
                rule,
                Raise(
                    p["key"], p["message"], tuple(p["device_ids"]), p["details"],
                    Severity(p["severity"]) if p.get("severity") else None,
                ),
            )


def restore_sites(
    sites: dict[str, SiteState], state: dict[str, Any], saved_at: Instant, now: Instant
) -> None:
    """Presence and device health of each site; a site that fails starts afresh."""
    saved_sites = state.get("sites", {})
    ages: dict[str, float] = state.get("ages") or {}
    for site_id, site_state in sites.items():
        try:
            site_state.restore(saved_sites.get(site_id, {}),
                               saved_at.mono - ages.get(site_id, 0.0), now)
        except Exception:
            log.exception("could not restore the state of site %s", site_id)
            site_state.start(now)


def restore_rules(
    rules_by_site: dict[str, list[Rule]], state: dict[str, Any], saved_at: Instant, now: Instant
) -> set[tuple[str, int]]:
    """Each rule's progress; (site id, index) of the rules restored, not started afresh.

    A rule starts afresh when nothing was saved for its site, index and type (the config
    changed) or its state cannot be read.
    """
    saved_rules = state.get("rules", {})
    ages: dict[str, float] = state.get("ages") or {}
    restored: set[tuple[str, int]] = set()
    for site_id, rules in rules_by_site.items():
        site_saved_at = _aged(saved_at, ages.get(site_id, 0.0))
        for i, rule in enumerate(rules):
            saved = saved_rules.get(f"{site_id}/{i}/{rule.type_name}")
            try:
                if saved is None:
                    rule.start(now)
                else:
                    rule.restore(saved, site_saved_at, now)
                    restored.add((site_id, i))
            except Exception:
                log.exception("could not restore rule %s of %s", rule.type_name, site_id)
                rule.start(now)
    return restored


def transition_to_json(t: AlertTransition) -> dict[str, Any]:
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
        **({"test": True} if t.test else {}),
    }


def transition_from_json(d: dict[str, Any]) -> AlertTransition:
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
        test=bool(d.get("test", False)),
    )


def without_site(state: dict[str, Any], site_id: str) -> tuple[dict[str, Any], int]:
    """`state` with nothing left of one site (its resident's data was erased), and how many
    entries went: its open alerts, cooldowns, pending signals, presence and rule states. Its
    rules then start afresh on restore, as rules whose config changed do."""
    prefix = f"{site_id}/"
    out = dict(state)
    removed = 0
    alerts = [a for a in state.get("alerts", [])
              if (a.get("transition") or {}).get("site_id") != site_id
              and not str(a.get("rule_key", "")).startswith(prefix)]
    removed += len(state.get("alerts", [])) - len(alerts)
    out["alerts"] = alerts
    for key in ("quiet_in", "pending", "rules"):
        kept = {k: v for k, v in (state.get(key) or {}).items() if not k.startswith(prefix)}
        removed += len(state.get(key) or {}) - len(kept)
        out[key] = kept
    sites = dict(state.get("sites") or {})
    if sites.pop(site_id, None) is not None:
        removed += 1
    out["sites"] = sites
    if "ages" in state:
        out["ages"] = {k: v for k, v in state["ages"].items() if k != site_id}
    return out, removed
