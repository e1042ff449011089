"""Black box: simulated presence devices -> the gateway as a real process -> the platform.

A 433 MHz SOS button on a pseudo-terminal and Zigbee devices on the home's broker; the
platform's broker receives `P/alerts` and `P/devices`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber, config_head
from hearthgate.drivers.rflink_codec import RFLinkMatch
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.rflink import RFLinkReceiverSimulator

GW = "gw-presence-01"
P = f"hearthgate/{GW}"


@pytest.fixture
async def platform(broker: MosquittoBroker) -> AsyncIterator[PlatformSubscriber]:
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as sub:
        yield sub


@pytest.fixture
async def home(home_broker: MosquittoBroker) -> AsyncIterator[PlatformSubscriber]:
    async with PlatformSubscriber(home_broker.host, home_broker.port, ("none/#",)) as pub:
        yield pub


def write_config(tmp: Path, platform: MosquittoBroker, home: MosquittoBroker, rf: str) -> Path:
    path = tmp / "gateway.yaml"
    path.write_text(
        config_head(GW, tmp / "data", platform.port, home.port)
        + f"""  - {{id: rf433, type: serial, port: {rf}, baudrate: 57600, parity: N}}
devices:
  - {{id: sos-rf, site: room-301, kind: sos_button, protocol: rflink, bus: rf433,
      match: "EV1527;ID=0x5a3c1"}}
  - {{id: sos-zb, site: room-302, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/sos_302, model: HS1EB}}
  - {{id: pir-zb, site: room-302, kind: motion_sensor, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/pir_302, offline_after: 2s}}
sites:
  - {{id: room-301, resident: r-301, rules: [{{type: sos}}]}}
  - {{id: room-302, resident: r-302, rules: [{{type: sos}}]}}
"""
    )
    return path


def _raised(device: str):
    def match(body: dict) -> bool:
        return body.get("state") == "raised" and device in body.get("device_ids", [])

    return match


def _device(snapshot: dict, device_id: str) -> dict:
    return next(d for d in snapshot["devices"] if d["device_id"] == device_id)


async def test_sos_presses_reach_platform_once_and_silence_shows_offline(
    tmp_path: Path,
    broker: MosquittoBroker,
    home_broker: MosquittoBroker,
    platform: PlatformSubscriber,
    home: PlatformSubscriber,
) -> None:
    rf = PtyLink(tmp_path / "ttyRF")
    gw = GatewayProcess(write_config(tmp_path, broker, home_broker, rf.path))
    try:
        gw.start()
        await platform.wait_json(f"{P}/status", lambda b: b["state"] == "online", timeout=20)
        await platform.wait_for(lambda _: "bus zigbee connected" in gw.log_text(), 20)
        await platform.wait_for(lambda _: "ttyRF open" in gw.log_text(), 20)

        # 433 MHz: one press, repeated five times by the radio.
        sim = RFLinkReceiverSimulator(rf, {"sos-rf": "EV1527;ID=0x5a3c1"}, repeats=5)
        await sim.transmit(RFLinkMatch.parse("EV1527;ID=0x5a3c1"), "ON")
        [alert] = await platform.wait_json(f"{P}/alerts", _raised("sos-rf"))
        assert alert["type"] == "sos" and alert["site_id"] == "room-301"

        # Zigbee: one press, published three times.
        for _ in range(3):
            await home.publish("zigbee2mqtt/sos_302", {"action": "double", "battery": 77,
                                                       "linkquality": 99})
        [zalert] = await platform.wait_json(f"{P}/alerts", _raised("sos-zb"))
        assert zalert["details"].get("action") == "double"

        # A motion sensor reports once, then goes silent past its offline_after.
        await home.publish("zigbee2mqtt/pir_302", {"occupancy": True, "battery": 64,
                                                   "linkquality": 120})
        [seen] = await platform.wait_json(
            f"{P}/devices", lambda b: _device(b, "pir-zb")["online"], timeout=10
        )
        assert _device(seen, "pir-zb")["battery"] == 64
        assert _device(seen, "pir-zb")["linkquality"] == 120
        [gone] = await platform.wait_json(
            f"{P}/devices",
            lambda b: _device(b, "pir-zb")["last_seen"] and not _device(b, "pir-zb")["online"],
            timeout=10,
        )
        assert _device(gone, "sos-zb")["battery"] == 77

        await asyncio.sleep(1.0)  # any late duplicates would have arrived by now
        raised = [
            json.loads(m.payload) for m in platform.on(f"{P}/alerts")
            if json.loads(m.payload)["state"] == "raised"
        ]
        assert sorted(a["device_ids"][0] for a in raised) == ["sos-rf", "sos-zb"]
        assert gw.stop() == 0
    finally:
        gw.close()
        rf.unplug()
