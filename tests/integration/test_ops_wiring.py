"""A running gateway speaks sd_notify over a real datagram socket and serves metrics."""

from __future__ import annotations

import asyncio
import socket
import time

from gateway.local_broker import free_port
from gateway.testkit import GatewayProcess, PlatformSubscriber, wait_started

GW = "gw-ops-0001"
P = f"hearthgate/{GW}"


async def test_notify_watchdog_metrics_and_startup_warnings(tmp_path, broker):
    metrics_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"""gateway:
  id: {GW}
  data_dir: {tmp_path / "data"}
  language: en
  metrics_listen: 127.0.0.1:{metrics_port}
  metrics_textfile: {tmp_path / "hearthgate.prom"}
uplink: {{host: 127.0.0.1, port: {broker.port}}}
sites:
  - {{id: room-1, rules: [{{type: sos}}]}}
""")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    gw = GatewayProcess(config, env={
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000",
    })
    datagrams: list[str] = []

    def drain() -> None:
        while True:
            try:
                datagrams.append(notify.recv(4096).decode())
            except BlockingIOError:
                return

    try:
        async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform:
            await wait_started(gw, platform, P)
            deadline = time.monotonic() + 10
            while sum("WATCHDOG=1" in d for d in datagrams) < 3:
                assert time.monotonic() < deadline, datagrams
                await asyncio.sleep(0.1)
                drain()
            assert any(d.startswith("READY=1") for d in datagrams)

            reader, writer = await asyncio.open_connection("127.0.0.1", metrics_port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            body = (await asyncio.wait_for(reader.read(), 10)).decode()
            writer.close()
            assert body.startswith("HTTP/1.1 200")
            assert "hearthgate_uplink_connected 1" in body
            assert 'hearthgate_outbox_depth{priority="urgent"} 0' in body
            assert 'hearthgate_build_info{version="' in body
            assert "warning:" in gw.log_text()  # check's warnings are logged at start

            assert gw.stop() == 0
            drain()
            assert any("STOPPING=1" in d for d in datagrams)
            assert (tmp_path / "hearthgate.prom").read_text().count("hearthgate_") > 5
    finally:
        gw.close()
        notify.close()
