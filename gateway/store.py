"""The SQLite store: the outbox, the local alert log, device health and rule state.

One connection, one writer: every write goes through `Store`'s writer task, which
commits whatever is waiting in one transaction (group commit). Alert
transitions are committed with `synchronous=FULL` before they are published and
deleted only after the broker's PUBACK; telemetry batches are written with
lighter durability and are bounded (oldest dropped first, alerts never).
SD cards wear out, so telemetry reaches the disk only when the uplink cannot take
it at once (see gateway/uplink.py), and state snapshots are written in batches.

When the disk is full (or failing), alerting must not stop: alert transitions that
cannot be written are held in memory, where the uplink still finds them, and every
write that failed for lack of room is kept and replayed, in order, as soon as the
disk takes writes again. Telemetry yields: it is dropped (and counted) meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from hearthgate.core.model import AlertTransition, Priority

log = logging.getLogger("hearthgate.store")

SCHEMA_VERSION = 1
CHECKPOINT_EVERY = 30.0  # s at most between WAL checkpoints while writes happen
DB_NAME = "hearthgate.sqlite3"
STORAGE_RETRY = 2.0  # seconds between attempts to write what is held in memory
STORAGE_NAG = 60.0  # while writes fail, repeat the error this often

_SCHEMA = """
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
"""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    priority: Priority
    kind: str
    event_id: str | None
    readings: int
    payload: str


@dataclass(frozen=True, slots=True)
class AlertRow:
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

    @property
    def status(self) -> str:
        """pending / delivered / acknowledged / cleared, as `hearthgate alerts` shows it."""
        if self.pending:
            return "pending"
        if self.state == "cleared":
            return "cleared"
        if self.acked_by:
            return "acknowledged"
        return "delivered"


class StoreClosed(RuntimeError):
    pass


def storage_failure(exc: BaseException) -> bool:
    """Whether a write failed for lack of room, a failing disk or a database locked by someone
    else for longer than busy_timeout (not a bug in our SQL): such writes are held and
    retried, never a reason to stop alerting."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            # Extended I/O error codes keep SQLITE_IOERR in their low byte.
            return code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY)
        text = str(exc).lower()
        return any(t in text for t in ("disk is full", "disk i/o error", "database is locked"))
    return False


_Job = Callable[[aiosqlite.Connection], Awaitable[Any]]


async def _nothing(db: aiosqlite.Connection) -> None:
    return None


class Store:
    def __init__(
        self, conn: aiosqlite.Connection, reader: aiosqlite.Connection, path: Path,
        telemetry_bound: int,
    ) -> None:
        self._db = conn
        # Reads go through their own connection so that they never see, or slip into,
        # a transaction the writer has not committed yet.
        self._reader = reader
        self.path = path
        self.telemetry_bound = telemetry_bound
        self._queue: asyncio.Queue[tuple[_Job, bool, asyncio.Future[Any]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.telemetry_dropped = 0
        self._telemetry_readings = 0
        self.commits = 0
        # Bumped after each committed (or held) insert, per priority class: lets the uplink
        # skip re-reading an outbox class it found empty when nothing was added since.
        self.added: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._checkpointed_at = 0
        self._last_checkpoint = 0.0  # the loop's time of the last checkpoint, or of start
        # Degraded mode (disk full): writes that failed for lack of room, in order, and the
        # alert rows among them that the uplink must still see.
        self._deferred: list[_Job] = []
        self._held: dict[int, OutboxItem] = {}
        self._held_seq = 0
        self._gone: set[int] = set()  # delivered, but their DELETE is among the deferred
        self.degraded_since: float | None = None  # time.monotonic() of the first failure
        self.storage_failures = 0
        self._last_nag = 0.0

    # -- lifecycle ------------------------------------------------------------

    @classmethod
    async def open(cls, data_dir: Path, telemetry_bound: int = 200_000) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / DB_NAME
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA busy_timeout=5000")
        # No checkpoint inside a commit: one would stall the alert that triggers it (the
        # WAL's pages copied and the database fsynced, 100 ms and more on an SD card).
        # `_checkpoint` runs them on a connection of their own, off the alert path.
        await conn.execute("PRAGMA wal_autocheckpoint=0")
        await conn.executescript(_SCHEMA)
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
        reader = await aiosqlite.connect(path, isolation_level=None)
        reader.row_factory = sqlite3.Row
        await reader.execute("PRAGMA busy_timeout=5000")
        store = cls(conn, reader, path, telemetry_bound)
        async with conn.execute("SELECT COALESCE(SUM(readings), 0) FROM outbox") as cur:
            store._telemetry_readings = int((await cur.fetchone())[0])
        return store

    async def run(self) -> None:
        """The one writer: commit queued jobs in groups until cancelled."""
        self._last_checkpoint = asyncio.get_running_loop().time()
        while True:
            if self._deferred:
                try:
                    first = await asyncio.wait_for(self._queue.get(), STORAGE_RETRY)
                except TimeoutError:
                    await self.retry_deferred()
                    continue
            else:
                first = await self._queue.get()
            jobs = [first]
            while not self._queue.empty() and len(jobs) < 500:
                jobs.append(self._queue.get_nowait())
            await self._commit_group(jobs)
            for _ in jobs:
                self._queue.task_done()
            self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        now = asyncio.get_running_loop().time()
        if (self._checkpointing is not None or self.commits == self._checkpointed_at
                or now - self._last_checkpoint < CHECKPOINT_EVERY):
            return
        self._last_checkpoint = now
        self._checkpointing = asyncio.ensure_future(self._checkpoint(self.commits))

    async def _checkpoint(self, commits: int) -> None:
        """Copy the WAL into the database (PASSIVE: never blocks the writer)."""
        try:
            if self._checkpointer is None:
                self._checkpointer = await aiosqlite.connect(self.path, isolation_level=None)
                await self._checkpointer.execute("PRAGMA busy_timeout=5000")
            await self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._checkpointed_at = commits
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            self._checkpointing = None

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self.run(), name="store-writer")

    async def close(self) -> None:
        if self._writer is not None:
            # Let queued writes land before closing: nothing accepted is lost.
            if not self._writer.done():
                await self._queue.join()
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        while not self._queue.empty():
            await self._commit_group([self._queue.get_nowait()])
        if self._deferred and not await self.retry_deferred():
            log.critical(
                "stopping with %d writes (%d alert transitions) that the disk would not take",
                len(self._deferred), len(self._held),
            )
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        if self._checkpointer is not None:
            await self._checkpointer.close()
            self._checkpointer = None
        await self._reader.close()
        await self._db.close()

    async def _commit_group(self, jobs: list[tuple[_Job, bool, asyncio.Future[Any]]]) -> None:
        durable = any(d for _, d, _ in jobs)
        results: list[Any] = []
        try:
            await self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            await self._db.execute("BEGIN IMMEDIATE")
            for job, _, _ in jobs:
                results.append(await job(self._db))
            await self._db.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            try:
                await self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            # Retry one by one so one bad job cannot sink the others.
            if len(jobs) > 1:
                for item in jobs:
                    await self._commit_group([item])
                return
            # Lack of room is reported (once, loudly) by the caller that holds the write.
            log.log(logging.DEBUG if storage_failure(exc) else logging.ERROR,
                    "store write failed: %s", exc)
            fut = jobs[0][2]
            if not fut.done():
                fut.set_exception(exc)
            return
        for (_, _, fut), result in zip(jobs, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def _write(self, job: _Job, durable: bool, *, defer: bool = False) -> Any:
        """Commit `job` (through the writer task). With `defer`, a write the disk cannot take
        is kept and replayed later instead of failing; it then returns None."""
        if defer and self._deferred:
            # Already degraded: queue behind the earlier failures so that order is kept.
            self._deferred.append(job)
            return None
        try:
            return await self._commit(job, durable)
        except Exception as exc:
            if not (defer and storage_failure(exc)):
                raise
            await self._degrade(exc)
            self._deferred.append(job)
            return None

    async def _commit(self, job: _Job, durable: bool, *, inline: bool = False) -> Any:
        if inline or self._writer is None:
            # No writer task (tools, tests): commit inline.
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            await self._commit_group([(job, durable, fut)])
            return await fut
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((job, durable, fut))
        return await fut

    # -- degraded mode (disk full) ----------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while some accepted writes exist only in memory."""
        return bool(self._deferred)

    @property
    def held_alerts(self) -> int:
        """Alert transitions accepted but not on disk (still published from memory)."""
        return len(self._held)

    @property
    def deferred_writes(self) -> int:
        return len(self._deferred)

    async def _degrade(self, exc: BaseException) -> None:
        self.storage_failures += 1
        if self._deferred:
            return
        self.degraded_since = self._last_nag = time.monotonic()
        if not self._held:
            # Held alerts take the outbox's next numbers, so that the uplink's cursors and
            # the rows written on recovery agree; nothing else enters the outbox meanwhile.
            async with self._reader.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM"
                " (SELECT seq FROM sqlite_sequence WHERE name='outbox'"
                "  UNION ALL SELECT MAX(seq) FROM outbox)"
            ) as cur:
                row = await cur.fetchone()
            self._held_seq = max(self._held_seq, int(row[0] or 0))
        if self._writer is not None:
            # Wake the writer so that it starts retrying (it may be waiting for work forever).
            kick: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queue.put_nowait((_nothing, False, kick))
        log.critical(
            "STORAGE FAILURE: cannot write %s (%s); alerts are held in memory and still sent,"
            " telemetry is dropped until the disk takes writes again", self.path, exc,
        )

    async def retry_deferred(self) -> bool:
        """Try to write everything held; True when nothing is held any more."""
        jobs = list(self._deferred)
        if not jobs:
            return True

        async def replay(db: aiosqlite.Connection) -> None:
            for job in jobs:
                await job(db)

        try:
            # Inline: this runs in the writer task itself (or after it has stopped).
            await self._commit(replay, durable=True, inline=True)
        except Exception as exc:
            if not storage_failure(exc):
                raise
            self.storage_failures += 1
            now = time.monotonic()
            if now - self._last_nag >= STORAGE_NAG:
                self._last_nag = now
                log.error(
                    "STORAGE STILL FAILING for %.0fs: %d alert transitions held in memory,"
                    " %d writes waiting, %d telemetry readings dropped (%s)",
                    now - (self.degraded_since or now), len(self._held), len(self._deferred),
                    self.telemetry_dropped, exc,
                )
            return False
        del self._deferred[: len(jobs)]
        if self._deferred:
            return await self.retry_deferred()
        held = len(self._held)
        self._held.clear()
        self._gone.clear()
        log.warning(
            "storage writable again after %.0fs: %d held writes committed (%d alert"
            " transitions still unsent were written to the outbox)",
            time.monotonic() - (self.degraded_since or time.monotonic()), len(jobs), held,
        )
        self.degraded_since = None
        return True

    # -- outbox ---------------------------------------------------------------

    async def add_alerts(
        self, transitions: Sequence[AlertTransition], payloads: Sequence[str],
        engine_state: str | None = None,
    ) -> list[int]:
        """Commit alert transitions durably (with the engine state that produced them).

        If the disk cannot take them they are held in memory (the uplink still sends them)
        and written once it can: an alert is never refused for lack of room.
        """

        async def job(db: aiosqlite.Connection) -> list[int]:
            seqs: list[int] = []
            for t, payload in zip(transitions, payloads, strict=True):
                cur = await db.execute(
                    "INSERT INTO outbox(priority, kind, event_id, readings, payload)"
                    " VALUES (?, 'alert', ?, 0, ?)",
                    (int(t.priority), t.event_id, payload),
                )
                seqs.append(int(cur.lastrowid or 0))
                await _upsert_alert(db, t, 1)
            if engine_state is not None:
                await _put_kv(db, "engine", engine_state)
            return seqs

        seqs: list[int] | None = None
        if not self._deferred:
            try:
                seqs = list(await self._commit(job, durable=True))
            except Exception as exc:
                if not storage_failure(exc):
                    raise
                await self._degrade(exc)
        if seqs is None:
            seqs = self._hold_alerts(transitions, payloads, engine_state)
        for t in transitions:
            self.added[t.priority] += 1
        return seqs

    def _hold_alerts(
        self, transitions: Sequence[AlertTransition], payloads: Sequence[str],
        engine_state: str | None,
    ) -> list[int]:
        items: list[tuple[AlertTransition, OutboxItem]] = []
        for t, payload in zip(transitions, payloads, strict=True):
            self._held_seq += 1
            item = OutboxItem(self._held_seq, t.priority, "alert", t.event_id, 0, payload)
            self._held[item.seq] = item
            items.append((t, item))

        async def replay(db: aiosqlite.Connection) -> None:
            for t, item in items:
                # Delivered while held: only the local alert log needs it.
                unsent = item.seq in self._held
                if unsent:
                    await db.execute(
                        "INSERT INTO outbox(seq, priority, kind, event_id, readings, payload)"
                        " VALUES (?, ?, 'alert', ?, 0, ?)",
                        (item.seq, int(item.priority), item.event_id, item.payload),
                    )
                await _upsert_alert(db, t, int(unsent))
            # Numbers handed out while held are used up even if those transitions were
            # delivered from memory: the uplink's cursor has passed them.
            await _reserve_seq(db, items[-1][1].seq)
            if engine_state is not None:
                await _put_kv(db, "engine", engine_state)

        self._deferred.append(replay)
        log.error(
            "%d alert transitions held in memory (%d in all): the disk takes no writes",
            len(items), len(self._held),
        )
        return [item.seq for _, item in items]

    async def add_telemetry(self, payloads: Iterable[tuple[str, int]]) -> None:
        """Keep telemetry batches (payload, number of readings) until the uplink takes them."""
        items = list(payloads)
        if not items:
            return
        if self._deferred:
            # Alerts are waiting for room: telemetry yields (and would take their outbox numbers).
            self._drop_telemetry(items, "the disk takes no writes")
            return

        async def job(db: aiosqlite.Connection) -> None:
            await db.executemany(
                "INSERT INTO outbox(priority, kind, readings, payload)"
                " VALUES (?, 'telemetry', ?, ?)",
                [(int(Priority.TELEMETRY), n, p) for p, n in items],
            )
            self._telemetry_readings += sum(n for _, n in items)
            await self._enforce_bound(db)

        before = self._telemetry_readings
        try:
            await self._write(job, durable=False)
        except Exception as exc:
            if not storage_failure(exc):
                raise
            self._telemetry_readings = before  # the job's count was rolled back with it
            self._drop_telemetry(items, str(exc))
        else:
            self.added[Priority.TELEMETRY] += 1

    def _drop_telemetry(self, items: list[tuple[str, int]], why: str) -> None:
        n = sum(r for _, r in items)
        self.telemetry_dropped += n
        log.error("telemetry dropped: %d readings (%d so far): %s", n, self.telemetry_dropped, why)

    async def _enforce_bound(self, db: aiosqlite.Connection) -> None:
        while self._telemetry_readings > self.telemetry_bound:
            async with db.execute(
                "SELECT seq, readings FROM outbox WHERE kind='telemetry' ORDER BY seq LIMIT 100"
            ) as cur:
                rows = await cur.fetchall()
            if not rows:
                break
            drop: list[int] = []
            for seq, n in rows:
                if self._telemetry_readings <= self.telemetry_bound:
                    break
                drop.append(seq)
                self._telemetry_readings -= n
                self.telemetry_dropped += n
            await db.executemany("DELETE FROM outbox WHERE seq=?", [(s,) for s in drop])
            log.warning(
                "telemetry buffer full: dropped the %d oldest readings so far",
                self.telemetry_dropped,
            )

    async def pending(
        self, priority: Priority, after_seq: int = 0, limit: int = 100
    ) -> list[OutboxItem]:
        """Waiting items of one priority class in order, from `after_seq` on (a read; no writer)."""
        gone = self._gone
        async with self._reader.execute(
            "SELECT seq, priority, kind, event_id, readings, payload FROM outbox"
            " WHERE priority=? AND seq>? ORDER BY seq LIMIT ?",
            (int(priority), after_seq, limit + len(gone)),
        ) as cur:
            rows = await cur.fetchall()
        items = [OutboxItem(r[0], Priority(r[1]), r[2], r[3], r[4], r[5]) for r in rows]
        if gone:
            items = [i for i in items if i.seq not in gone]
        if self._held:
            seen = {i.seq for i in items}
            items += [
                i for i in self._held.values()
                if i.priority == priority and i.seq > after_seq and i.seq not in seen
            ]
            items.sort(key=lambda i: i.seq)
        return items[:limit]

    async def delivered(self, items: Sequence[OutboxItem]) -> None:
        """PUBACK received: remove these from the outbox."""
        if not items:
            return
        for item in items:
            self._held.pop(item.seq, None)
        if self._deferred:
            self._gone.update(i.seq for i in items)
        alerts = [i for i in items if i.kind == "alert"]
        telemetry = [i for i in items if i.kind != "alert"]

        async def job(db: aiosqlite.Connection) -> None:
            if telemetry:
                await db.executemany(
                    "DELETE FROM outbox WHERE seq=?", [(i.seq,) for i in telemetry]
                )
                self._telemetry_readings -= sum(i.readings for i in telemetry)
            for item in alerts:
                cur = await db.execute("DELETE FROM outbox WHERE seq=?", (item.seq,))
                # A transition delivered while held in memory never got a row to delete.
                if cur.rowcount:
                    alert_id = json.loads(item.payload)["alert_id"]
                    await db.execute(
                        "UPDATE alerts SET pending=MAX(pending-1, 0) WHERE alert_id=?", (alert_id,)
                    )

        await self._write(job, durable=False, defer=True)

    async def depth(self) -> dict[Priority, int]:
        async with self._reader.execute(
            "SELECT priority, COUNT(*) FROM outbox GROUP BY priority"
        ) as cur:
            rows = await cur.fetchall()
        out = dict.fromkeys(Priority, 0)
        out.update({Priority(p): n for p, n in rows})
        return out

    # -- alert log ------------------------------------------------------------

    async def mark_acknowledged(self, alert_id: str, by: str, at: str) -> None:
        async def job(db: aiosqlite.Connection) -> None:
            await db.execute(
                "UPDATE alerts SET acked_by=?, acked_at=? WHERE alert_id=?", (by, at, alert_id)
            )

        await self._write(job, durable=True, defer=True)

    async def alerts(self, limit: int = 1000) -> list[AlertRow]:
        async with self._reader.execute(
            "SELECT * FROM alerts ORDER BY raised_at DESC LIMIT ?", (limit,)
        ) as cur:
            rows = await cur.fetchall()
        return [_alert_row(r) for r in rows]

    # -- key-value state ------------------------------------------------------

    async def put_state(self, key: str, value: Any, durable: bool = False) -> None:
        text = json.dumps(value, separators=(",", ":"))

        async def job(db: aiosqlite.Connection) -> None:
            await _put_kv(db, key, text)

        await self._write(job, durable=durable, defer=True)

    async def get_state(self, key: str) -> Any | None:
        async with self._reader.execute("SELECT value FROM kv WHERE key=?", (key,)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else None


async def _reserve_seq(db: aiosqlite.Connection, seq: int) -> None:
    cur = await db.execute(
        "UPDATE sqlite_sequence SET seq=MAX(seq, ?) WHERE name='outbox'", (seq,)
    )
    if not cur.rowcount:
        await db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('outbox', ?)", (seq,))


async def _upsert_alert(db: aiosqlite.Connection, t: AlertTransition, pending: int) -> None:
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


async def _put_kv(db: aiosqlite.Connection, key: str, text: str) -> None:
    await db.execute(
        "INSERT INTO kv(key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (key, text),
    )


def _alert_row(r: sqlite3.Row) -> AlertRow:
    return AlertRow(
        alert_id=r["alert_id"], type=r["type"], severity=r["severity"], site_id=r["site_id"],
        device_ids=json.loads(r["device_ids"]), state=r["state"], raised_at=r["raised_at"],
        updated_at=r["updated_at"], message=r["message"], pending=r["pending"],
        acked_by=r["acked_by"], acked_at=r["acked_at"],
    )


def read_only(data_dir: Path) -> sqlite3.Connection | None:
    """A read-only connection for the CLI tools (`alerts`, `devices`) while the service runs."""
    path = data_dir / DB_NAME
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def read_alerts(conn: sqlite3.Connection, limit: int = 1000) -> list[AlertRow]:
    rows = conn.execute("SELECT * FROM alerts ORDER BY raised_at DESC LIMIT ?", (limit,))
    return [_alert_row(r) for r in rows]


def read_state(conn: sqlite3.Connection, key: str) -> Any | None:
    row = conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
    return json.loads(row[0]) if row else None
