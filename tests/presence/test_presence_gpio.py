"""GPIO PIR and reed switch, on gpiozero's MockFactory pins, with a simulated clock."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero.pins.mock import MockFactory

from hearthgate.config import ConfigError
from hearthgate.core.clock import SimulatedClock
from hearthgate.drivers.gpio import GpioBus, GpioDeviceOptions, GpioDriver
from tests.presence.conftest import make_config, make_ctx


def _setup(clock: SimulatedClock, devices: list[dict]) -> tuple:
    cfg = make_config([{"id": "pins", "type": "gpio", "pin_factory": "mock"}], devices)
    factory = MockFactory()
    bus = GpioBus("pins", cfg.buses[0].options, factory=factory)
    ctx, sink = make_ctx(clock)
    return GpioDriver(bus, list(cfg.devices), ctx), factory, sink, ctx


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_pir_and_reed_switch(clock: SimulatedClock) -> None:
    driver, factory, sink, _ctx = _setup(
        clock,
        [
            {"id": "pir-1", "site": "home", "kind": "motion_sensor", "protocol": "gpio",
             "bus": "pins", "pin": 17},
            {"id": "door-1", "site": "home", "kind": "door_contact", "protocol": "gpio",
             "bus": "pins", "pin": "GPIO27", "bounce": "100ms"},
        ],
    )
    reed = factory.pin(27)
    task = asyncio.create_task(driver.run())
    await _settle()
    assert sink.values("motion", "pir-1") == [False]
    # Nothing pulls the pin down yet: an open reed, a door that reads open.
    assert sink.values("door_open", "door-1") == [True]
    assert sink.values("alive") == [True, True]
    reed.drive_low()  # door shut: the reed closes the pulled-up pin to ground
    await _settle()
    await clock.advance(0.1)
    assert sink.values("door_open", "door-1") == [True, False]
    sink.items.clear()

    factory.pin(17).drive_high()
    await _settle()
    await clock.advance(0.05)
    assert sink.values("motion", "pir-1") == [True]

    # The door opens and the contact chatters: one observation, after it settles.
    for level in (True, False, True, False, True):
        reed.drive_high() if level else reed.drive_low()
        await _settle()
        await clock.advance(0.02)
    assert sink.values("door_open", "door-1") == []
    await clock.advance(0.15)  # settled: no edge for a whole bounce period
    assert sink.values("door_open", "door-1") == [True]
    # A bounce that ends where it started reports nothing.
    reed.drive_low()
    await _settle()
    reed.drive_high()
    await _settle()
    await clock.advance(0.2)
    assert sink.values("door_open", "door-1") == [True]
    factory.pin(17).drive_low()
    await _settle()
    await clock.advance(0.05)
    assert sink.values("motion", "pir-1") == [True, False]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_inverted_and_floating_pins(clock: SimulatedClock) -> None:
    driver, factory, sink, _ = _setup(
        clock,
        [
            {"id": "pir-2", "site": "home", "kind": "motion_sensor", "protocol": "gpio",
             "bus": "pins", "pin": 5, "pull_up": None, "active_state": False},
        ],
    )
    factory.pin(5).drive_high()
    task = asyncio.create_task(driver.run())
    await _settle()
    assert sink.values("motion") == [False]
    factory.pin(5).drive_low()  # an active-low PIR module
    await _settle()
    await clock.advance(0.05)
    assert sink.values("motion") == [False, True]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_pin_in_use_marks_device_unreachable(clock: SimulatedClock) -> None:
    driver, _factory, sink, _ctx = _setup(
        clock,
        [
            {"id": "pir-a", "site": "home", "kind": "motion_sensor", "protocol": "gpio",
             "bus": "pins", "pin": 6},
            {"id": "pir-b", "site": "home", "kind": "motion_sensor", "protocol": "gpio",
             "bus": "pins", "pin": 6},
        ],
    )
    task = asyncio.create_task(driver.run())
    await _settle()
    alive = {o.device_id: o.value for o in sink.of("alive")}
    assert alive == {"pir-a": True, "pir-b": False}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_bad_gpio_options() -> None:
    with pytest.raises(ValueError):
        GpioDeviceOptions.model_validate({"pin": 4, "pull_up": None})
    with pytest.raises(ValueError):
        GpioDeviceOptions.model_validate({"pin": 4, "pull_up": True, "active_state": True})
    with pytest.raises(ConfigError):
        make_config(
            [{"id": "pins", "type": "gpio"}],
            [{"id": "x", "site": "s", "kind": "motion_sensor", "protocol": "gpio", "bus": "pins",
              "pin": 4, "bounce": "soon"}],
        )
    assert GpioDeviceOptions(pin=4).pull_up_for("door_contact") is True
    assert GpioDeviceOptions(pin=4).pull_up_for("motion_sensor") is False
