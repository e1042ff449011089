"""Fault: the RS-485 adapter vanishes and returns; then its meters answer garbage for a while.

Black box: the gateway as a real process polling two simulated meters (CJ/T 188 water,
DL/T 645 power) over a real pseudo-terminal behind a udev-style symlink; the platform's view
is `P/devices` and the metrics textfile.

Outcome: the gateway never stops; the meters go offline in `P/devices` when the port goes,
and back online when it returns (no restart); bad frames are counted
(`hearthgate_frame_errors_total`), the meters are offline while nothing usable comes back,
and online again when the answers are good; an SOS still gets through at the end.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter
from tests.faults.faultkit import (
    ALERTS,
    P,
    press_sos,
    record,
    site_ids,
    started,
    wait_until,
    write_config,
)

METERS = ("water-301", "power-301")


def online(platform: PlatformSubscriber) -> dict[str, bool]:
    """The latest `online` of each meter in P/devices."""
    for m in reversed(platform.on(f"{P}/devices")):
        devices = {d["device_id"]: d["online"] for d in m.json()["devices"]}
        if all(d in devices for d in METERS):
            return {d: devices[d] for d in METERS}
    return {}


def frame_errors(textfile: Path) -> int:
    try:
        text = textfile.read_text()
    except OSError:
        return 0
    return sum(int(float(v)) for v in re.findall(
        r'^hearthgate_frame_errors_total\{device_id="(?:water|power)-301"[^}]*\} (\S+)$', text, re.M
    ))


async def test_serial_port_vanishes_and_meters_answer_garbage(
    tmp_path, broker, home_broker, platform, zigbee
):
    link = PtyLink(tmp_path / "ttyUSB0")
    water = CJT188Meter("00000000001234", total_m3=9.87)
    power = DLT645Meter("000000005678", energy_kwh=42.0, power_w=0)
    sim = MeterBusSimulator(link, [water, power])
    sim_task = asyncio.create_task(sim.run())
    textfile = tmp_path / "metrics.prom"
    sites = site_ids(2)
    config = write_config(
        tmp_path, broker, home_broker, sites,
        extra_buses=(
            f"  - {{id: rs485-1, type: serial, port: {link.path}, baudrate: 9600, parity: N,"
            " timeout: 300ms, retries: 1, reopen_backoff: 100ms, reopen_backoff_max: 200ms}\n"
        ),
        extra_devices=(
            f"  - {{id: water-301, site: {sites[0]}, kind: water_meter, protocol: cjt188,"
            " bus: rs485-1, address: '00000000001234', poll: 1s}\n"
            f"  - {{id: power-301, site: {sites[0]}, kind: power_meter, protocol: dlt645,"
            " bus: rs485-1, address: '000000005678', poll: 1s, read: [energy_total_kwh]}\n"
        ),
    )
    config.write_text(config.read_text().replace(
        "  log_level: info\n", f"  log_level: info\n  metrics_textfile: {textfile}\n"))
    gw = GatewayProcess(config)
    try:
        await started(gw, platform)
        both = dict.fromkeys(METERS, True)
        none = dict.fromkeys(METERS, False)
        await wait_until(lambda: online(platform) == both, 30, "the meters online", gw.log_text)

        # The adapter is pulled, and put back.
        link.unplug()
        t = time.monotonic()
        await wait_until(lambda: online(platform) == none, 30, "the meters offline",
                         gw.log_text)
        offline_after_unplug = time.monotonic() - t
        assert gw.proc is not None and gw.proc.poll() is None
        link.plug()
        t = time.monotonic()
        await wait_until(lambda: online(platform) == both, 30, "the meters back", gw.log_text)
        back_after_plug = time.monotonic() - t

        # The meters answer with broken checksums, then noise: counted, never a crash.
        errors_before = frame_errors(textfile)
        for meter in (water, power):
            meter.fault, meter.fault_every = "bad_checksum", 1
        await wait_until(lambda: online(platform) == none, 30,
                         "the meters offline while answering garbage", gw.log_text)
        for meter in (water, power):
            meter.fault = "truncated"
        await asyncio.sleep(1.5)  # a few more polls of the other kind of garbage
        await wait_until(lambda: frame_errors(textfile) > errors_before, 30,
                         "frame errors counted in the metrics", gw.log_text)
        for meter in (water, power):
            meter.fault = None
        await wait_until(lambda: online(platform) == both, 30, "the meters back", gw.log_text)
        assert gw.proc.poll() is None
        assert "bad input from water-301" in gw.log_text()

        await press_sos(zigbee, sites[0])
        await platform.wait_json(ALERTS, lambda b: b["site_id"] == sites[0], timeout=20)
        assert gw.proc.poll() is None, "the gateway must never stop"
        record("serial_faults", offline_after_unplug_s=round(offline_after_unplug, 1),
               online_after_replug_s=round(back_after_plug, 1),
               frame_errors_counted=frame_errors(textfile) - errors_before,
               simulator_replies=sim.replies)
    finally:
        gw.close()
        sim_task.cancel()
        link.unplug()
