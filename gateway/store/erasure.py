"""Erasing one site's data from the store (`hearthgate forget`), and the register of what is
kept per site.

Every table or area that keeps something of a site registers how to erase it here, so that
`forget` cannot miss a table added later: a table with a site column needs one line
(`register_site_table("observations", "raw observations")`), anything else an `Eraser`
(`register_eraser`). Each eraser says how many rows (or entries) it removed; `forget` prints
that list. The access trail (audit_log.py) is not erased: it records who touched the data,
including the erasure itself, and holds no readings (docs/privacy.md).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosqlite

from hearthgate.rules.engine.snapshot import SPLIT_VERSION, part_entries, without_site
from hearthgate.store import state


@dataclass(frozen=True, slots=True)
class SiteRef:
    """The site being erased: its id and the devices the config gives it."""

    site_id: str
    device_ids: frozenset[str]


Eraser = Callable[[aiosqlite.Connection, SiteRef], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class SiteEraser:
    """One thing kept per site: what `forget` calls it, and how to erase it."""

    what: str
    erase: Eraser


ERASERS: list[SiteEraser] = []


def register_eraser(what: str, erase: Eraser) -> None:
    """Register an area kept per site; `what` is how `forget` names it ("raw observations")."""
    ERASERS.append(SiteEraser(what, erase))


def register_site_table(table: str, what: str, site_column: str = "site_id") -> None:
    """Register a table whose rows belong to one site each, by `site_column`."""

    async def erase(db: aiosqlite.Connection, site: SiteRef) -> int:
        cur = await db.execute(f"DELETE FROM {table} WHERE {site_column}=?", (site.site_id,))
        return cur.rowcount

    register_eraser(what, erase)


async def erase_site(db: aiosqlite.Connection, site: SiteRef) -> list[tuple[str, int]]:
    """Run every registered eraser for `site` (in one transaction, the caller's)."""
    return [(e.what, await e.erase(db, site)) for e in ERASERS]


async def holds_site(db: aiosqlite.Connection, site_id: str) -> bool:
    """Whether the alert log or the summaries hold anything of `site_id` (a site removed from
    the config may still have data to erase)."""
    for table in ("alerts", "summaries"):
        async with db.execute(f"SELECT 1 FROM {table} WHERE site_id=? LIMIT 1", (site_id,)) as c:
            if await c.fetchone() is not None:
                return True
    return False


# -- what the store itself keeps per site ------------------------------------------------


async def _undelivered_alerts(db: aiosqlite.Connection, site: SiteRef) -> int:
    async with db.execute("SELECT seq, payload FROM outbox WHERE kind='alert'") as cur:
        rows = await cur.fetchall()
    gone = [(seq,) for seq, payload in rows
            if state.decode(payload).get("site_id") == site.site_id]
    await db.executemany("DELETE FROM outbox WHERE seq=?", gone)
    return len(gone)


async def _waiting_telemetry(db: aiosqlite.Connection, site: SiteRef) -> int:
    """Readings and summaries of the site in telemetry batches not sent yet; a batch mixes
    sites, so the others' entries are kept."""
    removed = 0
    async with db.execute("SELECT seq, payload FROM outbox WHERE kind='telemetry'") as cur:
        rows = await cur.fetchall()
    for seq, payload in rows:
        body = json.loads(payload)
        key = "readings" if "readings" in body else "summaries"
        entries = body.get(key, [])
        kept = [e for e in entries if e.get("site_id") != site.site_id]
        if len(kept) == len(entries):
            continue
        removed += len(entries) - len(kept)
        if kept:
            body[key] = kept
            await db.execute(
                "UPDATE outbox SET payload=?, readings=? WHERE seq=?",
                (json.dumps(body, ensure_ascii=False, separators=(",", ":")), len(kept), seq),
            )
        else:
            await db.execute("DELETE FROM outbox WHERE seq=?", (seq,))
    return removed


async def _rule_state(db: aiosqlite.Connection, site: SiteRef) -> int:
    saved = await state.get(db, state.ENGINE)
    if not isinstance(saved, dict):
        return 0
    if saved.get("version") == SPLIT_VERSION:
        # Split by site (state.py): the site's rule state is one row of its own.
        part = await state.get(db, state.PART + site.site_id)
        await db.execute("DELETE FROM kv WHERE key=?", (state.PART + site.site_id,))
        return part_entries(part) if isinstance(part, dict) else 0
    kept, removed = without_site(saved, site.site_id)
    if removed:
        await state.put(db, "engine", state.encode(kept))
    return removed


async def _device_state(db: aiosqlite.Connection, site: SiteRef) -> int:
    saved = await state.get(db, "devices")
    if not isinstance(saved, dict) or not isinstance(saved.get("devices"), list):
        return 0
    devices = saved["devices"]
    kept = [d for d in devices
            if d.get("site_id") != site.site_id and d.get("device_id") not in site.device_ids]
    if len(kept) != len(devices):
        await state.put(db, "devices", state.encode({**saved, "devices": kept}))
    return len(devices) - len(kept)


register_site_table("alerts", "alerts in the local alert log")
register_eraser("alert transitions not yet delivered", _undelivered_alerts)
register_eraser("readings and summaries waiting to be sent", _waiting_telemetry)
register_site_table("summaries", "hourly summaries")
register_eraser("rule state entries (the site's rules start afresh)", _rule_state)
register_eraser("saved device states (last seen, last values)", _device_state)
