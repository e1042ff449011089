"""What the status page shows, built from the service's live state: nothing else.

The "minimum necessary" rule (docs/privacy.md): each device's health and its latest state
(what `hearthgate devices` shows), each site's coverage, the open alerts and the walk test in
progress. No resident id, no reading history, no alert details beyond the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from hearthgate.core.model import AlertTransition, isoformat

PAGE_SCHEMA = "hearthgate.page/1"


@dataclass(frozen=True)
class PageFacts:
    """The service's state at one moment, as the page needs it.

    Args:
        gateway_id: the gateway's id (the page's title).
        ts: now, ISO 8601 in the gateway's time zone.
        devices: `DeviceHealth.snapshot(now)`.
        coverage: `SiteCoverage.as_dict()` per site.
        alerts: the open alerts' latest transitions, with who acknowledged them.
        walk: `WalkSession.state()` of the walk test in progress, or None.
    """

    gateway_id: str
    ts: str
    devices: list[dict[str, Any]]
    coverage: list[dict[str, Any]]
    alerts: list[tuple[AlertTransition, str | None]] = field(default_factory=list)
    walk: dict[str, Any] | None = None


class PageSource(Protocol):
    """What the page reads and may do: implemented by `hearthgate.service.Gateway`."""

    def page_facts(self) -> PageFacts: ...

    async def ack_test_alert(self, alert_id: str, actor: str) -> str | None:
        """Acknowledge a *test* alert; the reason it was refused, or None when done."""
        ...

    async def page_audit(self, actor: str, action: str, *, target: str | None = None,
                         ok: bool = True, error: str | None = None) -> None: ...


DEVICE_FIELDS = ("device_id", "site_id", "kind", "protocol", "online", "why", "last_seen",
                 "battery", "linkquality", "values")


def page_state(facts: PageFacts, tz: Any) -> dict[str, Any]:
    """The JSON the page renders (`/api/state` and every SSE `state` event)."""
    alerts = []
    for t, acked_by in facts.alerts:
        alerts.append({
            "alert_id": t.alert_id, "type": t.type, "severity": str(t.severity),
            "state": str(t.state), "site_id": t.site_id, "device_ids": list(t.device_ids),
            "raised_at": isoformat(t.raised_at, tz), "message": t.message, "test": t.test,
            "acknowledged_by": acked_by,
            # Only a walk test's alert may be cleared here; a real one is the care centre's.
            "can_ack": t.test,
        })
    walk = None
    if facts.walk is not None:
        w = facts.walk
        devices = w.get("devices") or []
        walk = {
            "session": w.get("session"), "user": w.get("user"),
            "heard": sum(1 for d in devices if d.get("heard_at")), "total": len(devices),
            "devices": [{"device_id": d.get("device_id"), "heard_at": d.get("heard_at"),
                         "said": d.get("said", [])[-1:]} for d in devices],
            "unconfigured": [{"protocol": u.get("protocol"), "key": u.get("key")}
                             for u in w.get("unconfigured") or []],
        }
    return {
        "schema": PAGE_SCHEMA,
        "gateway_id": facts.gateway_id,
        "ts": facts.ts,
        "devices": [{k: d.get(k) for k in DEVICE_FIELDS} for d in facts.devices],
        "coverage": facts.coverage,
        "alerts": sorted(alerts, key=lambda a: a["raised_at"]),
        "walk": walk,
    }
