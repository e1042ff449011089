"""Meter sense: totals that go backwards or jump are held, then re-anchored or dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearthgate.core.clock import SimulatedClock
from hearthgate.drivers.meter_sense import CumulativeSense, convert
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter
from tests.meters.conftest import wait_until
from tests.meters.harness import meter_config, running_bus

HOUR = 3600.0


def test_units() -> None:
    assert convert(1500, "L", "m3") == 1.5
    assert convert(2500, "Wh", "kWh") == 2.5
    assert convert(1.2, "kW", "W") == 1200
    with pytest.raises(ValueError):
        convert(1, "L", "kWh")


def test_normal_growth_passes() -> None:
    sense = CumulativeSense("w", max_rate_per_hour=5)
    assert sense.accept(100.0, 0).verdict == "baseline"
    assert sense.accept(100.5, HOUR).verdict == "ok"
    assert sense.accept(104.0, 2 * HOUR).verdict == "ok"
    assert sense.accept(104.0, 3 * HOUR).verdict == "ok"  # no use is fine


def test_meter_replaced_is_reanchored() -> None:
    sense = CumulativeSense("w", max_rate_per_hour=5)
    sense.accept(1234.5, 0)
    held = sense.accept(0.2, 300)
    assert held.verdict == "held" and not held.emit
    reset = sense.accept(0.25, 600)
    assert reset.verdict == "reset" and reset.emit and reset.value == 0.25
    assert reset.attrs == {"baseline": "reset", "previous_total": 1234.5}
    assert sense.accept(0.3, 900).verdict == "ok"


def test_misread_is_dropped() -> None:
    sense = CumulativeSense("w", max_rate_per_hour=5)
    sense.accept(100.0, 0)
    assert sense.accept(900100.0, 300).verdict == "held"  # a BCD digit misread
    back = sense.accept(100.01, 600)
    assert back.verdict == "ok" and back.value == 100.01 and back.dropped == 900100.0


def test_small_jitter_backwards_never_goes_down() -> None:
    sense = CumulativeSense("w", max_rate_per_hour=5, slack=0.01)
    sense.accept(100.0, 0)
    result = sense.accept(99.99, 300)
    assert result.verdict == "ok" and result.value == 100.0


def test_big_jump_allowed_after_long_silence() -> None:
    sense = CumulativeSense("w", max_rate_per_hour=5)
    sense.accept(100.0, 0)
    assert sense.accept(140.0, 10 * HOUR).verdict == "ok"  # 4 m³/h for 10 h: plausible
    assert sense.accept(190.0, 10 * HOUR + 300).verdict == "held"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.floats(0, 1e5)),
                min_size=1, max_size=30))
def test_emitted_totals_never_show_negative_or_enormous_use(
    steps: list[tuple[float, float]]
) -> None:
    sense = CumulativeSense("w", max_rate_per_hour=5, slack=0.01)
    mono = 0.0
    last_emitted: tuple[float, float] | None = None
    for value, dt in steps:
        mono += dt
        result = sense.accept(value, mono)
        if not result.emit:
            continue
        if last_emitted is not None and result.verdict == "ok":
            use = result.value - last_emitted[0]
            hours = (mono - last_emitted[1]) / HOUR
            assert use >= 0
            # over any span a non-reset step is bounded by the rate (plus headroom)
            assert use <= 5 * (hours + 1 / 60) + 0.01 + 1e-6 or result.dropped is not None
        last_emitted = (result.value, mono)


async def test_replaced_water_meter_on_the_bus(tmp_path: Path, clock: SimulatedClock) -> None:
    link = PtyLink(tmp_path / "tty")
    meter = CJT188Meter("00000000001234", total_m3=500.0)
    sim_task = asyncio.create_task(MeterBusSimulator(link, [meter], clock=clock).run())
    device = {"id": "water-301", "kind": "water_meter", "protocol": "cjt188",
              "address": "00000000001234", "poll": "5m"}
    try:
        async with running_bus(meter_config(link.path, [device]), clock) as rb:
            await wait_until(lambda: rb.values("water-301", "water_total_m3") == [500.0])
            meter.total_m3 = 0.5  # a plumber swaps the meter
            await clock.advance(300)
            await wait_until(lambda: len(rb.values("water-301", "battery_low")) == 2)
            assert rb.values("water-301", "water_total_m3") == [500.0]  # held, not emitted
            meter.total_m3 = 0.6
            await clock.advance(300)
            await wait_until(lambda: len(rb.values("water-301", "water_total_m3")) == 2)
            reset = [o for o in rb.observations if o.metric == "water_total_m3"][-1]
            assert reset.value == 0.6
            assert reset.attrs == {"baseline": "reset", "previous_total": 500.0}
    finally:
        sim_task.cancel()
        link.unplug()


async def test_combined_energy_may_fall(tmp_path: Path, clock: SimulatedClock) -> None:
    """Net (combined) energy goes down when solar exports: no meter sense on it."""
    from hearthgate.simulators.meter_models import DLT645Meter

    link = PtyLink(tmp_path / "tty")
    meter = DLT645Meter("000000005678", energy_kwh=50.0, power_w=0.0)
    sim_task = asyncio.create_task(MeterBusSimulator(link, [meter], clock=clock).run())
    device = {"id": "power-301", "kind": "power_meter", "protocol": "dlt645",
              "address": "000000005678", "poll": "5m", "energy": "combined",
              "read": ["energy_total_kwh"]}
    try:
        async with running_bus(meter_config(link.path, [device]), clock) as rb:
            await wait_until(lambda: rb.values("power-301", "energy_total_kwh") == [50.0])
            meter.energy_kwh = 49.5
            await clock.advance(300)
            await wait_until(lambda: len(rb.values("power-301", "energy_total_kwh")) == 2)
            assert rb.values("power-301", "energy_total_kwh") == [50.0, 49.5]
    finally:
        sim_task.cancel()
        link.unplug()


async def test_a_driver_bug_is_counted_not_fatal(
    tmp_path: Path, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll with a bug: counted per device, and the schedule carries on."""
    from hearthgate.drivers.cjt188 import CJT188Driver

    calls = 0

    async def broken_poll(self: CJT188Driver, device: object) -> list:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    link = PtyLink(tmp_path / "tty")
    device = {"id": "water-301", "kind": "water_meter", "protocol": "cjt188",
              "address": "00000000001234", "poll": "5m"}
    monkeypatch.setattr(CJT188Driver, "poll", broken_poll)
    try:
        async with running_bus(meter_config(link.path, [device]), clock) as rb:
            await wait_until(lambda: calls == 1)
            await clock.advance(300)
            await wait_until(lambda: calls == 2)
            assert rb.ctx.errors[("water-301", "driver_error")] == 2
    finally:
        link.unplug()
