"""The config file on disk as config pushes see it: its hash, the previous one, the probation.

A push writes the new file beside the running one and keeps the running one as
`FILE.prev`; while the new config is on probation (until the uplink comes back on it), a
marker `FILE.pending` says so, so that a gateway that dies on probation still rolls back
when it starts again. Every write goes through a temporary file in the same directory,
fsync and rename: a power cut leaves the old file or the new one, never half of one; the
directory is fsynced after each rename and removal, so that a cut undoes neither.

`config_hash` is the SHA-256 of the file's bytes, lowercase hex: what `P/status` reports
as `config_hash` and what a push names as its `base`. `!secret` references are part of the
bytes, the secrets themselves (in `secrets.yaml`) are not.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hearthgate.store.dirsync import sync_dir


def config_hash(raw: bytes) -> str:
    """SHA-256 of a config file's bytes, lowercase hex (64 characters)."""
    return hashlib.sha256(raw).hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a temporary file beside it, fsync, rename, fsync the dir."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    sync_dir(path.parent)


class ConfigFiles:
    """The running config file, the previous one and the probation marker beside them.

    Args:
        path: the config file the gateway was started with (`hearthgate run -c FILE`).

    Attributes:
        previous: `FILE.prev`, the config that ran before the last push.
        staged: `FILE.new`, a pushed config while it is being checked.
        rejected: `FILE.rejected`, the last pushed config that was rolled back.
        marker: `FILE.pending`, present while a pushed config is on probation.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous = path.with_name(path.name + ".prev")
        self.staged = path.with_name(path.name + ".new")
        self.rejected = path.with_name(path.name + ".rejected")
        self.marker = path.with_name(path.name + ".pending")

    def read(self) -> bytes:
        return self.path.read_bytes()

    def current_hash(self) -> str:
        return config_hash(self.read())

    def stage(self, raw: bytes) -> Path:
        """Write a pushed config to `FILE.new`, beside the running one (its `!secret`s are
        read from the same `secrets.yaml`), to be checked there."""
        write_atomically(self.staged, raw)
        return self.staged

    def discard_staged(self) -> None:
        self.staged.unlink(missing_ok=True)

    def install(self, raw: bytes, probation: dict[str, Any]) -> None:
        """Make `raw` the config: the running file becomes `FILE.prev`, the marker records
        `probation` (the push id, hashes, the rollback bound), then the new file goes in."""
        write_atomically(self.previous, self.read())
        write_atomically(self.marker, json.dumps(probation).encode())
        write_atomically(self.path, raw)
        self.discard_staged()

    def pending(self) -> dict[str, Any] | None:
        """The probation record of a pushed config not yet confirmed, or None."""
        try:
            data = json.loads(self.marker.read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def confirm(self) -> None:
        """The pushed config works: end its probation (`FILE.prev` stays, for the record)."""
        self.marker.unlink(missing_ok=True)
        # An unlink lives in the directory: not synced, a power cut brings the marker back
        # and the next start rolls back a config that had been confirmed.
        sync_dir(self.marker.parent)

    def roll_back(self) -> None:
        """Put `FILE.prev` back; the config that failed is kept as `FILE.rejected`."""
        previous = self.previous.read_bytes()
        write_atomically(self.rejected, self.read())
        write_atomically(self.path, previous)
        self.marker.unlink(missing_ok=True)
        sync_dir(self.marker.parent)
