"""The gateway's metrics as the running service fills them (in-process Gateway, real broker,
real SQLite store): an SOS press and a garbage payload show up in the exposition."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt

from hearthgate.config import load_config
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.service import Gateway
from tests.ops.sos_home import write_sos_config


async def wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_metrics_from_a_running_gateway(tmp_path: Path, broker: MosquittoBroker) -> None:
    gw = Gateway(load_config(write_sos_config(tmp_path, broker, "gw-metrics-0001")))
    stop = asyncio.Event()
    run = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 15)
        await wait_until(lambda: gw.uplink is not None and gw.uplink.stats.connected)
        async with aiomqtt.Client("127.0.0.1", broker.port) as z2m:
            for _ in range(50):  # the bus subscribes shortly after start
                await z2m.publish("zigbee2mqtt/sos_101", json.dumps(
                    {"action": "emergency", "battery": 80, "linkquality": 99}), qos=1)
                if gw.counts.get("sos"):
                    break
                await asyncio.sleep(0.1)
            await z2m.publish("zigbee2mqtt/sos_101", b"\x00 not json", qos=1)
        await wait_until(lambda: gw.uplink.stats.published.get("alert", 0) >= 1)
        await wait_until(lambda: sum(gw.ctx.errors.values()) >= 1)
        text = gw.metrics.registry.render()
    finally:
        stop.set()
        await asyncio.wait_for(run, 20)

    lines = set(text.splitlines())
    assert "hearthgate_uplink_connected 1" in lines
    # The loop-lag probe runs as a supervised task of the gateway (issue 17).
    assert "loop-lag" in gw.supervisor.tasks  # type: ignore[union-attr]
    assert any(line.startswith("hearthgate_loop_lag_seconds ") for line in lines)
    assert any(line.startswith("hearthgate_loop_lag_max_seconds ") for line in lines)
    assert 'hearthgate_alerts_total{type="sos",state="raised"} 1' in lines
    assert any(line.startswith('hearthgate_observations_total{metric="sos"} ') for line in lines)
    assert any(line.startswith('hearthgate_uplink_published_total{kind="alert"} ')
               for line in lines)
    assert any(line.startswith('hearthgate_frame_errors_total{device_id="sos-101",kind=')
               for line in lines), text
    assert "hearthgate_devices_online 1" in lines
    assert "hearthgate_telemetry_dropped_total 0" in lines
    # Nothing refused or stuck on a broker without an ACL; the series exist from the start.
    assert 'hearthgate_uplink_delivery_total{event="refused"} 0' in lines
    assert 'hearthgate_uplink_delivery_total{event="stuck"} 0' in lines
    assert any(line.startswith('hearthgate_build_info{version="') for line in lines)
