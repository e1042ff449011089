"""sd_notify over a real AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearthgate.sdnotify import SystemdNotifier


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    sock = _receiver(path)
    try:
        yield path, sock
    finally:
        sock.close()


def _drain(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    out = []
    try:
        while True:
            out.append(sock.recv(4096))
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return out


def test_ready_status_stopping_datagrams(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    n = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("collecting: 7 devices")
    assert sock.recv(4096) == b"READY=1\nSTATUS=collecting: 7 devices"
    assert n.ready()
    assert sock.recv(4096) == b"READY=1"
    assert n.status("uplink down\nretrying")
    assert sock.recv(4096) == b"STATUS=uplink down retrying"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.extend_timeout(1.5)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=1500000"
    assert n.status("上行已连接")
    assert sock.recv(4096) == "STATUS=上行已连接".encode()
    n.close()


def test_abstract_socket() -> None:
    name = f"hearthgate-test-{uuid.uuid4().hex}"
    sock = _receiver("\0" + name)
    try:
        n = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready("ok")
        assert sock.recv(4096) == b"READY=1\nSTATUS=ok"
        n.close()
    finally:
        sock.close()


def test_noop_without_systemd() -> None:
    n = SystemdNotifier({})
    assert not n.enabled
    assert n.ready("x") is False
    assert n.watchdog() is False
    assert n.watchdog_interval() is None


def test_unusable_socket_values() -> None:
    for value in ("", "relative/path", "vsock:2:1234"):
        assert not SystemdNotifier({"NOTIFY_SOCKET": value}).enabled


def test_missing_socket_does_not_raise(tmp_path: Path) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.ready() is False
    assert n.ready() is False


def test_watchdog_interval_is_half_and_honours_pid(tmp_path: Path) -> None:
    path = str(tmp_path / "n")
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier(env).watchdog_interval() == 15.0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(mine).watchdog_interval() == 15.0
    other = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SystemdNotifier(other).watchdog_interval() is None
    for bad in ("", "0", "-5", "abc"):
        assert SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": bad}).watchdog_interval() \
            is None
    assert SystemdNotifier({**env, "WATCHDOG_PID": "x"}).watchdog_interval() is None
    # No socket, no watchdog, even with WATCHDOG_USEC set.
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


async def test_watchdog_loop_pings_only_while_healthy(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    sleeps: list[float] = []
    gates: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        gate = asyncio.Event()
        gates.put_nowait(gate)
        await gate.wait()

    health = [True, True, False, False, True]
    calls = iter(health)
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}, sleep=fake_sleep)
    task = asyncio.create_task(n.watchdog_loop(lambda: next(calls)))
    received = []
    for _ in health:
        gate = await asyncio.wait_for(gates.get(), 2)  # the loop has pinged (or not) and sleeps
        received.append(_drain(sock))
        gate.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sleeps[:5] == [5.0] * 5
    assert received == [[b"WATCHDOG=1"], [b"WATCHDOG=1"], [], [], [b"WATCHDOG=1"]]


async def test_watchdog_loop_real_timing(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # 20 ms pings
    assert n.watchdog_interval() == pytest.approx(0.02)

    def broken() -> bool:
        raise RuntimeError("store writer gone")

    healthy = True
    task = asyncio.create_task(n.watchdog_loop(lambda: healthy if healthy else broken()))
    await asyncio.sleep(0.15)
    pings = _drain(sock)
    assert 3 <= len(pings) <= 9 and set(pings) == {b"WATCHDOG=1"}
    healthy = False
    await asyncio.sleep(0.03)
    _drain(sock)
    await asyncio.sleep(0.1)
    assert _drain(sock) == []  # a raising check counts as unhealthy: no pings
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_loop_returns_when_disarmed(tmp_path: Path) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "x")})
    await asyncio.wait_for(n.watchdog_loop(lambda: True), 1)
