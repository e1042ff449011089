"""What the store writes to an SD card (issue 17): 1 KiB pages (and the rewrite of an older
file), packed kv values, lazy deletions that never ride on an alert's durable commit, and
erasure that still zeroes what it frees. Real SQLite files throughout."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import zlib
from pathlib import Path

import pytest

from hearthgate.core.model import Priority
from hearthgate.store import DB_NAME, SCHEMA_VERSION, pages, schema, state
from hearthgate.store.erasure import SiteRef
from tests.spine.test_store import payload, started, transition

V1_DDL = schema.DDL  # the tables are unchanged since version 1; only kv values may be packed


def old_store(data: Path, rows: int = 20) -> Path:
    """A store as a hearthgate of schema version 1 left it: 4 KiB pages, WAL, TEXT values,
    an alert waiting in the outbox."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / DB_NAME
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_DDL)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    t = transition("sos")
    db.execute("INSERT INTO outbox(priority, kind, event_id, readings, payload)"
               " VALUES (?, 'alert', ?, 0, ?)", (int(t.priority), t.event_id, payload(t)))
    db.execute("INSERT INTO kv VALUES ('devices', ?)",
               (json.dumps({"devices": [{"device_id": f"d-{i}"} for i in range(rows)]}),))
    db.commit()
    db.close()
    return path


def raw_kv(path: Path, key: str) -> str | bytes:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()[0]
    finally:
        db.close()


async def test_a_new_store_has_small_pages(tmp_path: Path) -> None:
    store = await started(tmp_path)
    await store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA page_size").fetchone()[0] == pages.PAGE_SIZE
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


async def test_an_older_store_is_rewritten_with_small_pages_and_keeps_everything(
    tmp_path: Path,
) -> None:
    path = old_store(tmp_path)
    store = await started(tmp_path)
    try:
        [waiting] = await store.pending(Priority.URGENT)
        assert json.loads(waiting.payload)["type"] == "sos"
        assert len((await store.get_state("devices"))["devices"]) == 20
        t = transition("fall")
        await store.add_alerts([t], [payload(t)])
    finally:
        await store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA page_size").fetchone()[0] == pages.PAGE_SIZE
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] \
            == str(SCHEMA_VERSION)
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2
    finally:
        db.close()


async def test_a_large_older_store_keeps_its_pages_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = old_store(tmp_path, rows=2000)
    monkeypatch.setattr(pages, "ADOPT_MAX_BYTES", 8192)
    with caplog.at_level(logging.INFO, logger="hearthgate.store"):
        store = await started(tmp_path)
        try:
            assert len(await store.pending(Priority.URGENT)) == 1
        finally:
            await store.close()
    assert any("keeps its 4096-byte pages" in r.getMessage() for r in caplog.records)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
    db.close()


async def test_a_store_read_by_another_process_is_not_held_up_by_the_rewrite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`hearthgate alerts` reading while the service starts: the rewrite gives up at once
    (said in the log), the store works with its old pages and rewrites at a later start."""
    path = old_store(tmp_path)
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM outbox").fetchone()  # holds a read lock
    try:
        with caplog.at_level(logging.WARNING, logger="hearthgate.store"):
            store = await started(tmp_path)
            try:
                assert len(await store.pending(Priority.URGENT)) == 1
                t = transition("fall")
                await store.add_alerts([t], [payload(t)])
            finally:
                await store.close()
    finally:
        reader.rollback()
        reader.close()
    assert any("could not rewrite it" in r.getMessage() for r in caplog.records)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    store = await started(tmp_path)  # nobody reading now: rewritten
    await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA page_size").fetchone()[0] == pages.PAGE_SIZE
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2
    db.close()


async def test_long_values_are_packed_short_and_old_ones_read_as_text(tmp_path: Path) -> None:
    path = old_store(tmp_path)
    store = await started(tmp_path)
    try:
        assert isinstance(raw_kv(path, "devices"), str)  # written by version 1: read as is
        big = {"devices": [{"device_id": f"sos-{i:03d}", "online": True} for i in range(200)]}
        await store.put_state("devices", big, durable=True)
        await store.put_state("delivery", {"refused": {}}, durable=True)
        assert await store.get_state("devices") == big
        assert await store.get_state("delivery") == {"refused": {}}
    finally:
        await store.close()
    packed = raw_kv(path, "devices")
    assert isinstance(packed, bytes) and len(packed) < len(json.dumps(big)) / 4
    assert isinstance(raw_kv(path, "delivery"), str)


@pytest.mark.parametrize("blob", [
    b"", b"\x78", b"not zlib at all",
    state.pack("x" * 1000)[:-4],  # cut short
    b"\x78\xbb\x00\x00\x00\x01" + b"\x00" * 10,  # a dictionary this hearthgate never had
    zlib.compress(b"\xff\xfe not utf-8"),
    zlib.compress(b"{not json"),
])
def test_a_packed_value_that_cannot_be_read_is_a_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        state.decode(blob)


async def test_an_alerts_outbox_row_is_packed_and_read_back_as_published(
    tmp_path: Path,
) -> None:
    store = await started(tmp_path)
    try:
        t = transition("sos")
        text = payload(t)
        await store.add_alerts([t], [text])
        [item] = await store.pending(Priority.URGENT)
        assert item.payload == text
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    [(raw,)] = db.execute("SELECT payload FROM outbox")
    db.close()
    assert isinstance(raw, bytes) and len(raw) < len(text) * 0.7
    assert state.decode(raw) == json.loads(text)


async def test_a_delivered_rows_deletion_waits_but_never_rides_on_an_alerts_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / DB_NAME
    store = await started(tmp_path)
    try:
        first = transition("sos")
        await store.add_alerts([first], [payload(first)])
        [item] = await store.pending(Priority.URGENT)
        deleting = asyncio.create_task(store.delivered([item]))
        await asyncio.sleep(0.05)
        second = transition("fall")
        await store.add_alerts([second], [payload(second)])
        # The new transition is on disk as add_alerts returns (another connection sees it);
        # the deletion is not part of that commit.
        db = sqlite3.connect(path)
        try:
            ids = {r[0] for r in db.execute("SELECT event_id FROM outbox")}
            assert ids == {first.event_id, second.event_id}
            assert not deleting.done()
            store.hurry()
            await asyncio.wait_for(deleting, 5)
            assert {r[0] for r in db.execute("SELECT event_id FROM outbox")} \
                == {second.event_id}
            [(pending,)] = db.execute(
                "SELECT pending FROM alerts WHERE alert_id=?", (first.alert_id,))
            assert pending == 0
        finally:
            db.close()
    finally:
        await store.close()


async def test_deletions_of_one_window_share_one_commit_and_close_lands_them(
    tmp_path: Path,
) -> None:
    store = await started(tmp_path)
    ts = [transition("sos") for _ in range(10)]
    for t in ts:
        await store.add_alerts([t], [payload(t)])
    items = await store.pending(Priority.URGENT, limit=100)
    before = store.commits
    tasks = [asyncio.create_task(store.delivered([i])) for i in items]
    await asyncio.sleep(0.05)
    assert store.commits == before  # waiting for the window's end
    await store.close()  # lands them
    assert all(t.done() and t.exception() is None for t in tasks)
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    db.close()


async def test_erasing_a_site_leaves_nothing_of_it_in_the_file(tmp_path: Path) -> None:
    """Ordinary deletions zero only what costs no extra page (secure_delete=FAST); erasure
    zeroes every page it frees."""
    marker = "MARKER-" + "q" * 40
    store = await started(tmp_path)
    try:
        ts = [transition("sos") for _ in range(30)]
        texts = [payload(t).replace('"m"', json.dumps(marker)) for t in ts]
        await store.add_alerts(ts, texts)
        await store.erase_site(SiteRef("room-301", frozenset({"w-1"})))
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = (tmp_path / DB_NAME).read_bytes()
    assert marker.encode() not in data


async def test_a_checkpoint_waits_for_the_wal_to_grow_or_for_its_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few commits leave the database file as it was (its pages wait in the WAL); past
    CHECKPOINT_WAL_BYTES of WAL the next commit starts a checkpoint that copies them."""
    from hearthgate.store import writer

    path = tmp_path / DB_NAME
    store = await started(tmp_path)
    try:
        first = path.stat().st_size
        for _ in range(5):
            t = transition("sos")
            await store.add_alerts([t], [payload(t)])
        await asyncio.sleep(0.05)
        assert path.stat().st_size == first  # nothing copied yet: far below 4 MiB
        monkeypatch.setattr(writer, "CHECKPOINT_WAL_BYTES", 4096)
        t = transition("sos")
        await store.add_alerts([t], [payload(t)])
        for _ in range(100):
            if path.stat().st_size > first:
                break
            await asyncio.sleep(0.02)
        assert path.stat().st_size > first
    finally:
        await store.close()
