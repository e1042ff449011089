"""What the three meter drivers share: a polling schedule per device on `ctx.clock`,
reachability from exchange outcomes, and meter sense on cumulative totals.

A driver subclasses `MeterPoller` and implements `poll(device) -> list[Reading]`, raising
`BusError` (the port is down, no reply after retries) when the meter did not answer at
all. Frame-level faults (bad checksum, garbage, another meter's reply, error replies) are
counted by the driver's parse callbacks through `ctx.frame_error` and do not make a device
unreachable by themselves; only a poll that gets no usable answer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, field_validator

from hearthgate.core.codec import CodecError, StreamDecoder
from hearthgate.core.durations import Duration
from hearthgate.core.model import ObservationValue
from hearthgate.core.options import DeviceConfig, OptionError, Options
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.meter_sense import DEFAULT_MAX_RATE_PER_HOUR, CumulativeSense
from hearthgate.drivers.serial_bus import BusError, NoReply, SerialBus

log = logging.getLogger("hearthgate.meters")

CUMULATIVE_METRICS = frozenset(DEFAULT_MAX_RATE_PER_HOUR)
STARTUP_GRACE = 5.0  # real seconds to wait for the port before the first poll


@dataclass(frozen=True, slots=True)
class Reading:
    metric: str
    value: ObservationValue
    # False for a total that may legitimately fall (DL/T 645 combined energy with solar):
    # meter sense then leaves it alone.
    monotonic: bool = True


class BCDMeterOptions(Options):
    """Keys shared by DL/T 645 and CJ/T 188 meters; subclasses set `codec`."""

    codec: ClassVar[Any]
    address: str = Field(description="meter address as on the nameplate")
    poll: Duration = Field(default=300.0, ge=1.0)
    preamble: int = Field(default=4, ge=0, le=4, description="FE bytes before each request")
    max_rate: float | None = Field(default=None, gt=0)

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value: object) -> str:
        # All the digits, as on the nameplate: padding a short address would hide a
        # dropped digit, and the gateway would poll a meter that is not there.
        digits = len(cls.codec.normalize_address("0"))
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError("address must be the meter's number from its nameplate")
        try:
            normal = str(cls.codec.normalize_address(value))
        except cls.codec.FrameError as exc:
            raise ValueError(exc.detail) from None
        if isinstance(value, int):
            raise OptionError(
                f"the address {value} is a number: a meter address has {digits} digits",
                f'write it in quotes with its leading zeros: "{normal}"',
            )
        if len(value.strip()) != digits:
            raise OptionError(
                f"the address '{value}' has {len(value.strip())} digits, not {digits}",
                f'write all {digits} digits with the leading zeros: "{normal}"'
                " (check the nameplate for a dropped digit)",
            )
        return normal


class PollFailed(BusError):
    """The meter answered, but nothing usable came back (every item refused or garbled)."""


class ReplyParser:
    """A `SerialBus.exchange` parse callback that remembers why it last refused a frame, so
    a poll that times out after garbled or refused replies says "reply not understood: ..."
    instead of "no reply" (an installer then checks the meter's model, not the wiring)."""

    def __init__(self, parse: Callable[[bytearray, ReplyParser], Any]) -> None:
        self._parse = parse
        self.refused: str | None = None  # the last frame refused, and why

    def __call__(self, buf: bytearray) -> Any:
        return self._parse(buf, self)

    def refuse(self, kind: str, detail: str) -> None:
        self.refused = f"{kind}: {detail}" if detail else kind


class MeterPoller:
    """Polls every device of one protocol on one serial bus, each on its own `poll` interval."""

    protocol = "meter"

    def __init__(self, bus: SerialBus, devices: Sequence[DeviceConfig], ctx: DriverContext) -> None:
        if not isinstance(bus, SerialBus):
            raise TypeError(f"{self.protocol} devices need a serial bus")
        self.bus = bus
        self.devices = list(devices)
        self.ctx = ctx
        self._sense: dict[tuple[str, str], CumulativeSense] = {}

    async def poll(self, device: DeviceConfig) -> list[Reading]:
        raise NotImplementedError

    def reply_parser(
        self, device: DeviceConfig, codec: Any, decoder: StreamDecoder[Any], address: str,
        check: Callable[[Any], tuple[str, str] | None],
    ) -> ReplyParser:
        """A `SerialBus.exchange` parse callback for DL/T 645 and CJ/T 188 (`codec` is the
        codec module, `decoder` its stream decoder): the next reply from `address` that
        `check` accepts. `check(reply)` returns None to accept, or (error kind, detail) to
        count the reply and keep waiting. Everything else that arrives is counted against
        `device` and skipped."""
        ctx = self.ctx

        def parse(buf: bytearray, parser: ReplyParser) -> Any:
            while (item := decoder.take(buf)) is not None:
                if isinstance(item, CodecError):
                    ctx.frame_error(device.id, item.kind, item.data, item.detail)
                    # Bytes before a frame are line noise, not a reply; a frame that fails
                    # its checksum or fields is one.
                    if item.kind not in ("garbage",):
                        parser.refuse(item.kind, item.detail)
                    continue
                frame = item
                if not frame.is_reply:
                    continue  # our own request, echoed by a half-duplex adapter
                if frame.address != address:
                    ctx.frame_error(device.id, "other_address", codec.encode_frame(frame),
                                    f"reply from {frame.address}")
                    continue
                try:
                    reply = codec.decode_reply(frame)
                except codec.FrameError as exc:
                    ctx.frame_error(device.id, exc.kind, exc.data, exc.detail)
                    parser.refuse(exc.kind, exc.detail)
                    continue
                problem = check(reply)
                if problem is None:
                    return reply
                ctx.frame_error(device.id, problem[0], codec.encode_frame(frame), problem[1])
                parser.refuse(*problem)
            return None

        return ReplyParser(parse)

    async def exchange(self, request: bytes, parser: ReplyParser) -> Any:
        """`bus.exchange` with `parser`; when no reply was accepted but some were refused,
        fails with what was wrong with them rather than with "no reply"."""
        try:
            return await self.bus.exchange(request, parser)
        except NoReply as exc:
            if parser.refused is not None:
                raise PollFailed(f"reply not understood: {parser.refused}") from exc
            raise

    def poll_interval(self, device: DeviceConfig) -> float:
        return float(getattr(device.options, "poll", 300.0))

    async def run(self) -> None:
        unsubscribe = self.bus.listen(None, self._port_state)
        try:
            async with asyncio.TaskGroup() as group:
                for device in self.devices:
                    group.create_task(self._device_loop(device), name=f"poll {device.id}")
        finally:
            unsubscribe()

    def _port_state(self, is_open: bool, reason: str) -> None:
        # The port vanished: every meter behind it is unreachable now, not at its next poll.
        # (When it comes back, each device loop polls at once and reports itself.)
        if not is_open:
            for device in self.devices:
                self.ctx.set_reachable(device, False, f"bus {self.bus.id} down: {reason}")

    async def _device_loop(self, device: DeviceConfig) -> None:
        clock = self.ctx.clock
        interval = self.poll_interval(device)
        # At start the port may not be open yet: give it a moment rather than reporting
        # every meter unreachable for a whole poll interval.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STARTUP_GRACE):
                await self.bus.wait_open()
        next_at = clock.now().mono
        while True:
            await self.poll_once(device)
            next_at += interval
            now = clock.now().mono
            if next_at < now:  # the bus was slow (or down): skip the missed slots
                next_at = now + interval - (now - next_at) % interval
            if self.bus.is_open:
                await clock.sleep_until(next_at)
            elif await self._sleep_or_reopen(next_at):
                next_at = clock.now().mono  # the port is back: poll now, not in 5 minutes

    async def _sleep_or_reopen(self, next_at: float) -> bool:
        """Sleep until `next_at`, or less if the port reopens first; True if it did."""
        sleeper = asyncio.ensure_future(self.ctx.clock.sleep_until(next_at))
        opener = asyncio.ensure_future(self.bus.wait_open())
        try:
            await asyncio.wait({sleeper, opener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            opener.cancel()
        return opener.done() and not opener.cancelled()

    async def poll_once(self, device: DeviceConfig) -> bool:
        """Poll one device now; emit its readings. True if it answered usefully."""
        try:
            readings = await self.poll(device)
        except BusError as exc:
            self.ctx.set_reachable(device, False, str(exc))
            return False
        except Exception:  # a bug must not stop the other meters on the bus
            log.exception("%s: polling %s failed", self.protocol, device.id)
            self.ctx.frame_error(device.id, "driver_error")
            return False
        self.ctx.set_reachable(device, True)
        for reading in readings:
            self._emit(device, reading)
        return True

    def _emit(self, device: DeviceConfig, reading: Reading) -> None:
        if (
            reading.metric not in CUMULATIVE_METRICS
            or not reading.monotonic
            or not isinstance(reading.value, float | int)
        ):
            self.ctx.emit(device, reading.metric, reading.value)
            return
        sense = self._sense.get((device.id, reading.metric))
        if sense is None:
            rate = getattr(device.options, "max_rate", None)
            sense = CumulativeSense(
                f"{device.id} {reading.metric}",
                rate if rate is not None else DEFAULT_MAX_RATE_PER_HOUR[reading.metric],
                slack=0.01,
            )
            self._sense[(device.id, reading.metric)] = sense
        result = sense.accept(float(reading.value), self.ctx.clock.now().mono)
        if result.dropped is not None:
            self.ctx.frame_error(device.id, "implausible_total", detail=f"{result.dropped}")
        if result.emit:
            self.ctx.emit(device, reading.metric, result.value, attrs=result.attrs or None)
