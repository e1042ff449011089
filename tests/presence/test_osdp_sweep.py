"""OSDP readers at addresses the config does not name (walk test only): the driver asks the
other addresses one per round and reports the readers that answer; in service it asks none.
A real pty, the serial bus and the driver; the line answers what a script says, bad replies
included; and libosdp's reader as the independent peer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator
from typing import Any

import pytest
from osdp import KeyStore, LibFlag, LogLevel, PDInfo, PeripheralDevice

from hearthgate.core.clock import SystemClock
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.osdp import OSDPDriver
from hearthgate.drivers.osdp_codec import Command, OSDPPacket, Reply
from hearthgate.registry import STANDARD
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.osdp import OSDPPeripheral
from tests.presence.conftest import make_config, make_ctx, scripted_pd, wait_until
from tests.presence.test_osdp_libosdp import CAPS, PtyChannel


def _reply(address: int, code: int, data: bytes, p: OSDPPacket) -> bytes:
    return OSDPPacket(address, code, data, sequence=p.sequence, reply=True).encode()


# What each unconfigured address answers to the probe (missing: silence).
PROBED = {
    2: lambda p: b"\x00\xff\x13\x37",  # line noise, no packet
    3: lambda p: _reply(9, Reply.PDID, OSDPPeripheral(9).identity.encode(), p),  # not from 3
    4: lambda p: bytes.fromhex("53 84 08 00 04 45 08 07"),  # a packet with a bad CRC
    5: lambda p: _reply(5, Reply.PDID, b"\x01\x02\x03", p),  # a short PDID: still a reader
    6: lambda p: _reply(6, Reply.PDID, OSDPPeripheral(6).identity.encode(), p),
    7: lambda p: _reply(7, Reply.NAK, b"\x06", p),  # wants the secure channel: a reader too
    8: lambda p: bytes.fromhex("53 88 FF FF 04"),  # an impossible length
}


class Line:
    """The configured reader at address 1 and the script for the others."""

    def __init__(self) -> None:
        self.reader = OSDPPeripheral(address=1)
        self.asked: list[int] = []

    def answer(self, p: OSDPPacket) -> bytes | None:
        self.asked.append(p.address)
        if p.address == 1:
            reply = self.reader.handle(p)
            return reply.encode() if reply is not None else None
        assert p.code == Command.ID and p.sequence == 0  # a probe, nothing else
        script = PROBED.get(p.address)
        return script(p) if script else None


Heard = list[tuple[str, str, dict[str, Any]]]  # what `ctx.heard_unknown` was told


@contextlib.asynccontextmanager
async def rig(pty: PtyLink, walking: bool
              ) -> AsyncIterator[tuple[DriverContext, OSDPDriver, Line, Heard]]:
    cfg = make_config(
        [{"id": "rs485-3", "type": "serial", "port": pty.path, "baudrate": 115200,
          "parity": "N"}],
        [{"id": "gate-a", "site": "block-a", "kind": "access_controller", "protocol": "osdp",
          "bus": "rs485-3", "address": 1, "poll": "20ms", "reply_timeout": "100ms"}],
    )
    ctx, _ = make_ctx(SystemClock())
    heard: Heard = []
    ctx.on_unknown = lambda *item: heard.append(item)
    ctx.walking = lambda: walking
    line = Line()
    bus = STANDARD.bus_types["serial"].open(cfg.buses[0], ctx)
    driver = STANDARD.protocols["osdp"].create(bus, list(cfg.devices), ctx)
    assert isinstance(driver, OSDPDriver)
    tasks = [asyncio.create_task(scripted_pd(pty, line.answer)), asyncio.create_task(bus.run())]
    await wait_until(lambda: bus.is_open)
    tasks.append(asyncio.create_task(driver.run()))
    try:
        yield ctx, driver, line, heard
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def test_in_service_no_other_address_is_asked(pty: PtyLink) -> None:
    async with rig(pty, walking=False) as (_, driver, line, heard):
        await wait_until(lambda: driver.pds[0].ready and len(line.asked) > 30)
        assert set(line.asked) == {1} and heard == []


async def test_walk_test_finds_readers_at_other_addresses_bad_replies_ignored(
    pty: PtyLink,
) -> None:
    async with rig(pty, walking=True) as (ctx, driver, line, heard):
        await wait_until(lambda: 10 in line.asked, within=15)
        keys = [key for _, key, _ in heard]
        # Noise, a reply from another address, a bad CRC and a bad length are no reader.
        assert sorted(set(keys)) == ["rs485-3 address 5", "rs485-3 address 6",
                                     "rs485-3 address 7"]
        assert ("osdp", "rs485-3 address 6", {
            "id": "reader-6", "kind": "access_controller", "protocol": "osdp",
            "bus": "rs485-3", "address": 6}) in heard
        # The configured address is never probed, and nothing is held against its reader.
        probes = [a for a in line.asked if a != 1]
        assert probes[:10] == [0, *range(2, 11)]
        assert not [k for k in ctx.errors if k[0] == "gate-a"]
        # ...but what answered damaged is counted and logged, under no device.
        assert [k for k in ctx.errors if k[0] == "-" and k[1].startswith("osdp_probe_")]
        assert driver.pds[0].ready and driver.pds[0].failures == 0
        # Polling goes on between probes: one probe per round at most.
        first, last = line.asked.index(2), line.asked.index(10)
        assert line.asked[first:last].count(1) >= 8


@pytest.mark.parametrize("enforce", [False, True], ids=["plain", "enforces-secure-channel"])
async def test_walk_test_finds_a_libosdp_reader_at_another_address(enforce: bool) -> None:
    """The independent peer: libosdp 3.2.9's reader set to address 4 while the config says 1
    (its DIP switches moved); also when it enforces the secure channel (it answers then, if
    only with a NAK, and that is enough to be found)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    channel = PtyChannel(master)
    info = (PDInfo(4, channel, scbk=KeyStore.gen_key(), flags=[LibFlag.EnforceSecure])
            if enforce else PDInfo(4, channel))
    pd = PeripheralDevice(info, CAPS, log_level=LogLevel.Error)
    cfg = make_config(
        [{"id": "door-rs485", "type": "serial", "port": os.ttyname(slave), "baudrate": 115200,
          "parity": "N", "timeout": "300ms"}],
        [{"id": "gate-a", "site": "block-a", "kind": "access_controller", "protocol": "osdp",
          "bus": "door-rs485", "address": 1, "poll": "50ms", "reply_timeout": "100ms"}],
    )
    ctx, _ = make_ctx(SystemClock())
    heard: Heard = []
    ctx.on_unknown = lambda *item: heard.append(item)
    ctx.walking = lambda: True
    bus = STANDARD.bus_types["serial"].open(cfg.buses[0], ctx)
    driver = STANDARD.protocols["osdp"].create(bus, list(cfg.devices), ctx)
    pd.start()
    tasks = [asyncio.create_task(driver.run()), asyncio.create_task(bus.run())]
    try:
        await wait_until(lambda: bool(heard), within=20)
        assert heard[0] == ("osdp", "door-rs485 address 4", {
            "id": "reader-4", "kind": "access_controller", "protocol": "osdp",
            "bus": "door-rs485", "address": 4})
        assert {key for _, key, _ in heard} == {"door-rs485 address 4"}
        # The configured address is silent: that reader is (rightly) not online.
        assert not driver.pds[0].ready
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        pd.teardown()
        os.close(master)
        os.close(slave)
