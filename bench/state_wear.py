"""Bytes written to disk per alert transition, with 200 alerts open (issue 17).

One gateway process, 200 SOS buttons at 200 sites, all online. Each is pressed once (200
alerts open), then, after the repeat window, 100 of them are pressed again, 100 ms apart:
each of those presses is one `escalated` transition (pressed_again), committed durably with
the rules' state before it is published, and deleted from the outbox after its PUBACK.

Counted from the gateway's `/proc/PID/io`: `write_bytes` (what the process made the kernel
send to the block device: page-cache pages dirtied, 4 KiB each, the SD card's wear) over
the 100 presses, then with the WAL checkpoint that follows (which copies each page the WAL
holds into the database file once more; made by this script, from its own process, and
counted from its own `/proc/self/io`: the gateway checkpoints only when its WAL has grown
past 4 MiB, or 30 minutes on). `wchar` is printed beside it: it counts
every write() call, sockets to the brokers included, so it is not the disk's figure.

With `--before COMMIT` (default: the commit this branch started from) the same run is made
first with that commit's code (built into a scratch directory and put first on the
gateway's PYTHONPATH): the same-run reference for the change.

Run from the repo root: `python bench/state_wear.py [--before COMMIT | --no-before]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _kit import (
    P,
    Probe,
    brokers,
    bus_ready,
    buttons,
    header,
    proc_io,
    start_gateway,
    warm_up,
    write_config,
)

SITES = 200
AGAIN = 100
GAP = 0.1
REPEAT_WINDOW = 11.0  # s: the sos rule's repeat window (10 s) has passed for every button
BEFORE = "6b9fa30"  # the integration branch this work started from


def checkpoint_cost(db: Path) -> int:
    """Checkpoint the WAL of `db` from this process; the bytes it wrote (write_bytes): the
    same pages copied into the same file as the gateway's own checkpoint would."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=5)
    try:
        before = proc_io(os.getpid())["write_bytes"]
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return proc_io(os.getpid())["write_bytes"] - before
    finally:
        conn.close()


def build(commit: str, into: Path) -> Path:
    """That commit's package, installed into `into` (its own directory, first on the path)."""
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    lib = into / "lib"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(lib), str(src)],
                   check=True, capture_output=True)
    return lib


def run(pythonpath: Path | None) -> dict[str, float]:
    devices = buttons("sos", SITES)
    env = {"RUNTIME_DIRECTORY": tempfile.mkdtemp(dir="/dev/shm", prefix="hg-wear-")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    alerts = f"{P}/alerts"
    try:
        with brokers() as (local, plat, tmp):
            config = write_config(tmp, plat, local, devices)
            with Probe(plat.port, (f"{P}/#",), name="platform") as platform, \
                    Probe(local.port, name="z2m") as z2m:
                gw, _ = start_gateway(config, platform, env=env)
                try:
                    assert gw.proc is not None
                    pid = gw.proc.pid
                    bus_ready(z2m, devices[0], platform)
                    warm_up(z2m, devices, platform)
                    for d in devices:
                        z2m.publish(d.topic, json.dumps({"action": "emergency"}))
                        time.sleep(0.02)
                    platform.wait(lambda: len(platform.on(alerts)) >= SITES, 30)
                    time.sleep(REPEAT_WINDOW)
                    start = proc_io(pid)
                    for d in devices[:AGAIN]:
                        z2m.publish(d.topic, json.dumps({"action": "emergency"}))
                        time.sleep(GAP)
                    platform.wait(lambda: len(platform.on(alerts)) >= SITES + AGAIN, 30)
                    time.sleep(1.0)  # the PUBACKed rows' deletions land
                    wal = proc_io(pid)
                    # The checkpoint that copies these pages into the database: made here,
                    # from this process, and counted (the gateway makes one only when its
                    # WAL has grown past 4 MiB, or 30 minutes on: writer.py).
                    ckpt = checkpoint_cost(tmp / "data" / "hearthgate.sqlite3")
                    end = proc_io(pid)
                finally:
                    gw.stop()
                    gw.close()
                n_alerts = len(platform.on(alerts))
    finally:
        shutil.rmtree(env["RUNTIME_DIRECTORY"], ignore_errors=True)
    return {
        "wal_bytes": (wal["write_bytes"] - start["write_bytes"]) / AGAIN,
        "wal_wchar": (wal["wchar"] - start["wchar"]) / AGAIN,
        "all_bytes": (end["write_bytes"] - start["write_bytes"] + ckpt) / AGAIN,
        "all_wchar": (end["wchar"] - start["wchar"]) / AGAIN,
        "alerts": n_alerts,
    }


def line(name: str, r: dict[str, float]) -> str:
    return (f"{name}\n            per transition, 200 open: write_bytes"
            f" {r['wal_bytes'] / 1024:7.1f} KiB"
            f" over the presses, {r['all_bytes'] / 1024:7.1f} KiB with the checkpoint after"
            f"  (wchar {r['wal_wchar'] / 1024:.1f} / {r['all_wchar'] / 1024:.1f} KiB;"
            f" {int(r['alerts'])} alert messages)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=BEFORE, help="commit to measure first, as reference")
    ap.add_argument("--no-before", action="store_true")
    args = ap.parse_args()
    header("Disk written per alert transition, 200 alerts open (/proc/PID/io write_bytes)")
    before = None
    if not args.no_before:
        with tempfile.TemporaryDirectory(prefix="hg-before-") as scratch:
            before = run(build(args.before, Path(scratch)))
    after = run(None)
    if before is not None:
        print(line(f"reference   {args.before} (whole snapshot per commit)", before))
    print(line("hearthgate  this tree (the sites' own parts)", after))
    print("target: ≤ 16 KiB per transition")


if __name__ == "__main__":
    main()
