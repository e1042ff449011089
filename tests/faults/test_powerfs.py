"""The power-cut filesystem itself (tests/faults/powerfs.py): what a cut keeps and loses, in
the model alone and mounted, with SQLite on it; and the store's directory fsyncs, which it
was written to catch (gateway/store/dirsync.py)."""

from __future__ import annotations

import random
import sqlite3
import stat
from pathlib import Path

import pytest

from hearthgate.store import dirsync
from tests.faults.powerfs import SECTOR, PowerFS, PowerLossModel


def model_with_file(content: bytes = b"") -> tuple[PowerLossModel, int]:
    m = PowerLossModel()
    node = m.create("/f", stat.S_IFREG | 0o644)
    m.fsync_dir(m.lookup("/"))
    if content:
        m.write(node, content, 0)
        m.fsync(node)
    return m, node.ino


def test_a_cut_returns_a_file_to_its_last_sync():
    m, ino = model_with_file(b"synced")
    m.write(m.nodes[ino], b"XXXXXX-and-more", 0)
    m.truncate(m.nodes[ino], 3)
    lost = m.cut(random.Random(1), torn=False)
    assert bytes(m.lookup("/f").data) == b"synced"
    assert lost["writes_lost"] == 2 and lost["files_reverted"] == 1


def test_what_was_fsynced_survives_every_kind_of_cut():
    for seed in range(50):
        m, ino = model_with_file(b"A" * 3000)
        m.write(m.nodes[ino], b"B" * 2000, 500)
        m.fsync(m.nodes[ino])
        m.write(m.nodes[ino], b"C" * 5000, 100)
        m.cut(random.Random(seed), torn=True)
        data = bytes(m.lookup("/f").data)
        synced = b"A" * 500 + b"B" * 2000 + b"A" * 500
        # Each byte is either what was synced or what was written after: never anything else.
        assert 3000 <= len(data) <= 5100
        for i, byte in enumerate(data):
            assert (i < 3000 and byte == synced[i]) or (100 <= i < 5100 and byte == ord("C"))


def test_a_torn_write_keeps_a_prefix_of_whole_sectors():
    kept = set()
    for seed in range(200):
        m, ino = model_with_file()
        m.write(m.nodes[ino], b"w" * (4 * SECTOR), 0)
        m.cut(random.Random(seed), torn=True)
        kept.add(len(m.lookup("/f").data))
    # Nothing, one to three sectors (torn), or all four: never a partial sector.
    assert kept == {0, SECTOR, 2 * SECTOR, 3 * SECTOR, 4 * SECTOR}


def test_an_entry_lives_only_once_its_directory_is_synced():
    m = PowerLossModel()
    d = m.create("/d", stat.S_IFDIR | 0o755)
    m.fsync_dir(m.lookup("/"))
    f = m.create("/d/new", stat.S_IFREG | 0o644)
    m.write(f, b"content", 0)
    m.fsync(f)  # the file's content, not its name
    m.cut(random.Random(1), torn=False)
    with pytest.raises(OSError):
        m.lookup("/d/new")
    # And an unlink not synced is undone, content and all.
    f = m.create("/d/kept", stat.S_IFREG | 0o644)
    m.write(f, b"kept", 0)
    m.fsync(f)
    m.fsync_dir(d)
    m.unlink("/d/kept")
    m.cut(random.Random(1), torn=False)
    assert bytes(m.lookup("/d/kept").data) == b"kept"


def test_rename_and_bad_paths():
    m, _ = model_with_file(b"x")
    m.rename("/f", "/g")
    with pytest.raises(OSError):
        m.lookup("/f")
    with pytest.raises(OSError):
        m.lookup("/g/under-a-file")
    with pytest.raises(OSError):
        m.create("/g", stat.S_IFREG)
    with pytest.raises(OSError):
        m.unlink("/nothing")
    m.cut(random.Random(0), torn=False)
    assert bytes(m.lookup("/f").data) == b"x"  # the rename was never synced


def commit_rows(path: Path, synchronous: str, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    for i in range(n):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    # Left open on purpose: a power cut does not close it.
    _open.append(conn)


_open: list[sqlite3.Connection] = []


def cut(fs: PowerFS, seed: int = 7, torn: bool = False) -> dict[str, int]:
    fs.freeze()
    lost = fs.cut(seed, torn=torn)
    fs.thaw()
    for conn in _open:
        conn.close()  # its file handles died with the cut
    _open.clear()
    return lost


def count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        conn.close()


def test_mounted_sqlite_loses_unsynced_commits_and_keeps_synced_ones(powerfs):
    root = powerfs.mountpoint
    dirsync.make_dirs_durably(root / "db")
    db = root / "db" / "x.sqlite3"
    commit_rows(db, "FULL", 20)
    dirsync.sync_dir(root / "db")
    cut(powerfs)
    assert count(db) == 20  # every FULL commit kept
    commit_rows(db, "OFF", 30)  # never fsynced: all lost
    lost = cut(powerfs)
    assert lost["writes_lost"] > 0
    assert count(db) == 20


def test_mounted_a_store_directory_not_synced_vanishes(powerfs):
    """What the store's dirsync is for: the database's commits were durable, its name not."""
    root = powerfs.mountpoint
    (root / "var" / "data").mkdir(parents=True)
    commit_rows(root / "var" / "data" / "x.sqlite3", "FULL", 5)
    lost = cut(powerfs)
    assert lost["entries_lost"] >= 1
    assert not (root / "var").exists()


async def test_the_store_survives_a_cut_right_after_it_was_created(powerfs):
    from hearthgate.store import Store
    from tests.spine.test_store import transition

    data = powerfs.mountpoint / "var" / "lib" / "hearthgate"
    store = await Store.open(data)
    t = transition("sos")
    await store.add_alerts([t], ['{"payload": 1}'])
    lost = cut(powerfs)
    try:
        conn = sqlite3.connect(data / "hearthgate.sqlite3")
        rows = conn.execute("SELECT alert_id FROM alerts").fetchall()
        conn.close()
    finally:
        await store.close()
    assert rows == [(t.alert_id,)], lost


def test_a_command_it_does_not_know_is_refused_and_it_keeps_serving(powerfs):
    with pytest.raises(RuntimeError, match="unknown command"):
        powerfs.command("pull-the-plug-twice")
    with pytest.raises(RuntimeError, match="unknown command"):
        powerfs.command("\u00e9\x00")
    for bad in ("cut", "cut x 1", "cut 1 2", "cut 1 1 1"):
        with pytest.raises(RuntimeError, match="usage"):
            powerfs.command(bad)
    (powerfs.mountpoint / "f").write_bytes(b"still here")
    assert (powerfs.mountpoint / "f").read_bytes() == b"still here"


def test_a_confirmed_config_push_stays_confirmed_after_a_cut(powerfs):
    """The probation marker's removal is synced: brought back by a cut, the next start would
    roll back a config that had been confirmed."""
    from hearthgate.config_files import ConfigFiles

    etc = powerfs.mountpoint / "etc"
    dirsync.make_dirs_durably(etc)
    files = ConfigFiles(etc / "hearthgate.yaml")
    from hearthgate.config_files import write_atomically

    write_atomically(files.path, b"old: 1\n")
    files.install(b"new: 2\n", {"push": "p-1"})
    assert files.pending() == {"push": "p-1"}
    files.confirm()
    cut(powerfs)
    assert files.pending() is None
    assert files.read() == b"new: 2\n"
