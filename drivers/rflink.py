"""433 MHz devices (SOS buttons, PIRs, door contacts) heard by an RFLink receiver.

Protocol `rflink` on a `serial` bus (the receiver's USB port, 57600 bps). The receiver is
listen-only here: it prints one line per radio packet (drivers/rflink_codec.py) and this
driver hands each matching packet to its device.

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

from pydantic import Field, field_validator

from hearthgate.core.codec import CodecError
from hearthgate.core.durations import Duration
from hearthgate.core.options import Options
from hearthgate.drivers.base import ProtocolSpec
from hearthgate.drivers.rflink_codec import (
    RFLinkError,
    RFLinkMatch,
    RFLinkPacket,
    RFLinkStreamDecoder,
)

if TYPE_CHECKING:
    from hearthgate.core.options import DeviceConfig
    from hearthgate.drivers.base import DriverContext
    from hearthgate.drivers.serial_bus import SerialBus

log = logging.getLogger("hearthgate.rflink")

KIND_METRIC = {"sos_button": "sos", "motion_sensor": "motion", "door_contact": "door_open"}
OFF_COMMANDS = frozenset({"OFF", "ALLOFF", "CLOSE", "CLOSED"})
_MAX_UNKNOWN_LOGGED = 1000


class RFLinkDeviceOptions(Options):
    match: str = Field(description='protocol and ID as the receiver prints: "EV1527;ID=5a3c1"')
    debounce: Duration = Field(default=2.5, ge=0, le=60)

    @field_validator("match")
    @classmethod
    def _valid_match(cls, value: str) -> str:
        try:
            RFLinkMatch.parse(value)
        except RFLinkError as exc:
            raise ValueError(exc.detail) from None  # what an installer reads, without the kind
        return value

    @property
    def matcher(self) -> RFLinkMatch:
        return RFLinkMatch.parse(self.match)


@dataclass
class _Device:
    config: DeviceConfig
    matcher: RFLinkMatch
    metric: str
    debounce: float


class RFLinkDriver:
    def __init__(self, bus: SerialBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        self.devices: list[_Device] = []
        for dev in devices:
            opts = dev.options
            assert isinstance(opts, RFLinkDeviceOptions)
            self.devices.append(_Device(dev, opts.matcher, KIND_METRIC[dev.kind], opts.debounce))
        self._decoder = RFLinkStreamDecoder()
        # device id -> (command, monotonic time) of the last packet heard from it
        self._last: dict[str, tuple[str, float]] = {}
        self._unknown_logged: set[tuple[str, str]] = set()
        self.packets = 0

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
        if packet.get("ID") is None:
            log.debug("rflink: %s", packet)  # banners, OK/PONG, debug output
            return
        matched = [d for d in self.devices if d.matcher.matches(packet)]
        if not matched:
            self._log_unknown(packet)
            return
        now = self.ctx.clock.now()
        cmd = (packet.get("CMD") or "").upper()
        battery = (packet.get("BAT") or "").upper()
        for d in matched:
            self.ctx.set_reachable(d.config, True)
            if battery in {"OK", "LOW"}:
                self.ctx.emit(d.config, "battery_low", battery == "LOW", at=now)
            if not cmd and battery:
                continue  # a battery report only, not a press
            last = self._last.get(d.config.id)
            self._last[d.config.id] = (cmd, now.mono)
            if last is not None and last[0] == cmd and now.mono - last[1] < d.debounce:
                continue  # a repeat of the same press (a new command is news at once)
            attrs: dict[str, Any] = {"protocol": packet.protocol, "cmd": cmd}
            if packet.get("SWITCH") is not None:
                attrs["switch"] = packet.get("SWITCH")
            value = True if d.metric == "sos" else cmd not in OFF_COMMANDS
            self.ctx.emit(d.config, d.metric, value, at=now, attrs=attrs)

    def _log_unknown(self, packet: RFLinkPacket) -> None:
        key = (packet.protocol.upper(), (packet.get("ID") or "").upper())
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
    description="433 MHz SOS buttons, PIRs and door contacts via an RFLink receiver",
    address=("match",),
    parities=frozenset({"N"}),
)
