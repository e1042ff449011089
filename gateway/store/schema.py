"""The store's file: its name, its tables and the version of their layout.

Three areas: the outbox (what waits for the broker's PUBACK, see outbox.py), the local alert
log (alert_log.py) and a key-value area for the rules' state and device health (state.py);
beside them the hourly site summaries (summaries.py) and the access trail (audit_log.py).
What is kept per site is erased by `hearthgate forget` (erasure.py); what ages is pruned
(retention.py).
`meta` records the layout's version, so that a file written by a newer hearthgate is refused
rather than misread.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite

DB_NAME = "hearthgate.sqlite3"

# Version 2: kv values and alert payloads in the outbox may be zlib-compressed BLOBs
# (state.pack), which a hearthgate of
# version 1 would misread; so a file of version 2 is refused by it. A file of version 1 needs
# no conversion (its TEXT rows are read as they are) and is marked 2 at open. A later version
# raises this and, for a file with an older version, runs its migration in `apply`.
SCHEMA_VERSION = 2

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,            -- 'alert' | 'telemetry'
    event_id TEXT,
    readings INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_priority ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    site_id TEXT NOT NULL,
    device_ids TEXT NOT NULL,
    state TEXT NOT NULL,           -- latest transition: raised | escalated | cleared
    raised_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    message TEXT NOT NULL,
    pending INTEGER NOT NULL,      -- transitions of this alert not yet PUBACKed
    acked_by TEXT,
    acked_at TEXT
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS summaries (  -- hourly site summaries (summaries.py)
    site_id TEXT NOT NULL,
    hour TEXT NOT NULL,            -- ISO 8601 with the gateway's offset
    hour_s INTEGER NOT NULL,       -- the same, in Unix seconds (for retention)
    payload TEXT NOT NULL,
    PRIMARY KEY (site_id, hour)
);
CREATE INDEX IF NOT EXISTS summaries_by_time ON summaries (hour_s);
CREATE TABLE IF NOT EXISTS audit (  -- the local access trail (audit_log.py)
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_s REAL NOT NULL,            -- Unix seconds (for retention)
    payload TEXT NOT NULL          -- the P/audit record
);
"""


async def apply(conn: aiosqlite.Connection, path: Path) -> None:
    """Create the tables a new file lacks and record its version; check an existing one's.

    Raises:
        RuntimeError: the file at `path` was written by a newer hearthgate (a higher
            SCHEMA_VERSION); `conn` is closed first.
    """
    await conn.executescript(DDL)
    async with conn.execute("SELECT value FROM meta WHERE key='schema_version'") as cur:
        row = await cur.fetchone()
    if row is None:
        await conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    elif int(row[0]) > SCHEMA_VERSION:
        await conn.close()
        raise RuntimeError(
            f"{path} was written by a newer hearthgate (schema {row[0]} > {SCHEMA_VERSION})"
        )
    elif int(row[0]) < SCHEMA_VERSION:
        await conn.execute(
            "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
        )
