"""The local alert log: one row per alert, its latest transition, delivery and acknowledgement.

`hearthgate alerts` shows it; the outbox updates it in the same transaction as the
transitions it stores and deletes (outbox.py).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import aiosqlite

from hearthgate.core.model import AlertTransition

NEWEST = "SELECT * FROM alerts ORDER BY raised_at DESC LIMIT ?"


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert of the log: the columns of `alerts`, `device_ids` decoded (schema.py)."""

    alert_id: str
    type: str
    severity: str
    site_id: str
    device_ids: list[str]
    state: str
    raised_at: str
    updated_at: str
    message: str
    pending: int
    acked_by: str | None
    acked_at: str | None
    # While pending, what the uplink last knew (its `delivery` state): "refused" by the
    # broker (with `refused_reason`), or "sent" and awaiting the platform's receipt.
    delivery: str | None = None
    refused_reason: str | None = None

    @property
    def status(self) -> str:
        """pending / refused / sent / delivered / acknowledged / cleared, as `hearthgate
        alerts` shows it. Never "delivered" while a transition of it waits in the outbox."""
        if self.pending:
            return self.delivery or "pending"
        if self.state == "cleared":
            return "cleared"
        if self.acked_by:
            return "acknowledged"
        return "delivered"


def alert_row(r: sqlite3.Row) -> AlertRow:
    return AlertRow(
        alert_id=r["alert_id"], type=r["type"], severity=r["severity"], site_id=r["site_id"],
        device_ids=json.loads(r["device_ids"]), state=r["state"], raised_at=r["raised_at"],
        updated_at=r["updated_at"], message=r["message"], pending=r["pending"],
        acked_by=r["acked_by"], acked_at=r["acked_at"],
    )


async def upsert(db: aiosqlite.Connection, t: AlertTransition, pending: int) -> None:
    """Record transition `t`, of which `pending` (0 or 1) still waits for its PUBACK."""
    await db.execute(
        """INSERT INTO alerts(alert_id, type, severity, site_id, device_ids, state,
               raised_at, updated_at, message, pending)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(alert_id) DO UPDATE SET state=excluded.state,
               severity=excluded.severity, updated_at=excluded.updated_at,
               pending=pending+excluded.pending""",
        (
            t.alert_id, t.type, str(t.severity), t.site_id, json.dumps(list(t.device_ids)),
            str(t.state), t.raised_at.isoformat(), t.ts.isoformat(), t.message, pending,
        ),
    )


async def delivered(db: aiosqlite.Connection, alert_id: str) -> None:
    """One transition of the alert was PUBACKed."""
    await db.execute(
        "UPDATE alerts SET pending=MAX(pending-1, 0) WHERE alert_id=?", (alert_id,)
    )


async def acknowledge(db: aiosqlite.Connection, alert_id: str, by: str, at: str) -> None:
    await db.execute(
        "UPDATE alerts SET acked_by=?, acked_at=? WHERE alert_id=?", (by, at, alert_id)
    )


async def newest(db: aiosqlite.Connection, limit: int) -> list[AlertRow]:
    """The log, the most recently raised alert first."""
    # One call on the connection's thread (execute and fetch together): see Outbox.pending.
    rows = await db.execute_fetchall(NEWEST, (limit,))
    return [alert_row(r) for r in rows]
