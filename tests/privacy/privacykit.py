"""What the privacy tests share: a home of three sites, one per telemetry level, a day of
observations, and an in-process gateway on a simulated clock with a real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hearthgate.core.clock import SimulatedClock
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import config_head

GW = "gw-privacy-0001"
P = f"hearthgate/{GW}"
# 2026-11-22 00:00 in Asia/Shanghai.
DAY_START = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
LEVELS = {"room-h": "health", "room-s": "summary", "room-r": "raw"}
REASON = "commissioning trial until 2026-12-01 (ticket 4711)"


def write_config(tmp: Path, platform: MosquittoBroker, home: MosquittoBroker, *,
                 raw_reason: str | None = REASON, data_dir: Path | None = None) -> Path:
    """Three sites with the same devices: room-h at `health`, room-s at the default
    (`summary`), room-r at `raw` (with `raw_reason`, unless None)."""
    devices, sites = [], []
    for i, (site, level) in enumerate(LEVELS.items(), start=1):
        n = site[-1]
        devices += [
            f"  - {{id: water-{n}, site: {site}, kind: water_meter, protocol: cjt188,"
            f" bus: rs485, address: \"0000000000000{i}\", poll: 5m}}",
            f"  - {{id: power-{n}, site: {site}, kind: power_meter, protocol: dlt645,"
            f" bus: rs485, address: \"00000000000{i}\", poll: 5m}}",
            f"  - {{id: pir-{n}, site: {site}, kind: motion_sensor, protocol: zigbee2mqtt,"
            f" bus: zigbee, topic: zigbee2mqtt/pir_{n}}}",
            f"  - {{id: door-{n}, site: {site}, kind: door_contact, protocol: zigbee2mqtt,"
            f" bus: zigbee, topic: zigbee2mqtt/door_{n}}}",
        ]
        extra = ""
        if level == "health":
            extra = ", telemetry: health"
        elif level == "raw":
            extra = ", telemetry: raw" + (f', telemetry_reason: "{raw_reason}"'
                                         if raw_reason else "")
        sites.append(f"  - {{id: {site}, resident: r-{n}{extra}, rules: ["
                     f"{{type: no_water, window: 12h}}, {{type: inactivity, window: 4h}}]}}")
    head = config_head(GW, data_dir or tmp / "data", platform.port, home.port,
                       telemetry_interval="10m")
    # The meters sit on a line that does not exist: their readings are handed to the
    # gateway the way a driver hands them (DriverContext.emit), in simulated time.
    head += f"  - {{id: rs485, type: serial, port: {tmp / 'no-such-tty'}, baudrate: 2400}}\n"
    path = tmp / "config.yaml"
    path.write_text(head + "devices:\n" + "\n".join(devices) + "\nsites:\n"
                    + "\n".join(sites) + "\n")
    return path


def day_of_observations() -> list[tuple[timedelta, str, str, Any]]:
    """(time after midnight, device suffix kind, metric, value): one ordinary day.

    Water is used 07:00-08:00 (30 l) and 18:00-19:00 (20 l); electricity 1.5 kWh over the
    evening; movement at 07:05, 07:20, 07:50 (three quarter-hours) and 18:10; the door opened
    twice at 08:10 and 08:40 (the contact repeats its state with a battery report).
    """
    out: list[tuple[timedelta, str, str, Any]] = []
    water, energy = 12.000, 345.0
    for quarter in range(0, 24 * 4):
        at = timedelta(minutes=15 * quarter)
        hour = at.seconds // 3600
        if hour == 7:
            water += 0.0075
        elif hour == 18:
            water += 0.005
        if 18 <= hour < 21:
            energy += 0.125
        out.append((at + timedelta(seconds=30), "water", "water_total_m3", round(water, 4)))
        out.append((at + timedelta(seconds=40), "power", "energy_total_kwh", round(energy, 3)))
    for hh, mm in ((7, 5), (7, 20), (7, 50), (18, 10)):
        out.append((timedelta(hours=hh, minutes=mm), "pir", "motion", True))
        out.append((timedelta(hours=hh, minutes=mm, seconds=90), "pir", "motion", False))
    for hh, mm in ((8, 10), (8, 40)):
        out.append((timedelta(hours=hh, minutes=mm), "door", "door_open", True))
        out.append((timedelta(hours=hh, minutes=mm, seconds=20), "door", "door_open", True))
        out.append((timedelta(hours=hh, minutes=mm, seconds=60), "door", "door_open", False))
    return sorted(out, key=lambda o: o[0])


async def play_day(gateway: Any, clock: SimulatedClock) -> int:
    """Feed the day to every site of `gateway` (a running `Gateway`); returns the number of
    observations fed per site."""
    devices = {d.id: d for d in gateway.config.devices}
    start = clock.now()
    day = day_of_observations()
    for at, kind, metric, value in day:
        target = start.mono + at.total_seconds()
        await clock.advance(max(0.0, target - clock.now().mono))
        for site in LEVELS:
            gateway.ctx.emit(devices[f"{kind}-{site[-1]}"], metric, value)
        await gateway.queue.join()  # through the rules loop before time moves on
        await asyncio.sleep(0)
    await clock.advance(3600.0 + 180.0)  # past the last hour's end and its grace
    await asyncio.sleep(0.2)
    return len(day)
