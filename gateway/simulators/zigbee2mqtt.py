"""A zigbee2mqtt stand-in: publishes device state JSON to a broker as zigbee2mqtt does.

State on `<topic>` (`{"occupancy":true,"battery":100,"linkquality":120}`), availability
retained on `<topic>/availability` (`{"state":"online"}`). An SOS press is published
`repeats` times, as some buttons and zigbee retries do. Acts out scenario actions for
the `zigbee2mqtt` devices it is given; aiomqtt is imported only when connecting.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hearthgate.drivers.zigbee2mqtt import model_map
from hearthgate.simulators.scenario import ScenarioAction, ScenarioDevice

Publish = Callable[[str, bytes, bool], Awaitable[None]]  # topic, payload, retain


@dataclass
class _SimDevice:
    topic: str
    model: str
    battery: float = 100.0
    linkquality: int = 120


def sos_action_for(model: str) -> str:
    """The `action` value a model's SOS button sends."""
    if model_map(model).sos_actions:
        return sorted(model_map(model).sos_actions)[0]
    # Every press raises on an sos_button; Tuya's SOS button (TS0215A_sos) sends this one.
    return "emergency" if model in ("generic", "TS0215A_sos") else "single"


class Zigbee2MqttPublisher:
    def __init__(
        self, publish: Publish, devices: dict[str, ScenarioDevice], *, repeats: int = 2
    ) -> None:
        self.publish = publish
        self.devices: dict[str, _SimDevice] = {}
        for device_id, dev in devices.items():
            topic = dev.options.get("topic")
            if topic:
                model = str(dev.options.get("model", "generic"))
                self.devices[device_id] = _SimDevice(str(topic), model)
        self.repeats = repeats
        self.published = 0

    async def announce(self) -> None:
        """Every device online (retained), with a first state report."""
        for device_id in self.devices:
            await self.availability(device_id, True)

    async def availability(self, device_id: str, online: bool) -> None:
        dev = self.devices[device_id]
        state = "online" if online else "offline"
        await self._send(f"{dev.topic}/availability", {"state": state}, retain=True)

    async def state(self, device_id: str, fields: dict[str, Any], repeats: int = 1) -> None:
        dev = self.devices[device_id]
        battery = int(dev.battery) if float(dev.battery).is_integer() else dev.battery
        payload = {**fields, "battery": battery, "linkquality": dev.linkquality}
        for _ in range(repeats):
            await self._send(dev.topic, payload)

    async def _send(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        await self.publish(topic, json.dumps(payload).encode(), retain)
        self.published += 1

    def handles(self, device: str) -> bool:
        return device in self.devices

    async def perform(self, action: ScenarioAction) -> None:
        dev = self.devices[action.device]
        value = action.step.value
        match action.do:
            case "press":
                fields = {"action": sos_action_for(dev.model)}
                await self.state(action.device, fields, action.step.repeats or self.repeats)
            case "motion":
                await self.state(action.device, {"occupancy": True, "tamper": False})
                # zigbee2mqtt clears occupancy after its timeout (90 s on Aqara); the next
                # detection is then news. In a scenario's time that timeout has passed.
                await self.state(action.device, {"occupancy": False})
            case "no_motion":
                await self.state(action.device, {"occupancy": False})
            case "door_open":
                await self.state(action.device, {"contact": False})  # contact true = closed
            case "door_close":
                await self.state(action.device, {"contact": True})
            case "tamper":
                await self.state(action.device, {"tamper": True if value is None else value})
            case "battery":
                dev.battery = float(value or 0)
                await self.state(action.device, {"battery_low": dev.battery < 20})
            case "offline":
                await self.availability(action.device, False)
            case "online":
                await self.availability(action.device, True)


@contextlib.asynccontextmanager
async def mqtt_publish(host: str, port: int) -> AsyncIterator[Publish]:
    """A `Publish` over a real aiomqtt connection (QoS 1)."""
    import aiomqtt

    async with aiomqtt.Client(host, port, timeout=10) as client:

        async def publish(topic: str, payload: bytes, retain: bool) -> None:
            await client.publish(topic, payload, qos=1, retain=retain)

        yield publish
