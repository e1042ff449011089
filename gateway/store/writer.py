"""The store's one writer: every write, committed in groups on one connection.

Writes are jobs (a coroutine function given the connection) queued to one task, which
commits whatever is waiting in one transaction (group commit), with `synchronous=FULL` when
any job of the group asks for durability and NORMAL otherwise. WAL checkpoints run on a
connection of their own, off the alert path.

When the disk is full (or failing), a write that may wait (`defer`) is not refused: it is
kept in memory, behind any earlier ones, and the kept writes are replayed in order, in one
transaction, as soon as the disk takes writes again. What the rest of the store holds in
memory meanwhile (the outbox's alert transitions) is reported through `Holding`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

log = logging.getLogger("hearthgate.store")

CHECKPOINT_EVERY = 30.0  # s at most between WAL checkpoints while writes happen
STORAGE_RETRY = 2.0  # seconds between attempts to write what is held in memory
STORAGE_NAG = 60.0  # while writes fail, repeat the error this often
GROUP_MAX = 500  # jobs committed in one transaction at most

Job = Callable[[aiosqlite.Connection], Awaitable[Any]]


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


async def connect(path: Path) -> aiosqlite.Connection:
    """The write connection: autocommit (the writer opens its own transactions), WAL."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA busy_timeout=5000")
    # No checkpoint inside a commit: one would stall the alert that triggers it (the
    # WAL's pages copied and the database fsynced, 100 ms and more on an SD card).
    # `Writer._checkpoint` runs them on a connection of their own, off the alert path.
    await conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


class Holding(Protocol):
    """What else the store keeps in memory while the disk refuses writes, as the writer
    reports it and forgets it (outbox.Outbox: the alert transitions it still publishes)."""

    @property
    def held_alerts(self) -> int: ...

    @property
    def telemetry_dropped(self) -> int: ...

    async def degrading(self) -> None:
        """The first write the disk refused, before anything is kept in memory."""

    def recovered(self) -> int:
        """Everything kept has been committed: forget it; how many alert transitions it was."""


class NothingHeld:
    """The `Holding` of a writer that nothing else keeps in memory for."""

    held_alerts = 0
    telemetry_dropped = 0

    async def degrading(self) -> None:
        return None

    def recovered(self) -> int:
        return 0


async def _nothing(db: aiosqlite.Connection) -> None:
    return None


# A queued write: the job, whether it must be durable, its result, whether it yields.
_Queued = tuple[Job, bool, "asyncio.Future[Any]", bool]
_Group = list[tuple[Job, bool, "asyncio.Future[Any]"]]


def split_group(queued: list[_Queued]) -> list[_Group]:
    """The transactions to commit what is queued, in order: one, unless a durable write
    waits beside writes that yield (deletions of what the uplink delivered). Those go in a
    second transaction after it, so that an alert's fsync neither waits for their work nor
    carries their pages (a drain deletes ~45 KB batches, overflow pages and freelist, every
    few milliseconds). They commute with everything: a deletion is of rows PUBACKed, i.e.
    committed before; the alert log's `pending` is a count. (At the telemetry bound, a
    batch added in the first may count a delivered one a moment longer than it is kept.)"""
    jobs = [q[:3] for q in queued]
    if not any(q[1] for q in queued) or not any(q[3] for q in queued):
        return [jobs]
    first = [q[:3] for q in queued if not q[3]]
    second = [q[:3] for q in queued if q[3]]
    return [first, second]


class Writer:
    """The one writer of a store's database: a queue of jobs, committed in groups.

    `run()` is the writer task: start it with `start()`, or run it elsewhere (under a
    supervisor) and hand the task over as `task`. Without a task, writes are committed inline
    by their caller (tools, tests).

    Args:
        db: the write connection (from `connect`); the writer owns it and `close()` closes it.
        path: the database file, for the checkpoint connection and for messages.
        holding: what else is kept in memory while the disk refuses writes.

    Raises:
        sqlite3.Error: (from `commit` and `write`) the job's own error, and lack of room or a
            failing disk (`storage_failure`) for a write that may not be deferred; the job's
            transaction is rolled back. Any other exception of the job passes through alike.
        ValueError: (from `commit` and `write`) a write after `close()`.
    """

    def __init__(
        self, db: aiosqlite.Connection, path: Path, holding: Holding | None = None
    ) -> None:
        self.db = db
        self.path = path
        self.holding: Holding = holding if holding is not None else NothingHeld()
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.commits = 0
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._checkpointed_at = 0
        self._last_checkpoint = 0.0  # the loop's time of the last checkpoint, or of start
        # Degraded mode (disk full): writes that failed for lack of room, in order.
        self._deferred: list[Job] = []
        self.degraded_since: float | None = None  # time.monotonic() of the first failure
        self.storage_failures = 0
        self._last_nag = 0.0

    # -- the writer task ----------------------------------------------------------

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
            while not self._queue.empty() and len(jobs) < GROUP_MAX:
                jobs.append(self._queue.get_nowait())
            for group in split_group(jobs):
                await self._commit_group(group)
            for _ in jobs:
                self._queue.task_done()
            self._maybe_checkpoint()

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self.run(), name="store-writer")

    async def finish(self) -> None:
        """Stop the writer task once every queued write has landed, then commit what is still
        queued or held; wait for a checkpoint under way. The write connection stays open."""
        if self.task is not None:
            # Let queued writes land before closing: nothing accepted is lost.
            if not self.task.done():
                await self._queue.join()
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None
        while not self._queue.empty():
            await self._commit_group([self._queue.get_nowait()[:3]])
        if self._deferred and not await self.retry_deferred():
            log.critical(
                "stopping with %d writes (%d alert transitions) that the disk would not take",
                len(self._deferred), self.holding.held_alerts,
            )
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        if self._checkpointer is not None:
            await self._checkpointer.close()
            self._checkpointer = None

    async def close(self) -> None:
        await self.db.close()

    # -- checkpoints ----------------------------------------------------------------

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

    # -- writing --------------------------------------------------------------------

    async def _commit_group(self, jobs: list[tuple[Job, bool, asyncio.Future[Any]]]) -> None:
        durable = any(d for _, d, _ in jobs)
        results: list[Any] = []
        try:
            await self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            await self.db.execute("BEGIN IMMEDIATE")
            for job, _, _ in jobs:
                results.append(await job(self.db))
            await self.db.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            try:
                await self.db.execute("ROLLBACK")
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

    async def write(self, job: Job, durable: bool, *, defer: bool = False,
                    yields: bool = False) -> Any:
        """Commit `job` (through the writer task). With `defer`, a write the disk cannot take
        is kept and replayed later instead of failing; it then returns None. With `yields`
        (see `split_group`), a durable write queued beside it commits first, without it."""
        if defer and self._deferred:
            # Already degraded: queue behind the earlier failures so that order is kept.
            self._deferred.append(job)
            return None
        try:
            return await self.commit(job, durable, yields=yields)
        except Exception as exc:
            if not (defer and storage_failure(exc)):
                raise
            await self.degrade(exc)
            self._deferred.append(job)
            return None

    async def commit(self, job: Job, durable: bool, *, inline: bool = False,
                     yields: bool = False) -> Any:
        """Commit `job` and return its result; its exception, or a storage failure, raises."""
        if inline or self.task is None:
            # No writer task (tools, tests): commit inline.
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            await self._commit_group([(job, durable, fut)])
            return await fut
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((job, durable, fut, yields))
        return await fut

    # -- degraded mode (disk full) ------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while some accepted writes exist only in memory."""
        return bool(self._deferred)

    @property
    def deferred_writes(self) -> int:
        return len(self._deferred)

    def defer(self, job: Job) -> None:
        """Keep `job`, behind the writes kept so far, for the disk's return (after `degrade`)."""
        self._deferred.append(job)

    async def degrade(self, exc: BaseException) -> None:
        """A write failed for lack of room: count it; on the first, say so loudly and have the
        writer task retry."""
        self.storage_failures += 1
        if self._deferred:
            return
        self.degraded_since = self._last_nag = time.monotonic()
        await self.holding.degrading()
        if self.task is not None:
            # Wake the writer so that it starts retrying (it may be waiting for work forever).
            kick: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queue.put_nowait((_nothing, False, kick, False))
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
            await self.commit(replay, durable=True, inline=True)
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
                    now - (self.degraded_since or now), self.holding.held_alerts,
                    len(self._deferred), self.holding.telemetry_dropped, exc,
                )
            return False
        del self._deferred[: len(jobs)]
        if self._deferred:
            return await self.retry_deferred()
        held = self.holding.recovered()
        log.warning(
            "storage writable again after %.0fs: %d held writes committed (%d alert"
            " transitions still unsent were written to the outbox)",
            time.monotonic() - (self.degraded_since or time.monotonic()), len(jobs), held,
        )
        self.degraded_since = None
        return True
