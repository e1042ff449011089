"""433 MHz devices (SOS buttons, PIRs, door contacts) heard by an RFLink receiver.

Protocol `rflink` on a `serial` bus (the receiver's USB port, 57600 bps). The receiver is
listen-only here: it prints one line per radio packet (drivers/rflink_codec.py) and this
driver hands each matching packet to its device.

Meaning comes from the packet's own value keys: `CMD=ON`/`PIR=ON`/`SMOKEALERT=ON` is a
press, an opening, motion or smoke; `OFF` is none of these (a door closed, no motion, smoke
cleared; for an SOS button, not a press); `UP`, `DOWN` and other commands mean nothing for a
door, PIR or smoke alarm and are counted, not guessed at. A door contact whose open and
close codes differ (EV1527: only in `SWITCH`) is given both as `open:` and `closed:`.

One press is one observation: a button repeats its packet several times per press
(and keeps repeating while held), so packets of one device with the same command that
arrive within `debounce` of the previous one are the same press. The window slides on
the gateway clock.

Packets from devices nobody configured are logged once each at info, with the `match:`
line to paste into the config: that is how an installer finds a new button's ID.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from hearthgate.core.codec import CodecError
from hearthgate.core.durations import Duration
from hearthgate.core.options import Options
from hearthgate.drivers.base import ProtocolSpec
from hearthgate.drivers.rflink_codec import (
    RFLinkCode,
    RFLinkError,
    RFLinkMatch,
    RFLinkPacket,
    RFLinkStreamDecoder,
    packet_value,
)

if TYPE_CHECKING:
    from hearthgate.core.options import DeviceConfig
    from hearthgate.drivers.base import DriverContext
    from hearthgate.drivers.serial_bus import SerialBus

log = logging.getLogger("hearthgate.rflink")

KIND_METRIC = {
    "sos_button": "sos",
    "motion_sensor": "motion",
    "door_contact": "door_open",
    "smoke_sensor": "smoke",
}
# What a state key's value means (RFLink protocol reference). Anything else (`UP`, `DOWN`,
# `STOP`, `SET_LEVEL=3`, `UNKOWN`, …) says nothing about a door, a PIR or a smoke alarm.
ON_VALUES = frozenset({"ON", "ALLON", "OPEN"})
OFF_VALUES = frozenset({"OFF", "ALLOFF", "CLOSE", "CLOSED"})
_MAX_UNKNOWN_LOGGED = 1000


class RFLinkDeviceOptions(Options):
    """Keys of an `rflink` device (docs/devices.md, "433 MHz devices (RFLink)")."""

    match: str = Field(description='protocol and ID as the receiver prints: "EV1527;ID=5a3c1"')
    debounce: Duration = Field(default=2.5, ge=0, le=60)
    open: str | None = Field(
        default=None,
        description='door contacts with separate codes: the code that means open ("SWITCH=2")',
    )
    closed: str | None = Field(
        default=None,
        description='door contacts with separate codes: the code that means closed ("SWITCH=1")',
    )

    @field_validator("match")
    @classmethod
    def _valid_match(cls, value: str) -> str:
        try:
            RFLinkMatch.parse(value)
        except RFLinkError as exc:
            raise ValueError(exc.detail) from None  # what an installer reads, without the kind
        return value

    @field_validator("open", "closed")
    @classmethod
    def _valid_code(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                RFLinkCode.parse(value)
            except RFLinkError as exc:
                raise ValueError(exc.detail) from None
        return value

    @model_validator(mode="after")
    def _both_codes(self) -> RFLinkDeviceOptions:
        if (self.open is None) != (self.closed is None):
            # With one code only, the other state would never be reported: a door that
            # can open but never close raises door_held_open on every opening.
            raise ValueError("give both 'open' and 'closed' codes, or neither")
        if self.open is not None and RFLinkCode.parse(self.open).same_as(
            RFLinkCode.parse(str(self.closed))
        ):
            raise ValueError("'open' and 'closed' are the same code")
        return self

    def kind_problem(self, kind: str) -> tuple[str, str] | None:
        if self.open is not None and kind != "door_contact":
            return "open", f"'open' and 'closed' are for door contacts, not {kind} devices"
        return None

    @property
    def matcher(self) -> RFLinkMatch:
        return RFLinkMatch.parse(self.match)


@dataclass
class _Device:
    config: DeviceConfig
    matcher: RFLinkMatch
    metric: str
    debounce: float
    open: RFLinkCode | None = None
    closed: RFLinkCode | None = None


class RFLinkDriver:
    """Hands the packets an RFLink receiver hears to the devices they belong to.

    Args:
        bus: The receiver's serial bus (listen-only).
        devices: The `rflink` devices on that bus.
        ctx: The gateway as the driver sees it.

    A packet's meaning comes from its own value keys (`CMD=`, `PIR=`, `SMOKEALERT=`; see
    `interpret`), or from the device's `open`/`closed` codes. Packets with values that mean
    nothing for the device are counted (`rflink_value`) and logged once, never guessed at.
    """

    def __init__(self, bus: SerialBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        self.devices: list[_Device] = []
        for dev in devices:
            opts = dev.options
            assert isinstance(opts, RFLinkDeviceOptions)
            self.devices.append(_Device(
                dev, opts.matcher, KIND_METRIC[dev.kind], opts.debounce,
                RFLinkCode.parse(opts.open) if opts.open else None,
                RFLinkCode.parse(opts.closed) if opts.closed else None,
            ))
        self._decoder = RFLinkStreamDecoder()
        # device id -> (state and code, monotonic time) of the last packet heard from it
        self._last: dict[str, tuple[str, float]] = {}
        self._unknown_logged: set[tuple[str, str]] = set()
        self._noted: set[tuple[str, str]] = set()
        self.packets = 0
        self.receiver_lines = 0  # banners, replies and debug output: heard, not errors

    async def run(self) -> None:
        unsubscribe = self.bus.listen(self.feed, self._on_state)
        try:
            await asyncio.Event().wait()  # everything happens in the bus's callbacks
        finally:
            unsubscribe()

    def _on_state(self, is_open: bool, reason: str) -> None:
        if not is_open:
            cut = self._decoder.reset()  # a line cut by the unplugging is no line
            if cut:
                self.ctx.frame_error(None, "rflink_line", cut, f"cut off: {reason}")
            for d in self.devices:
                self.ctx.set_reachable(d.config, False, f"433 MHz receiver: {reason}")

    def feed(self, chunk: bytes) -> None:
        """Bytes from the receiver, as they arrive."""
        for item in self._decoder.feed(chunk):
            if isinstance(item, CodecError):
                self.ctx.frame_error(None, "rflink_line", item.data, str(item))
                continue
            self.handle(item)

    def handle(self, packet: RFLinkPacket) -> None:
        self.packets += 1
        if packet.kind != "device":
            self.receiver_lines += 1
            if packet.kind == "status" and "RFLink Gateway" in packet.protocol:
                log.info("433 MHz receiver: %s", packet.protocol)  # the banner, once a start
            else:
                log.debug("rflink %s line: %s", packet.kind, packet)
            return
        matched = [d for d in self.devices if d.matcher.matches(packet)]
        if not matched:
            self._log_unknown(packet)
            return
        now = self.ctx.clock.now()
        battery = (packet.get("BAT") or "").upper()
        value = packet_value(packet)
        for d in matched:
            self.ctx.set_reachable(d.config, True)
            if battery in {"OK", "LOW"}:
                self.ctx.emit(d.config, "battery_low", battery == "LOW", at=now)
            if value is None and battery:
                continue  # a battery report only, not a press
            state = self.interpret(d, packet, value)
            if state is None:
                continue
            code = f"{state}:{value[1] if value else ''}:{packet.get('SWITCH')}"
            last = self._last.get(d.config.id)
            self._last[d.config.id] = (code, now.mono)
            if last is not None and last[0] == code and now.mono - last[1] < d.debounce:
                continue  # a repeat of the same press (a new code is news at once)
            attrs: dict[str, Any] = {"protocol": packet.protocol,
                                     "cmd": value[1] if value else ""}
            if value is not None and value[0] != "CMD":
                attrs["key"] = value[0]
            if packet.get("SWITCH") is not None:
                attrs["switch"] = packet.get("SWITCH")
            self.ctx.emit(d.config, d.metric, state, at=now, attrs=attrs)

    def interpret(
        self, d: _Device, packet: RFLinkPacket, value: tuple[str, str] | None
    ) -> bool | None:
        """What a matching packet says about device `d`: True (pressed, open, motion,
        smoke), False (closed, no motion, clear), or None (nothing; counted and noted)."""
        if d.open is not None and d.closed is not None:
            if d.open.matches(packet):
                return True
            if d.closed.matches(packet):
                return False
            self._unknown_value(d, packet, "matches neither its 'open' nor its 'closed' code")
            return None
        if d.matcher.cmd is not None:
            return True  # the installer named the exact code in `match`: that code is it
        said = value[1] if value is not None else None
        if d.metric == "sos":
            if said in OFF_VALUES:
                # An OFF is a button's second half (or another key), not a press; say so
                # once, so a button that only ever sends OFF is found at the walk test.
                self._note(d, f"{value[0]}={said}" if value else "",
                           "is not a press (put CMD=… in its match if this is the SOS key)")
                return None
            # Any other packet of an SOS button is a press: a missed SOS is the worst
            # failure, and its attrs tell the platform what was sent.
            return True
        if said in ON_VALUES:
            return True
        if said in OFF_VALUES:
            return False
        self._unknown_value(
            d, packet,
            f"{value[0]}={value[1]} says nothing about a {d.config.kind}" if value
            else "carries no state (CMD=, PIR=, SMOKEALERT=)",
        )
        return None

    def _unknown_value(self, d: _Device, packet: RFLinkPacket, why: str) -> None:
        detail = ";".join(f"{k}={v}" for k, v in packet.fields.items())
        self.ctx.frame_error(d.config.id, "rflink_value", b"", f"{detail}: {why}")
        self._note(d, detail, why)

    def _note(self, d: _Device, what: str, why: str) -> None:
        key = (d.config.id, what)
        if key in self._noted or len(self._noted) >= _MAX_UNKNOWN_LOGGED:
            return
        self._noted.add(key)
        log.warning("433 MHz device %s sent %s, which %s", d.config.id, what or "a packet",
                    why, extra={"device_id": d.config.id})

    def _log_unknown(self, packet: RFLinkPacket) -> None:
        key = (packet.protocol.upper(), (packet.get("ID") or "").upper())
        # Every time, not once: a walk test started later must hear it too.
        self.ctx.heard_unknown("rflink", f"{packet.protocol};ID={packet.get('ID')}", {
            "protocol": "rflink", "bus": self.bus.id,
            "match": f"{packet.protocol};ID={packet.get('ID')}",
        })
        if key in self._unknown_logged or len(self._unknown_logged) >= _MAX_UNKNOWN_LOGGED:
            return
        self._unknown_logged.add(key)
        extra = "".join(
            f";{k}={packet.get(k)}" for k in ("SWITCH", "CMD") if packet.get(k) is not None
        )
        log.info(
            'heard an unconfigured 433 MHz device: match: "%s;ID=%s" (packet also had %s)',
            packet.protocol, packet.get("ID"), extra.lstrip(";") or "nothing else",
        )


def _create(bus: Any, devices: list[DeviceConfig], ctx: DriverContext) -> RFLinkDriver:
    return RFLinkDriver(bus, devices, ctx)


PROTOCOL = ProtocolSpec(
    name="rflink",
    options=RFLinkDeviceOptions,
    kinds=frozenset(KIND_METRIC),
    bus_types=frozenset({"serial"}),
    create=_create,
    description="433 MHz SOS buttons, PIRs, door contacts and smoke alarms via an RFLink "
    "receiver",
    address=("match",),
    parities=frozenset({"N"}),
)
