"""The access trail: who did what to the gateway, and when (docs/privacy.md, `P/audit`).

Every downlink command (recorded where commands are dispatched, `Gateway._command`), every
local `hearthgate ack`, `hearthgate forget` and every login to the local status page becomes
one record, kept in the store's bounded trail and published on `P/audit` (QoS 1, after every
alert). A record names the actor and the action, never a secret and never the data itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from hearthgate.core.clock import Clock
from hearthgate.core.model import isoformat, new_id
from hearthgate.store import Store

log = logging.getLogger("hearthgate.audit")

AUDIT_SCHEMA = "hearthgate.audit/1"
MAX_TEXT = 200  # per field: an actor name or an error is bounded like any outside input
VIAS = ("mqtt", "local", "page")


def _bounded(text: Any) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class AuditTrail:
    """Records accesses: into the store's local trail and its outbox (for `P/audit`).

    ```python
    trail = AuditTrail(store, config, clock, wake=uplink.wake)
    await trail.record("mqtt", "worker-17", "ack", target=alert_id)
    await trail.record("page", "token:installer-1", "login", ok=False, error="bad token")
    ```

    Args:
        store: the store the trail is kept in (`gateway.retention.audit`/`audit_records`
            bound it).
        gateway_id, tz: for the record's `gateway_id` and `ts`.
        clock: what `ts` is read from.
        keep: the most records kept locally.
        wake: called after a record was stored (the uplink's `wake`), if given.
    """

    def __init__(
        self, store: Store, gateway_id: str, tz: Any, clock: Clock, *, keep: int = 10_000,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.gateway_id = gateway_id
        self.tz = tz
        self.clock = clock
        self.keep = keep
        self.wake = wake

    async def record(
        self, via: str, actor: str | None, action: str, *, target: str | None = None,
        ok: bool = True, error: str | None = None, detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record one access and return the record.

        Args:
            via: `mqtt` (a downlink command), `local` (a command on the gateway) or `page`
                (the local status page).
            actor: who: the command's `by` (else `platform`), the local user, the page
                token's id. Never a password or a token itself.
            action: what: the command's name (`ack`, `ping`, `config`, `logs`, ...),
                `forget`, `login`.
            target: what it was about: an alert id, a site id, a config hash.
            ok, error: whether it was carried out, and why not.
            detail: small facts of the action (counts, a line limit); never data or secrets.
        """
        if via not in VIAS:
            raise ValueError(f"via must be one of {VIAS}")
        now = self.clock.now()
        body: dict[str, Any] = {
            "schema": AUDIT_SCHEMA,
            "event_id": new_id(),
            "gateway_id": self.gateway_id,
            "ts": isoformat(now.wall, self.tz),
            "via": via,
            "actor": _bounded(actor) or ("platform" if via == "mqtt" else "unknown"),
            "action": _bounded(action),
            "target": _bounded(target),
            "ok": ok,
            "error": _bounded(error),
        }
        if detail:
            body["detail"] = detail
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if await self.store.add_audit(payload, now.wall.timestamp(), self.keep):
            if self.wake is not None:
                self.wake()
        else:
            # Never silence: the journal has it even when the disk does not.
            log.error("access trail record not stored (the disk takes no writes): %s", payload)
        log.info("audit: %s %s %s %s%s", via, body["actor"], action, target or "",
                 "" if ok else f" refused: {error}")
        return body
