"""A running gateway serves its metrics over HTTP and as a textfile, and logs check's
warnings at start. (sd_notify is tested in tests/ops/test_service_notify.py.)"""

from __future__ import annotations

import asyncio

from hearthgate.devkit.local_broker import free_port
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber, wait_started

GW = "gw-ops-0001"
P = f"hearthgate/{GW}"


async def test_metrics_endpoint_textfile_and_startup_warnings(tmp_path, broker):
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
  - {{id: room-1, rules: []}}
""")
    gw = GatewayProcess(config)
    try:
        async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform:
            await wait_started(gw, platform, P)
            reader, writer = await asyncio.open_connection("127.0.0.1", metrics_port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            body = (await asyncio.wait_for(reader.read(), 10)).decode()
            writer.close()
            assert body.startswith("HTTP/1.1 200")
            assert "hearthgate_uplink_connected 1" in body
            assert 'hearthgate_outbox_depth{priority="urgent"} 0' in body
            assert 'hearthgate_build_info{version="' in body
            # `hearthgate check` warns that no SOS device is configured; `run` logs it.
            assert "warning:" in gw.log_text() and "sos" in gw.log_text()
            assert gw.stop() == 0
            assert (tmp_path / "hearthgate.prom").read_text().count("hearthgate_") > 5
    finally:
        gw.close()
