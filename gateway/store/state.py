"""The key-value area: the rules engine's state ("engine") and the device health snapshot
("devices"), as JSON, so that both survive a restart."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

GET = "SELECT value FROM kv WHERE key=?"


def encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def decode(text: str | None) -> Any | None:
    return json.loads(text) if text is not None else None


async def put(db: aiosqlite.Connection, key: str, text: str) -> None:
    """Set `key` to `text` (JSON, from `encode` or the engine's own snapshot)."""
    await db.execute(
        "INSERT INTO kv(key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (key, text),
    )


async def get(db: aiosqlite.Connection, key: str) -> Any | None:
    """The value of `key`, decoded; None when it was never set."""
    # One call on the connection's thread (execute and fetch together): see Outbox.pending.
    rows = list(await db.execute_fetchall(GET, (key,)))
    row = rows[0] if rows else None
    return decode(row[0] if row else None)
