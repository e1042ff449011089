"""SerialBus over real pseudo-terminals: exchanges, retries, listening, unplug and replug."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hearthgate.core.clock import SimulatedClock
from hearthgate.core.options import BusConfig
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.serial_bus import BusDown, NoReply, SerialBus, SerialBusOptions
from hearthgate.registry import STANDARD
from hearthgate.simulators.links import PtyLink
from tests.meters.conftest import wait_until


def line_parser(buf: bytearray) -> bytes | None:
    """A toy framing: one reply is a line ending in \\n; leading junk is kept in the line."""
    end = buf.find(b"\n")
    if end < 0:
        return None
    line = bytes(buf[: end + 1])
    del buf[: end + 1]
    return line


def make_bus(path: str, **extra) -> SerialBus:
    values = {"port": path, "baudrate": 115200, "parity": "N", "timeout": 0.2,
              "reopen_backoff": 0.05, "reopen_backoff_max": 0.1, **extra}
    opts = SerialBusOptions.model_validate(values)
    return SerialBus("test-bus", opts)


async def running(bus: SerialBus) -> asyncio.Task[None]:
    task = asyncio.create_task(bus.run())
    await wait_until(lambda: bus.is_open)
    return task


async def echo_upper(link: PtyLink, prefix: bytes = b"") -> None:
    """A device that answers each request line with the line upper-cased."""
    buf = bytearray()
    while True:
        buf += await link.read()
        while b"\n" in buf:
            line = line_parser(buf)
            assert line is not None
            link.write(prefix + line.upper())


async def test_registered_and_constructible_from_config() -> None:
    spec = STANDARD.bus_types["serial"]
    opts = spec.options.model_validate({"port": "/dev/ttyUSB0", "timeout": "500ms"})
    bus = spec.open(BusConfig(id="rs485-1", type="serial", options=opts),
                    DriverContext(SimulatedClock(), lambda o: None))
    assert isinstance(bus, SerialBus)
    assert bus.options.parity == "E" and bus.options.timeout == 0.5 and bus.options.retries == 2
    # 2400 8E1: 11 bits a character; the default gap is 3.5 characters
    assert bus.char_time == pytest.approx(11 / 2400)
    assert bus.gap == pytest.approx(3.5 * 11 / 2400)


async def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        SerialBusOptions.model_validate({"port": "x", "parity": "X"})
    with pytest.raises(ValueError):
        SerialBusOptions.model_validate({"port": "x", "baudrat": 9600})


async def test_exchange_and_serialization(pty: PtyLink) -> None:
    bus = make_bus(pty.path)
    device = asyncio.create_task(echo_upper(pty, prefix=b"\xfe\xfe"))
    task = await running(bus)
    try:
        assert await bus.exchange(b"hello\n", line_parser) == b"\xfe\xfeHELLO\n"
        # Many drivers at once: each gets its own reply, never a neighbour's.
        words = [f"m{i}\n".encode() for i in range(20)]
        replies = await asyncio.gather(*(bus.exchange(w, line_parser) for w in words))
        assert replies == [b"\xfe\xfe" + w.upper() for w in words]
        assert bus.stats.exchanges == 21 and bus.stats.no_reply == 0
    finally:
        task.cancel()
        device.cancel()


async def test_no_reply_retries_then_fails(pty: PtyLink) -> None:
    bus = make_bus(pty.path, retries=2)
    task = await running(bus)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(NoReply):
            await bus.exchange(b"anyone?\n", line_parser, timeout=0.05)
        assert loop.time() - start >= 0.15  # three attempts of 50 ms
        assert bus.stats.retries == 2 and bus.stats.no_reply == 1
        seen = bytearray()
        while len(seen) < 3 * len(b"anyone?\n"):
            seen += await asyncio.wait_for(pty.read(), 1)
        assert bytes(seen) == b"anyone?\n" * 3
    finally:
        task.cancel()


async def test_parse_error_propagates(pty: PtyLink) -> None:
    bus = make_bus(pty.path)
    device = asyncio.create_task(echo_upper(pty))
    task = await running(bus)

    def strict(buf: bytearray) -> bytes | None:
        raise ValueError("bad frame")

    try:
        with pytest.raises(ValueError, match="bad frame"):
            await bus.exchange(b"x\n", strict)
        # the bus is still usable afterwards
        assert await bus.exchange(b"y\n", line_parser) == b"Y\n"
    finally:
        task.cancel()
        device.cancel()


async def test_listen_gets_unsolicited_bytes(pty: PtyLink) -> None:
    bus = make_bus(pty.path)
    chunks: list[bytes] = []
    states: list[tuple[bool, str]] = []
    unsubscribe = bus.listen(chunks.append, lambda up, why: states.append((up, why)))
    task = await running(bus)
    try:
        pty.write(b"20;01;EV1527;ID=295FD59;SWITCH=3;CMD=ON;\r\n")
        await wait_until(lambda: b"".join(chunks).endswith(b"\r\n"))
        assert b"".join(chunks) == b"20;01;EV1527;ID=295FD59;SWITCH=3;CMD=ON;\r\n"
        assert states == [(True, "")]
        await bus.send(b"10;PING;\r\n")
        assert await asyncio.wait_for(pty.read(), 1) == b"10;PING;\r\n"
        unsubscribe()
        pty.write(b"more\n")
        await asyncio.sleep(0.05)
        assert b"more" not in b"".join(chunks)
    finally:
        task.cancel()


async def test_unplug_fails_fast_then_reopens(pty: PtyLink) -> None:
    bus = make_bus(pty.path)
    states: list[bool] = []
    bus.listen(lambda b: None, lambda up, why: states.append(up))
    device = asyncio.create_task(echo_upper(pty))
    task = await running(bus)
    try:
        assert await bus.exchange(b"a\n", line_parser) == b"A\n"
        pty.unplug()
        await wait_until(lambda: not bus.is_open)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(BusDown):
            await bus.exchange(b"b\n", line_parser)
        assert loop.time() - start < 0.05  # fails fast, no timeout wait
        await asyncio.sleep(0.3)  # several reopen attempts against a missing port
        assert not bus.is_open
        pty.plug()
        await wait_until(lambda: bus.is_open)
        assert await bus.exchange(b"c\n", line_parser) == b"C\n"
        assert states == [True, False, True]
        assert bus.stats.losses == 1 and bus.stats.opens == 2
    finally:
        task.cancel()
        device.cancel()


async def test_unplug_during_exchange_raises_bus_down(pty: PtyLink) -> None:
    bus = make_bus(pty.path, timeout=2.0)
    task = await running(bus)
    try:
        pending = asyncio.create_task(bus.exchange(b"slow\n", line_parser))
        await pty.read()
        pty.unplug()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(BusDown):
            await pending
        assert loop.time() - start < 1.0
    finally:
        task.cancel()


async def test_even_parity_on_a_pty_keeps_the_bus_down(pty: PtyLink) -> None:
    # This kernel's pseudo-terminals refuse parity E: the bus reports it and keeps trying.
    bus = SerialBus("even", SerialBusOptions(port=pty.path, parity="E", reopen_backoff=0.05))
    task = asyncio.create_task(bus.run())
    try:
        await asyncio.sleep(0.2)
        if bus.is_open:
            pytest.skip("this kernel accepts even parity on a pty")
        with pytest.raises(BusDown, match="cannot open"):
            await bus.exchange(b"x", line_parser)
    finally:
        task.cancel()


async def test_missing_port_never_crashes(tmp_path: Path) -> None:
    bus = make_bus(str(tmp_path / "nothing-here"))
    task = asyncio.create_task(bus.run())
    await asyncio.sleep(0.2)
    assert not task.done() and not bus.is_open
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
