"""The USB adapter is pulled and put back: meters go offline, then polling resumes by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hearthgate.core.clock import SimulatedClock
from hearthgate.drivers import meter_poller
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter
from tests.meters.conftest import wait_until
from tests.meters.harness import meter_config, running_bus

DEVICES = [
    {"id": "power-301", "kind": "power_meter", "protocol": "dlt645", "address": "000000005678",
     "poll": "5m", "read": ["energy_total_kwh"]},
    {"id": "water-301", "kind": "water_meter", "protocol": "cjt188", "address": "00000000001234",
     "poll": "5m"},
]


async def test_unplug_and_replug(tmp_path: Path, clock: SimulatedClock) -> None:
    link = PtyLink(tmp_path / "ttyUSB0")  # udev-style symlink: same path after replugging
    sim = MeterBusSimulator(link, [DLT645Meter("000000005678", energy_kwh=42.0, power_w=0),
                                   CJT188Meter("00000000001234", total_m3=9.87)], clock=clock)
    sim_task = asyncio.create_task(sim.run())
    try:
        async with running_bus(meter_config(link.path, DEVICES), clock) as rb:
            await wait_until(lambda: rb.values("water-301", "water_total_m3") == [9.87])
            await wait_until(lambda: rb.values("power-301", "energy_total_kwh") == [42.0])

            link.unplug()
            await wait_until(lambda: rb.values("power-301", "alive") == [True, False])
            await wait_until(lambda: rb.values("water-301", "alive") == [True, False])
            down = [o for o in rb.observations if o.metric == "alive" and o.value is False]
            assert all("down" in o.attrs["reason"] for o in down)

            # Polls while the port is gone fail fast and change nothing.
            await clock.advance(300)
            await asyncio.sleep(0.2)
            assert rb.values("water-301", "alive") == [True, False]
            assert not rb.bus.is_open

            link.plug()
            # No clock advance needed: the drivers poll as soon as the port is back.
            await wait_until(lambda: rb.values("water-301", "alive") == [True, False, True])
            await wait_until(lambda: rb.values("power-301", "alive") == [True, False, True])
            assert rb.values("water-301", "water_total_m3") == [9.87, 9.87]
            assert rb.values("power-301", "energy_total_kwh") == [42.0, 42.0]
            assert rb.bus.stats.losses == 1 and rb.bus.stats.opens == 2

            # And the regular schedule goes on.
            await clock.advance(300)
            await wait_until(lambda: len(rb.values("water-301", "water_total_m3")) == 3)
    finally:
        sim_task.cancel()
        link.unplug()


async def test_port_missing_at_start(
    tmp_path: Path, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = PtyLink(tmp_path / "ttyUSB0")
    link.unplug()  # the adapter is not plugged in when the gateway starts
    sim = MeterBusSimulator(link, [CJT188Meter("00000000001234", total_m3=1.0)], clock=clock)
    sim_task = asyncio.create_task(sim.run())
    try:
        monkeypatch.setattr(meter_poller, "STARTUP_GRACE", 0.2)
        async with running_bus(meter_config(link.path, DEVICES[1:]), clock) as rb:
            await wait_until(lambda: rb.values("water-301", "alive") == [False])
            link.plug()
            await wait_until(lambda: rb.values("water-301", "alive") == [False, True])
            assert rb.values("water-301", "water_total_m3") == [1.0]
    finally:
        sim_task.cancel()
        link.unplug()
