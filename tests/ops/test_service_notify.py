"""The real gateway process speaking sd_notify to a real $NOTIFY_SOCKET, as under systemd's
Type=notify with WatchdogSec= (no systemd runs as PID 1 here, so its socket is played by a
datagram socket in tmp_path): READY=1 once running, WATCHDOG=1 at half of WATCHDOG_USEC,
STOPPING=1 on SIGTERM, then exit 0."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess
from tests.ops.sos_home import write_sos_config


def receive_until(sock: socket.socket, predicate, timeout: float) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096))
        except TimeoutError:
            break
        if predicate(got):
            break
    return got


def test_gateway_notifies_ready_watchdog_stopping(tmp_path: Path,
                                                  broker: MosquittoBroker) -> None:
    notify_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    gw = GatewayProcess(write_sos_config(tmp_path, broker, "gw-notify-0001"), env={
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "400000",  # pings every 0.2 s
    })
    try:
        gw.start()
        got = receive_until(sock, lambda g: any(m.startswith(b"READY=1") for m in g), 30)
        ready = [m for m in got if m.startswith(b"READY=1")]
        assert ready, (got, gw.log_text())
        assert ready[0].startswith(b"READY=1\nSTATUS=running: ")
        assert b"1 device" in ready[0]

        pings = receive_until(sock, lambda g: len(g) >= 5, 5)
        assert pings.count(b"WATCHDOG=1") >= 5, pings
        t0 = time.monotonic()
        more = receive_until(sock, lambda g: len(g) >= 5, 5)
        elapsed = time.monotonic() - t0
        assert more.count(b"WATCHDOG=1") == 5
        assert 0.5 < elapsed < 3.0  # about 0.2 s apart, as WATCHDOG_USEC / 2 asks

        gw.proc.send_signal(15)  # SIGTERM, as `systemctl stop` sends
        tail = receive_until(sock, lambda g: b"STOPPING=1" in g, 15)
        assert b"STOPPING=1" in tail, tail
        assert gw.proc.wait(15) == 0
        assert "Traceback" not in gw.log_text()
    finally:
        gw.close()
        sock.close()
