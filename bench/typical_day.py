"""Disk bytes a typical home's gateway writes in a day (issue 17): the SD card's wear.

One flat, one resident (room-301 of `hearthgate demo`'s day, gateway/demo/day.py): a water
meter (CJ/T 188, polled every 5 min) and an electricity meter (DL/T 645, every 10 min) on
an RS-485 simulator behind a pty, three PIRs, a door contact and an SOS button through
zigbee2mqtt payloads on a real mosquitto, a live uplink to a real platform mosquitto, the
default `telemetry: summary`, the `living_alone` profile's rules. The resident's day (the
demo's, plus two more PIRs and the zigbee devices' check-ins; one SOS press) is played
through the scenario player on a clock SPEED times faster than the machine's.

The gateway runs in a process of its own (bench/_day_gateway.py) on the same accelerated
clock, with the store's real-time intervals (the WAL checkpoint's 30 s) divided by SPEED
as well, so that the day brings the checkpoints a real one would. Counted from its
`/proc/PID/io` `write_bytes` between the day's start (online, every device heard once) and
its end. The breakdown is measured around each store commit and each checkpoint inside the
gateway; what is left is "other" (logs go to a tmpfs here, as to journald on a Pi).

Where time is compressed the page cache is not: a page written twice within the kernel's
30 s writeback delay counts once. Every commit of a quiet day is followed by a checkpoint
that fsyncs (the checkpoint interval is scaled), so pages are clean again between commits,
as on a real day; the figure may still be slightly low for that reason.

With `--before COMMIT` (default: the commit this work started from) the same day is first
played with that commit's code: the same-run reference.

Run from the repo root: `python bench/typical_day.py [--before COMMIT | --no-before]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from _kit import REPO, Probe, header, proc_io
from state_wear import build, checkpoint_cost

from hearthgate.core.clock import ScaledClock
from hearthgate.demo.day import BASE_LOAD_W, DAY, DAY_START, POWER_METERS, USAGE, WATER_METERS
from hearthgate.demo.day import build_config as demo_config
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter
from hearthgate.simulators.scenario import devices_from_config, parse_scenario, play
from hearthgate.simulators.zigbee2mqtt import Zigbee2MqttPublisher

SPEED = 1440.0  # a day in a minute
DAY_S = 86400.0
BEFORE = "c46d904"  # branch perf, the first round of issue 17
SITE = "room-301"
PIRS = ("pir-301", "pir-301b", "pir-301c")
TARGET = 5_000_000


def flat_config(work: Path, home_port: int, platform_port: int, meter_port: str) -> dict[str, Any]:
    """The demo's config cut to one flat, with three PIRs and the default telemetry level."""
    raw = demo_config(work, home_port, platform_port, "/dev/null", meter_port, "en")
    raw["gateway"].pop("telemetry")
    raw["gateway"].pop("telemetry_reason")
    raw["buses"] = [b for b in raw["buses"] if b["id"] != "rf433"]
    devices = [d for d in raw["devices"] if d["site"] == SITE]
    pir = next(d for d in devices if d["id"] == "pir-301")
    for extra in PIRS[1:]:
        devices.append({**pir, "id": extra, "topic": f"zigbee2mqtt/{extra.replace('-', '_')}"})
    raw["devices"] = devices
    raw["sites"] = [s for s in raw["sites"] if s["id"] == SITE]
    return raw


def flat_day() -> dict[str, Any]:
    steps = [s for s in DAY["steps"] if s["device"].endswith("-301")]
    # The other two rooms' PIRs: the kitchen at meals, the bedroom morning and night.
    steps += [
        {"every": "15m", "from": "06:45", "until": "08:00", "device": "pir-301b", "do": "motion"},
        {"every": "15m", "from": "11:15", "until": "12:30", "device": "pir-301b", "do": "motion"},
        {"every": "15m", "from": "18:00", "until": "19:00", "device": "pir-301b", "do": "motion"},
        {"every": "30m", "from": "21:30", "until": "23:30", "device": "pir-301c", "do": "motion"},
        {"at": "06:35", "device": "pir-301c", "do": "motion"},
        *[{"every": "50m", "from": "06:30", "device": d, "do": "battery", "value": 91}
          for d in PIRS[1:]],
    ]
    return {**DAY, "steps": steps}


class Usage:
    """Taps and appliances of the flat, on the scenario's clock (the demo's USAGE)."""

    def __init__(self, clock: ScaledClock, meters: dict[str, DLT645Meter | CJT188Meter]) -> None:
        self.clock = clock
        self.meters = meters

    def set(self, device_id: str, rate: float) -> None:
        meter = self.meters[device_id]
        meter.settle(self.clock.now().mono)
        if isinstance(meter, CJT188Meter):
            meter.flow_m3h = rate
        else:
            meter.power_w = BASE_LOAD_W.get(device_id, 0.0) + rate

    async def play(self, start_mono: float, start_wall: datetime) -> None:
        local = start_wall.astimezone(DAY_START.tzinfo)
        events: list[tuple[float, str, float]] = []
        for begin, end, meter, rate in USAGE:
            if meter not in self.meters:
                continue
            for at, r in ((begin, rate), (end, 0.0)):
                hour, minute = (int(x) for x in at.split(":"))
                moment = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
                offset = (moment - local).total_seconds() % DAY_S
                events.append((offset, meter, r))
        for offset, meter, r in sorted(events):
            await self.clock.sleep_until(start_mono + offset)
            self.set(meter, r)


async def one_day(pythonpath: Path | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hearthgate-day-"))  # on disk: the store's file
    shm = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="hg-day-"))  # logs, not counted
    home = MosquittoBroker(shm / "home-broker").start()
    plat = MosquittoBroker(shm / "platform-broker").start()
    link = PtyLink()
    proc: subprocess.Popen[bytes] | None = None
    try:
        raw = flat_config(tmp, home.port, plat.port, link.path)
        config_path = tmp / "config.yaml"
        config_path.write_text(json.dumps(raw, indent=1))  # JSON is YAML
        from hearthgate.config import parse_config_data

        config = parse_config_data(raw)
        scenario = parse_scenario(flat_day()).with_devices(devices_from_config(config))
        anchor = time.monotonic()
        clock = ScaledClock(SPEED, start=DAY_START)
        clock._mono0 = anchor
        meters: dict[str, DLT645Meter | CJT188Meter] = {
            "water-301": CJT188Meter(WATER_METERS["water-301"], total_m3=137.5),
            "power-301": DLT645Meter(POWER_METERS["power-301"], energy_kwh=2412.3),
        }
        usage = Usage(clock, meters)
        for device_id in meters:
            usage.set(device_id, 0.0)
        bus = asyncio.create_task(MeterBusSimulator(link, list(meters.values()), clock=clock).run())
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(p) for p in (pythonpath,) if p is not None] + [str(REPO / "bench")])}
        breakdown = shm / "breakdown.jsonl"
        log = (shm / "gateway.log").open("wb")
        # Popen returns once the child is forked; the day has not started yet.
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, str(REPO / "bench" / "_day_gateway.py"), str(config_path),
             str(SPEED), repr(anchor), str(breakdown), DAY_START.isoformat()],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        prefix = f"{raw['uplink']['topic_prefix']}/{raw['gateway']['id']}"
        with Probe(plat.port, (f"{prefix}/#",), name="platform") as platform, \
                Probe(home.port, name="z2m") as z2m:

            async def publish(topic: str, payload: bytes, retain: bool) -> None:
                z2m.client.publish(topic, payload, qos=1, retain=retain)

            zigbee = Zigbee2MqttPublisher(publish, scenario.devices_of("zigbee2mqtt"), repeats=1)
            status = f"{prefix}/status"
            if not platform.wait(lambda: any(json.loads(p).get("state") == "online"
                                             for _t, p, _a in platform.on(status)), 30):
                raise TimeoutError(f"gateway not online:\n{(shm / 'gateway.log').read_text()}")
            await asyncio.sleep(2.0)  # every meter polled once, the start's full save landed
            os.kill(proc.pid, signal.SIGUSR1)
            await asyncio.sleep(0.2)
            start = proc_io(proc.pid)
            t0 = clock.now()
            wall0 = time.monotonic()
            report, _ = await asyncio.gather(play(scenario, clock, [zigbee], duration=DAY_S),
                                             usage.play(t0.mono, t0.wall))
            await clock.sleep_until(t0.mono + DAY_S)
            end = proc_io(proc.pid)
            real = time.monotonic() - wall0
            os.kill(proc.pid, signal.SIGUSR1)
            await asyncio.sleep(0.3)
            # What the WAL still holds goes into the database at the gateway's next
            # checkpoint: made here, and counted, so that the day pays for all it wrote.
            final = checkpoint_cost(tmp / "data" / "hearthgate.sqlite3")
            arrived = {t.rsplit("/", 1)[-1] for t, _p, at in platform.messages}
            alerts = [json.loads(p) for _t, p, _a in platform.on(f"{prefix}/alerts")]
            summaries = len(platform.on(f"{prefix}/telemetry"))
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        bus.cancel()
        lines = [json.loads(x) for x in breakdown.read_text().splitlines()]
        first, last = lines[0], lines[-1]
        parts = {k: v - first["bytes"].get(k, 0) for k, v in last["bytes"].items()}
        commits = {k: v - first["commits"].get(k, 0) for k, v in last["commits"].items()}
        parts["final checkpoint (by the benchmark)"] = final
        return {
            "write_bytes": end["write_bytes"] - start["write_bytes"] + final,
            "wchar": end["wchar"] - start["wchar"], "parts": parts, "commits": commits,
            "actions": len(report.performed), "alerts": len(alerts),
            "alert_kinds": Counter(f"{a['type']} {a['state']}" for a in alerts),
            "telemetry": summaries,
            "topics": sorted(arrived), "real_s": real,
            "db": {p.name: p.stat().st_size for p in (tmp / "data").glob("hearthgate*")},
        }
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        link.unplug()
        home.close()
        plat.close()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


def short(kind: str) -> str:
    names = {
        "Outbox.add_alerts": "alert commits",
        "Store.put_engine_state": "state saves (rule state; with the device health since"
                                  " this round)",
        "Store.put_state": "device health (a commit of its own before this round)",
        "Store.add_summaries": "hourly summaries",
        "Outbox.delivered": "outbox deletions",
        "checkpoint": "WAL checkpoints",
        "Outbox.add_telemetry": "telemetry spilled to the outbox",
        "Store.prune": "retention",
    }
    return " + ".join(names.get(k, k) for k in kind.split("+"))


def show(name: str, r: dict[str, Any]) -> None:
    print(f"{name}\n            a day: write_bytes {r['write_bytes'] / 1e6:6.2f} MB"
          f"  (wchar {r['wchar'] / 1e6:.2f} MB; {r['actions']} scenario actions,"
          f" {r['alerts']} alert messages, {r['telemetry']} telemetry messages at the platform;"
          f" played in {r['real_s']:.0f} s)")
    counted = 0
    for kind, n in sorted(r["parts"].items(), key=lambda kv: -kv[1]):
        counted += n
        if not n and not r["commits"].get(kind):
            continue
        print(f"            {n / 1e3:9.1f} kB  {short(kind)} ({r['commits'].get(kind, 0)}×)")
    print(f"            {(r['write_bytes'] - counted) / 1e3:9.1f} kB  other (outside store"
          f" commits and checkpoints)")
    kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(r["alert_kinds"].items()))
    print(f"            alerts: {kinds}")
    print("            files at the end: "
          + ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sorted(r["db"].items())))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=BEFORE, help="commit to play the day with first")
    ap.add_argument("--no-before", action="store_true")
    args = ap.parse_args()
    header(f"A typical home's day written to disk ({SPEED:g}x accelerated, /proc/PID/io)")
    before = None
    if not args.no_before:
        with tempfile.TemporaryDirectory(prefix="hg-before-") as scratch:
            before = asyncio.run(one_day(build(args.before, Path(scratch))))
    after = asyncio.run(one_day(None))
    if before is not None:
        show(f"reference   {args.before} (before this round)", before)
    show("hearthgate  this tree", after)
    print(f"target: ≤ {TARGET / 1e6:g} MB a day")


if __name__ == "__main__":
    main()
