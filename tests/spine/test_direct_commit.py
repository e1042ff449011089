"""A group commit in one trip to the database's thread (gateway/store/direct.py, issue 17):
the store's jobs run there unchanged, a job that awaits anything else fails alone and loudly,
and a writer on an aiosqlite without the means keeps the statement-by-statement path."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from hearthgate.store import direct
from hearthgate.store.writer import Writer, connect


async def _writer(tmp_path: Path) -> Writer:
    db = await connect(tmp_path / "w.sqlite3")
    await db.execute("CREATE TABLE t(k TEXT PRIMARY KEY, v INTEGER)")
    return Writer(db, tmp_path / "w.sqlite3")


def _rows(tmp_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(tmp_path / "w.sqlite3")
    try:
        return dict(conn.execute("SELECT k, v FROM t"))
    finally:
        conn.close()


async def test_the_jobs_api_runs_on_the_thread(tmp_path: Path) -> None:
    w = await _writer(tmp_path)
    assert w._direct
    seen: dict[str, Any] = {}

    async def job(db: aiosqlite.Connection) -> int:
        cur = await db.execute("INSERT INTO t VALUES (?, ?)", ("a", 1))
        seen["rowid"] = cur.lastrowid
        await db.executemany("INSERT INTO t VALUES (?, ?)", [("b", 2), ("c", 3)])
        async with db.execute("SELECT count(*) FROM t") as c:
            seen["count"] = (await c.fetchone())[0]
        cur = await db.execute("UPDATE t SET v = v + 10 WHERE k != 'a'")
        seen["updated"] = cur.rowcount
        seen["all"] = [tuple(r) for r in await db.execute_fetchall(
            "SELECT k, v FROM t WHERE v > ?", (5,))]
        return 7

    w.start()
    try:
        assert await w.commit(job, durable=True) == 7
    finally:
        await w.finish()
        await w.close()
    assert seen == {"rowid": 1, "count": 3, "updated": 2, "all": [("b", 12), ("c", 13)]}
    assert _rows(tmp_path) == {"a": 1, "b": 12, "c": 13}


async def test_a_job_that_waits_on_something_else_fails_alone(tmp_path: Path) -> None:
    w = await _writer(tmp_path)

    async def good(key: str) -> Any:
        async def job(db: aiosqlite.Connection) -> None:
            await db.execute("INSERT INTO t VALUES (?, 1)", (key,))
        return job

    async def sleeps(db: aiosqlite.Connection) -> None:
        await db.execute("INSERT INTO t VALUES ('bad', 1)")
        await asyncio.sleep(0)  # not the database: cannot run on its thread

    async def broken(db: aiosqlite.Connection) -> None:
        await db.execute("INSERT INTO nowhere VALUES (1)")

    w.start()
    try:
        # Queued together, committed as one group; the bad ones are retried alone.
        results = await asyncio.gather(
            w.commit(await good("x"), durable=True), w.commit(sleeps, durable=False),
            w.commit(broken, durable=False), w.commit(await good("y"), durable=False),
            return_exceptions=True)
    finally:
        await w.finish()
        await w.close()
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], direct.JobSuspended)
    assert "awaited" in str(results[1]) and "sleeps" in str(results[1])
    assert isinstance(results[2], sqlite3.OperationalError)
    assert _rows(tmp_path) == {"x": 1, "y": 1}  # nothing of the failed jobs


async def test_without_the_means_statement_by_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(direct, "supported", lambda db: False)
    with caplog.at_level("INFO", logger="hearthgate.store"):
        w = await _writer(tmp_path)
    assert not w._direct
    assert "cannot run a commit on its thread" in caplog.text

    async def job(db: aiosqlite.Connection) -> None:
        await db.execute("INSERT INTO t VALUES ('z', 5)")
        await asyncio.sleep(0)  # allowed on this path

    async def broken(db: aiosqlite.Connection) -> None:
        await db.execute("INSERT INTO t VALUES ('w', 1)")
        raise ValueError("bug")

    try:
        await w.commit(job, durable=True)
        with pytest.raises(ValueError):
            await w.commit(broken, durable=True)
    finally:
        await w.close()
    assert _rows(tmp_path) == {"z": 5}


def test_drive_refuses_a_coroutine_that_suspends() -> None:
    async def fine() -> int:
        return 3

    async def suspends() -> None:
        await asyncio.sleep(0)

    assert direct.drive(fine()) == 3
    with pytest.raises(direct.JobSuspended):
        direct.drive(suspends())
