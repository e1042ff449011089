"""A group commit in one trip to the database's thread.

The store's write jobs are written against aiosqlite (`await db.execute(...)`), where each
statement is a round trip: the SQL runs on aiosqlite's thread and its result comes back
through the event loop, behind whatever else the loop has to do. An SOS's commit is six
statements (the synchronous level, BEGIN, the outbox row, the alert log, the site's engine
state, COMMIT): under 1,000 readings/s it waited six times behind bus messages, several
milliseconds on the path the issue measures (docs/performance.md, "The commit in one trip").

`run_group` runs a whole group on the connection's own thread instead. The jobs are given a
`Direct` connection, whose calls run the SQL at once and return awaitables that are already
done, so a job's coroutine runs to its end in one `send` and never suspends. A job that
awaits anything else (a sleep, a lock) cannot run there: `drive` raises `JobSuspended`,
the group is rolled back and each job is tried again on its own, which fails that one job
loudly and commits the others.

Written here because aiosqlite has no public call for "run this function on your thread";
`run_group` uses its `_execute` and `_conn`, present in every aiosqlite since 0.17, and the
writer falls back to the statement-by-statement path where they are missing
(`Writer._commit_group`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Sequence
from typing import Any

import aiosqlite


class JobSuspended(RuntimeError):
    """A store job awaited something other than its database: it cannot run on the
    database's thread."""


class DirectCursor:
    """A sqlite3 cursor behind aiosqlite's `Cursor` calls that the store's jobs use."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def __aenter__(self) -> DirectCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()


class _Done:
    """What `Direct.execute` returns: awaited, or used as `async with`, like aiosqlite's."""

    def __init__(self, cursor: DirectCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, DirectCursor]:
        return self._cursor
        yield  # a generator that returns at once: awaiting it never suspends

    async def __aenter__(self) -> DirectCursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


class Direct:
    """An aiosqlite-shaped connection over a sqlite3 connection, on that connection's
    thread: the calls of aiosqlite's `Connection` that the store's jobs use, run at once.

    Args:
        conn: the sqlite3 connection (its thread is the caller's).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> _Done:
        return _Done(DirectCursor(self.conn.execute(sql, tuple(parameters))))

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Done:
        return _Done(DirectCursor(self.conn.executemany(sql, parameters)))

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, tuple(parameters)).fetchall()


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a job's coroutine to its end without an event loop; its result.

    Raises:
        JobSuspended: it awaited something that did not complete at once.
    """
    try:
        waited = coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise JobSuspended(f"store job {coro.__qualname__} awaited {waited!r}, not its database")


Jobs = Sequence[Callable[[Any], Awaitable[Any]]]


def _group(db: aiosqlite.Connection, jobs: Jobs, durable: bool) -> list[Any]:
    conn: sqlite3.Connection = db._conn  # on aiosqlite's thread: see the module's docstring
    direct = Direct(conn)
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [drive(job(direct)) for job in jobs]  # type: ignore[arg-type]
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise
    return results


def supported(db: aiosqlite.Connection) -> bool:
    """Whether this aiosqlite lets a function run on its thread (`_execute`, `_conn`)."""
    return callable(getattr(db, "_execute", None)) and hasattr(type(db), "_conn")


async def run_group(db: aiosqlite.Connection, jobs: Jobs, durable: bool) -> list[Any]:
    """Commit `jobs` in one transaction on `db`'s thread (one round trip); their results.
    On any failure the transaction is rolled back and the exception raised."""
    return await db._execute(_group, db, jobs, durable)  # type: ignore[no-any-return]
