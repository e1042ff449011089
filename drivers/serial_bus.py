"""The `serial` bus type: one serial port (RS-485 adapter, USB receiver) shared by drivers.

A `SerialBus` owns the port; drivers never open it. Its public API is small and stable:

- ``await bus.exchange(request, parse, *, timeout=None, retries=None) -> T``
  Send ``request`` and read until ``parse(buffer)`` returns a frame (anything not None).
  ``parse`` receives the bus's receive buffer (a ``bytearray``) every time bytes arrive
  and may consume from it; it returns None while the reply is incomplete. Drivers build
  it on their codec's ``StreamDecoder.take(buffer)`` (``hearthgate.core.codec``), which
  hands out one frame or error at a time, so they count the errors and skip frames that
  are not their reply (Modbus on pymodbus' framer). The buffer is cleared before every
  attempt: a retry starts on fresh bytes. An exception from ``parse`` propagates to the
  caller. When no frame arrives within ``timeout`` the request is sent
  again, up to ``retries`` times, then ``NoReply`` is raised. While the port is closed
  (unplugged adapter, vanished pty) ``BusDown`` is raised at once, so drivers can mark
  their devices unreachable with ``ctx.set_reachable(device, False, str(exc))``.
- ``await bus.send(data)``: write without expecting a reply (broadcasts, RFLink commands).
- ``bus.listen(on_data, on_state=None) -> unsubscribe``: for receive-only protocols
  (RFLink, sniffing). ``on_data(chunk: bytes)`` gets every chunk that arrives while no
  exchange is waiting for a reply; ``on_state(is_open: bool, reason: str)`` is called when
  the port opens or goes away. Callbacks must not block; exceptions in them are logged.
- ``await bus.wait_open()``: returns once the port is open (use with a timeout).
- ``bus.is_open``, ``bus.down_reason``, ``bus.stats`` (counters), ``bus.char_time``.

Serialization: exchanges from every driver on the bus take one ``asyncio.Lock`` (FIFO),
so one request/reply is on the line at a time; the inter-frame gap (silence before each
write, by default 3.5 character times, at least 5 ms) is kept under the same lock. The
port itself (the pyserial-asyncio-fast transport) is opened and reopened only by ``run()``.

Time: the line's own timings (reply timeout, gap, reopen backoff) are real elapsed time
on the event loop, because they are about real bytes on a real wire; polling schedules
belong to the drivers and run on ``ctx.clock``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import Field

from hearthgate.core.durations import Duration
from hearthgate.core.options import Options
from hearthgate.drivers.base import BusType

if TYPE_CHECKING:
    from hearthgate.core.options import BusConfig
    from hearthgate.drivers.base import DriverContext

log = logging.getLogger("hearthgate.serial")

T = TypeVar("T")


class BusError(Exception):
    """An exchange on a serial bus failed; the message says why, for `set_reachable`."""


class BusDown(BusError):
    """The port is not open (unplugged, not present yet, closed by the other side)."""


class NoReply(BusError):
    """No complete reply within the timeout, after every retry."""


class SerialBusOptions(Options):
    """Keys of a `type: serial` bus (docs/meters.md, "The bus")."""

    port: str = Field(description="a serial port (/dev/ttyUSB0) or any pyserial URL")
    baudrate: int = Field(default=2400, ge=50, le=4_000_000)
    parity: Literal["N", "E", "O"] = "E"
    bytesize: Literal[5, 6, 7, 8] = 8
    stopbits: Literal[1, 1.5, 2] = 1
    timeout: Duration = Field(default=0.8, gt=0, description="per request/response")
    retries: int = Field(default=2, ge=0, le=10)
    inter_frame_gap: Duration | None = Field(
        default=None, description="silence before each request; default 3.5 characters, ≥5 ms"
    )
    reopen_backoff: Duration = Field(default=1.0, gt=0, description="first wait before reopening")
    reopen_backoff_max: Duration = Field(default=30.0, gt=0)


@dataclass
class BusStats:
    exchanges: int = 0  # requests that got a frame back
    no_reply: int = 0  # exchanges that failed after all retries
    retries: int = 0  # extra sends after a timeout
    bytes_tx: int = 0
    bytes_rx: int = 0
    opens: int = 0
    losses: int = 0


class _PortProtocol(asyncio.Protocol):
    def __init__(self, bus: SerialBus) -> None:
        self._bus = bus

    def data_received(self, data: bytes) -> None:
        self._bus._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._bus._on_lost(exc)


class SerialBus:
    """Owns one serial port; serializes exchanges; reopens the port when it vanishes."""

    def __init__(self, bus_id: str, options: SerialBusOptions) -> None:
        self.id = bus_id
        self.options = options
        bits = 1 + options.bytesize + (0 if options.parity == "N" else 1) + options.stopbits
        # Seconds one character occupies on the wire at this baud rate.
        self.char_time: float = bits / options.baudrate
        self.gap: float = (
            options.inter_frame_gap
            if options.inter_frame_gap is not None
            else max(3.5 * self.char_time, 0.005)
        )
        self.stats = BusStats()
        self.down_reason: str = "port not opened yet"
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Future[str] | None = None
        self._lock = asyncio.Lock()
        self._rx = bytearray()
        self._rx_event = asyncio.Event()
        self._open_event = asyncio.Event()
        self._awaiting_reply = False
        self._last_io = 0.0
        self._listeners: list[
            tuple[Callable[[bytes], None] | None, Callable[[bool, str], None] | None]
        ] = []

    # -- public API -----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    async def wait_open(self) -> None:
        """Return once the port is open (at once if it is)."""
        await self._open_event.wait()

    def listen(
        self,
        on_data: Callable[[bytes], None] | None,
        on_state: Callable[[bool, str], None] | None = None,
    ) -> Callable[[], None]:
        """Receive unsolicited bytes (and open/closed changes); returns an unsubscribe.
        `on_data` may be None for a listener that only follows the port's state."""
        entry = (on_data, on_state)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    async def exchange(
        self,
        request: bytes,
        parse: Callable[[bytearray], T | None],
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> T:
        """Send `request`, return what `parse` makes of the reply (see the module docstring)."""
        attempts = 1 + (self.options.retries if retries is None else retries)
        wait = (self.options.timeout if timeout is None else timeout) + self._wire_time(
            len(request)
        )
        async with self._lock:
            for attempt in range(attempts):
                transport = self._require_open()
                await self._keep_gap()
                if self._rx:
                    log.debug("bus %s: dropping %d stale bytes [%s]", self.id, len(self._rx),
                              bytes(self._rx[:64]).hex(" "))
                    self._rx.clear()
                if attempt:
                    self.stats.retries += 1
                self._awaiting_reply = True
                try:
                    self._write(transport, request)
                    frame = await self._read_reply(parse, wait)
                finally:
                    self._awaiting_reply = False
                    self._last_io = max(self._last_io, asyncio.get_running_loop().time())
                if frame is not None:
                    self.stats.exchanges += 1
                    return frame
            self.stats.no_reply += 1
            raise NoReply(f"no reply on {self.id} after {attempts} attempt(s)")

    async def send(self, data: bytes) -> None:
        """Write `data` without waiting for a reply (keeps the gap and the serialization)."""
        async with self._lock:
            transport = self._require_open()
            await self._keep_gap()
            self._write(transport, data)

    async def run(self) -> None:
        """Open the port; when it goes away, keep reopening it with backoff. Never returns."""
        loop = asyncio.get_running_loop()
        backoff = self.options.reopen_backoff
        last_failure = ""
        try:
            while True:
                try:
                    transport = await self._open(loop)
                except Exception as exc:  # pyserial raises SerialException, OSError, ValueError
                    reason = f"cannot open {self.options.port}: {exc}"
                    if reason != last_failure:
                        log.warning("bus %s: %s; retrying", self.id, reason)
                        last_failure = reason
                    self._set_down(reason)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.options.reopen_backoff_max)
                    continue
                backoff = self.options.reopen_backoff
                last_failure = ""
                self._lost = loop.create_future()
                self._transport = transport
                self._open_event.set()
                self._last_io = loop.time()
                self.stats.opens += 1
                log.info("bus %s: %s open", self.id, self.options.port)
                self._notify_state(True, "")
                reason = await self._lost
                self.stats.losses += 1
                log.warning("bus %s: lost %s: %s", self.id, self.options.port, reason)
                self._set_down(reason)
                await asyncio.sleep(self.options.reopen_backoff)
        finally:
            transport = self._transport
            self._transport = None
            self._open_event.clear()
            if transport is not None:
                transport.close()
            self.down_reason = "bus stopped"

    # -- internals ------------------------------------------------------------------------

    async def _open(self, loop: asyncio.AbstractEventLoop) -> asyncio.Transport:
        import serial_asyncio_fast

        o = self.options
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop,
            lambda: _PortProtocol(self),
            o.port,
            baudrate=o.baudrate,
            parity=o.parity,
            bytesize=o.bytesize,
            stopbits=o.stopbits,
        )
        return transport

    def _wire_time(self, nbytes: int) -> float:
        return nbytes * self.char_time

    def _require_open(self) -> asyncio.Transport:
        if self._transport is None:
            raise BusDown(f"bus {self.id} is down: {self.down_reason}")
        return self._transport

    async def _keep_gap(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_io + self.gap - loop.time()
        if wait > 0.0002:  # shorter waits cost more than they keep (the loop's timers are ~1 ms)
            await asyncio.sleep(wait)

    def _write(self, transport: asyncio.Transport, data: bytes) -> None:
        transport.write(data)
        self.stats.bytes_tx += len(data)
        # The line is busy until the last bit is out; the gap counts from there.
        self._last_io = asyncio.get_running_loop().time() + self._wire_time(len(data))

    async def _read_reply(self, parse: Callable[[bytearray], T | None], wait: float) -> T | None:
        try:
            async with asyncio.timeout(wait):
                while True:
                    if self._rx:
                        frame = parse(self._rx)
                        if frame is not None:
                            return frame
                    self._rx_event.clear()
                    await self._rx_event.wait()
                    if self._transport is None:
                        raise BusDown(f"bus {self.id} went down: {self.down_reason}")
        except TimeoutError:
            return None

    def _set_down(self, reason: str) -> None:
        was_open = self._transport is not None
        self._transport = None
        self._open_event.clear()
        self.down_reason = reason
        self._rx.clear()
        self._rx_event.set()  # wake a waiting exchange so it fails fast
        if was_open:
            self._notify_state(False, reason)

    def _notify_state(self, is_open: bool, reason: str) -> None:
        for _, on_state in list(self._listeners):
            if on_state is None:
                continue
            try:
                on_state(is_open, reason)
            except Exception:
                log.exception("bus %s: state listener failed", self.id)

    def _on_data(self, data: bytes) -> None:
        self.stats.bytes_rx += len(data)
        # max(): the request may still be on the wire (by our estimate) on a fast pty.
        self._last_io = max(self._last_io, asyncio.get_running_loop().time())
        if self._awaiting_reply:
            self._rx += data
            self._rx_event.set()
            return
        receivers = [on_data for on_data, _ in self._listeners if on_data is not None]
        if not receivers:
            log.debug("bus %s: unsolicited bytes [%s]", self.id, data[:64].hex(" "))
            return
        for on_data in receivers:
            try:
                on_data(data)
            except Exception:
                log.exception("bus %s: listener failed", self.id)

    def _on_lost(self, exc: Exception | None) -> None:
        reason = str(exc) if exc else "port closed"
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        self._set_down(reason)


def _open_serial_bus(config: BusConfig, ctx: DriverContext) -> SerialBus:
    assert isinstance(config.options, SerialBusOptions)
    return SerialBus(config.id, config.options)


BUS_TYPE = BusType(
    name="serial",
    options=SerialBusOptions,
    open=_open_serial_bus,
    description="a serial port or pyserial URL shared by RS-485 meters, receivers, readers",
)
