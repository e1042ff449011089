"""What the presence drivers emit is what the device health view needs."""

from __future__ import annotations

import json

from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import Observation
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.mqtt_bus import MqttBus
from hearthgate.drivers.rflink import RFLinkDriver
from hearthgate.drivers.zigbee2mqtt import Zigbee2MqttDriver
from hearthgate.health import DeviceHealth
from hearthgate.registry import STANDARD
from tests.presence.conftest import make_config


async def test_battery_link_and_availability_reach_device_health(clock: SimulatedClock) -> None:
    cfg = make_config(
        [{"id": "zigbee", "type": "mqtt"},
         {"id": "rf433", "type": "serial", "port": "/dev/null", "parity": "N"}],
        [
            {"id": "pir-1", "site": "home", "kind": "motion_sensor", "protocol": "zigbee2mqtt",
             "bus": "zigbee", "topic": "zigbee2mqtt/pir_1", "offline_after": "10m"},
            {"id": "sos-1", "site": "home", "kind": "sos_button", "protocol": "rflink",
             "bus": "rf433", "match": "EV1527;ID=1"},
        ],
    )
    health = DeviceHealth(cfg)
    seen: list[Observation] = []

    def sink(obs: Observation) -> None:
        seen.append(obs)
        health.observe(obs)

    ctx = DriverContext(clock=clock, sink=sink)
    mqtt = STANDARD.bus_types["mqtt"].open(cfg.bus("zigbee"), ctx)
    assert isinstance(mqtt, MqttBus)
    Zigbee2MqttDriver(mqtt, [cfg.devices[0]], ctx)
    serial = STANDARD.bus_types["serial"].open(cfg.bus("rf433"), ctx)
    rf = RFLinkDriver(serial, [cfg.devices[1]], ctx)

    mqtt.dispatch("zigbee2mqtt/pir_1/availability", b'{"state":"online"}')
    mqtt.dispatch("zigbee2mqtt/pir_1", json.dumps(
        {"occupancy": True, "battery": 87, "linkquality": 140}).encode())
    rf.feed(b"20;01;EV1527;ID=000001;SWITCH=1;CMD=ON;\r\n")

    def state(device_id: str) -> dict:
        return next(d for d in health.snapshot(clock.now()) if d["device_id"] == device_id)

    pir = state("pir-1")
    assert (pir["online"], pir["battery"], pir["linkquality"]) == (True, 87.0, 140.0)
    assert pir["values"]["motion"] is True
    assert state("sos-1")["online"] is True
    assert {o.metric for o in seen} >= {"alive", "motion", "battery_pct", "linkquality", "sos"}

    await clock.advance(11 * 60)  # silent past offline_after
    assert state("pir-1")["online"] is False
    assert state("sos-1")["online"] is True  # a button has no silence limit of its own

    mqtt.dispatch("zigbee2mqtt/pir_1", b'{"occupancy": false}')
    assert state("pir-1")["online"] is True
    mqtt.dispatch("zigbee2mqtt/pir_1/availability", b'{"state":"offline"}')
    assert state("pir-1")["online"] is False
