"""The engine's state as JSON-able data, to carry on after a restart.

A snapshot stores ages (monotonic clocks restart at boot), the monotonic and the wall time
of the save; `saved_at` on restore is the moment of the save translated into this boot's
monotonic clock, after the downtime credit (see `clocks`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from hearthgate.core.model import AlertState, AlertTransition, Instant, Severity
from hearthgate.rules.base import Raise, Rule
from hearthgate.rules.engine.lifecycle import AlertLifecycle, OpenAlert
from hearthgate.rules.site_state import SiteState

log = logging.getLogger("hearthgate.rules")

SNAPSHOT_VERSION = 2


def take_snapshot(
    now: Instant,
    alerts: AlertLifecycle,
    sites: dict[str, SiteState],
    rules_by_site: dict[str, list[Rule]],
) -> dict[str, Any]:
    """The snapshot as of `now` (the engine's time)."""
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
            for a in alerts.open.values()
        ],
        "quiet_in": {k: q - now.mono for k, q in alerts.quiet_until.items() if q > now.mono},
        "pending": {
            k: {
                "key": s.key,
                "message": s.message,
                "device_ids": list(s.device_ids),
                "details": s.details,
                "severity": str(s.severity) if s.severity else None,
            }
            for k, (_, s) in alerts.pending.items()
        },
        "sites": {site_id: s.snapshot(now) for site_id, s in sites.items()},
        "rules": {
            f"{site_id}/{i}/{rule.type_name}": rule.snapshot(now)
            for site_id, rules in rules_by_site.items()
            for i, rule in enumerate(rules)
        },
    }


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
    """Open alerts, cooldowns and raises waiting for them; escalation clocks get `credit`."""
    for item in state.get("alerts", []):
        transition = transition_from_json(item["transition"])
        escalate_in = item.get("escalate_in")
        alerts.adopt(
            OpenAlert(
                transition,
                item["rule_key"],
                escalations=int(item.get("escalations", 0)),
                next_escalation=(
                    now.mono + max(0.0, escalate_in - credit) if escalate_in is not None else None
                ),
                acked_by=item.get("acked_by"),
                presses=int(item.get("presses", 1)),
            )
        )
    for k, q in state.get("quiet_in", {}).items():
        alerts.quiet_until[k] = saved_at.mono + float(q)
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
    for site_id, site_state in sites.items():
        try:
            site_state.restore(saved_sites.get(site_id, {}), saved_at.mono, now)
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
    restored: set[tuple[str, int]] = set()
    for site_id, rules in rules_by_site.items():
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
    return out, removed
