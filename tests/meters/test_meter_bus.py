"""Two DL/T 645 and two CJ/T 188 meters on one simulated RS-485 line (a real pty)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hearthgate.core.clock import SimulatedClock
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter
from tests.meters.conftest import wait_until
from tests.meters.harness import meter_config, running_bus

DEVICES = [
    {"id": "power-301", "kind": "power_meter", "protocol": "dlt645", "address": "123456789012",
     "poll": "5m"},
    {"id": "power-302", "kind": "power_meter", "protocol": "dlt645", "address": "000000005678",
     "poll": "5m", "read": ["energy_total_kwh"]},
    {"id": "water-301", "kind": "water_meter", "protocol": "cjt188",
     "address": "00000012345678", "poll": "5m"},
    {"id": "water-302", "kind": "water_meter", "protocol": "cjt188", "address": "00000000001234",
     "poll": "5m", "di_order": "low_first"},
]


@pytest.fixture
async def line(tmp_path: Path, clock: SimulatedClock) -> AsyncIterator[
        tuple[PtyLink, MeterBusSimulator]]:
    link = PtyLink(tmp_path / "ttyRS485")
    meters = [
        DLT645Meter("123456789012", energy_kwh=1234.56, power_w=1200.0, voltage_v=220.1),
        DLT645Meter("000000005678", energy_kwh=10.0, power_w=0.0),
        CJT188Meter("00000012345678", total_m3=123.45, flow_m3h=0.12),
        CJT188Meter("00000000001234", total_m3=7.5, unit="L", di_order="low_first",
                    battery_low=True, valve="closed"),
    ]
    sim = MeterBusSimulator(link, meters, clock=clock)
    task = asyncio.create_task(sim.run())
    yield link, sim
    task.cancel()
    link.unplug()


def device_ids(observations) -> set[str]:
    return {o.device_id for o in observations if o.metric != "alive"}


async def test_four_meters_on_one_bus(line, clock: SimulatedClock) -> None:
    link, _ = line
    config = meter_config(link.path, DEVICES)
    async with running_bus(config, clock) as rb:
        await wait_until(lambda: len(rb.values("water-302", "battery_low")) == 1)
        await wait_until(lambda: rb.last("power-301", "current_a") is not None)
        assert rb.values("power-301", "energy_total_kwh") == [1234.56]
        assert rb.values("power-301", "power_w") == [1200.0]
        assert rb.values("power-301", "voltage_v") == [220.1]
        assert rb.values("power-301", "current_a") == [pytest.approx(5.452, abs=0.001)]
        assert rb.values("power-302", "energy_total_kwh") == [10.0]
        assert rb.values("power-302", "power_w") == []  # not in its `read:` list
        assert rb.values("water-301", "water_total_m3") == [123.45]
        assert rb.values("water-301", "valve_open") == [True]
        assert rb.values("water-301", "battery_low") == [False]
        assert rb.values("water-302", "water_total_m3") == [7.5]  # 7500 L
        assert rb.values("water-302", "valve_open") == [False]
        assert rb.values("water-302", "battery_low") == [True]
        for device in ("power-301", "power-302", "water-301", "water-302"):
            assert rb.values(device, "alive") == [True]
        energy = next(o for o in rb.observations if o.metric == "energy_total_kwh")
        assert energy.unit == "kWh" and energy.site_id == "room-301"

        # Five simulated minutes later: the next poll sees the consumption.
        await clock.advance(300)
        await wait_until(lambda: len(rb.values("water-302", "battery_low")) == 2)
        await wait_until(lambda: len(rb.values("power-301", "current_a")) == 2)
        assert rb.values("power-301", "energy_total_kwh")[-1] == pytest.approx(1234.66)
        assert rb.values("water-301", "water_total_m3")[-1] == pytest.approx(123.46)
        assert rb.ctx.error_count() == 0
        assert rb.bus.stats.no_reply == 0


async def test_polls_follow_the_clock(line, clock: SimulatedClock) -> None:
    link, _ = line
    config = meter_config(link.path, DEVICES[2:3])
    async with running_bus(config, clock) as rb:
        await wait_until(lambda: len(rb.values("water-301", "water_total_m3")) == 1)
        await clock.advance(299)
        await asyncio.sleep(0.1)
        assert len(rb.values("water-301", "water_total_m3")) == 1  # not due yet
        for n in range(2, 5):
            await clock.advance(300 if n > 2 else 1)
            await wait_until(lambda n=n: len(rb.values("water-301", "water_total_m3")) == n)
