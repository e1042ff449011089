"""Pruning what has aged out of the store (`gateway.retention:`, docs/privacy.md).

Each area that ages registers a pruner under the name of its retention setting
(`observations`, `summaries`, `alerts`, `audit`); a pass removes at most `limit` rows per area,
so a gateway back after months never stalls its writer on one huge DELETE: the service runs
passes until nothing is left to prune (`Gateway._retention_loop` in gateway/service.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

Pruner = Callable[[aiosqlite.Connection, float, int], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Retained:
    """One area that ages: the retention setting that bounds it and how to prune it
    (`prune(db, cutoff_s, limit)` removes at most `limit` rows older than `cutoff_s`, Unix
    seconds, and says how many it removed)."""

    setting: str
    what: str
    prune: Pruner


RETAINED: list[Retained] = []


def register_pruner(setting: str, what: str, prune: Pruner) -> None:
    RETAINED.append(Retained(setting, what, prune))


def register_retained_table(table: str, time_column: str, setting: str, what: str) -> None:
    """A table whose rows age by `time_column` (Unix seconds)."""

    async def prune(db: aiosqlite.Connection, cutoff: float, limit: int) -> int:
        cur = await db.execute(
            f"DELETE FROM {table} WHERE rowid IN"
            f" (SELECT rowid FROM {table} WHERE {time_column} < ? LIMIT ?)", (cutoff, limit),
        )
        return cur.rowcount

    register_pruner(setting, what, prune)


async def prune(
    db: aiosqlite.Connection, cutoffs: dict[str, float], limit: int
) -> dict[str, int]:
    """One pass: per registered area whose setting is in `cutoffs`, at most `limit` rows."""
    out: dict[str, int] = {}
    for area in RETAINED:
        if area.setting in cutoffs:
            out[area.what] = out.get(area.what, 0) + await area.prune(
                db, cutoffs[area.setting], limit)
    return out


async def _cleared_alerts(db: aiosqlite.Connection, cutoff: float, limit: int) -> int:
    # Only alerts that are over (cleared) and delivered: an open or unsent alert stays.
    async with db.execute(
        "SELECT alert_id, updated_at FROM alerts WHERE state='cleared' AND pending=0"
        " ORDER BY raised_at LIMIT ?", (limit * 4,)
    ) as cur:
        rows = await cur.fetchall()
    old = [(a,) for a, updated in rows if datetime.fromisoformat(updated).timestamp() < cutoff]
    old = old[:limit]
    await db.executemany("DELETE FROM alerts WHERE alert_id=?", old)
    return len(old)


register_retained_table("summaries", "hour_s", "summaries", "hourly summaries")
register_retained_table("audit", "at_s", "audit", "access trail records")
register_pruner("alerts", "cleared alerts in the local alert log", _cleared_alerts)
