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
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from hearthgate.store import direct, pages

log = logging.getLogger("hearthgate.store")

# A checkpoint copies every page the WAL holds into the database file: a page rewritten by
# ten commits is copied once if they all come before it. On a quiet day (a state save every
# 5 minutes) a checkpoint every 30 s followed every commit and doubled the day's writes; so
# one is made when the WAL has grown past CHECKPOINT_WAL_BYTES (a backlog, a burst of alerts:
# the WAL, and the reads that search it, stay small), or at the latest CHECKPOINT_EVERY after
# the last while writes happen.
CHECKPOINT_EVERY = 1800.0  # s
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024
STORAGE_RETRY = 2.0  # seconds between attempts to write what is held in memory
STORAGE_NAG = 60.0  # while writes fail, repeat the error this often
GROUP_MAX = 500  # jobs committed in one transaction at most
# A lazy write (the deletion of what the broker PUBACKed, the delivery view) waits this long
# at most for others to share its commit: the deletions of ten transitions in one commit
# write the outbox's and the alert log's pages once, not ten times (SD-card wear).
LAZY_WINDOW = 1.0

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
    # Before anything creates the file: a new store's page size (pages.py; an existing
    # file keeps its own until `pages.adopt`).
    await conn.execute(f"PRAGMA page_size={pages.PAGE_SIZE}")
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA secure_delete=FAST")  # pages.py: no page of zeros per PUBACK
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute(f"PRAGMA busy_timeout={pages.BUSY_TIMEOUT_MS}")
    # No checkpoint inside a commit: one would stall the alert that triggers it (the
    # WAL's pages copied and the database fsynced, 100 ms and more on an SD card).
    # `Writer._checkpoint` runs them on a connection of their own, off the alert path.
    await conn.execute("PRAGMA wal_autocheckpoint=0")
    # When a commit starts the WAL again from the top after a checkpoint, the file is cut
    # to nothing: its size then says how much was committed since (`Writer._wal_bytes`).
    await conn.execute("PRAGMA journal_size_limit=0")
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
        # A group commit in one round trip to the connection's thread (direct.py), where
        # this aiosqlite allows it; otherwise statement by statement, as before.
        self._direct = direct.supported(db)
        if not self._direct:
            log.info("this aiosqlite cannot run a commit on its thread: each statement of a "
                     "commit is a round trip through the event loop")
        self._queue: asyncio.Queue[tuple[Job, bool, asyncio.Future[Any]]] = asyncio.Queue()
        # Lazy writes waiting for their commit (never a durable one: an alert's fsync does
        # not carry them), and the loop's time by which they are committed.
        self._lazy: list[tuple[Job, bool, asyncio.Future[Any]]] = []
        self._lazy_due = 0.0
        self._lazy_now = False  # `hurry`: commit them without waiting for the window's end
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
        loop = asyncio.get_running_loop()
        self._last_checkpoint = loop.time()
        while True:
            wait: float | None = STORAGE_RETRY if self._deferred else None
            if self._lazy:
                left = 0.0 if self._lazy_now else self._lazy_due - loop.time()
                wait = left if wait is None else min(wait, left)
            if wait is None:
                first = await self._queue.get()
            else:
                try:
                    async with asyncio.timeout(max(0.0, wait)):
                        first = await self._queue.get()
                except TimeoutError:
                    if self._lazy and (self._lazy_now or loop.time() >= self._lazy_due):
                        await self._commit_lazy()
                    elif self._deferred:
                        await self.retry_deferred()
                    continue
            jobs = [first]
            while not self._queue.empty() and len(jobs) < GROUP_MAX:
                jobs.append(self._queue.get_nowait())
            queued = len(jobs)
            if self._lazy and not any(d or j is _nothing for j, d, _ in jobs):
                # A light commit happens anyway: the lazy writes ride along.
                jobs += self._take_lazy(GROUP_MAX - len(jobs))
            await self._commit_group(jobs)
            for _ in range(queued):
                self._queue.task_done()
            self._maybe_checkpoint()

    def _take_lazy(self, n: int) -> list[tuple[Job, bool, asyncio.Future[Any]]]:
        taken, self._lazy[:n] = self._lazy[:n], []
        if not self._lazy:
            self._lazy_now = False
        return taken

    async def _commit_lazy(self) -> None:
        while self._lazy:
            await self._commit_group(self._take_lazy(GROUP_MAX))
        self._maybe_checkpoint()

    def hurry(self) -> None:
        """Commit the lazy writes waiting now, not at the end of their window."""
        if self._lazy and self.task is not None:
            self._lazy_now = True
            self._kick()

    def _kick(self) -> None:
        # Wake the writer task (it may be waiting for work forever, or for a window's end).
        kick: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((_nothing, False, kick))

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self.run(), name="store-writer")

    async def finish(self) -> None:
        """Stop the writer task once every queued write has landed, then commit what is still
        queued or held; wait for a checkpoint under way. The write connection stays open."""
        if self.task is not None:
            # Let queued writes land before closing: nothing accepted is lost.
            if not self.task.done():
                lazy = [fut for _, _, fut in self._lazy]
                self.hurry()
                await self._queue.join()
                await asyncio.gather(*lazy, return_exceptions=True)
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None
        while not self._queue.empty():
            await self._commit_group([self._queue.get_nowait()])
        while self._lazy:
            await self._commit_group(self._take_lazy(GROUP_MAX))
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
        if self._checkpointing is not None or self.commits == self._checkpointed_at:
            return
        if now - self._last_checkpoint < CHECKPOINT_EVERY and self._wal_bytes() < \
                CHECKPOINT_WAL_BYTES:
            return
        self._last_checkpoint = now
        self._checkpointing = asyncio.ensure_future(self._checkpoint(self.commits))

    def _wal_bytes(self) -> int:
        # The WAL file's size: what was committed since its last restart, as the write
        # connection's journal_size_limit=0 truncates it then (`connect`). A stat, not a
        # query: the writer's connection is busy committing.
        try:
            return os.stat(f"{self.path}-wal").st_size
        except OSError:
            return 0

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
        kicks = [fut for job, _, fut in jobs if job is _nothing]
        if kicks:
            # A wake-up (`_kick`), not a write: no transaction for it.
            for fut in kicks:
                if not fut.done():
                    fut.set_result(None)
            jobs = [item for item in jobs if item[0] is not _nothing]
            if not jobs:
                return
        durable = any(d for _, d, _ in jobs)
        results: list[Any] = []
        try:
            if self._direct:
                # The whole group on the connection's thread, one round trip (direct.py).
                results = await direct.run_group(self.db, [job for job, _, _ in jobs], durable)
            else:
                await self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                await self.db.execute("BEGIN IMMEDIATE")
                for job, _, _ in jobs:
                    results.append(await job(self.db))
                await self.db.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            if not self._direct:
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
                    lazy: bool = False) -> Any:
        """Commit `job` (through the writer task). With `defer`, a write the disk cannot take
        is kept and replayed later instead of failing; it then returns None. A `lazy` one
        (never durable) may wait up to LAZY_WINDOW for others to share its commit."""
        if defer and self._deferred:
            # Already degraded: queue behind the earlier failures so that order is kept.
            self._deferred.append(job)
            return None
        try:
            return await self.commit(job, durable, lazy=lazy)
        except Exception as exc:
            if not (defer and storage_failure(exc)):
                raise
            await self.degrade(exc)
            self._deferred.append(job)
            return None

    async def commit(self, job: Job, durable: bool, *, inline: bool = False,
                     lazy: bool = False) -> Any:
        """Commit `job` and return its result; its exception, or a storage failure, raises.
        `lazy` (ignored with `durable`): see `write`."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if inline or self.task is None:
            # No writer task (tools, tests): commit inline.
            await self._commit_group([(job, durable, fut)])
            return await fut
        if lazy and not durable:
            if not self._lazy:
                self._lazy_due = loop.time() + LAZY_WINDOW
                self._kick()  # the writer re-aims its wait at the window's end
            self._lazy.append((job, False, fut))
            return await fut
        await self._queue.put((job, durable, fut))
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
            self._kick()  # so that it starts retrying
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
