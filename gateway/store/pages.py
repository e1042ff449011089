"""The store file's page size: 1 KiB, to wear an SD card less per alert.

SQLite writes whole pages. An alert commit touches about six (the outbox's leaf and its
index, `sqlite_sequence`, the alert log's leaf, the kv rows of the engine's header and of
the site's part), and every one goes into the WAL as a full frame: with SQLite's default
4 KiB pages a transition wrote about 25 KB before its PUBACK, with 1 KiB pages about 6 KB
(figures in docs/performance.md). Larger values (telemetry batches) simply take more
overflow pages; the bytes are the same.

A new file gets the small page at creation. A file made before takes it at the next start
(`adopt`) if it is small enough to rewrite quickly: SQLite changes the page size of an
existing file only by VACUUM, and not in WAL mode, so the file is switched to a rollback
journal (which keeps the rewrite atomic: a crash in the middle leaves the old file), rewritten,
and switched back. A larger file (a long outage's backlog waiting) keeps its pages until a
start that finds it small again: rewriting it would hold up the start and write it all once.

Deleted content is zeroed only where that costs no extra page (`secure_delete=FAST`):
SQLite as Debian builds it zeroes every page a DELETE frees, and an alert's outbox row fills
a 1 KiB page of its own, so each PUBACK wrote a page of zeros (and the checkpoint wrote it
again). Erasing a site and pruning what aged out (docs/privacy.md) still zero every freed
page (`scrubbing`): what those remove must not stay readable in the free pages.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

log = logging.getLogger("hearthgate.store")

PAGE_SIZE = 1024
# Above this a file is not rewritten at start (a VACUUM of 8 MB: about a second on an SD card).
ADOPT_MAX_BYTES = 8 * 1024 * 1024
BUSY_TIMEOUT_MS = 5000  # the write connection's (writer.connect)


async def page_size(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA page_size"))
    return int(rows[0][0])


async def adopt(conn: aiosqlite.Connection, path: Path) -> bool:
    """Rewrite the file at `path` (open on `conn`, in WAL mode, no transaction) with
    PAGE_SIZE pages if it has others and is at most ADOPT_MAX_BYTES; True if it did.
    A failure (no room for the copy) is logged and leaves the file as it was."""
    size = await page_size(conn)
    if size == PAGE_SIZE:
        return False
    rows = list(await conn.execute_fetchall("PRAGMA page_count"))
    used = int(rows[0][0]) * size
    if used > ADOPT_MAX_BYTES:
        log.info("store %s keeps its %d-byte pages for now (%d bytes; rewritten with %d-byte"
                 " pages at a start when it holds under %d)", path, size, used, PAGE_SIZE,
                 ADOPT_MAX_BYTES)
        return False
    # Each statement run to its end (execute_fetchall): a PRAGMA's cursor left open keeps
    # a read transaction, and with it the journal mode, as it was.
    run = conn.execute_fetchall
    try:
        # Another process reading the file (`hearthgate alerts`) makes the switch fail at
        # once rather than hold up the start: the next start tries again.
        await run("PRAGMA busy_timeout=0")
        await run("PRAGMA wal_checkpoint(TRUNCATE)")
        mode = next(iter(await run("PRAGMA journal_mode=DELETE")))[0]
        if str(mode).lower() != "delete":
            # SQLite says so by answering with the mode it kept, not with an error.
            raise sqlite3.OperationalError("another connection has the file open")
        await run(f"PRAGMA page_size={PAGE_SIZE}")
        await run("VACUUM")
    except sqlite3.Error as exc:
        log.warning("store %s: could not rewrite it with %d-byte pages (%s); it keeps its"
                    " %d-byte pages until a later start", path, PAGE_SIZE, exc, size)
        return False
    finally:
        await run("PRAGMA journal_mode=WAL")
        await run(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    log.info("store %s rewritten with %d-byte pages (was %d)", path, PAGE_SIZE, size)
    return True


@asynccontextmanager
async def scrubbing(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """Within: every page freed is zeroed (erasure, retention), whatever it costs."""
    await db.execute("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        await db.execute("PRAGMA secure_delete=FAST")
