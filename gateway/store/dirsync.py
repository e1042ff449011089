"""Directory entries that survive a power cut: the store's directory and its file.

A file's fsync makes its content durable, not its name: the entry lives in the directory,
and a power cut may drop an entry whose directory was never fsynced after it was made (POSIX
asks for it; ext4 usually, not always, gets away without). SQLite fsyncs the directory only
for the journal and WAL files it creates, never for the database file itself, and not at all
for the directories above it. The power-cut test (tests/faults/test_power_cut.py) lost the
whole store that way: a data directory made at the first start vanished, with every alert in
it, at the first cut.
"""

from __future__ import annotations

import os
from pathlib import Path


def sync_dir(path: Path) -> None:
    """fsync the directory `path` (its entries: names made, removed or renamed in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durably(path: Path) -> None:
    """`mkdir -p path`, each directory made fsynced into its parent."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        sync_dir(d.parent)
