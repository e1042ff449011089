"""The gateway of bench/typical_day.py, in a process of its own: a day in accelerated time.

`python bench/_day_gateway.py CONFIG SPEED ANCHOR BREAKDOWN START` runs the gateway on a clock
that runs SPEED times faster than the machine's from the system-wide monotonic time
ANCHOR (the benchmark's scenario runs on the same one), the day starting at START (ISO
8601). The store's real-time intervals (the WAL checkpoint's 30 s, the lazy deletions'
window) are divided by SPEED too, so that a day brings as many checkpoints as a real one
would. At each SIGUSR1 it appends to BREAKDOWN one JSON line: the disk bytes
(`/proc/self/io` write_bytes) of each kind of store commit and of the checkpoints so far,
measured around each. SIGTERM stops it cleanly.

Not a benchmark itself (the leading underscore keeps `make bench` from running it).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from hearthgate.config import load_config
from hearthgate.core.clock import ScaledClock
from hearthgate.service import Gateway
from hearthgate.store import writer

MARK = "<locals>"


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def thread_write_bytes(conn: Any) -> int:
    """write_bytes of the thread an aiosqlite connection runs its SQLite calls on."""
    tid = conn._thread.native_id
    for line in Path(f"/proc/self/task/{tid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


WRITERS: list[writer.Writer] = []


def kind_of(jobs: list[tuple[Any, bool, Any]]) -> str:
    names = {getattr(j, "__qualname__", "?").split(f".{MARK}")[0] for j, _, _ in jobs}
    # The writer's wake-ups (`_nothing`, no transaction) are not a kind of write.
    return "+".join(sorted(names - {"_nothing"})) or "wake-ups (no transaction)"


def instrument(bytes_by: Counter[str], count_by: Counter[str]) -> None:
    commit_group = writer.Writer._commit_group
    checkpoint = writer.Writer._checkpoint

    # Per thread (/proc/self/task/TID/io): each aiosqlite connection has its own, and a
    # checkpoint (its own connection) may run while the writer commits.
    async def counted_commit(self: writer.Writer, jobs: list[tuple[Any, bool, Any]]) -> None:
        if self not in WRITERS:
            WRITERS.append(self)
        before = thread_write_bytes(self.db)
        await commit_group(self, jobs)
        key = kind_of(jobs)
        bytes_by[key] += thread_write_bytes(self.db) - before
        count_by[key] += 1

    async def counted_checkpoint(self: writer.Writer, commits: int) -> None:
        await checkpoint(self, commits)
        count_by["checkpoint"] += 1

    writer.Writer._commit_group = counted_commit  # type: ignore[method-assign]
    writer.Writer._checkpoint = counted_checkpoint  # type: ignore[method-assign]


async def main(config_path: str, speed: float, anchor: float, out: str) -> None:
    writer.CHECKPOINT_EVERY /= speed
    if hasattr(writer, "LAZY_WINDOW"):
        writer.LAZY_WINDOW /= speed
    bytes_by: Counter[str] = Counter()
    count_by: Counter[str] = Counter()
    instrument(bytes_by, count_by)
    config = load_config(Path(config_path))
    clock = ScaledClock(speed, start=datetime.fromisoformat(sys.argv[5]))
    clock._mono0 = anchor  # the benchmark's scenario runs on the same time
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def snapshot() -> None:
        for w in WRITERS:
            if w._checkpointer is not None:
                bytes_by["checkpoint"] = thread_write_bytes(w._checkpointer)
        with Path(out).open("a") as f:
            f.write(json.dumps({"bytes": dict(bytes_by), "commits": dict(count_by),
                                "total": write_bytes()}) + "\n")

    loop.add_signal_handler(signal.SIGUSR1, snapshot)
    await Gateway(config, clock=clock).run(stop)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
