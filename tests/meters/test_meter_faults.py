"""Bad input on the line: each fault is counted per device, none crashes the bus."""

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

POWER = {"id": "power-301", "kind": "power_meter", "protocol": "dlt645",
         "address": "000000005678", "poll": "1m", "read": ["energy_total_kwh"]}
WATER = {"id": "water-301", "kind": "water_meter", "protocol": "cjt188",
         "address": "00000000001234", "poll": "1m"}


@pytest.fixture
async def sim(tmp_path: Path, clock: SimulatedClock) -> AsyncIterator[MeterBusSimulator]:
    link = PtyLink(tmp_path / "ttyRS485")
    meters = [DLT645Meter("000000005678", energy_kwh=100.0, power_w=0.0),
              CJT188Meter("00000000001234", total_m3=50.0)]
    simulator = MeterBusSimulator(link, meters, clock=clock)
    task = asyncio.create_task(simulator.run())
    yield simulator
    task.cancel()
    link.unplug()


def errors(rb, device: str) -> dict[str, int]:
    return {kind: n for (d, kind), n in rb.ctx.errors.items() if d == device}


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("bad_checksum", "checksum"),
        ("garbage", "garbage"),
        ("wrong_address", "other_address"),
        ("truncated", None),  # looks like silence: the retry gets a whole reply
        ("slow", None),  # the first attempt times out; its late reply is dropped as stale
    ],
)
@pytest.mark.parametrize("meter_index", [0, 1])
async def test_fault_once_then_recovered_by_retry(
    sim: MeterBusSimulator, clock: SimulatedClock, fault: str, kind: str | None,
    meter_index: int,
) -> None:
    meter = sim.meters[meter_index]
    meter.fault = fault  # type: ignore[assignment]
    meter.fault_every = 2  # every second request misbehaves,
    meter.requests = 1  # starting with the very first one; the retry gets a good reply
    meter.slow_seconds = 0.6  # longer than the bus timeout (400 ms)
    device = [POWER, WATER][meter_index]
    metric = ["energy_total_kwh", "water_total_m3"][meter_index]
    async with running_bus(meter_config(sim.path, [device]), clock) as rb:
        await wait_until(lambda: rb.values(device["id"], metric) != [])
        assert rb.values(device["id"], metric) == [[100.0, 50.0][meter_index]]
        assert rb.values(device["id"], "alive") == [True]
        if fault == "garbage":
            # noise may hide inside the reply's header scan, but never costs the reading
            assert rb.bus.stats.retries <= 1
        elif kind is not None:
            assert errors(rb, device["id"]).get(kind, 0) >= 1
            assert rb.bus.stats.retries == 1
        else:
            assert rb.bus.stats.retries == 1
        if fault == "slow":
            await asyncio.sleep(0.3)  # the late reply arrives after the exchange ended
            await clock.advance(60)
            await wait_until(lambda: len(rb.values(device["id"], metric)) == 2)


@pytest.mark.parametrize("meter_index", [0, 1])
async def test_no_answer_marks_unreachable_then_recovers(
    sim: MeterBusSimulator, clock: SimulatedClock, meter_index: int
) -> None:
    meter = sim.meters[meter_index]
    meter.fault = "no_answer"
    device = [POWER, WATER][meter_index]
    async with running_bus(meter_config(sim.path, [device]), clock) as rb:
        await wait_until(lambda: rb.values(device["id"], "alive") == [False])
        alive = next(o for o in rb.observations if o.metric == "alive")
        assert "no reply" in alive.attrs["reason"]
        assert rb.bus.stats.no_reply == 1 and rb.bus.stats.retries == 1
        meter.fault = None
        await clock.advance(60)
        await wait_until(lambda: rb.values(device["id"], "alive") == [False, True])


async def test_error_replies_are_counted(sim: MeterBusSimulator, clock: SimulatedClock) -> None:
    for meter in sim.meters:
        meter.fault = "error_reply"
    devices = [{**POWER, "read": ["energy_total_kwh", "voltage_v"]}, WATER]
    async with running_bus(meter_config(sim.path, devices), clock) as rb:
        await wait_until(lambda: len([o for o in rb.observations if o.metric == "alive"]) == 2)
        # each meter answered, but only with refusals: no readings, counted, and flagged
        assert errors(rb, "power-301") == {"error_reply": 2}
        assert errors(rb, "water-301") == {"error_reply": 1}
        assert rb.values("power-301", "alive") == [False]
        assert rb.values("water-301", "alive") == [False]
        assert rb.values("power-301", "energy_total_kwh") == []


async def test_unknown_di_is_an_error_reply_not_a_crash(
    sim: MeterBusSimulator, clock: SimulatedClock
) -> None:
    meter = sim.meters[0]
    assert isinstance(meter, DLT645Meter)
    meter.voltage_v = 999.9
    device = {**POWER, "read": ["energy_total_kwh", "voltage_v"]}
    async with running_bus(meter_config(sim.path, [device]), clock) as rb:
        await wait_until(lambda: rb.values("power-301", "voltage_v") != [])
        assert rb.values("power-301", "voltage_v") == [999.9]


async def test_garbage_between_polls_never_crashes(
    sim: MeterBusSimulator, clock: SimulatedClock
) -> None:
    async with running_bus(meter_config(sim.path, [POWER, WATER]), clock) as rb:
        await wait_until(lambda: rb.values("water-301", "water_total_m3") != [])
        sim.link.write(b"\x68\x00\xff" * 50 + bytes(range(256)))  # unsolicited noise
        for meter in sim.meters:
            meter.fault, meter.fault_every = "garbage", 1
        for _ in range(3):
            await clock.advance(60)
            await asyncio.sleep(0.05)
        await wait_until(lambda: len(rb.values("water-301", "water_total_m3")) == 4)
        await wait_until(lambda: len(rb.values("power-301", "energy_total_kwh")) == 4)
        assert rb.values("power-301", "alive") == [True]
        assert rb.values("water-301", "alive") == [True]


async def test_a_meter_that_pads_publishes_its_total(
    sim: MeterBusSimulator, clock: SimulatedClock
) -> None:
    meter = sim.meters[1]
    assert isinstance(meter, CJT188Meter)
    meter.pads = True  # settlement total, clock and ST are FF-filled, as real meters send
    async with running_bus(meter_config(sim.path, [WATER]), clock) as rb:
        await wait_until(lambda: rb.values("water-301", "water_total_m3") != [])
        assert rb.values("water-301", "water_total_m3") == [50.0]
        assert rb.values("water-301", "alive") == [True]
        # ST is not supported: no invented valve fault or low battery
        assert rb.values("water-301", "valve_fault") == []
        assert rb.values("water-301", "battery_low") == []
        assert errors(rb, "water-301") == {}


async def test_a_reply_not_understood_says_so_not_no_reply(
    sim: MeterBusSimulator, clock: SimulatedClock
) -> None:
    sim.meters[1].fault = "bad_checksum"  # every reply arrives, none is usable
    async with running_bus(meter_config(sim.path, [WATER]), clock) as rb:
        await wait_until(lambda: rb.values("water-301", "alive") == [False])
        alive = next(o for o in rb.observations if o.metric == "alive")
        assert alive.attrs["reason"].startswith("reply not understood: checksum")
        assert "no reply" not in alive.attrs["reason"]
