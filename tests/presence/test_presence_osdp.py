"""OSDP: simulated peripherals on a real pty -> serial bus -> osdp driver (gateway as panel)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hearthgate.config import ConfigError, GatewayConfig
from hearthgate.core.clock import SystemClock
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.osdp import OSDPDriver
from hearthgate.drivers.osdp_codec import (
    Command,
    OSDPPacket,
    RawCardRead,
    Reply,
)
from hearthgate.registry import STANDARD
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.osdp import OSDPBusSimulator, OSDPPeripheral
from hearthgate.simulators.scenario import devices_from_config, parse_scenario, play
from tests.presence.conftest import (
    Collector,
    make_config,
    make_ctx,
    scripted_pd,
    wait_until,
)

FAST = {"poll": "20ms", "reply_timeout": "100ms"}


def _config(pty: PtyLink, devices: list[dict[str, Any]]) -> GatewayConfig:
    return make_config(
        [{"id": "rs485-3", "type": "serial", "port": pty.path, "baudrate": 115200,
          "parity": "N"}],
        [{"site": "block-a", "kind": "access_controller", "protocol": "osdp",
          "bus": "rs485-3", **FAST, **d} for d in devices],
    )


@dataclass
class Rig:
    ctx: DriverContext
    sink: Collector
    driver: OSDPDriver
    cfg: GatewayConfig


@contextlib.asynccontextmanager
async def running(
    pty: PtyLink, devices: list[dict[str, Any]], peer: Callable[[], Awaitable[None]]
) -> AsyncIterator[Rig]:
    cfg = _config(pty, devices)
    ctx, sink = make_ctx(SystemClock())
    bus = STANDARD.bus_types["serial"].open(cfg.buses[0], ctx)
    driver = STANDARD.protocols["osdp"].create(bus, list(cfg.devices), ctx)
    assert isinstance(driver, OSDPDriver)
    tasks = [asyncio.create_task(peer()), asyncio.create_task(bus.run())]
    await wait_until(lambda: bus.is_open)
    tasks.append(asyncio.create_task(driver.run()))
    try:
        yield Rig(ctx, sink, driver, cfg)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def test_wiegand_26_card_read_end_to_end(pty: PtyLink) -> None:
    pd = OSDPPeripheral(address=1)
    sim = OSDPBusSimulator(pty, [pd])
    devices = [{"id": "gate-a", "address": 1, "known_cards": ["123:4567"]}]
    async with running(pty, devices, sim.run) as rig:
        await wait_until(lambda: rig.driver.pds[0].ready)
        # Start-up: identity asked, local and input status reported once.
        assert rig.driver.pds[0].identity == pd.identity
        assert rig.sink.values("tamper") == [False]
        assert rig.sink.values("power_fault") == [False]
        assert rig.sink.values("door_open") == [False]
        assert rig.sink.values("exit_button") == [False]
        assert rig.sink.values("alive") == [True]
        pd.present_card(123, 4567)
        pd.present_card(123, 9999)
        await wait_until(lambda: len(rig.sink.of("card")) == 2)
        first, second = rig.sink.of("card")
        assert first.value == "123:4567"
        assert first.attrs == {"reader": 0, "bit_count": 26, "format": "wiegand26",
                               "facility": 123, "number": 4567, "granted": True}
        assert (second.attrs["number"], second.attrs["granted"]) == (9999, False)
        assert first.device_id == "gate-a" and first.site_id == "block-a"
        assert rig.ctx.error_count() == 0


async def test_inputs_tamper_and_34_bit_cards(pty: PtyLink) -> None:
    pd = OSDPPeripheral(address=5)
    sim = OSDPBusSimulator(pty, [pd])
    async with running(pty, [{"id": "door-b", "address": 5}], sim.run) as rig:
        await wait_until(lambda: rig.driver.pds[0].ready)
        pd.set_input(0, True)  # door opens
        pd.set_input(1, True)  # exit button pressed
        pd.set_input(1, False)
        pd.set_tamper(True)
        pd.set_power_fault(True)
        pd.present_card(40000, 12345, bits=34)
        pd.present_raw(RawCardRead(0, 1, 26, bytes.fromhex("3D88EB80")))  # parity error
        pd.present_raw(RawCardRead(1, 0, 37, bytes.fromhex("0102030408")))
        await wait_until(lambda: len(rig.sink.of("card")) == 2)
        assert rig.sink.values("door_open") == [False, True]
        assert rig.sink.values("exit_button") == [False, True, False]
        assert rig.sink.values("tamper") == [False, True]
        assert rig.sink.values("power_fault") == [False, True]
        card34, raw37 = rig.sink.of("card")
        assert card34.value == "40000:12345" and card34.attrs["format"] == "wiegand34"
        assert "granted" not in card34.attrs  # no known_cards: the gateway cannot tell
        assert raw37.value == "raw:0102030408" and raw37.attrs["format"] == "raw"
        assert rig.ctx.errors[("door-b", "card_parity")] == 1


async def test_silent_pd_goes_unreachable_and_comes_back(pty: PtyLink) -> None:
    a, b = OSDPPeripheral(address=1), OSDPPeripheral(address=2)
    sim = OSDPBusSimulator(pty, [a, b])
    devices = [{"id": "gate-a", "address": 1}, {"id": "gate-b", "address": 2,
                                                "unreachable_after": 2}]
    async with running(pty, devices, sim.run) as rig:
        await wait_until(lambda: all(p.ready for p in rig.driver.pds))
        b.silent = True
        await wait_until(lambda: rig.sink.values("alive", "gate-b") == [True, False])
        assert rig.ctx.errors[("gate-b", "timeout")] >= 2
        a.present_card(1, 2)  # the other reader on the bus keeps working
        await wait_until(lambda: rig.sink.values("card", "gate-a") == ["1:2"])
        b.silent = False
        b.set_input(0, True)
        await wait_until(lambda: rig.sink.values("alive", "gate-b") == [True, False, True])
        await wait_until(lambda: rig.sink.values("door_open", "gate-b")[-1:] == [True])
        assert rig.sink.values("alive", "gate-a") == [True]


async def test_damaged_reply_is_repeated_not_lost(pty: PtyLink) -> None:
    pd = OSDPPeripheral(address=1)
    sim = OSDPBusSimulator(pty, [pd])
    async with running(pty, [{"id": "gate-a", "address": 1}], sim.run) as rig:
        await wait_until(lambda: rig.driver.pds[0].ready)
        sim.corrupt_replies = 1
        pd.present_card(123, 4567)
        await wait_until(lambda: rig.sink.values("card") == ["123:4567"])
        assert rig.ctx.errors[("gate-a", "bad_packet")] == 1
        assert rig.sink.values("alive") == [True]



async def test_bad_replies_are_counted_never_crash(pty: PtyLink) -> None:
    script = [
        lambda p: b"\x00\xff" + bytes.fromhex("53 81 08 00 04 40 08 07"),  # garbage + bad CRC
        lambda p: OSDPPacket(3, Reply.ACK, sequence=p.sequence, reply=True).encode(),
        lambda p: OSDPPacket(1, Reply.ACK, sequence=(p.sequence + 1) % 4, reply=True).encode(),
        lambda p: OSDPPacket(1, Reply.NAK, b"\x03", sequence=p.sequence, reply=True).encode(),
        lambda p: bytes.fromhex("53 81 FF FF 04"),  # impossible length
        lambda p: OSDPPacket(1, Reply.LSTATR, b"\x07", sequence=p.sequence,
                             reply=True).encode(),
        lambda p: OSDPPacket(1, Reply.NAK, b"", sequence=p.sequence, reply=True).encode(),
        lambda p: None,  # timeout
    ]
    served: list[int] = []

    def answer(p: OSDPPacket) -> bytes | None:
        served.append(p.code)
        i = len(served) - 1
        if i < len(script):
            return script[i](p)
        return OSDPPacket(1, Reply.ACK, sequence=p.sequence, reply=True).encode()

    devices = [{"id": "gate-a", "address": 1, "unreachable_after": 10}]
    async with running(pty, devices, lambda: scripted_pd(pty, answer)) as rig:
        await wait_until(lambda: len(served) > len(script) + 6)
        errs = {k: n for (d, k), n in rig.ctx.errors.items() if d == "gate-a"}
        assert errs == {"bad_packet": 2, "wrong_address": 1, "wrong_sequence": 1, "nak": 1,
                        "bad_payload": 2, "timeout": 1}
        assert rig.sink.values("alive") == [True]
    assert served[0] == Command.ID


async def test_scenario_card_swipes(pty: PtyLink) -> None:
    devices = [{"id": "gate-a", "address": 1, "known_cards": ["123:4567"]}]
    cfg = _config(pty, devices)
    scenario = parse_scenario(
        {
            "steps": [
                {"at": "0s", "device": "gate-a", "do": "card", "card": "123:4567"},
                {"at": "0s", "device": "gate-a", "do": "card", "card": "123:1"},
                {"at": "0s", "device": "gate-a", "do": "door_open"},
                {"at": "0s", "device": "gate-a", "do": "exit_button"},
            ]
        }
    ).with_devices(devices_from_config(cfg))
    sim = OSDPBusSimulator(pty, devices=scenario.devices_of("osdp"))
    async with running(pty, devices, sim.run) as rig:
        await wait_until(lambda: rig.driver.pds[0].ready)
        await play(scenario, SystemClock(), sim, duration=1)
        await wait_until(lambda: rig.sink.values("exit_button") == [False, True, False])
        assert [o.attrs["granted"] for o in rig.sink.of("card")] == [True, False]
        assert rig.sink.values("door_open") == [False, True]


def test_bad_osdp_options() -> None:
    for bad in ({"address": 127}, {"address": 1, "known_cards": ["abc"]}, {"address": 1, "x": 1}):
        with pytest.raises(ConfigError):
            make_config(
                [{"id": "b", "type": "serial", "port": "/dev/null"}],
                [{"id": "g", "site": "s", "kind": "access_controller", "protocol": "osdp",
                  "bus": "b", **bad}],
            )
