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
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.base import DriverContext
from drivers.meter_sense import DEFAULT_MAX_RATE_PER_HOUR, CumulativeSense
from drivers.serial_bus import BusError, SerialBus
from gateway.config import DeviceConfig
from gateway.model import ObservationValue

log = logging.getLogger("hearthgate.meters")

CUMULATIVE_METRICS = frozenset(DEFAULT_MAX_RATE_PER_HOUR)
STARTUP_GRACE = 5.0  # real seconds to wait for the port before the first poll


@dataclass(frozen=True, slots=True)
class Reading:
    metric: str
    value: ObservationValue


class PollFailed(BusError):
    """The meter answered, but nothing usable came back (every item refused or garbled)."""


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
        if reading.metric not in CUMULATIVE_METRICS or not isinstance(reading.value, float | int):
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
