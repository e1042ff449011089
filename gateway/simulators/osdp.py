"""OSDP peripherals (card readers / door controllers), simulated with the gateway's own codec.

`OSDPPeripheral` is the sans-I/O part: a command packet in, the reply packet out (or None
when the packet is for another address or the PD is silent). It answers ID/CAP/LSTAT/
ISTAT, and POLL with ACK or the next queued event (a card read, an input change, a
tamper or power change), repeating its last reply when the control panel repeats a
sequence number. `OSDPBusSimulator` puts any number of them on one `Link` (an RS-485
line on a pseudo-terminal) and acts out scenario actions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from hearthgate.core.codec import CodecError
from hearthgate.drivers import wiegand
from hearthgate.drivers.osdp_codec import (
    BROADCAST,
    Capability,
    Command,
    DeviceIdentity,
    InputStatus,
    LocalStatus,
    NakCode,
    OSDPPacket,
    OSDPStreamDecoder,
    RawCardRead,
    Reply,
    encode_capabilities,
)
from hearthgate.simulators.links import Link
from hearthgate.simulators.scenario import ScenarioAction, ScenarioDevice, parse_card

DEFAULT_IDENTITY = DeviceIdentity(b"\x5c\x26\x23", model=1, version=1, serial=1, firmware=(1, 0, 0))
# Contact status monitoring (2 inputs), reader LED, card data (Wiegand format), checksums+CRC.
DEFAULT_CAPABILITIES = (
    Capability(1, 1, 2),
    Capability(4, 1, 1),
    Capability(9, 1, 1),
    Capability(10, 1, 0),
)


@dataclass
class OSDPPeripheral:
    address: int
    identity: DeviceIdentity = DEFAULT_IDENTITY
    capabilities: tuple[Capability, ...] = DEFAULT_CAPABILITIES
    inputs: list[bool] = field(default_factory=lambda: [False, False])
    tamper: bool = False
    power_fault: bool = False
    silent: bool = False  # answers nothing (unplugged, dead)
    events: deque[tuple[int, bytes]] = field(default_factory=deque)
    commands_seen: int = 0
    _last: tuple[int, OSDPPacket] | None = None

    # -- what happens at the door ---------------------------------------------------------

    def present_card(self, facility: int, number: int, bits: int = 26, reader: int = 0) -> None:
        raw = RawCardRead(reader, 1, bits, wiegand.encode_bytes(facility, number, bits))
        self.events.append((Reply.RAW, raw.encode()))

    def present_raw(self, raw: RawCardRead) -> None:
        self.events.append((Reply.RAW, raw.encode()))

    def set_input(self, index: int, active: bool) -> None:
        while len(self.inputs) <= index:
            self.inputs.append(False)
        self.inputs[index] = active
        self.events.append((Reply.ISTATR, InputStatus(tuple(self.inputs)).encode()))

    def set_tamper(self, tamper: bool) -> None:
        self.tamper = tamper
        self.events.append((Reply.LSTATR, self._lstat()))

    def set_power_fault(self, fault: bool) -> None:
        self.power_fault = fault
        self.events.append((Reply.LSTATR, self._lstat()))

    def _lstat(self) -> bytes:
        return LocalStatus(self.tamper, self.power_fault).encode()

    # -- the wire -------------------------------------------------------------------------

    def handle(self, packet: OSDPPacket) -> OSDPPacket | None:
        if packet.reply or self.silent or packet.address not in (self.address, BROADCAST):
            return None
        self.commands_seen += 1
        if packet.sequence and self._last is not None and self._last[0] == packet.sequence:
            return self._last[1]  # the panel missed our reply: say it again
        code, data = self._answer(packet)
        reply = OSDPPacket(
            address=self.address, code=code, data=data, sequence=packet.sequence, reply=True,
            use_crc=packet.use_crc,
        )
        self._last = (packet.sequence, reply) if packet.sequence else None
        return reply

    def _answer(self, packet: OSDPPacket) -> tuple[int, bytes]:
        match packet.code:
            case Command.POLL:
                if self.events:
                    return self.events.popleft()
                return Reply.ACK, b""
            case Command.ID:
                return Reply.PDID, self.identity.encode()
            case Command.CAP:
                return Reply.PDCAP, encode_capabilities(self.capabilities)
            case Command.LSTAT:
                return Reply.LSTATR, self._lstat()
            case Command.ISTAT:
                return Reply.ISTATR, InputStatus(tuple(self.inputs)).encode()
            case _:
                return Reply.NAK, bytes([NakCode.UNKNOWN_COMMAND])


class OSDPBusSimulator:
    """Peripherals on one RS-485 line; also a scenario sink for `osdp` devices."""

    def __init__(
        self,
        link: Link,
        peripherals: list[OSDPPeripheral] | None = None,
        devices: dict[str, ScenarioDevice] | None = None,
    ) -> None:
        self.link = link
        self.peripherals: dict[int, OSDPPeripheral] = {p.address: p for p in peripherals or []}
        self.devices: dict[str, tuple[OSDPPeripheral, ScenarioDevice]] = {}
        for device_id, dev in (devices or {}).items():
            address = int(dev.options.get("address", 0))
            pd = self.peripherals.setdefault(address, OSDPPeripheral(address))
            self.devices[device_id] = (pd, dev)
        self.corrupt_replies = 0  # damage the CRC of this many coming replies
        self.reply_delay = 0.0
        self.bad_packets = 0

    def peripheral(self, address: int) -> OSDPPeripheral:
        return self.peripherals.setdefault(address, OSDPPeripheral(address))

    async def run(self) -> None:
        decoder = OSDPStreamDecoder()
        while True:
            chunk = await self.link.read()
            for item in decoder.feed(chunk):
                if isinstance(item, CodecError):
                    self.bad_packets += 1
                    continue
                for pd in self.peripherals.values():
                    reply = pd.handle(item)
                    if reply is not None:
                        await self._send(reply)

    async def _send(self, reply: OSDPPacket) -> None:
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        frame = reply.encode()
        if self.corrupt_replies:
            self.corrupt_replies -= 1
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        self.link.write(frame)

    # -- scenario sink --------------------------------------------------------------------

    def handles(self, device: str) -> bool:
        return device in self.devices

    async def perform(self, action: ScenarioAction) -> None:
        pd, dev = self.devices[action.device]
        opts = dev.options
        door = int(opts.get("door_input", 0))
        exit_input = int(opts.get("exit_input", 1))
        open_when_active = bool(opts.get("door_open_when_active", True))
        match action.do:
            case "card":
                facility, number = parse_card(action.step.card or "")
                pd.present_card(facility, number, action.step.bits)
            case "door_open":
                pd.set_input(door, open_when_active)
            case "door_close":
                pd.set_input(door, not open_when_active)
            case "exit_button":
                pd.set_input(exit_input, True)
                pd.set_input(exit_input, False)
            case "tamper":
                pd.set_tamper(bool(action.step.value if action.step.value is not None else True))
            case "silent" | "offline":
                pd.silent = True
            case "online":
                pd.silent = False


async def serve(link: Link, peripherals: list[OSDPPeripheral]) -> None:
    """Run peripherals on a link until cancelled (bench use: `hearthgate simulate osdp`)."""
    sim = OSDPBusSimulator(link, peripherals)
    with contextlib.suppress(asyncio.CancelledError):
        await sim.run()
