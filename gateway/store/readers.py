"""Read-only access to a store for the CLI views (`hearthgate alerts`, `hearthgate devices`,
gateway/views.py), while the service runs or not: plain sqlite3, no writer, no asyncio."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from hearthgate.store import alert_log, state
from hearthgate.store.alert_log import AlertRow
from hearthgate.store.schema import DB_NAME


def read_only(data_dir: Path) -> sqlite3.Connection | None:
    """A read-only connection for the CLI tools (`alerts`, `devices`) while the service runs."""
    path = data_dir / DB_NAME
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def read_alerts(conn: sqlite3.Connection, limit: int = 1000) -> list[AlertRow]:
    """The alert log, newest first, with the uplink's view of what is still pending (refused
    by the broker, or sent and awaiting a receipt: its `delivery` state, gateway/uplink.py)."""
    rows = [alert_log.alert_row(r) for r in conn.execute(alert_log.NEWEST, (limit,))]
    shown = read_state(conn, "delivery")
    if not isinstance(shown, dict):
        return rows
    refused = shown.get("refused") if isinstance(shown.get("refused"), dict) else {}
    sent = set(shown.get("awaiting_receipt") or ())
    return [
        replace(r, delivery="refused", refused_reason=str(refused[r.alert_id]))
        if r.pending and r.alert_id in refused
        else replace(r, delivery="sent") if r.pending and r.alert_id in sent else r
        for r in rows
    ]


def read_state(conn: sqlite3.Connection, key: str) -> Any | None:
    row = conn.execute(state.GET, (key,)).fetchone()
    return state.decode(row[0] if row else None)
