"""Footprint: resident memory, idle CPU and disk writes of a gateway process.

From /proc/PID/status (VmRSS, VmHWM), /proc/PID/stat (utime + stime) and
/proc/PID/io (write_bytes: what the process caused to be written to storage).

1. 200 zigbee2mqtt devices configured: memory idle; CPU over IDLE_SECONDS idle; then
   memory after and at peak under a burst of 40,000 readings.
2. 50 devices, uplink up, each device reporting every 10 s (a busy home): bytes written
   during DISK_SECONDS, extrapolated to an hour. The live device snapshot goes to
   $RUNTIME_DIRECTORY, on tmpfs as systemd's RuntimeDirectory= puts it, so only the
   SQLite store counts. Rule and device state is saved every 300 s (service.py), which
   a short run does not reach: one such save is measured apart and added, 12 per hour.

Reference, same run: a bare `python -c "import aiomqtt, pydantic, aiosqlite"` process,
the floor under any gateway written with these libraries.

Run from the repo root: `python bench/footprint.py`.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _kit as kit

IDLE_SECONDS = 20.0
DISK_SECONDS = 45.0
DISK_DEVICES = 50
REPORT_EVERY = 10.0


def import_floor_kb() -> tuple[int, float]:
    """RSS of a process that only imports the gateway's libraries, and its idle CPU."""
    code = ("import aiomqtt, pydantic, aiosqlite, ruamel.yaml, sys, time; "
            "print('ok', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.5)
        return kit.proc_status(proc.pid)["VmRSS"], 0.0
    finally:
        proc.kill()
        proc.wait(5)


def kv_bytes(tmp: Path) -> tuple[list[int], int]:
    """Sizes of the rule and device state rows (as stored: packed ones are BLOBs) and the
    file's page size. An upper bound: a periodic save rewrites only the sites that moved."""
    conn = sqlite3.connect(f"file:{tmp / 'data' / 'hearthgate.sqlite3'}?mode=ro", uri=True)
    try:
        sizes = [int(n) for (n,) in conn.execute("SELECT length(value) FROM kv")]
        return sizes, int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    kit.header("Footprint: memory, idle CPU, disk writes")
    floor_kb, _ = import_floor_kb()
    devices = kit.buttons("dev", 200)
    with kit.brokers() as (local, plat, tmp):
        config = kit.write_config(tmp, plat, local, devices, telemetry_interval="10s")
        with kit.Probe(plat.port, (f"{kit.P}/status",), name="platform") as status:
            gw, ready_s = kit.start_gateway(config, status)
            try:
                pid = gw.pid
                time.sleep(3.0)
                idle = kit.proc_status(pid)
                cpu0, t0 = kit.proc_cpu_seconds(pid), time.monotonic()
                time.sleep(IDLE_SECONDS)
                idle_cpu = (kit.proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
                load = kit.Load(local.port, [d.topic for d in devices], rate=0, count=20_000,
                                max_seconds=40).start()
                peak_rss = 0
                while load.proc.is_alive():
                    peak_rss = max(peak_rss, kit.proc_status(pid)["VmRSS"])
                    time.sleep(0.1)
                load.join(30)
                time.sleep(3.0)
                loaded = kit.proc_status(pid)
                rc200 = gw.stop()
            finally:
                gw.close()

    disk_devices = kit.buttons("home", DISK_DEVICES)
    with kit.brokers() as (local, plat, tmp), \
            tempfile.TemporaryDirectory(dir="/dev/shm", prefix="hg-run-") as run_dir:
        config = kit.write_config(tmp, plat, local, disk_devices, telemetry_interval="10s")
        with kit.Probe(plat.port, (f"{kit.P}/status",), name="platform") as status, \
                kit.Probe(local.port, name="z2m") as z2m:
            gw, _ = kit.start_gateway(config, status, env={"RUNTIME_DIRECTORY": run_dir})
            try:
                pid = gw.pid
                # Every device once, then settle: start-up writes are not steady state.
                for i, d in enumerate(disk_devices):
                    z2m.publish(d.topic, kit.reading_payload(i))
                time.sleep(5.0)
                w0, t0 = kit.proc_write_bytes(pid), time.monotonic()
                sent = 0
                gap = REPORT_EVERY / DISK_DEVICES
                while time.monotonic() - t0 < DISK_SECONDS:
                    d = disk_devices[sent % DISK_DEVICES]
                    z2m.publish(d.topic, kit.reading_payload(sent))
                    sent += 1
                    time.sleep(gap)
                written = kit.proc_write_bytes(pid) - w0
                span = time.monotonic() - t0
                rc50 = gw.stop()
                state_rows = kv_bytes(tmp)
            finally:
                gw.close()

    per_hour = written / span * 3600
    # A state save rewrites the kv rows: their pages go to the WAL, then to the database
    # at checkpoint (twice), plus a WAL header frame per commit.
    state_bytes, page = state_rows
    pages = sum(-(-n // page) + 1 for n in state_bytes)
    saves_per_hour = 3600 / 300
    state_per_hour = pages * page * 2 * saves_per_hour
    mb = 1024 * 1024
    print(f"200 devices   idle: VmRSS {idle['VmRSS'] / 1024:.1f} MB (VmHWM "
          f"{idle['VmHWM'] / 1024:.1f} MB)  target ≤ 50 MB (issue 17); ready (status online) "
          f"{ready_s:.2f} s after spawn")
    print(f"              idle CPU over {IDLE_SECONDS:.0f} s: {idle_cpu * 100:.2f} % of one core  "
          f"target ≤ 1 % (zigbee devices; no polling)")
    print(f"              under a 40,000-reading burst: VmRSS peak seen {peak_rss / 1024:.1f} "
          f"MB, VmHWM {loaded['VmHWM'] / 1024:.1f} MB, VmRSS after "
          f"{loaded['VmRSS'] / 1024:.1f} MB  target ≤ 60 MB")
    print(f"50 devices    disk: {written:,} bytes written in {span:.0f} s with {sent} reports "
          f"({sent / span:.1f}/s) → {per_hour / mb:.2f} MB/hour extrapolated  target ≤ 1 MB/h "
          f"(not counting state saves)")
    print(f"              + periodic state saves, upper bound: {len(state_bytes)} kv rows of "
          f"{sum(state_bytes):,} bytes → {pages} pages of {page} × 2 (WAL + checkpoint) × "
          f"{saves_per_hour:.0f}/h = {state_per_hour / mb:.2f} MB/h; total "
          f"{(per_hour + state_per_hour) / mb:.2f} MB/h (measured for a home over a day:"
          f" bench/typical_day.py)")
    print(f"reference     python + aiomqtt + pydantic + aiosqlite + ruamel.yaml imported: "
          f"VmRSS {floor_kb / 1024:.1f} MB")
    print(f"exit codes on SIGTERM: {rc200}, {rc50}")


if __name__ == "__main__":
    main()
