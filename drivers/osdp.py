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

Line noise and the OSDP 2.2 mark byte (`FF`) before a reply's `53` are skipped: the reply
behind them is read (noise is counted as `garbage`, the mark byte is not counted at all).

Secure Channel (drivers/osdp_secure_codec.py): a reader given an `scbk` (its Secure Channel
Base Key, 32 hex digits, normally `!secret`; or `default` for SCBK-D, a reader in install
mode) is brought up as ID, CAP, the SCS_11–SCS_14 handshake, then LSTAT, ISTAT and POLL
inside the session, every command MAC'd (and its data encrypted), every reply's MAC checked.
A reader that fails the handshake, or that requires the secure channel (NAK 06) while no key
is configured, is not online: `alive: false` with the reason, and a warning in the log.
A reply carrying a security block outside a secure session, or a reply inside the session
without a valid MAC, is refused (`security`) and the session is started again.
The cipher is the optional extra `osdp-secure` (`cryptography`): an `scbk` where it cannot be
imported is refused by the option model (so by `hearthgate check`), and should a session
still find it missing, the reader is not online and says so (nothing it sent was wrong, so
no bad input is counted).

Door inputs: `door_input` names the input whose state is `door_open` (agreed metric for
every door sensor); the door rules watch access controllers like door contacts.
Card reads emit `card` ("FACILITY:NUMBER", details in attrs) and, when `known_cards` is
given, `access_granted` (a reading, so telemetry can carry it).

Polling starts once the port is open (or after a short grace when it never opens): a
reader is not reported unreachable because the gateway asked before its port was there.

Readers the config does not name (walk test only): while a walk test runs, each round of
polls ends with one osdp_ID sent to the next address (0, 1, … 126) that no configured reader
has; a reader answering there is reported through `ctx.heard_unknown` ("osdp", "BUS address
N") with a ready `devices:` entry (its vendor, model and serial in the log). What installers
meet is a reader whose DIP switches or config card left it at another address (most ship at
0) than the config says: the checklist then shows the configured address never heard and the
one that answers. Why a sweep and not the broadcast address 0x7F: every reader on the line
answers a broadcast at once (their replies collide on the RS-485 pair), and a broadcast with
sequence 0 restarts the session, secure channel included, of the configured readers too; an
ID to an address nobody configured disturbs nobody. Why only during a walk test: each silent
address costs a reply timeout of line time (at most `PROBE_TIMEOUT`) that delays the polls of
the real readers, and a gateway in service talks to no device it was not told of.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator

from hearthgate.core.codec import CodecError
from hearthgate.core.durations import Duration
from hearthgate.core.options import OptionError, Options
from hearthgate.drivers import wiegand
from hearthgate.drivers.base import ProtocolSpec
from hearthgate.drivers.osdp_codec import (
    BROADCAST,
    MARK,
    SOM,
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
from hearthgate.drivers.osdp_secure_codec import (
    EXTRA,
    INSTALL_EXTRA,
    SCBK_D,
    SecureSession,
    unavailable,
)
from hearthgate.drivers.serial_bus import BusDown, NoReply

if TYPE_CHECKING:
    from hearthgate.core.options import DeviceConfig
    from hearthgate.drivers.base import DriverContext
    from hearthgate.drivers.serial_bus import SerialBus

log = logging.getLogger("hearthgate.osdp")

_CARD_RE = re.compile(r"^\s*\d{1,5}\s*:\s*\d{1,5}\s*$")
_SCBK_RE = re.compile(r"^[0-9A-Fa-f]{32}$")
STARTUP_GRACE = 5.0  # real seconds to wait for the port before the first poll
REFUSED_RETRY = 5.0  # real seconds before asking a reader that refused us again
PROBE_TIMEOUT = 0.2  # s for a reader at an unconfigured address to answer (OSDP: 200 ms)


class OSDPDeviceOptions(Options):
    address: int = Field(ge=0, le=126, description="the reader's OSDP address (DIP switches)")
    poll: Duration = Field(default=0.2, gt=0, le=60, description="time between polls")
    # Reply timeout per request; default: the bus's `timeout`. OSDP PDs answer within 200 ms.
    reply_timeout: Duration | None = Field(default=None, gt=0, le=5)
    unreachable_after: int = Field(default=3, ge=1, le=100)
    use_crc: bool = True
    # Send the OSDP 2.2 mark byte (FF) before each command, as libosdp's control panel does.
    # Replies are read with or without it either way.
    mark_byte: bool = False
    # Which input (0 = first) is the door contact / exit button; null if not wired.
    door_input: int | None = Field(default=0, ge=0, le=63)
    exit_input: int | None = Field(default=1, ge=0, le=63)
    # Most door contacts are normally closed: the input reads active while the door is open.
    door_open_when_active: bool = True
    # Cards let in ("FACILITY:NUMBER"); when given, each card read says granted or not.
    known_cards: tuple[str, ...] | None = None
    # The reader's Secure Channel Base Key (32 hex digits, from `!secret`), or "default"
    # for SCBK-D (a reader in install mode). Given: the secure channel is required.
    scbk: SecretStr | None = None

    @field_validator("scbk")
    @classmethod
    def _scbk(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().strip().replace(" ", "")
        if text.lower() != "default" and not _SCBK_RE.match(text):
            # Never echo the value: it is a secret.
            raise ValueError("scbk must be 32 hex digits (16 bytes) or 'default'")
        missing = unavailable()
        if missing is not None:
            # A valid key this installation cannot use: the reader would never be online.
            # Neither text quotes the key, so both are shown for a `!secret` too.
            raise OptionError(
                f"the secure channel cannot run here: {missing}",
                f"install the extra with network: {sys.executable} -m {INSTALL_EXTRA}; a"
                f" 32-bit Pi (armv7l) has no cffi wheel on PyPI and its offline bundle lacks"
                f" {EXTRA} (docs/devices.md, \"Secure Channel: the osdp-secure extra\")",
                quotes_value=False,
            )
        return SecretStr(text)

    @property
    def key(self) -> bytes | None:
        if self.scbk is None:
            return None
        text = self.scbk.get_secret_value()
        return SCBK_D if text.lower() == "default" else bytes.fromhex(text)

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
    session: SecureSession | None = None  # the secure channel, once the handshake is done
    refused: str | None = None  # why this bring-up was refused, if it was
    refusal_logged: str | None = None  # the last refusal logged (each is logged once)
    retry_at: float = 0.0  # loop time before which a refusing reader is left alone


class OSDPDriver:
    """The control panel for every OSDP reader on one RS-485 bus.

    Args:
        bus: The serial bus the readers share; every exchange goes through it.
        devices: The `osdp` devices on that bus (one reader each).
        ctx: The gateway as the driver sees it.

    `run()` polls every reader in turn until cancelled; see the module docstring for the
    bring-up, the secure channel and what is reported.
    """

    def __init__(self, bus: SerialBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        self.pds: list[_Peripheral] = []
        for dev in devices:
            assert isinstance(dev.options, OSDPDeviceOptions)
            self.pds.append(_Peripheral(dev, dev.options))
        self.poll_interval = min((p.options.poll for p in self.pds), default=1.0)
        configured = {p.options.address for p in self.pds}
        # Walk test: the addresses no configured reader has, asked one per round.
        self.unconfigured = [a for a in range(BROADCAST) if a not in configured]
        self._next_probe = 0
        self._probe_logged: set[int] = set()

    async def run(self) -> None:
        # Poll only once the port is open: asking before would report every reader
        # unreachable (and raise device_offline) at each start. If it never opens, go on
        # after a grace and let the failures say so.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STARTUP_GRACE):
                await self.bus.wait_open()
        while True:
            for pd in self.pds:
                await self.service(pd)
            if self.ctx.walk_test_on():
                await self.probe_next()
            # The poll cadence is the line's, like the bus's reply timeouts: real time, not
            # the gateway clock (a demo's accelerated clock must not flood the RS-485 line,
            # and a reader drops offline if it is not polled for 8 real seconds).
            await asyncio.sleep(self.poll_interval)

    async def service(self, pd: _Peripheral) -> None:
        """One round for one PD: bring it up if needed, else poll it."""
        if not pd.ready:
            if asyncio.get_running_loop().time() < pd.retry_at:
                return
            await self._bring_up(pd)
            return
        if await self.transact(pd, Command.POLL) is not None:
            self.ctx.set_reachable(pd.config, True)

    async def probe_next(self) -> None:
        """Send osdp_ID to the next unconfigured address; a reader that answers from it is
        reported as heard but not configured (module docstring: readers the config does
        not name)."""
        if not self.unconfigured or not self.pds:
            return
        address = self.unconfigured[self._next_probe % len(self.unconfigured)]
        self._next_probe += 1
        options = self.pds[0].options  # the line's framing: CRC and mark byte as its readers
        wire = OSDPPacket(address=address, code=Command.ID, data=b"\x00", sequence=0,
                          use_crc=options.use_crc).encode()
        if options.mark_byte:
            wire = bytes([MARK]) + wire
        try:
            reply = await self.bus.exchange(wire, _reply_reader(lambda _: None),
                                            timeout=PROBE_TIMEOUT, retries=0)
        except (NoReply, BusDown):
            return  # silence is the usual answer
        except _ReplyError as exc:
            # Something answered, damaged (a reader at another speed, a wiring fault): counted
            # under no device, so nothing is held against the configured readers, and asked
            # again next sweep.
            self.ctx.frame_error(None, f"osdp_probe_{exc.kind}", exc.data,
                                 f"{self.bus.id} address {address}: {exc}")
            return
        if reply.address != address:
            self.ctx.frame_error(None, "osdp_probe_address", detail=(
                f"{self.bus.id}: asked address {address}, answered from {reply.address}"))
            return
        identity = None
        if reply.code == Reply.PDID:
            with contextlib.suppress(OSDPError):
                identity = DeviceIdentity.decode(reply.data).label
        if address not in self._probe_logged:
            self._probe_logged.add(address)
            log.info("osdp bus %s: a reader the config does not name answers at address %d%s",
                     self.bus.id, address, f" ({identity})" if identity else "")
        self.ctx.heard_unknown("osdp", f"{self.bus.id} address {address}", {
            "id": f"reader-{address}", "kind": "access_controller", "protocol": "osdp",
            "bus": self.bus.id, "address": address,
        })

    async def _bring_up(self, pd: _Peripheral) -> None:
        pd.session = None
        pd.refused = None
        for code, data in ((Command.ID, b"\x00"), (Command.CAP, b"\x00")):
            if await self.transact(pd, code, data) is None or pd.refused:
                return
        key = pd.options.key
        if key is not None and not await self._handshake(pd, key):
            return
        for code, data in ((Command.LSTAT, b""), (Command.ISTAT, b"")):
            if await self.transact(pd, code, data) is None or pd.refused:
                return
        pd.ready = True
        pd.refusal_logged = None
        self.ctx.set_reachable(pd.config, True)

    async def _handshake(self, pd: _Peripheral, key: bytes) -> bool:
        missing = unavailable()
        if missing is not None:
            # The config was checked where `cryptography` imported (or by a program that
            # skipped the check): this reader cannot be served, and the log says why.
            self._refuse(pd, "security", f"secure channel unavailable: {missing};"
                         f" {INSTALL_EXTRA}", bad_input=False)
            return False
        o = pd.options
        try:
            session = SecureSession(key)
            reply = await self.transact(
                pd, 0, request=session.challenge(o.address, pd.sequence, o.use_crc)
            )
            if reply is None:
                return False
            session.accept_ccrypt(reply)
            reply = await self.transact(
                pd, 0, request=session.scrypt(o.address, pd.sequence, o.use_crc)
            )
            if reply is None:
                return False
            session.accept_rmac_i(reply)
        except OSDPError as exc:
            self._refuse(pd, "security", f"secure channel handshake failed: {exc.detail}")
            return False
        pd.session = session
        log.info("osdp %s: secure channel established%s", pd.config.id,
                 " with SCBK-D (install mode)" if key == SCBK_D else "")
        return True

    def _refuse(
        self, pd: _Peripheral, kind: str, why: str, data: bytes = b"", *, bad_input: bool = True
    ) -> None:
        """The reader answers but cannot be used: not online, with the reason, in the
        log once per reason; asked again after a while (it may be reconfigured).
        `bad_input=False`: the fault is ours, not the reader's, so nothing is counted."""
        if bad_input:
            self.ctx.frame_error(pd.config.id, kind, data, why)
        pd.ready = False
        pd.session = None
        pd.sequence = 0
        pd.retry_at = asyncio.get_running_loop().time() + REFUSED_RETRY
        if pd.refusal_logged != why:
            log.warning("osdp %s: %s", pd.config.id, why, extra={"device_id": pd.config.id})
        pd.refused = pd.refusal_logged = why
        self.ctx.set_reachable(pd.config, False, why)

    async def transact(
        self, pd: _Peripheral, code: int, data: bytes = b"", *,
        request: OSDPPacket | None = None,
    ) -> OSDPPacket | None:
        """Send one command (through the secure session when there is one), handle its
        reply; None when there was none worth having."""
        dev = pd.config
        if request is None:
            request = OSDPPacket(
                address=pd.options.address, code=code, data=data, sequence=pd.sequence,
                use_crc=pd.options.use_crc,
            )
        session = pd.session
        wire = session.seal(request) if session is not None else request.encode()
        if pd.options.mark_byte:
            wire = bytes([MARK]) + wire
        ctx = self.ctx

        def noise(item: CodecError) -> None:
            ctx.frame_error(dev.id, "garbage", item.data, item.detail)

        try:
            reply = await self.bus.exchange(
                wire, _reply_reader(noise), timeout=pd.options.reply_timeout, retries=0
            )
        except NoReply:
            self._failed(pd, "timeout", f"no reply to {_name(request.code)}")
            return None
        except BusDown as exc:
            pd.ready = False
            pd.session = None
            self.ctx.set_reachable(dev, False, str(exc))
            return None
        except _ReplyError as exc:
            self._failed(pd, exc.kind, f"{exc} (reply to {_name(request.code)})", exc.data)
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
        plain = self._unwrap(pd, request, reply)
        if plain is None:
            return None
        pd.failures = 0
        pd.sequence = next_sequence(pd.sequence)
        self.handle_reply(pd, plain)
        return None if pd.refused and plain.code == Reply.NAK else plain

    def _unwrap(
        self, pd: _Peripheral, request: OSDPPacket, reply: OSDPPacket
    ) -> OSDPPacket | None:
        """The reply as plain text, or None (refused and counted) when its security block
        does not belong: outside a session only the handshake's replies may carry one."""
        session = pd.session
        if session is None:
            handshake = request.scb is not None and reply.scb_type in (0x12, 0x14)
            if reply.scb is not None and not handshake:
                self._security_failure(pd, "a security block outside a secure session", reply)
                return None
            return reply
        if reply.scb is None and reply.code == Reply.NAK:
            # The reader dropped the session (libosdp answers so after a MAC it rejects):
            # start over rather than poll into a dead session.
            self._security_failure(pd, "the reader left the secure channel", reply)
            return None
        try:
            return session.open(reply)
        except OSDPError as exc:
            self._security_failure(pd, exc.detail, reply)
            return None

    def _security_failure(self, pd: _Peripheral, why: str, reply: OSDPPacket) -> None:
        self.ctx.frame_error(pd.config.id, "security", reply.encode(),
                             f"{why} (reply {reply.code:02X})")
        # Nothing in the reply is believed; the session (its MAC chain) starts again.
        pd.session = None
        pd.ready = False
        pd.sequence = 0
        pd.failures += 1
        if pd.failures >= pd.options.unreachable_after:
            self.ctx.set_reachable(
                pd.config, False, f"{pd.failures} failed exchanges in a row (last: {why})"
            )

    def _failed(self, pd: _Peripheral, kind: str, detail: str, data: bytes = b"") -> None:
        # The sequence number is kept: the PD will repeat its last reply to the retry.
        self.ctx.frame_error(pd.config.id, kind, data, detail)
        pd.failures += 1
        if pd.failures >= pd.options.unreachable_after:
            pd.ready = False
            pd.session = None
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
                    if code == NakCode.ENCRYPTION_REQUIRED and pd.session is None:
                        # Without a key no card can ever arrive: not online, and why.
                        self._refuse(
                            pd, "nak",
                            "the reader requires the secure channel (NAK 06), but no scbk"
                            " is configured for it" if pd.options.key is None else
                            "the reader requires the secure channel (NAK 06)",
                            reply.data,
                        )
                        return
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
        granted = None
        if pd.options.known_cards is not None:
            granted = value in pd.options.known_cards
            attrs["granted"] = granted
        now = self.ctx.clock.now()
        self.ctx.emit(pd.config, "card", value, at=now, attrs=attrs)
        if granted is not None:
            # A reading of its own, so telemetry (which carries values) can carry it.
            self.ctx.emit(pd.config, "access_granted", granted, at=now,
                          attrs={"card": value})


def _reply_reader(noise: Callable[[CodecError], None]
                  ) -> Callable[[bytearray], OSDPPacket | None]:
    """The `parse` of one exchange: the first reply packet on the line. Noise before the
    reply's SOM goes to `noise` and the reply behind it is still read; a damaged packet
    raises `_ReplyError` at once, so the retry (same sequence) comes soon."""
    decoder = OSDPStreamDecoder()

    def parse(buf: bytearray) -> OSDPPacket | None:
        while (item := decoder.take(buf)) is not None:
            if isinstance(item, CodecError):
                if item.kind == "garbage" and SOM not in item.data:
                    noise(item)
                    continue
                raise _ReplyError("bad_packet", str(item), item.data)
            if item.reply:  # not our own request echoed by a half-duplex adapter
                return item
        return None

    return parse


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
