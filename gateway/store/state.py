"""The key-value area: the rules engine's state and the device health snapshot
("devices"), as JSON, so that both survive a restart.

The engine's state is kept split by site (`rules.engine.snapshot.split_snapshot`): a header
row "engine" and one row "engine/<site id>" per site, so that an alert commit rewrites the
header (a hundred bytes) and its own site's row, not the state of every site (118 KB with
200 alerts open, all of it on the SOS's fsync). An "engine" row of the older single-snapshot
form is read as it is; the service then writes the split form in full (`EngineWrite.full`),
which removes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from hearthgate.rules.engine.snapshot import SPLIT_VERSION, join_snapshot

GET = "SELECT value FROM kv WHERE key=?"
ENGINE = "engine"
PART = "engine/"  # + site id
# The rows of the parts, as a key range ('0' follows '/'): a LIKE would treat the
# '_' and '%' a site id may hold as wildcards.
PARTS_WHERE = "key >= 'engine/' AND key < 'engine0'"


@dataclass(frozen=True, slots=True)
class EngineWrite:
    """The engine's state to write, encoded: the header and the parts of some sites.

    `full` replaces every part (the parts of sites not in `parts` are removed); otherwise
    only the parts given are rewritten and the others stay as they were saved.
    """

    header: str
    parts: dict[str, str] = field(default_factory=dict)
    full: bool = False


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


async def put_engine(db: aiosqlite.Connection, write: EngineWrite) -> None:
    """Write the engine's header and parts (in the caller's transaction)."""
    if write.full:
        await db.execute(f"DELETE FROM kv WHERE {PARTS_WHERE}")
    await put(db, ENGINE, write.header)
    for site_id, text in write.parts.items():
        await put(db, PART + site_id, text)


async def get_engine(db: aiosqlite.Connection) -> dict[str, Any] | None:
    """The engine's saved state as `RuleEngine.restore` reads it: the split rows joined, or
    an older single snapshot as it is; None when nothing was saved."""
    rows = list(await db.execute_fetchall(
        f"SELECT key, value FROM kv WHERE key='engine' OR ({PARTS_WHERE})"))
    values = {str(k): decode(v) for k, v in rows}
    header = values.pop(ENGINE, None)
    if not isinstance(header, dict):
        return None
    if header.get("version") != SPLIT_VERSION:
        return header  # the single snapshot of an older hearthgate: migrated on next save
    parts = {k[len(PART):]: v for k, v in values.items() if isinstance(v, dict)}
    return join_snapshot(header, parts)
