"""zigbee2mqtt devices on an `mqtt` bus.

`decode_state` is the sans-I/O part: a zigbee2mqtt JSON payload in, normalized
(metric, value, attrs) readings out, by a per-model table in the spirit of
zigbee-herdsman-converters. `Zigbee2MqttDriver` subscribes to each device's
topic (and its retained `/availability`), decodes and emits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from drivers.base import DriverContext
from drivers.mqtt_bus import MqttBus
from gateway.config import DeviceConfig
from gateway.durations import Duration
from gateway.registry import Options, ProtocolSpec, register_protocol

log = logging.getLogger("hearthgate.drivers.zigbee2mqtt")


class Z2MPayloadError(ValueError):
    """A payload that is not a zigbee2mqtt state object we can read."""


@dataclass(frozen=True)
class ModelMap:
    """How one device model's payload maps to observations."""

    sos_actions: frozenset[str] = frozenset()
    fall_actions: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)


# action values that mean "help" differ by model (protocols.md).
MODELS: dict[str, ModelMap] = {
    "generic": ModelMap(sos_actions=frozenset({"emergency", "sos", "panic"})),
    "TS0215A_sos": ModelMap(sos_actions=frozenset({"emergency"})),
    "HS1EB": ModelMap(sos_actions=frozenset({"single", "double", "hold"})),
    "HS2SOS": ModelMap(sos_actions=frozenset({"emergency", "sos"})),
}

Reading = tuple[str, Any, dict[str, Any]]


def decode_state(payload: bytes, model: ModelMap) -> list[Reading]:
    """Readings in one zigbee2mqtt state message. Raises Z2MPayloadError."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Z2MPayloadError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Z2MPayloadError("not a JSON object")
    out: list[Reading] = []
    action = data.get("action")
    if isinstance(action, str) and action:
        if action in model.sos_actions:
            out.append(("sos", True, {"action": action}))
        elif action in model.fall_actions:
            out.append(("fall", True, {"action": action}))
    battery = data.get("battery")
    if isinstance(battery, int | float) and not isinstance(battery, bool):
        if 0 <= battery <= 100:
            out.append(("battery_pct", float(battery), {}))
        else:
            raise Z2MPayloadError(f"battery {battery} is outside 0–100")
    battery_low = data.get("battery_low")
    if isinstance(battery_low, bool):
        out.append(("battery_low", battery_low, {}))
    lq = data.get("linkquality")
    if isinstance(lq, int) and not isinstance(lq, bool) and 0 <= lq <= 255:
        out.append(("linkquality", lq, {}))
    return out


def decode_availability(payload: bytes) -> bool:
    """`{"state":"online"}` (or the legacy plain `online`) → True."""
    text = payload.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Z2MPayloadError(f"availability not JSON: {exc}") from exc
        text = data.get("state") if isinstance(data, dict) else None
    if text == "online":
        return True
    if text == "offline":
        return False
    raise Z2MPayloadError(f"unknown availability {text!r}")


class Zigbee2MqttOptions(Options):
    topic: str = Field(min_length=1, description="the device's topic, e.g. zigbee2mqtt/sos_301")
    model: str = "generic"
    # One press of a button is published once, but some models and retries repeat it.
    debounce: Duration = 3.0


class Zigbee2MqttDriver:
    def __init__(self, bus: MqttBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        self._last_action: dict[str, tuple[str, float]] = {}
        for device in devices:
            options: Zigbee2MqttOptions = device.options  # type: ignore[assignment]
            model = MODELS.get(options.model, MODELS["generic"])
            bus.subscribe(options.topic, self._state_handler(device, model))
            bus.subscribe(f"{options.topic}/availability", self._availability_handler(device))

    def _state_handler(self, device: DeviceConfig, model: ModelMap):
        options: Zigbee2MqttOptions = device.options  # type: ignore[assignment]

        def handle(topic: str, payload: bytes) -> None:
            if topic != options.topic:
                return
            try:
                readings = decode_state(payload, model)
            except Z2MPayloadError as exc:
                self.ctx.frame_error(device.id, "bad_payload", payload[:128], str(exc))
                return
            now = self.ctx.clock.now()
            for metric, value, attrs in readings:
                if metric in ("sos", "fall") and self._repeat(device.id, attrs, now.mono,
                                                            options.debounce):
                    continue
                self.ctx.emit(device, metric, value, at=now, attrs=attrs)

        return handle

    def _repeat(self, device_id: str, attrs: dict[str, Any], mono: float, window: float) -> bool:
        action = str(attrs.get("action", ""))
        last = self._last_action.get(device_id)
        self._last_action[device_id] = (action, mono)
        return last is not None and last[0] == action and mono - last[1] < window

    def _availability_handler(self, device: DeviceConfig):
        def handle(topic: str, payload: bytes) -> None:
            try:
                online = decode_availability(payload)
            except Z2MPayloadError as exc:
                self.ctx.frame_error(device.id, "bad_availability", payload[:128], str(exc))
                return
            self.ctx.set_reachable(device, online, "zigbee2mqtt availability")

        return handle

    async def run(self) -> None:
        # Nothing to own: the bus delivers our messages. Returning ends this task cleanly.
        return None


register_protocol(
    ProtocolSpec(
        "zigbee2mqtt",
        Zigbee2MqttOptions,
        kinds=frozenset({"sos_button"}),
        bus_types=frozenset({"mqtt"}),
        create=Zigbee2MqttDriver,  # type: ignore[arg-type]
        description="Zigbee devices through zigbee2mqtt on a local broker",
    )
)
