"""The hourly site summaries kept on the gateway (the same ones `P/telemetry` carries at the
`summary` level), pruned after `gateway.retention.summaries`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import aiosqlite

INSERT = (
    "INSERT INTO summaries(site_id, hour, hour_s, payload) VALUES (?, ?, ?, ?)"
    " ON CONFLICT(site_id, hour) DO UPDATE SET payload=excluded.payload"
)


async def add(db: aiosqlite.Connection, summaries: Iterable[dict[str, Any]]) -> None:
    """Keep summaries (`HourlySummariser.close` output: `site_id`, `hour`, ...)."""
    await db.executemany(INSERT, [
        (s["site_id"], s["hour"], int(datetime.fromisoformat(s["hour"]).timestamp()),
         json.dumps(s, ensure_ascii=False, separators=(",", ":")))
        for s in summaries
    ])


async def of_site(db: aiosqlite.Connection, site_id: str) -> list[dict[str, Any]]:
    async with db.execute(
        "SELECT payload FROM summaries WHERE site_id=? ORDER BY hour_s", (site_id,)
    ) as cur:
        return [json.loads(r[0]) for r in await cur.fetchall()]
