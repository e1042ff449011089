"""zigbee2mqtt: publisher -> real mosquitto -> mqtt bus -> zigbee2mqtt driver."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearthgate.config import ConfigError, GatewayConfig
from hearthgate.core.clock import SimulatedClock
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.mqtt_bus import MqttBus
from hearthgate.drivers.zigbee2mqtt import (
    STANDARD_MODEL,
    Z2MPayloadError,
    decode_availability,
    decode_message,
)
from hearthgate.registry import STANDARD
from hearthgate.simulators.scenario import devices_from_config, parse_scenario, play
from hearthgate.simulators.zigbee2mqtt import Publish, Zigbee2MqttPublisher, mqtt_publish
from tests.presence.conftest import Collector, make_config, make_ctx, wait_until

DEVICES: list[dict[str, Any]] = [
    {"id": "sos-301", "kind": "sos_button", "topic": "zigbee2mqtt/sos_301",
     "model": "TS0215A_sos"},
    {"id": "sos-302", "kind": "sos_button", "topic": "zigbee2mqtt/sos_302", "model": "HS1EB"},
    {"id": "pir-301", "kind": "motion_sensor", "topic": "zigbee2mqtt/pir_301",
     "model": "RTCGQ11LM"},
    {"id": "door-301", "kind": "door_contact", "topic": "zigbee2mqtt/door_301"},
    # A model the table does not know, described by the installer in YAML.
    {"id": "pendant-1", "kind": "sos_button", "topic": "zigbee2mqtt/pendant",
     "model": "ACME-PENDANT-2",
     "mapping": {"sos_actions": ["help_me"], "fall_actions": ["fall"],
                 "fields": {"alarm": {"metric": "sos"}, "moving": "motion",
                            "signal": {"metric": "linkquality", "min": 0, "max": 100},
                            "state": {"metric": "door_open",
                                      "values": {"OPEN": True, "CLOSED": False}}},
                 "ignore": ["firmware"]}},
]


def _config(broker: MosquittoBroker) -> GatewayConfig:
    return make_config(
        [{"id": "zigbee", "type": "mqtt", "host": broker.host, "port": broker.port}],
        [{"site": "room-301", "protocol": "zigbee2mqtt", "bus": "zigbee", **d} for d in DEVICES],
    )


@dataclass
class Rig:
    ctx: DriverContext
    sink: Collector
    bus: MqttBus
    publish: Publish
    sim: Zigbee2MqttPublisher
    cfg: GatewayConfig

    async def send(self, topic: str, payload: Any, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        before = self.bus.messages
        await self.publish(topic, data, retain)
        await wait_until(lambda: self.bus.messages > before)


@contextlib.asynccontextmanager
async def running(broker: MosquittoBroker, clock: SimulatedClock,
                  before_start: list[tuple[str, bytes]] = ()) -> AsyncIterator[Rig]:
    cfg = _config(broker)
    ctx, sink = make_ctx(clock)
    bus = STANDARD.bus_types["mqtt"].open(cfg.buses[0], ctx)
    assert isinstance(bus, MqttBus)
    STANDARD.protocols["zigbee2mqtt"].create(bus, list(cfg.devices), ctx)
    async with mqtt_publish(broker.host, broker.port) as publish:
        for topic, payload in before_start:
            await publish(topic, payload, True)
        task = asyncio.create_task(bus.run())
        try:
            await asyncio.wait_for(bus.connected.wait(), 10)
            sim = Zigbee2MqttPublisher(
                publish, devices_from_config(cfg), repeats=3
            )
            yield Rig(ctx, sink, bus, publish, sim, cfg)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_devices_produce_observations(broker: MosquittoBroker, clock: SimulatedClock,
                                            ) -> None:
    retained = [("zigbee2mqtt/pir_301/availability", b'{"state":"online"}'),
                ("zigbee2mqtt/door_301/availability", b"offline")]
    async with running(broker, clock, retained) as rig:
        await wait_until(lambda: len(rig.sink.of("alive")) == 2)
        assert rig.sink.values("alive", "pir-301") == [True]
        assert rig.sink.values("alive", "door-301") == [False]
        await rig.send("zigbee2mqtt/pir_301", {"occupancy": True, "tamper": False,
                                               "battery_low": False, "battery": 100,
                                               "linkquality": 120})
        await rig.send("zigbee2mqtt/door_301", {"contact": False, "battery": 95,
                                                "linkquality": 87})
        await rig.send("zigbee2mqtt/door_301", {"contact": True, "battery": 95,
                                                "linkquality": 80})
        await rig.send("zigbee2mqtt/door_301", {"contact": True, "battery": 94,
                                                "linkquality": 81})
        await rig.send("zigbee2mqtt/pir_301", {"occupancy": False, "battery": 100})
        s = rig.sink
        assert s.values("motion", "pir-301") == [True, False]
        assert s.values("tamper", "pir-301") == [False]
        assert s.values("battery_low", "pir-301") == [False]
        assert s.values("door_open", "door-301") == [True, False]  # contact true = closed
        assert s.values("battery_pct", "door-301") == [95, 95, 94]
        assert s.values("linkquality", "door-301") == [87, 80, 81]
        assert s.of("battery_pct")[0].unit == "%"
        assert rig.ctx.error_count() == 0


async def test_sos_press_repeated_is_one_observation(broker: MosquittoBroker,
                                                     clock: SimulatedClock) -> None:
    async with running(broker, clock) as rig:
        scenario = parse_scenario({"steps": [
            {"at": "0s", "device": "sos-301", "do": "press"},
            {"at": "0s", "device": "sos-302", "do": "press", "repeats": 4},
            {"at": "1m", "device": "sos-301", "do": "press"},
        ]}).with_devices(devices_from_config(rig.cfg))
        player = asyncio.create_task(play(scenario, clock, rig.sim, duration=120))
        await wait_until(lambda: rig.sim.published == 7)
        await wait_until(lambda: rig.bus.messages == 7)
        await clock.advance(60)
        await player
        await wait_until(lambda: rig.bus.messages == 10)
        assert rig.sink.values("sos", "sos-301") == [True, True]
        assert rig.sink.values("sos", "sos-302") == [True]
        assert rig.sink.of("sos", "sos-302")[0].attrs == {"action": "single"}
        assert rig.sink.of("sos", "sos-301")[0].attrs == {"action": "emergency"}
        # HS1EB's "double" right after "single" is a second, distinct press.
        await rig.send("zigbee2mqtt/sos_302", {"action": "double"})
        assert rig.sink.values("sos", "sos-302") == [True, True]
        # On an sos_button every press raises, whatever the model says its SOS action is.
        await rig.send("zigbee2mqtt/sos_301", {"action": "single"})
        assert rig.sink.values("sos", "sos-301") == [True, True, True]


async def test_installer_mapping_in_yaml(broker: MosquittoBroker, clock: SimulatedClock) -> None:
    async with running(broker, clock) as rig:
        t = "zigbee2mqtt/pendant"
        await rig.send(t, {"action": "help_me", "signal": 40, "firmware": "1.2"})
        await rig.send(t, {"action": "fall"})
        await rig.send(t, {"moving": True, "state": "OPEN", "linkquality": 200})
        await clock.advance(10)
        await rig.send(t, {"alarm": True})
        await rig.send(t, {"alarm": False, "state": "CLOSED"})
        s = rig.sink
        assert s.values("sos", "pendant-1") == [True, True]
        assert s.values("fall", "pendant-1") == [True]
        assert s.values("motion", "pendant-1") == [True]
        assert s.values("door_open", "pendant-1") == [True, False]
        assert s.values("linkquality", "pendant-1") == [40, 200]
        assert rig.ctx.error_count() == 0


async def test_bad_payloads_are_counted_and_skipped(broker: MosquittoBroker,
                                                    clock: SimulatedClock) -> None:
    async with running(broker, clock) as rig:
        t = "zigbee2mqtt/sos_301"
        await rig.send(t, b"{not json")
        await rig.send(t, b"[1, 2, 3]")
        await rig.send(t, b"\xff\xfe")
        await rig.send(t, b"[" * 100_000)
        await rig.send(t, {"action": 7})
        await rig.send(t, {"occupancy": "yes", "battery": "full"})
        await rig.send(t, {"battery": 250, "linkquality": -3, "action": "emergency"})
        await rig.send(t, {"brightness": 3, "color": "red"})
        await rig.send(t, {"brightness": 4})  # an unknown field counts once per name
        await rig.send(f"{t}/availability", b'{"state": "maybe"}')
        await rig.send(f"{t}/availability", b"")  # a cleared retained message
        errs = {k: n for (d, k), n in rig.ctx.errors.items() if d == "sos-301"}
        assert errs == {"bad_payload": 4, "wrong_type": 3, "absurd_value": 2,
                        "unknown_field": 2, "bad_availability": 1}
        # The SOS in the message with absurd battery and link values still counts.
        assert rig.sink.values("sos") == [True]
        assert rig.sink.values("battery_pct") == []
        assert rig.sink.values("linkquality") == []


async def test_scenario_publisher_availability_and_battery(
    broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    async with running(broker, clock) as rig:
        scenario = parse_scenario({"steps": [
            {"at": "0s", "device": "pir-301", "do": "online"},
            {"at": "1s", "device": "pir-301", "do": "motion"},
            {"at": "2s", "device": "pir-301", "do": "battery", "value": 12},
            {"at": "3s", "device": "door-301", "do": "door_open"},
            {"at": "4s", "device": "door-301", "do": "door_close"},
            {"at": "5s", "device": "pir-301", "do": "tamper"},
            {"at": "6s", "device": "pir-301", "do": "offline"},
        ]}).with_devices(devices_from_config(rig.cfg))
        player = asyncio.create_task(play(scenario, clock, rig.sim, duration=10))
        for n in range(1, 8):
            await wait_until(lambda n=n: rig.bus.messages >= n)
            await clock.advance(1)
        await player
        s = rig.sink
        assert s.values("alive", "pir-301") == [True, False]
        assert s.values("motion", "pir-301") == [True, False]  # and zigbee2mqtt's timeout
        assert s.values("battery_low", "pir-301") == [True]
        assert s.values("battery_pct", "pir-301")[-1] == 12
        assert s.values("tamper", "pir-301") == [False, True]
        assert s.values("door_open", "door-301") == [True, False]


def test_unknown_model_is_read_by_its_exposes(broker: MosquittoBroker) -> None:
    # zigbee2mqtt knows thousands of models: one the table lacks is read by the standard
    # expose names, and zigbee2mqtt's own strings (with their slashes) are accepted.
    for model in ("NOPE-2000", "HS1EB/HS1EB-E", "TS0215A_sos", "HS1EB"):
        cfg = make_config(
            [{"id": "z", "type": "mqtt"}],
            [{"id": "x", "site": "s", "kind": "sos_button", "protocol": "zigbee2mqtt",
              "bus": "z", "topic": "zigbee2mqtt/x", "model": model}],
        )
        assert cfg.devices[0].options.model == model
    with pytest.raises(ConfigError):
        make_config(
            [{"id": "z", "type": "mqtt"}],
            [{"id": "x", "site": "s", "kind": "sos_button", "protocol": "zigbee2mqtt",
              "bus": "z", "topic": "zigbee2mqtt/#"}],
        )


def test_availability_forms() -> None:
    assert decode_availability(b'{"state":"online"}') is True
    assert decode_availability(b"offline") is False
    for bad in (b"{", b'{"state": 1}', b"[]", b"\xff"):
        with pytest.raises(Z2MPayloadError):
            decode_availability(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["action", "battery", "occupancy", "contact",
                                        "linkquality", "tamper", "battery_low", "x"]),
                       json_values, max_size=6) | json_values)
def test_decode_never_raises_but_its_own_error(data: Any) -> None:
    payload = json.dumps(data).encode()
    try:
        decoded = decode_message(payload, STANDARD_MODEL)
    except Z2MPayloadError:
        assert not isinstance(data, dict)
        return
    for metric, value, _ in decoded.readings:
        if metric == "battery_pct":
            assert 0 <= value <= 100
        if metric in {"motion", "door_open", "tamper", "battery_low", "sos"}:
            assert isinstance(value, bool)
