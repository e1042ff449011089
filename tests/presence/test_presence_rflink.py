"""RFLink 433 MHz: simulated receiver on a real pty -> serial bus -> rflink driver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hearthgate.config import ConfigError
from hearthgate.core.clock import SimulatedClock
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.rflink import RFLinkDriver
from hearthgate.drivers.rflink_codec import RFLinkMatch
from hearthgate.registry import STANDARD
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.rflink import RFLinkReceiverSimulator
from hearthgate.simulators.scenario import parse_scenario, play
from tests.presence.conftest import Collector, make_config, make_ctx, wait_until

DEVICES = [
    {"id": "sos-301", "site": "room-301", "kind": "sos_button", "protocol": "rflink",
     "bus": "rf433", "match": "EV1527;ID=0x5a3c1"},
    {"id": "pir-301", "site": "room-301", "kind": "motion_sensor", "protocol": "rflink",
     "bus": "rf433", "match": "EV1527;ID=0A0B0C"},
    {"id": "door-301", "site": "room-301", "kind": "door_contact", "protocol": "rflink",
     "bus": "rf433", "match": "EV1527;ID=77", "debounce": "1s"},
]


@dataclass
class Rig:
    ctx: DriverContext
    sink: Collector
    driver: RFLinkDriver
    sim: RFLinkReceiverSimulator


@pytest.fixture
async def rig(pty: PtyLink, clock: SimulatedClock) -> AsyncIterator[Rig]:
    cfg = make_config(
        [{"id": "rf433", "type": "serial", "port": pty.path, "baudrate": 57600, "parity": "N"}],
        DEVICES,
    )
    ctx, sink = make_ctx(clock)
    bus = STANDARD.bus_types["serial"].open(cfg.buses[0], ctx)
    driver = STANDARD.protocols["rflink"].create(bus, list(cfg.devices), ctx)
    assert isinstance(driver, RFLinkDriver)
    sim = RFLinkReceiverSimulator(pty, {d["id"]: d["match"] for d in DEVICES}, repeats=5)
    tasks = [asyncio.create_task(bus.run()), asyncio.create_task(driver.run())]
    await wait_until(lambda: bus.is_open)
    yield Rig(ctx, sink, driver, sim)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


async def test_sos_press_with_radio_repeats_is_one_observation(
    rig: Rig, clock: SimulatedClock
) -> None:
    rig.sim.banner()
    sos = RFLinkMatch.parse("EV1527;ID=0x5a3c1")
    await rig.sim.transmit(sos, "ON")
    await wait_until(lambda: rig.driver.packets >= 6)  # banner + 5 repeats
    assert rig.sink.values("sos", "sos-301") == [True]
    obs = rig.sink.of("sos")[0]
    assert (obs.site_id, obs.attrs["protocol"], obs.attrs["cmd"]) == ("room-301", "EV1527", "ON")
    assert rig.sink.values("alive", "sos-301") == [True]
    # A second press, later: a second observation.
    await clock.advance(5)
    await rig.sim.transmit(sos, "ON", repeats=3)
    await wait_until(lambda: rig.driver.packets >= 9)
    assert rig.sink.values("sos", "sos-301") == [True, True]
    assert rig.ctx.error_count() == 0


async def test_held_button_keeps_one_press(rig: Rig, clock: SimulatedClock) -> None:
    sos = RFLinkMatch.parse("EV1527;ID=5A3C1")
    for _ in range(6):  # held for 6 s, repeating every second: still one press
        await rig.sim.transmit(sos, "ON", repeats=2)
        await clock.advance(1)
    await wait_until(lambda: rig.driver.packets >= 12)
    assert rig.sink.values("sos") == [True]


async def test_scenario_drives_motion_and_door(rig: Rig, clock: SimulatedClock) -> None:
    scenario = parse_scenario(
        {
            "steps": [
                {"every": "10m", "count": 3, "device": "pir-301", "do": "motion"},
                {"at": "03:00", "device": "door-301", "do": "door_open"},
                {"at": "03:01", "device": "door-301", "do": "door_close"},
                {"at": "03:02", "device": "door-301", "do": "door_open", "repeats": 2},
                {"at": "1h", "device": "sos-301", "do": "battery", "value": 10},
            ]
        }
    )
    player = asyncio.create_task(play(scenario, clock, rig.sim, duration=4 * 3600))
    for _ in range(4 * 60):
        await clock.advance(60)
        # Let the radio finish and the driver read every line before time moves on.
        await wait_until(
            lambda: not rig.sim.transmitting and rig.driver.packets == rig.sim.lines_sent
        )
    report = await player
    assert len(report.performed) == 7 and not report.unhandled
    await wait_until(lambda: rig.driver.packets == 3 * 5 + 5 + 5 + 2 + 1)
    assert rig.sink.values("motion", "pir-301") == [True, True, True]
    assert rig.sink.values("door_open", "door-301") == [True, False, True]
    assert rig.sink.values("battery_low", "sos-301") == [True]
    opened = rig.sink.of("door_open", "door-301")[0]
    assert opened.at.wall.hour == 3 and opened.at.wall.minute == 0
    assert rig.sink.values("sos") == []  # a battery report is not a press


async def test_bad_lines_are_counted_and_skipped(
    rig: Rig, pty: PtyLink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hearthgate")
    pty.write(b"20;45;EV1527;ID=5A3C1;SWI")  # cut short ...
    pty.write(b"\r\n\x00\xff\xfe garbage \r\n")
    pty.write(b"20;ZZ;EV1527;ID=1;\r\n")
    pty.write(b"A" * 2000)  # a line that never ends
    pty.write(b"\r\n20;46;EV1527;ID=ABCDE;SWITCH=2;CMD=ON;\r\n")  # a neighbour's button
    await rig.sim.transmit(RFLinkMatch.parse("EV1527;ID=5a3c1"), "ON", repeats=1)
    await wait_until(lambda: rig.sink.values("sos") == [True])
    assert rig.ctx.errors[("-", "rflink_line")] == 4
    assert 'match: "EV1527;ID=ABCDE"' in caplog.text


async def test_receiver_unplugged_marks_devices_unreachable(rig: Rig, pty: PtyLink) -> None:
    await rig.sim.transmit(RFLinkMatch.parse("EV1527;ID=5a3c1"), "ON", repeats=1)
    await wait_until(lambda: rig.sink.values("alive", "sos-301") == [True])
    pty.unplug()
    await wait_until(lambda: len(rig.sink.values("alive")) == 4)
    assert rig.sink.values("alive", "sos-301") == [True, False]
    assert rig.sink.values("alive", "door-301") == [False]


async def test_a_line_cut_off_by_the_unplugging_is_counted(rig: Rig, pty: PtyLink) -> None:
    pty.write(b"20;47;EV1527;ID=5A3C1;SWI")  # the receiver goes away in the middle of a line
    await wait_until(lambda: rig.driver._decoder.pending() > 0)
    pty.unplug()
    await wait_until(lambda: len(rig.sink.values("alive")) == 3)
    assert rig.ctx.errors[("-", "rflink_line")] == 1
    assert rig.driver._decoder.pending() == 0


def test_bad_match_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hex"):
        make_config(
            [{"id": "rf", "type": "serial", "port": "/dev/null"}],
            [{"id": "b", "site": "s", "kind": "sos_button", "protocol": "rflink", "bus": "rf",
              "match": "EV1527;ID=xyz"}],
        )
