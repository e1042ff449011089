"""The local access trail: one row per access (a downlink command, a local `ack`, a login to
the local page), the same record `P/audit` carries; bounded in age and in number."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite


async def add(db: aiosqlite.Connection, at_s: float, payload: str, keep: int) -> None:
    """Keep one record; beyond `keep` records the oldest go."""
    await db.execute("INSERT INTO audit(at_s, payload) VALUES (?, ?)", (at_s, payload))
    await db.execute(
        "DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - ?", (keep,)
    )


async def newest(db: aiosqlite.Connection, limit: int = 1000) -> list[dict[str, Any]]:
    """The trail, oldest first, at most the `limit` newest records."""
    async with db.execute(
        "SELECT payload FROM (SELECT seq, payload FROM audit ORDER BY seq DESC LIMIT ?)"
        " ORDER BY seq", (limit,)
    ) as cur:
        return [json.loads(r[0]) for r in await cur.fetchall()]
