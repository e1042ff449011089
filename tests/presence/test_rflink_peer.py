"""RFLink against an independent peer: python-rflink's published sample lines
(tests/presence/data/python-rflink/), decoded by our codec and by python-rflink's own parser,
then carried over a real pty to the driver: values read from `CMD=`, `PIR=`, `SMOKEALERT=`;
the receiver's own lines are not errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rflink.parser import decode_packet

from hearthgate.config import ConfigError
from hearthgate.core.clock import SimulatedClock
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.rflink import RFLinkDriver
from hearthgate.drivers.rflink_codec import MAX_LINE, parse_line
from hearthgate.registry import STANDARD
from hearthgate.simulators.links import PtyLink
from tests.presence.conftest import Collector, make_config, make_ctx, wait_until

SAMPLES = Path(__file__).parent / "data" / "python-rflink" / "protocol_samples.txt"


def receiver_lines() -> list[str]:
    """Every line an RFLink receiver prints in the samples (`20;…`; `10;`/`11;` are commands
    sent to it, and `#` lines comments)."""
    return [line.strip() for line in SAMPLES.read_text().splitlines()
            if line.startswith("20;")]


def test_the_samples_are_there() -> None:
    lines = receiver_lines()
    assert len(lines) == 65
    assert "20;12;Pir;ID=aa66;PIR=ON;" in lines
    assert "20;63;SmokeAlert;ID=123456;SMOKEALERT=ON;" in lines


@pytest.mark.parametrize("line", receiver_lines())
def test_every_sample_line_agrees_with_python_rflink(line: str) -> None:
    ours = parse_line(line)
    theirs = decode_packet(line)
    if ours.kind != "device":
        # banners and replies: python-rflink has no protocol for them either
        assert theirs["protocol"] == "unknown"
        return
    assert theirs["protocol"] == ours.protocol.lower()
    # python-rflink pads Kaku IDs to 6 digits ('41' -> '000041'): compare as numbers
    assert int(theirs["id"], 16) == int(ours.fields["ID"], 16)
    if "SWITCH" in ours.fields:
        assert theirs["switch"] == ours.fields["SWITCH"].lower()
    if "CMD" in ours.fields:
        assert theirs["command"] == ours.fields["CMD"].lower()
    for key in ("PIR", "SMOKEALERT", "BAT"):
        if key in ours.fields:
            name = {"BAT": "battery"}.get(key, key.lower())
            assert theirs[name] == ours.fields[key].lower()


# python-rflink's own parser tests (its test_parse.py) hold the receiver's other lines;
# with the debug and settings lines of the RFLink protocol reference they must parse as the
# receiver's, not as errors and not as radio packets.
RECEIVER_OWN = [
    ("20;00;Nodo RadioFrequencyLink - RFLink Gateway V1.1 - R46;", "status"),
    ("20;01;VER=1.1;REV=45;BUILD=04;", "status"),
    ("20;01;PONG;", "status"),
    ("20;02;STATUS;setRF433=ON;setNodoNRF=OFF;setMilight=OFF;setLivingColors=OFF;"
     "setAnsluta=OFF;setGPIO=OFF;setBLE=OFF;setMysensors=OFF;", "status"),
    ("20;01;CMD UNKNOWN;", "status"),
    ("20;02;OK;", "status"),
    ("20;00;Internal Pullup on RF-in disabled;", "status"),
    ("20;01;setGPIO=ON;", "status"),
    ("20;01;MySensors=OFF;NO NRF24L01;", "status"),
    ("20;99;RFDEBUG=ON;", "status"),
    ("20;99;RFUDEBUG=OFF;", "status"),
    ("20;99;QRFDEBUG=ON;", "status"),
    ("20;84;DEBUG;RTS P1;a63f33003cf000665a5a;", "debug"),
    ("20;2A;DEBUG;Pulses=50;Pulses(uSec)= 900,200,825,200,225,825;", "debug"),
    # an RFUDEBUG pulse dump of ~1000 bytes, as long as the receiver prints them
    ("20;75;DEBUG;Pulses=250;Pulses(uSec)=" + ",".join(["1200", "275"] * 105) + ";", "debug"),
]


@pytest.mark.parametrize(("line", "kind"), RECEIVER_OWN)
def test_the_receivers_own_lines_are_recognised(line: str, kind: str) -> None:
    assert len(line) <= MAX_LINE
    packet = parse_line(line)
    assert packet.kind == kind
    assert "ID" not in packet.fields
    decode_packet(line)  # and python-rflink reads them too


# --- through the driver, over a pty --------------------------------------------------------

BUS = [{"id": "rf433", "type": "serial", "port": "", "baudrate": 57600, "parity": "N"}]


def device(ident: str, kind: str, match: str, **more: Any) -> dict[str, Any]:
    return {"id": ident, "site": "room-301", "kind": kind, "protocol": "rflink",
            "bus": "rf433", "match": match, **more}


DEVICES = [
    device("pir-301", "motion_sensor", "Pir;ID=aa66"),
    device("smoke-301", "smoke_sensor", "SmokeAlert;ID=123456"),
    device("sos-301", "sos_button", "NewKaku;ID=cac142"),
    device("door-rts", "door_contact", "RTS;ID=1a602a"),
    device("door-kaku", "door_contact", "Kaku;ID=41;SWITCH=2"),
    device("door-ev", "door_contact", "EV1527;ID=0x5a3c1", open="SWITCH=2", closed="SWITCH=1"),
]


@dataclass
class Rig:
    ctx: DriverContext
    sink: Collector
    driver: RFLinkDriver
    pty: PtyLink

    async def send(self, *lines: str) -> None:
        before = self.driver.packets
        for line in lines:
            self.pty.write(line.encode() + b"\r\n")
        await wait_until(lambda: self.driver.packets == before + len(lines))


@pytest.fixture
async def rig(pty: PtyLink, clock: SimulatedClock) -> AsyncIterator[Rig]:
    cfg = make_config([{**BUS[0], "port": pty.path}], DEVICES)
    ctx, sink = make_ctx(clock)
    bus = STANDARD.bus_types["serial"].open(cfg.buses[0], ctx)
    driver = STANDARD.protocols["rflink"].create(bus, list(cfg.devices), ctx)
    assert isinstance(driver, RFLinkDriver)
    tasks = [asyncio.create_task(bus.run()), asyncio.create_task(driver.run())]
    await wait_until(lambda: bus.is_open)
    yield Rig(ctx, sink, driver, pty)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


async def test_pir_and_smoke_values_are_read_from_their_own_keys(
    rig: Rig, clock: SimulatedClock
) -> None:
    await rig.send("20;12;Pir;ID=aa66;PIR=ON;", "20;63;SmokeAlert;ID=123456;SMOKEALERT=ON;")
    await clock.advance(5)
    # the protocol reference: PIR=ON|OFF, SMOKEALERT=ON|OFF
    await rig.send("20;13;Pir;ID=aa66;PIR=OFF;", "20;64;SmokeAlert;ID=123456;SMOKEALERT=OFF;")
    assert rig.sink.values("motion", "pir-301") == [True, False]
    assert rig.sink.values("smoke", "smoke-301") == [True, False]
    assert rig.sink.of("smoke")[0].attrs == {"protocol": "SmokeAlert", "cmd": "ON",
                                             "key": "SMOKEALERT"}
    assert rig.sink.values("sos") == []
    assert rig.ctx.error_count() == 0


async def test_off_is_not_a_press(
    rig: Rig, clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hearthgate")
    # python-rflink's samples for this remote: ALLOFF on switch 1, OFF on switch 3
    await rig.send("20;E0;NewKaku;ID=cac142;SWITCH=1;CMD=ALLOFF;",
                   "20;3B;NewKaku;ID=cac142;SWITCH=3;CMD=OFF;")
    assert rig.sink.values("sos") == []
    assert "sos-301 sent CMD=ALLOFF, which is not a press" in caplog.text  # said, not silent
    await rig.send("20;3C;NewKaku;ID=cac142;SWITCH=3;CMD=ON;")
    assert rig.sink.values("sos", "sos-301") == [True]


async def test_rts_down_is_not_a_door_opening(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hearthgate")
    await rig.send("20;39;RTS;ID=1a602a;SWITCH=01;CMD=DOWN;",
                   "20;3A;RTS;ID=1a602a;SWITCH=01;CMD=DOWN;")
    assert rig.sink.values("door_open") == []
    assert rig.ctx.errors[("door-rts", "rflink_value")] == 2  # counted every time,
    assert caplog.text.count("door-rts sent") == 1  # logged once
    assert rig.sink.values("alive", "door-rts") == [True]  # it is heard, though


async def test_a_kaku_contact_reports_closed_and_open(rig: Rig, clock: SimulatedClock) -> None:
    await rig.send("20;0C;Kaku;ID=41;SWITCH=2;CMD=OFF;")
    await clock.advance(5)
    await rig.send("20;0D;Kaku;ID=41;SWITCH=2;CMD=ON;")
    await rig.send("20;06;Kaku;ID=41;SWITCH=1;CMD=ON;")  # the same remote's other key
    assert rig.sink.values("door_open", "door-kaku") == [False, True]


async def test_an_ev1527_contact_with_two_codes_can_report_closed(
    rig: Rig, clock: SimulatedClock
) -> None:
    # An EV1527 contact sends CMD=ON for both: only SWITCH tells open from closed.
    await rig.send("20;01;EV1527;ID=5A3C1;SWITCH=2;CMD=ON;",
                   "20;02;EV1527;ID=5A3C1;SWITCH=2;CMD=ON;")
    await clock.advance(30)
    await rig.send("20;03;EV1527;ID=5A3C1;SWITCH=1;CMD=ON;")
    await clock.advance(1)  # within the debounce of the close: still a new state when reopened
    await rig.send("20;04;EV1527;ID=5A3C1;SWITCH=2;CMD=ON;")
    assert rig.sink.values("door_open", "door-ev") == [True, False, True]
    await rig.send("20;05;EV1527;ID=5A3C1;SWITCH=4;CMD=ON;")  # neither code
    assert rig.ctx.errors[("door-ev", "rflink_value")] == 1
    assert rig.sink.values("door_open", "door-ev") == [True, False, True]


async def test_receiver_lines_are_not_errors(rig: Rig) -> None:
    await rig.send(*(line for line, _ in RECEIVER_OWN))
    await rig.send(*(line for line in receiver_lines() if not parse_line(line).get("ID")))
    assert rig.ctx.error_count() == 0
    assert rig.driver.receiver_lines == rig.driver.packets


async def test_a_2_kib_line_is_counted_once_and_the_next_line_is_read(rig: Rig) -> None:
    rig.pty.write(b"20;76;DEBUG;Pulses=511;Pulses(uSec)=" + b"1200," * 400 + b"\r\n")
    await rig.send("20;12;Pir;ID=aa66;PIR=ON;")
    assert rig.ctx.errors[("-", "rflink_line")] == 1
    assert rig.sink.values("motion", "pir-301") == [True]


def test_open_and_closed_codes_are_checked() -> None:
    bus = [{**BUS[0], "port": "/dev/null"}]
    with pytest.raises(ConfigError, match="both 'open' and 'closed'"):
        make_config(bus, [device("d", "door_contact", "EV1527;ID=1", open="SWITCH=2")])
    with pytest.raises(ConfigError, match="same code"):
        make_config(bus, [device("d", "door_contact", "EV1527;ID=1", open="SWITCH=2",
                                 closed="SWITCH=02")])
    with pytest.raises(ConfigError, match="SWITCH="):
        make_config(bus, [device("d", "door_contact", "EV1527;ID=1", open="ID=2",
                                 closed="SWITCH=1")])
    with pytest.raises(ConfigError, match="for door contacts"):
        make_config(bus, [device("d", "motion_sensor", "EV1527;ID=1", open="SWITCH=2",
                                 closed="SWITCH=1")])
