"""Meters on a shared RS-485 line → the gateway process → the platform broker.

Two DL/T 645 and two CJ/T 188 meters answer on one pseudo-terminal, behind a
udev-style symlink. Their readings must reach `P/telemetry`; when the adapter is
pulled they must show offline in `P/devices`, and come back by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber, wait_started
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter, SDM120Meter
from hearthgate.simulators.sdm120 import SDM120Simulator

P = "hearthgate/gw-meters-01"
METERS = {
    "power-301": ("dlt645", "000000005678", "room-301"),
    "power-302": ("dlt645", "000000001111", "room-302"),
    "water-301": ("cjt188", "00000000001234", "room-301"),
    "water-302": ("cjt188", "00000000009999", "room-302"),
}


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[tuple[PtyLink, MeterBusSimulator]]:
    link = PtyLink(tmp_path / "ttyUSB0")
    sim = MeterBusSimulator(link, [
        DLT645Meter("000000005678", energy_kwh=1234.56, power_w=350),
        DLT645Meter("000000001111", energy_kwh=87.5, power_w=0),
        CJT188Meter("00000000001234", total_m3=123.45),
        CJT188Meter("00000000009999", total_m3=7.0),
    ])
    task = asyncio.create_task(sim.run())
    try:
        yield link, sim
    finally:
        task.cancel()
        link.unplug()


def config(tmp_path: Path, broker: MosquittoBroker, port: str) -> Path:
    devices = "\n".join(
        f'  - {{id: {d}, site: {site}, kind: {"power_meter" if p == "dlt645" else "water_meter"},'
        f' protocol: {p}, bus: rs485-1, address: "{addr}", poll: 1s}}'
        for d, (p, addr, site) in METERS.items()
    )
    path = tmp_path / "config.yaml"
    path.write_text(f"""gateway: {{id: gw-meters-01, data_dir: {tmp_path / "data"}, language: en,
  telemetry: raw, telemetry_reason: "meter readings end to end"}}
uplink: {{host: 127.0.0.1, port: {broker.port}, telemetry_interval: 1s, devices_interval: 1s}}
buses:
  - {{id: rs485-1, type: serial, port: {port}, baudrate: 9600, parity: N, timeout: 300ms}}
devices:
{devices}
sites:
  - {{id: room-301, rules: [{{type: device_offline}}]}}
  - {{id: room-302, rules: [{{type: device_offline}}]}}
""")
    return path


def latest(platform: PlatformSubscriber) -> dict[str, dict]:
    msgs = platform.on(f"{P}/devices")
    return {d["device_id"]: d for d in msgs[-1].json()["devices"]} if msgs else {}


async def test_four_meters_reach_telemetry_and_go_offline_with_the_port(
    tmp_path, broker, line
):
    link, sim = line
    gw = GatewayProcess(config(tmp_path, broker, link.path))
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform:
        try:
            await wait_started(gw, platform, P)

            def values() -> dict[tuple[str, str], object]:
                out: dict[tuple[str, str], object] = {}
                for m in platform.on(f"{P}/telemetry"):
                    for r in m.json()["readings"]:
                        out[(r["device_id"], r["metric"])] = r["value"]
                return out

            await platform.wait_for(lambda _: len({d for d, _ in values()}) == 4, timeout=20)
            v = values()
            assert v[("power-301", "energy_total_kwh")] == pytest.approx(1234.56)
            assert v[("power-302", "energy_total_kwh")] == pytest.approx(87.5)
            assert v[("water-301", "water_total_m3")] == pytest.approx(123.45)
            assert v[("water-302", "water_total_m3")] == pytest.approx(7.0)
            await platform.wait_for(
                lambda _: all(d["online"] for d in latest(platform).values())
                and len(latest(platform)) == 4, timeout=15)

            link.unplug()
            await platform.wait_for(
                lambda _: not any(d["online"] for d in latest(platform).values()), timeout=20)
            assert gw.proc is not None and gw.proc.poll() is None  # nothing else stopped

            sim.meters[2].total_m3 = 123.50  # water used while the adapter was out
            link.plug()
            await platform.wait_for(
                lambda _: all(d["online"] for d in latest(platform).values()), timeout=20)
            await platform.wait_for(
                lambda _: values().get(("water-301", "water_total_m3")) == pytest.approx(123.50),
                timeout=15)
        finally:
            gw.close()


async def test_sdm120_on_pymodbus_server_reaches_telemetry(tmp_path, broker):
    """The Modbus meter, served by pymodbus's own server, read the same way."""
    link = PtyLink(tmp_path / "ttyMODBUS")
    sim = SDM120Simulator(link, [SDM120Meter(unit=1, voltage_v=230.0, power_w=2300.0,
                                             import_kwh=1234.5)])
    task = asyncio.create_task(sim.run())
    path = tmp_path / "config.yaml"
    path.write_text(f"""gateway: {{id: gw-meters-01, data_dir: {tmp_path / "data"}, language: en,
  telemetry: raw, telemetry_reason: "meter readings end to end"}}
uplink: {{host: 127.0.0.1, port: {broker.port}, telemetry_interval: 1s}}
buses:
  - {{id: rs485-2, type: serial, port: {link.path}, baudrate: 9600, parity: N, timeout: 300ms}}
devices:
  - {{id: power-302, site: room-302, kind: power_meter, protocol: modbus, bus: rs485-2,
     unit: 1, model: sdm120, poll: 1s}}
sites:
  - {{id: room-302, rules: [{{type: power_high, above: 2000, window: 2s}}]}}
""")
    gw = GatewayProcess(path)
    try:
        async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform:
            await wait_started(gw, platform, P)

            def readings() -> dict[str, object]:
                return {r["metric"]: r["value"] for m in platform.on(f"{P}/telemetry")
                        for r in m.json()["readings"] if r["device_id"] == "power-302"}

            await platform.wait_for(
                lambda _: {"voltage_v", "power_w", "energy_total_kwh"} <= readings().keys(),
                timeout=20)
            assert readings()["voltage_v"] == pytest.approx(230.0)
            assert readings()["power_w"] == pytest.approx(2300.0)
            assert readings()["energy_total_kwh"] == pytest.approx(1234.5, abs=0.01)
            # 2.3 kW for longer than the window: the stove-left-on rule speaks.
            [alert] = await platform.wait_json(
                f"{P}/alerts", lambda b: b["type"] == "power_high", timeout=20)
            assert alert["device_ids"] == ["power-302"] and alert["state"] == "raised"
    finally:
        gw.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        link.unplug()
