"""OSDP door access (card readers, door controllers) on RS-485: the gateway as control panel.

Protocol `osdp` on a `serial` bus. Each device is one peripheral (PD) at an `address`;
the driver polls every PD on the bus in turn through the bus's `exchange()`, which keeps
one request on the wire at a time. At start (and whenever a PD comes back) it asks for
ID, capabilities, local status and input status, then sends POLL; a PD answers ACK or
with news: RAW (a card's bits, decoded as Wiegand 26/34), LSTATR (tamper, power),
ISTATR (door contact, exit button).

Sequence numbers follow the spec: 1, 2, 3, 1, …; after a lost or damaged reply the same
number is sent again, so the PD repeats its last reply and a card read is not lost.
NAKs, timeouts, bad CRCs, replies from the wrong address or with the wrong sequence are
counted per device through `ctx.frame_error`; `unreachable_after` failed exchanges in a
row make the device unreachable (`alive: false`) until it answers again.

Secure channel: not spoken yet (the codec keeps the SCB and MAC in the packet model).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from hearthgate.core.codec import CodecError
from hearthgate.core.durations import Duration
from hearthgate.core.options import Options
from hearthgate.drivers import wiegand
from hearthgate.drivers.base import ProtocolSpec
from hearthgate.drivers.osdp_codec import (
    Command,
    DeviceIdentity,
    InputStatus,
    LocalStatus,
    NakCode,
    OSDPError,
    OSDPPacket,
    OSDPStreamDecoder,
    RawCardRead,
    Reply,
    decode_capabilities,
    decode_nak,
    next_sequence,
)
from hearthgate.drivers.serial_bus import BusDown, NoReply

if TYPE_CHECKING:
    from hearthgate.core.options import DeviceConfig
    from hearthgate.drivers.base import DriverContext
    from hearthgate.drivers.serial_bus import SerialBus

log = logging.getLogger("hearthgate.osdp")

_CARD_RE = re.compile(r"^\s*\d{1,5}\s*:\s*\d{1,5}\s*$")


class OSDPDeviceOptions(Options):
    address: int = Field(ge=0, le=126, description="the reader's OSDP address (DIP switches)")
    poll: Duration = Field(default=0.2, gt=0, le=60, description="time between polls")
    # Reply timeout per request; default: the bus's `timeout`. OSDP PDs answer within 200 ms.
    reply_timeout: Duration | None = Field(default=None, gt=0, le=5)
    unreachable_after: int = Field(default=3, ge=1, le=100)
    use_crc: bool = True
    # Which input (0 = first) is the door contact / exit button; null if not wired.
    door_input: int | None = Field(default=0, ge=0, le=63)
    exit_input: int | None = Field(default=1, ge=0, le=63)
    # Most door contacts are normally closed: the input reads active while the door is open.
    door_open_when_active: bool = True
    # Cards let in ("FACILITY:NUMBER"); when given, each card read says granted or not.
    known_cards: tuple[str, ...] | None = None

    @field_validator("known_cards")
    @classmethod
    def _cards(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        for card in value:
            if not _CARD_RE.match(card):
                raise ValueError(f"card '{card}' must be FACILITY:NUMBER, like 123:4567")
        return tuple(c.replace(" ", "") for c in value)


class _ReplyError(Exception):
    def __init__(self, kind: str, detail: str, data: bytes = b"") -> None:
        super().__init__(detail)
        self.kind = kind
        self.data = data


@dataclass
class _Peripheral:
    config: DeviceConfig
    options: OSDPDeviceOptions
    sequence: int = 0  # 0 until the first exchange: it (re)starts a session
    failures: int = 0
    ready: bool = False  # ID/CAP/status asked since it last came up
    identity: DeviceIdentity | None = None
    capabilities: tuple[Any, ...] = ()
    state: dict[str, bool] = field(default_factory=dict)


class OSDPDriver:
    def __init__(self, bus: SerialBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        self.pds: list[_Peripheral] = []
        for dev in devices:
            assert isinstance(dev.options, OSDPDeviceOptions)
            self.pds.append(_Peripheral(dev, dev.options))
        self.poll_interval = min((p.options.poll for p in self.pds), default=1.0)

    async def run(self) -> None:
        while True:
            for pd in self.pds:
                await self.service(pd)
            # The poll cadence is the line's, like the bus's reply timeouts: real time, not
            # the gateway clock (a demo's accelerated clock must not flood the RS-485 line,
            # and a reader drops offline if it is not polled for 8 real seconds).
            await asyncio.sleep(self.poll_interval)

    async def service(self, pd: _Peripheral) -> None:
        """One round for one PD: bring it up if needed, else poll it."""
        if not pd.ready:
            for code, data in (
                (Command.ID, b"\x00"),
                (Command.CAP, b"\x00"),
                (Command.LSTAT, b""),
                (Command.ISTAT, b""),
            ):
                if await self.transact(pd, code, data) is None:
                    return
            pd.ready = True
            return
        await self.transact(pd, Command.POLL)

    async def transact(self, pd: _Peripheral, code: int, data: bytes = b"") -> OSDPPacket | None:
        """Send one command, handle its reply; None when there was none worth having."""
        dev = pd.config
        request = OSDPPacket(
            address=pd.options.address, code=code, data=data, sequence=pd.sequence,
            use_crc=pd.options.use_crc,
        )
        decoder = OSDPStreamDecoder()

        def parse(buf: bytearray) -> OSDPPacket | None:
            while (item := decoder.take(buf)) is not None:
                if isinstance(item, CodecError):
                    raise _ReplyError("bad_packet", str(item), item.data)
                if item.reply:  # not our own request echoed by a half-duplex adapter
                    return item
            return None

        try:
            reply = await self.bus.exchange(
                request.encode(), parse, timeout=pd.options.reply_timeout, retries=0
            )
        except NoReply:
            self._failed(pd, "timeout", f"no reply to {_name(code)}")
            return None
        except BusDown as exc:
            pd.ready = False
            self.ctx.set_reachable(dev, False, str(exc))
            return None
        except _ReplyError as exc:
            self._failed(pd, exc.kind, f"{exc} (reply to {_name(code)})", exc.data)
            return None
        if reply.address != pd.options.address:
            self._failed(pd, "wrong_address", f"reply from address {reply.address}", reply.encode())
            return None
        if reply.sequence != pd.sequence:
            self._failed(
                pd, "wrong_sequence", f"sequence {reply.sequence}, sent {pd.sequence}",
                reply.encode(),
            )
            return None
        pd.failures = 0
        pd.sequence = next_sequence(pd.sequence)
        self.ctx.set_reachable(dev, True)
        self.handle_reply(pd, reply)
        return reply

    def _failed(self, pd: _Peripheral, kind: str, detail: str, data: bytes = b"") -> None:
        # The sequence number is kept: the PD will repeat its last reply to the retry.
        self.ctx.frame_error(pd.config.id, kind, data, detail)
        pd.failures += 1
        if pd.failures >= pd.options.unreachable_after:
            pd.ready = False
            pd.sequence = 0
            self.ctx.set_reachable(
                pd.config, False, f"{pd.failures} failed exchanges in a row (last: {detail})"
            )

    def handle_reply(self, pd: _Peripheral, reply: OSDPPacket) -> None:
        dev = pd.config
        try:
            match reply.code:
                case Reply.ACK:
                    pass
                case Reply.NAK:
                    code = decode_nak(reply.data)
                    self.ctx.frame_error(dev.id, "nak", reply.data, _nak_name(code))
                    if code == NakCode.BAD_SEQUENCE:
                        pd.sequence = 0
                        pd.ready = False
                case Reply.PDID:
                    pd.identity = DeviceIdentity.decode(reply.data)
                    log.info("osdp %s: %s", dev.id, pd.identity.label)
                case Reply.PDCAP:
                    pd.capabilities = decode_capabilities(reply.data)
                case Reply.LSTATR:
                    status = LocalStatus.decode(reply.data)
                    self._changed(pd, "tamper", status.tamper)
                    self._changed(pd, "power_fault", status.power_fault)
                case Reply.ISTATR:
                    self._inputs(pd, InputStatus.decode(reply.data))
                case Reply.RAW:
                    self._card(pd, RawCardRead.decode(reply.data))
                case _:
                    log.debug("osdp %s: reply %02X not used [%s]", dev.id, reply.code,
                              reply.data.hex(" "))
        except OSDPError as exc:
            self.ctx.frame_error(dev.id, "bad_payload", reply.data, f"{_name(reply.code)}: {exc}")

    def _changed(self, pd: _Peripheral, metric: str, value: bool) -> None:
        if pd.state.get(metric) != value:
            pd.state[metric] = value
            self.ctx.emit(pd.config, metric, value)

    def _inputs(self, pd: _Peripheral, status: InputStatus) -> None:
        o = pd.options
        if o.door_input is not None and o.door_input < len(status.inputs):
            active = status.inputs[o.door_input]
            self._changed(pd, "door_open", active == o.door_open_when_active)
        if o.exit_input is not None and o.exit_input < len(status.inputs):
            self._changed(pd, "exit_button", status.inputs[o.exit_input])

    def _card(self, pd: _Peripheral, raw: RawCardRead) -> None:
        attrs: dict[str, Any] = {"reader": raw.reader, "bit_count": raw.bit_count}
        if raw.bit_count in wiegand.FORMATS:
            try:
                card = wiegand.decode_bytes(raw.bits, raw.bit_count)
            except wiegand.WiegandError as exc:
                self.ctx.frame_error(pd.config.id, "card_parity", raw.encode(), str(exc))
                return
            value = card.label
            attrs.update(format=card.format, facility=card.facility, number=card.number)
        else:
            value = f"raw:{raw.bits.hex()}"
            attrs.update(format="raw", bits=raw.bits.hex())
        if pd.options.known_cards is not None:
            attrs["granted"] = value in pd.options.known_cards
        self.ctx.emit(pd.config, "card", value, attrs=attrs)


def _name(code: int) -> str:
    for enum_type in (Command, Reply):
        try:
            return enum_type(code).name
        except ValueError:
            continue
    return f"{code:02X}"


def _nak_name(code: int) -> str:
    try:
        return f"NAK {NakCode(code).name.lower()}"
    except ValueError:
        return f"NAK {code:02X}"


def _create(bus: Any, devices: list[DeviceConfig], ctx: DriverContext) -> OSDPDriver:
    return OSDPDriver(bus, devices, ctx)


PROTOCOL = ProtocolSpec(
    name="osdp",
    options=OSDPDeviceOptions,
    kinds=frozenset({"access_controller"}),
    bus_types=frozenset({"serial"}),
    create=_create,
    description="OSDP card readers and door controllers on RS-485 (the gateway polls them)",
    address=("address",),
    parities=frozenset({"N"}),
)
