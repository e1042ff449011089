"""Every model of the zigbee2mqtt corpus, end to end through a real broker.

The corpus (tests/data/zigbee2mqtt/corpus.json) is what zigbee-herdsman-converters makes of
synthetic Zigbee messages (tools/z2m_corpus/generate.mjs). Here each payload is published as
zigbee2mqtt publishes it — merged over the device's last state (`cache_state`, on by
default), with the never-cached properties left out of that state — to one mosquitto, read
by one mqtt bus and one zigbee2mqtt driver for all models, and the observations are fed to
the real rule types.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import Observation
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.drivers.mqtt_bus import MqttBus
from hearthgate.registry import STANDARD
from hearthgate.rules.base import Raise, RuleSite, SiteDevice
from hearthgate.simulators.zigbee2mqtt import mqtt_publish
from tests.presence.conftest import make_config, make_ctx, wait_until

CORPUS = json.loads(
    (Path(__file__).parents[1] / "data" / "zigbee2mqtt" / "corpus.json").read_text()
)
DEVICES: list[dict[str, Any]] = CORPUS["devices"]
# zigbee2mqtt lib/state.ts CACHE_IGNORE_PROPERTIES: never part of the cached state.
CACHE_IGNORE = ["action", "action_.*", "button", "button_left", "button_right", "forgotten",
                "keyerror", "step_size", "transition_time", "group_list", "group_capacity",
                "no_occupancy_since", "step_mode", "duration", "elapsed", "from_side",
                "to_side", "illuminance_lux"]
RULE_FOR = {"sos_button": "sos", "fall_sensor": "fall", "smoke_sensor": "smoke",
            "gas_sensor": "gas_leak", "co_sensor": "carbon_monoxide",
            "leak_sensor": "water_leak"}


def deep_merge(into: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """object-assign-deep, as zigbee2mqtt's State.set merges an update into the cache."""
    out = dict(into)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class CachedState:
    """zigbee2mqtt's publishEntityState with cache_state: true."""

    def __init__(self) -> None:
        self.cache: dict[str, dict[str, Any]] = {}

    def message(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        merged = deep_merge(self.cache.get(name, {}), payload)
        self.cache[name] = {k: v for k, v in merged.items()
                            if not any(re.fullmatch(p, k) for p in CACHE_IGNORE)}
        return {**merged, "linkquality": 120}


def slug(model: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")


def bridge_devices() -> bytes:
    """A retained bridge/devices as zigbee2mqtt publishes it, for the corpus' devices."""
    entries = [{"ieee_address": "0x00124b0000000000", "type": "Coordinator",
                "friendly_name": "Coordinator", "definition": None}]
    for i, d in enumerate(DEVICES):
        entries.append({
            "ieee_address": f"0x00158d00{i:08x}", "type": "EndDevice",
            "friendly_name": slug(d["model"]), "model_id": d["model_id"],
            "manufacturer": d["manufacturer"], "interview_state": "SUCCESSFUL",
            "definition": {"model": d["model"], "vendor": d["vendor"],
                           "description": d["description"], "exposes": d["exposes"]},
        })
    return json.dumps(entries).encode()


def test_corpus_covers_the_issue() -> None:
    kinds = {d["kind"] for d in DEVICES}
    assert len(DEVICES) >= 40
    assert kinds == {"sos_button", "motion_sensor", "presence_sensor", "door_contact",
                     "fall_sensor", "smoke_sensor", "gas_sensor", "co_sensor", "leak_sensor"}
    models = {d["model"] for d in DEVICES}
    assert {"HS1EB/HS1EB-E", "WXKG11LM", "WXKG12LM", "SNZB-01", "E1812", "SBTZB-110", "FP1E",
            "ZG-204ZM", "HS2FD-EF1-3.0", "MIR-HE200-TY"} <= models
    assert CORPUS["converters"].startswith("zigbee-herdsman-converters 26.")


async def test_every_corpus_model_end_to_end(broker: MosquittoBroker,
                                             clock: SimulatedClock) -> None:
    # No `model:` in the config: each device's model comes from the retained bridge/devices.
    cfg = make_config(
        [{"id": "zigbee", "type": "mqtt", "host": broker.host, "port": broker.port}],
        [{"id": slug(d["model"]), "site": "room-1", "kind": d["kind"],
          "protocol": "zigbee2mqtt", "bus": "zigbee",
          "topic": f"zigbee2mqtt/{slug(d['model'])}"} for d in DEVICES],
    )
    ctx, sink = make_ctx(clock)
    bus = STANDARD.bus_types["mqtt"].open(cfg.buses[0], ctx)
    assert isinstance(bus, MqttBus)
    driver = STANDARD.protocols["zigbee2mqtt"].create(bus, list(cfg.devices), ctx)
    cached = CachedState()
    async with mqtt_publish(broker.host, broker.port) as publish:
        await publish("zigbee2mqtt/bridge/devices", bridge_devices(), True)
        await publish("zigbee2mqtt/bridge/state", b'{"state":"online"}', True)
        task = asyncio.create_task(bus.run())
        try:
            await asyncio.wait_for(bus.connected.wait(), 10)
            await wait_until(lambda: bus.messages >= 2)
            for d in DEVICES:
                name = slug(d["model"])
                for entry in d["payloads"]:
                    msg = cached.message(name, entry["payload"])
                    await publish(f"zigbee2mqtt/{name}", json.dumps(msg).encode(), False)
                    await clock.advance(5)  # distinct presses, not one press's repeats
            sent = 2 + sum(len(d["payloads"]) for d in DEVICES)
            await wait_until(lambda: bus.messages >= sent, within=20)
            # Cached repeats: a battery report while occupancy/presence is still true, for
            # hours, is no new motion (a still person in front of a radar is not active).
            watched = [d for d in DEVICES
                       if d["kind"] in ("motion_sensor", "presence_sensor", "fall_sensor")]
            level = {}
            for d in watched:
                name = slug(d["model"])
                radar = "presence" in cached.cache.get(name, {})
                level[name] = "presence" if radar else "occupancy"
                msg = cached.message(name, {level[name]: True})
                await publish(f"zigbee2mqtt/{name}", json.dumps(msg).encode(), False)
            sent += len(watched)
            await wait_until(lambda: bus.messages >= sent, within=20)
            motions = {slug(d["model"]): len(sink.of("motion", slug(d["model"])))
                       for d in DEVICES}
            repeats = 0
            for battery in (90, 89, 88):
                for d in watched:
                    name = slug(d["model"])
                    msg = cached.message(name, {level[name]: True, "battery": battery})
                    await publish(f"zigbee2mqtt/{name}", json.dumps(msg).encode(), False)
                    repeats += 1
                await clock.advance(3600)
            await wait_until(lambda: bus.messages >= sent + repeats, within=20)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert not [k for k in ctx.errors if k[1] == "handler_error"]
    site = RuleSite("room-1", None, cfg.gateway.tz, "en", tuple(
        SiteDevice(d.id, d.kind, d.protocol) for d in cfg.devices))
    for d in DEVICES:
        name, kind = slug(d["model"]), d["kind"]
        got: list[Observation] = [o for o in sink.items if o.device_id == name]
        metrics = {o.metric for o in got}
        if kind in RULE_FOR:
            spec = STANDARD.rules[RULE_FOR[kind]]
            rule = spec.cls(site, spec.options())
            raised = [s for o in got for s in rule.on_observation(o, o.at) if isinstance(s, Raise)]
            assert raised, f"{d['model']} ({kind}) raised no {spec.name}: {sorted(metrics)}"
        if kind == "motion_sensor":
            assert motions[name] >= 1, f"{d['model']}: no motion"
        if kind in ("presence_sensor", "fall_sensor"):
            assert "presence" in metrics or "motion" in metrics, d["model"]
        if kind == "door_contact":
            assert [o.value for o in got if o.metric == "door_open"][:2] in ([True, False],
                                                                              [False, True])
        # Hours of cached repeats added no motion.
        assert len(sink.of("motion", name)) == motions[name], d["model"]
    # Radars report presence, never as motion from presence alone.
    fp1e = slug("FP1E")
    assert [o.value for o in sink.of("presence", fp1e)] == [True, False, True]
    assert [o.value for o in sink.of("motion", fp1e)] == [True, False]  # its `movement`
    assert driver.bridge_online["zigbee2mqtt"] is True
    await publish_cleanup(broker)


async def test_bridge_offline_takes_every_device_offline(broker: MosquittoBroker,
                                                         clock: SimulatedClock) -> None:
    # zigbee2mqtt died: its Last Will says offline, while every device's retained
    # availability still says online. A megabyte-sized garbage bridge/devices is counted.
    names = [slug(d["model"]) for d in DEVICES[:5]]
    cfg = make_config(
        [{"id": "zigbee", "type": "mqtt", "host": broker.host, "port": broker.port}],
        [{"id": n, "site": "room-1", "kind": "door_contact", "protocol": "zigbee2mqtt",
          "bus": "zigbee", "topic": f"zigbee2mqtt/{n}"} for n in names],
    )
    ctx, sink = make_ctx(clock)
    bus = STANDARD.bus_types["mqtt"].open(cfg.buses[0], ctx)
    assert isinstance(bus, MqttBus)
    STANDARD.protocols["zigbee2mqtt"].create(bus, list(cfg.devices), ctx)
    async with mqtt_publish(broker.host, broker.port) as publish:
        for n in names:
            await publish(f"zigbee2mqtt/{n}/availability", b'{"state":"online"}', True)
        await publish("zigbee2mqtt/bridge/devices", b"[" + b'{"x":1},' * 200_000, True)
        task = asyncio.create_task(bus.run())
        try:
            await asyncio.wait_for(bus.connected.wait(), 10)
            await wait_until(lambda: len(sink.of("alive")) == len(names))
            assert ctx.errors[("-", "bad_bridge_devices")] == 1
            await publish("zigbee2mqtt/bridge/state", b"offline", True)  # the pre-2.0 form
            await wait_until(lambda: len(sink.of("alive")) == 2 * len(names))
            assert [o.attrs["reason"] for o in sink.of("alive")[len(names):]] == [
                "zigbee2mqtt bridge offline"] * len(names)
            # A device's own "online" while its bridge is dead changes nothing.
            await publish(f"zigbee2mqtt/{names[0]}/availability", b'{"state":"online"}', False)
            await publish("zigbee2mqtt/bridge/state", b'{"state":"online"}', True)
            await wait_until(lambda: len(sink.of("alive")) == 3 * len(names))
            assert all(o.value for o in sink.of("alive")[2 * len(names):])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await publish_cleanup(broker)


async def publish_cleanup(broker: MosquittoBroker) -> None:
    """Retained messages outlive a test on the shared broker: clear ours."""
    async with mqtt_publish(broker.host, broker.port) as publish:
        for topic in ("zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/state"):
            await publish(topic, b"", True)
