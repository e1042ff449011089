"""OSDP against an independent peer: libosdp 3.2.9's `PeripheralDevice` (PyPI `libosdp`, a C
implementation of IEC 60839-11-5) on a real pseudo-terminal, our driver as the control panel:
online, card reads, input changes, tamper, the mark byte, noise before SOM, the Secure
Channel with a reader's key and with SCBK-D, a reader that enforces it while the gateway has
no key, and a wrong key. Plus a scripted reader answering with a forged security block."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sys
import tty
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from osdp import (
    Capability,
    CardFormat,
    Channel,
    Event,
    KeyStore,
    LibFlag,
    LogLevel,
    PDCapabilities,
    PDInfo,
    PeripheralDevice,
    StatusReportType,
)

from hearthgate.config import GatewayConfig
from hearthgate.core.clock import SimulatedClock
from hearthgate.drivers import wiegand
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.osdp import OSDPDriver
from hearthgate.drivers.osdp_codec import (
    Command,
    OSDPPacket,
    OSDPStreamDecoder,
    RawCardRead,
    Reply,
)
from hearthgate.health import DeviceHealth
from hearthgate.registry import STANDARD
from hearthgate.simulators.links import PtyLink
from tests.presence.conftest import (
    Collector,
    make_config,
    make_ctx,
    scripted_pd,
    wait_until,
)

CAPS = PDCapabilities([
    (Capability.ContactStatusMonitoring, 1, 4),
    (Capability.CardDataFormat, 1, 1),
])


class PtyChannel(Channel):
    """libosdp's side of a pseudo-terminal: it reads and writes the master end (from the
    PD's own thread). `noise` is written before every reply, as a line might."""

    def __init__(self, fd: int, noise: bytes = b"") -> None:
        super().__init__()
        self.fd = fd
        self.noise = noise
        self.sent: list[bytes] = []

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:  # EIO: nobody has the other end open (yet)
            if exc.errno == errno.EIO:
                return b""
            raise

    def write(self, buf: bytes) -> int:
        data = bytes(buf)
        self.sent.append(data)
        if self.noise:
            os.write(self.fd, self.noise)
        return os.write(self.fd, data)

    def flush(self) -> None:
        return None


@dataclass
class Rig:
    config: GatewayConfig
    ctx: DriverContext
    sink: Collector
    driver: OSDPDriver
    pd: PeripheralDevice
    channel: PtyChannel

    def errors(self) -> dict[str, int]:
        return {k: n for (d, k), n in self.ctx.errors.items() if d == "gate-a"}


@contextlib.asynccontextmanager
async def libosdp_reader(
    clock: SimulatedClock, *, pd_key: bytes | None = None, enforce: bool = False,
    noise: bytes = b"", **device: Any,
) -> AsyncIterator[Rig]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    channel = PtyChannel(master, noise)
    flags = [LibFlag.EnforceSecure] if enforce else []
    pd = PeripheralDevice(PDInfo(1, channel, scbk=pd_key, flags=flags), CAPS,
                          log_level=LogLevel.Error)
    cfg = make_config(
        [{"id": "door-rs485", "type": "serial", "port": os.ttyname(slave), "baudrate": 115200,
          "parity": "N", "timeout": "300ms"}],
        [{"id": "gate-a", "site": "block-a", "kind": "access_controller", "protocol": "osdp",
          "bus": "door-rs485", "address": 1, "poll": "50ms", **device}],
    )
    ctx, sink = make_ctx(clock)
    bus = STANDARD.bus_types["serial"].open(cfg.buses[0], ctx)
    driver = STANDARD.protocols["osdp"].create(bus, list(cfg.devices), ctx)
    assert isinstance(driver, OSDPDriver)
    pd.start()
    # The driver starts with the bus, before its port is open, as in the service.
    tasks = [asyncio.create_task(driver.run()), asyncio.create_task(bus.run())]
    try:
        yield Rig(cfg, ctx, sink, driver, pd, channel)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        pd.teardown()
        os.close(master)
        os.close(slave)


def card_event(facility: int, number: int) -> dict[str, Any]:
    return {"event": Event.CardRead, "reader_no": 0, "direction": 0, "length": 26,
            "format": CardFormat.Wiegand, "data": wiegand.encode_bytes(facility, number)}


def status_event(kind: int, report: list[int]) -> dict[str, Any]:
    return {"event": Event.Status, "type": kind, "report": bytes(report)}


async def exercise(rig: Rig) -> None:
    """Online, then a card, an input change and tamper, each as the reader reports it."""
    await wait_until(lambda: rig.sink.values("alive") == [True], within=10)
    rig.pd.submit_event(card_event(123, 4567))
    await wait_until(lambda: rig.sink.values("card") != [], within=5)
    card = rig.sink.of("card")[0]
    assert card.value == "123:4567"
    assert {k: card.attrs[k] for k in ("facility", "number", "format", "granted")} == {
        "facility": 123, "number": 4567, "format": "wiegand26", "granted": True}
    assert rig.sink.values("access_granted") == [True]
    rig.pd.submit_event(status_event(StatusReportType.Input, [1, 0, 0, 0]))
    await wait_until(lambda: rig.sink.values("door_open") == [True], within=5)
    rig.pd.submit_event(status_event(StatusReportType.Input, [0, 0, 0, 0]))
    await wait_until(lambda: rig.sink.values("door_open") == [True, False], within=5)
    rig.pd.submit_event(status_event(StatusReportType.Local, [1, 0]))
    await wait_until(lambda: rig.sink.values("tamper")[-1:] == [True], within=5)
    # never offline in between, and not at start (no start-up device_offline)
    assert rig.sink.values("alive") == [True]


def secure_types(rig: Rig) -> list[int]:
    """The SCS types of the security blocks of every reply the reader sent, in order."""
    decoded = [p for raw in rig.channel.sent for p in OSDPStreamDecoder().feed(raw)]
    return [p.scb_type for p in decoded if isinstance(p, OSDPPacket) and p.scb is not None]


async def test_plain_reader_online_card_input_tamper(clock: SimulatedClock) -> None:
    async with libosdp_reader(clock, known_cards=["123:4567"]) as rig:
        await exercise(rig)
        assert not rig.pd.is_sc_active()
        assert secure_types(rig) == []
        # libosdp's Python PD cannot answer an input status query (its binding returns no
        # report): one NAK 09 at bring-up, counted, nothing else
        assert set(rig.errors()) <= {"nak"}


async def test_mark_byte_both_ways(clock: SimulatedClock) -> None:
    # We send FF before every command, as libosdp's own control panel does; libosdp 3.2.9's
    # reader takes it but does not echo it, so the echo that OSDP 2.2 readers send is put
    # on the line here by the channel (an FF before each reply).
    async with libosdp_reader(clock, known_cards=["123:4567"], mark_byte=True,
                              noise=b"\xff") as rig:
        await exercise(rig)
        assert set(rig.errors()) <= {"nak"}  # the mark byte is no error, either way


async def test_noise_before_som_does_not_cost_the_reply(clock: SimulatedClock) -> None:
    async with libosdp_reader(clock, known_cards=["123:4567"], noise=b"\x00\x13\xff") as rig:
        await exercise(rig)
        errors = rig.errors()
        assert errors.get("garbage", 0) >= 4  # counted, every time
        assert "timeout" not in errors and "bad_packet" not in errors


async def test_secure_channel_with_the_readers_key(
    clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hearthgate")
    key = KeyStore.gen_key()
    async with libosdp_reader(clock, pd_key=key, enforce=True, known_cards=["123:4567"],
                              scbk=key.hex()) as rig:
        await exercise(rig)
        assert rig.pd.is_sc_active()
        assert set(rig.errors()) <= {"nak"}
        # after the handshake (SCS_12, SCS_14) every reply was MAC'd: SCS_16 / SCS_18
        types = secure_types(rig)
        assert types[:2] == [0x12, 0x14]
        assert set(types[2:]) <= {0x16, 0x18} and 0x18 in types
    assert "secure channel established" in caplog.text
    assert key.hex() not in caplog.text  # a key is never logged


async def test_secure_channel_with_scbk_d_install_mode(clock: SimulatedClock) -> None:
    # a reader fresh from the box: no key of its own, install mode, SCBK-D
    async with libosdp_reader(clock, scbk="default", mark_byte=True) as rig:
        await wait_until(lambda: rig.sink.values("alive") == [True], within=10)
        rig.pd.submit_event(card_event(7, 42))
        await wait_until(lambda: rig.sink.values("card") == ["7:42"], within=5)
        # (libosdp's is_sc_active() stays False under SCBK-D: it waits for a KEYSET), but
        # the card came in a MAC'd, encrypted reply: SCS_18
        assert 0x18 in secure_types(rig)
        assert set(rig.errors()) <= {"nak"}


async def test_a_reader_that_enforces_sc_without_a_key_is_not_online(
    clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hearthgate")
    async with libosdp_reader(clock, pd_key=KeyStore.gen_key(), enforce=True) as rig:
        await wait_until(lambda: rig.sink.values("alive") == [False], within=10)
        alive = rig.sink.of("alive")[0]
        assert "requires the secure channel" in alive.attrs["reason"]
        assert "no scbk" in alive.attrs["reason"]
        await asyncio.sleep(0.5)
        assert rig.sink.values("alive") == [False]  # never online, no alert lost in silence
        # and `devices` / P/devices say why
        health = DeviceHealth(rig.config)
        for obs in rig.sink.items:
            health.observe(obs)
        gate = health.snapshot(clock.now())[0]
        assert gate["online"] is False and "requires the secure channel" in gate["why"]
    assert caplog.text.count("osdp gate-a: the reader requires the secure channel") == 1


async def test_a_wrong_key_fails_the_handshake_and_is_not_online(clock: SimulatedClock) -> None:
    async with libosdp_reader(clock, pd_key=KeyStore.gen_key(), enforce=True,
                              scbk=KeyStore.gen_key().hex()) as rig:
        await wait_until(lambda: rig.sink.values("alive") == [False], within=10)
        reason = rig.sink.of("alive")[0].attrs["reason"]
        assert reason.startswith("secure channel handshake failed")
        assert "another key" in reason
        assert not rig.pd.is_sc_active()


async def test_a_session_without_cryptography_is_not_online_and_says_why(
    clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The config was checked where `cryptography` imported; at run time it does not (the
    # check refuses this otherwise: test_osdp_extra.py). The reader is not online, the
    # reason names the extra, and no bad input is counted against the reader.
    caplog.set_level(logging.WARNING, logger="hearthgate")
    key = KeyStore.gen_key()
    async with libosdp_reader(clock, pd_key=key, enforce=True, scbk=key.hex()) as rig:
        for name in [n for n in sys.modules if n.split(".")[0] == "cryptography"]:
            monkeypatch.setitem(sys.modules, name, None)
        await wait_until(lambda: rig.sink.values("alive") == [False], within=10)
        reason = rig.sink.of("alive")[0].attrs["reason"]
        assert reason.startswith("secure channel unavailable: 'cryptography'")
        assert "pip install 'hearthgate[osdp-secure]'" in reason
        assert "security" not in rig.errors()
        assert not rig.pd.is_sc_active()
    assert caplog.text.count("osdp gate-a: secure channel unavailable") == 1


# --- a reader answering with a forged security block (scripted: libosdp would not) ---------



async def test_a_forged_security_block_outside_a_session_is_refused(
    pty: PtyLink, clock: SimulatedClock
) -> None:
    card = RawCardRead(0, 1, 26, wiegand.encode_bytes(123, 4567)).encode()
    forged: list[int] = []

    def answer(p: OSDPPacket) -> bytes | None:
        if p.code == Command.POLL and len(forged) < 3:
            forged.append(p.sequence)
            # an SCS_18 "card read" with a made-up MAC, while no session exists
            return OSDPPacket(1, Reply.RAW, card, p.sequence, reply=True, scb=b"\x02\x18",
                              mac=b"\xde\xad\xbe\xef").encode()
        if p.code == Command.ID:
            return OSDPPacket(1, Reply.PDID, bytes(12), p.sequence, reply=True).encode()
        return OSDPPacket(1, Reply.ACK, sequence=p.sequence, reply=True).encode()

    cfg = make_config(
        [{"id": "door-rs485", "type": "serial", "port": pty.path, "baudrate": 9600,
          "parity": "N", "timeout": "300ms"}],
        [{"id": "gate-a", "site": "block-a", "kind": "access_controller", "protocol": "osdp",
          "bus": "door-rs485", "address": 1, "poll": "20ms"}],
    )
    ctx, sink = make_ctx(clock)
    bus = STANDARD.bus_types["serial"].open(cfg.buses[0], ctx)
    driver = STANDARD.protocols["osdp"].create(bus, list(cfg.devices), ctx)
    tasks = [asyncio.create_task(bus.run()), asyncio.create_task(driver.run()),
             asyncio.create_task(scripted_pd(pty, answer))]
    try:
        await wait_until(lambda: len(forged) == 3 and ctx.errors[("gate-a", "security")] == 3,
                         within=10)
        await wait_until(lambda: sink.values("alive")[-1:] == [True], within=5)
        assert sink.values("card") == []  # never believed
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
