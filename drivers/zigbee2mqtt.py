"""zigbee2mqtt devices on an `mqtt` bus: buttons, motion and presence, doors, falls, hazards.

`decode_message` is the sans-I/O part: a zigbee2mqtt JSON state payload in, the fields the
gateway understands out (`occupancy`, `presence`, `contact`, `action`, `tamper`, `battery`,
`battery_low`, `water_leak`, `smoke`, `gas`, `carbon_monoxide`, the fall and movement
enums), read by zigbee2mqtt's standard expose names, so any model zigbee2mqtt supports works
without an entry here. `MODELS` keeps only the exceptions, keyed by zigbee2mqtt's exact
model strings (`definition.model` in bridge/devices); `MODEL_ALIASES` takes the names
installers use for them. An installer describes anything else with a device's `mapping:`.

`Zigbee2MqttDriver` subscribes to each device's topic and `<topic>/availability`, and to
its bridge's `bridge/state` (zigbee2mqtt's Last Will) and `bridge/devices`. It turns levels
into news: with zigbee2mqtt's `cache_state` (on by default) every message repeats every
last-known field, so `occupancy: true` counts as `motion` only when it was not already
true, and a state (door, presence, hazard, fall) is reported when it changes. `action` is
never cached by zigbee2mqtt: on an `sos_button` every action that is a press is an `sos`.

Bad input is never a crash: a payload that is not a JSON object is skipped whole; a field
of the wrong type or with an absurd value is skipped alone, so an SOS in the same message
still counts; each is counted through `ctx.frame_error`. A field nobody mapped is counted
once per device and field name; an `action` value never seen is counted and logged once
at warning — and still raises on an `sos_button`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from hearthgate.core.durations import Duration
from hearthgate.core.options import Options
from hearthgate.drivers.base import ProtocolSpec
from hearthgate.drivers.zigbee2mqtt_bridge import (
    MAX_BRIDGE_DEVICES_BYTES,
    BridgeDevice,
    BridgeError,
    contradiction,
    parse_bridge_devices,
    parse_bridge_state,
)

if TYPE_CHECKING:
    from hearthgate.core.options import DeviceConfig
    from hearthgate.drivers.base import DriverContext
    from hearthgate.drivers.mqtt_bus import MqttBus

log = logging.getLogger("hearthgate.drivers.zigbee2mqtt")

# A bool metric that describes a lasting state is reported when it changes; a reading
# that is news every time (a battery level) is reported every time.
STATE_METRICS = frozenset({
    "door_open", "tamper", "battery_low", "power_fault", "valve_open", "presence",
    "smoke", "gas", "carbon_monoxide", "water_leak",
})
# Levels whose rising edge is the news: a new detection, a fall, an IAS SOS zone alarm.
EDGE_METRICS = {"occupancy": "motion", "moving": "motion", "fall": "fall", "sos_alarm": "sos"}
_MAX_UNKNOWN_FIELDS = 64
_MAX_UNKNOWN_ACTIONS = 32

# `action` values that end a press already counted (the release after `hold`, the stop
# after `brightness_move_up`), and the empty action old zigbee2mqtt versions sent after
# every press. Every other action on an sos_button is a press.
NOT_A_PRESS = frozenset({"", "release", "stop", "brightness_stop", "hold_release"})
_NOT_A_PRESS_SUFFIXES = ("_release", "_stop")
# Actions zigbee2mqtt's converters send for presses (from the corpus and the common
# buttons); an sos_button's action outside these and its bridge's exposes is news.
KNOWN_PRESSES = frozenset({
    "single", "double", "triple", "quadruple", "many", "hold", "long", "press", "pressed",
    "emergency", "sos", "panic", "on", "off", "toggle", "shake", "brightness_move_up",
    "brightness_move_down", "brightness_step_up", "brightness_step_down", "arrow_left_click",
    "arrow_right_click", "recall_1", "1_single", "1_double", "1_hold", "single_left",
    "single_right", "long_press", "double_press", "short_press",
})


def is_press(action: str) -> bool:
    """Whether an `action` value is someone pressing (not the end of a press)."""
    return action not in NOT_A_PRESS and not action.endswith(_NOT_A_PRESS_SUFFIXES)


class Z2MPayloadError(ValueError):
    """A payload that is not a zigbee2mqtt state object we can read."""


class FieldMap(Options):
    """How one payload field becomes an observation."""

    metric: str = Field(min_length=1)
    # What the payload holds; default: `number` when min/max are given, else `bool`.
    type: Literal["bool", "number", "text"] | None = None
    invert: bool = False  # for booleans: report the opposite (contact true = door closed)
    # For text values: which text means what (`{"ON": true, "OFF": false}`).
    # `null` marks a value that says nothing either way (a radar's `unknown`).
    values: dict[str, bool | float | str | None] | None = None
    min: float | None = None  # numbers outside [min, max] are absurd and skipped
    max: float | None = None

    @property
    def value_type(self) -> str:
        if self.type is not None:
            return self.type
        return "number" if self.min is not None or self.max is not None else "bool"


class ModelMapping(Options):
    """An installer's addition to the model table (the device's `mapping:` key)."""

    sos_actions: tuple[str, ...] = ()
    fall_actions: tuple[str, ...] = ()
    # payload field -> metric name, or a FieldMap
    fields: dict[str, FieldMap | str] = Field(default_factory=dict)
    ignore: tuple[str, ...] = ()  # payload fields to ignore without counting them

    @field_validator("fields")
    @classmethod
    def _expand(cls, value: dict[str, FieldMap | str]) -> dict[str, FieldMap | str]:
        return {k: FieldMap(metric=v) if isinstance(v, str) else v for k, v in value.items()}


@dataclass(frozen=True)
class ModelMap:
    """How one device model's payload maps to observations."""

    sos_actions: frozenset[str] = frozenset()
    fall_actions: frozenset[str] = frozenset()
    fields: dict[str, FieldMap] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()

    def extended(self, mapping: ModelMapping | None) -> ModelMap:
        if mapping is None:
            return self
        fields = dict(self.fields)
        fields.update({k: v for k, v in mapping.fields.items() if isinstance(v, FieldMap)})
        return ModelMap(
            self.sos_actions | frozenset(mapping.sos_actions),
            self.fall_actions | frozenset(mapping.fall_actions),
            fields,
            self.ignore | frozenset(mapping.ignore),
        )


_FALL = {"fall": True, "fall_alarm": True, "fallen": True, "normal": False, "none": False,
         "no_fall": False, "unknown": None,
         # A radar's "maybe" is followed within seconds by its verdict; alarming on it
         # would raise for every time someone sits down quickly.
         "fall_warning": False, "maybe_fall": False}
_MOVING = {"movement": True, "moving": True, "move": True, "large": True, "small": True,
           "medium": True, "no_movement": False, "none": False, "static": False,
           "stationary": False, "still": False, "no_presence": False, "presence": False,
           "unknown_0": None, "unknown_1": None}

# zigbee2mqtt's standard expose names, the same for every model.
COMMON_FIELDS: dict[str, FieldMap] = {
    "occupancy": FieldMap(metric="occupancy"),
    "presence": FieldMap(metric="presence"),
    "contact": FieldMap(metric="door_open", invert=True),
    "tamper": FieldMap(metric="tamper"),
    "battery": FieldMap(metric="battery_pct", min=0, max=100),
    "battery_low": FieldMap(metric="battery_low"),
    "linkquality": FieldMap(metric="linkquality", min=0, max=255),
    "smoke": FieldMap(metric="smoke"),
    "gas": FieldMap(metric="gas"),
    "carbon_monoxide": FieldMap(metric="carbon_monoxide"),
    "water_leak": FieldMap(metric="water_leak"),
    "sos": FieldMap(metric="sos_alarm"),
    "fall": FieldMap(metric="fall"),
    "fall_status": FieldMap(metric="fall", type="text", values=_FALL),
    "fall_down_status": FieldMap(metric="fall", type="text", values=_FALL),
    "movement": FieldMap(metric="moving", type="text", values=_MOVING),
    "motion_state": FieldMap(metric="moving", type="text", values=_MOVING),
}
# Fields zigbee2mqtt sends that say nothing the gateway uses; not worth a count.
COMMON_IGNORED = frozenset({
    "action", "voltage", "update", "update_available", "last_seen", "elapsed", "illuminance",
    "illuminance_lux", "temperature", "humidity", "device_temperature", "power_outage_count",
    "motion_sensitivity", "detection_interval", "trigger_indicator", "led_indication",
    "occupancy_timeout", "no_occupancy_since", "battery_state", "alarm_1", "alarm_2",
    "target_distance", "detection_range", "trigger_count", "test", "sensor_status",
    "illuminance_above_threshold", "requested_brightness_level", "requested_brightness_percent",
    "identify", "device", "smoke_density", "gas_density", "sensitivity", "fading_time",
    "radar_sensitivity", "motion_speed", "motion_direction", "distance",
})


def _model(fields: dict[str, FieldMap] | None = None, sos: set[str] | None = None,
           fall: set[str] | None = None) -> ModelMap:
    return ModelMap(
        frozenset(sos or ()), frozenset(fall or ()), {**COMMON_FIELDS, **(fields or {})},
        COMMON_IGNORED,
    )


STANDARD_MODEL = _model()
_RADAR_OCCUPANCY = {"occupancy": FieldMap(metric="presence")}
_TUYA_24G_STATE = {"state": FieldMap(metric="presence", type="text",
                                     values={"none": False, "presence": True, "move": True})}

# The exceptions: models whose payload says something other than the standard names mean,
# keyed by zigbee2mqtt's exact `definition.model`. Everything else reads COMMON_FIELDS.
MODELS: dict[str, ModelMap] = {
    # Heiman's fall radar calls its radar presence `occupancy`: someone still is there.
    "HS2FD-EF1-3.0": _model(_RADAR_OCCUPANCY),
    # Tuya 24 GHz radars report presence as `state: none|presence|move`.
    "ZY-M100-24G": _model(_TUYA_24G_STATE),
    "ZY-M100-24GV2": _model(_TUYA_24G_STATE),
    "ZY-M100-24GV3": _model(_TUYA_24G_STATE),
}
# Names installers (and this gateway's earlier versions) use, and the model zigbee2mqtt
# means by them; accepted, with a hint to write the real one.
MODEL_ALIASES: dict[str, str] = {
    "HS1EB": "HS1EB/HS1EB-E",
    "HS1EB-E": "HS1EB/HS1EB-E",
    "HS1WL": "HS1WL/HS3WL",
    "HS3WL": "HS1WL/HS3WL",
    "E1525": "E1525/E1745",
    "E1745": "E1525/E1745",
    "JTYJ-GD-01LM": "JTYJ-GD-01LM/BW",
    "JTQJ-BF-01LM": "JTQJ-BF-01LM/BW",
    "DS01": "SNZB-04",
    "MS01": "SNZB-03",
    "WB01": "SNZB-01",
    "RTCZCGQ13LM": "FP1E",
    "SOS-EM": "HS1EB/HS1EB-E",
}
# `model: generic` meant "no table entry" in earlier versions: now simply the standard.
GENERIC = "generic"


def canonical_model(name: str | None) -> str | None:
    """zigbee2mqtt's model string for a configured `model:` (aliases resolved)."""
    if name is None or name == GENERIC:
        return None
    return MODEL_ALIASES.get(name, name)


def model_map(name: str | None) -> ModelMap:
    canonical = canonical_model(name)
    return MODELS.get(canonical, STANDARD_MODEL) if canonical else STANDARD_MODEL


Reading = tuple[str, Any, dict[str, Any]]


@dataclass
class Decoded:
    readings: list[Reading] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)
    unknown: list[str] = field(default_factory=list)  # field names no table maps
    action: str | None = None  # the message's `action`, if it has one (never cached)


def decode_message(payload: bytes, model: ModelMap) -> Decoded:
    """Readings in one zigbee2mqtt state message. Raises Z2MPayloadError if not an object."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Z2MPayloadError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Z2MPayloadError(f"not a JSON object but {type(data).__name__}")
    out = Decoded()
    action = data.get("action")
    if action is not None:
        if not isinstance(action, str):
            out.problems.append(("wrong_type", f"action is {type(action).__name__}"))
        else:
            out.action = action[:64]
            if action in model.sos_actions:
                out.readings.append(("sos", True, {"action": action}))
            elif action in model.fall_actions:
                out.readings.append(("fall", True, {"action": action}))
    for name, raw in data.items():
        fmap = model.fields.get(name)
        if fmap is None:
            if name not in model.ignore and name != "action":
                out.unknown.append(name)
            continue
        try:
            value = _convert(raw, fmap)
        except Z2MPayloadError as exc:
            kind = "absurd_value" if "outside" in str(exc) else "wrong_type"
            out.problems.append((kind, f"{name}: {exc}"))
            continue
        if value is not None:
            out.readings.append((fmap.metric, value, {}))
    return out


def _convert(raw: Any, fmap: FieldMap) -> bool | int | float | str | None:
    if raw is None:
        return None  # zigbee2mqtt sends null for "not known yet"
    if fmap.values is not None:
        key = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if key not in fmap.values:
            raise Z2MPayloadError(f"{raw!r} is not one of {sorted(fmap.values)}")
        value = fmap.values[key]
        if value is None:
            return None
        return (not value) if fmap.invert and isinstance(value, bool) else value
    expected = fmap.value_type
    if expected == "bool":
        if not isinstance(raw, bool):
            raise Z2MPayloadError(f"true/false was expected, not {str(raw)[:40]!r}")
        return raw != fmap.invert
    if expected == "number":
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise Z2MPayloadError(f"a number was expected, not {str(raw)[:40]!r}")
        if raw != raw or (fmap.min is not None and raw < fmap.min) or (
            fmap.max is not None and raw > fmap.max
        ):
            raise Z2MPayloadError(f"{raw} is outside {fmap.min}–{fmap.max}")
        return raw
    if not isinstance(raw, str):
        raise Z2MPayloadError(f"text was expected, not {str(raw)[:40]!r}")
    return raw[:200]


def decode_state(payload: bytes, model: ModelMap) -> list[Reading]:
    """The strict form: readings, or Z2MPayloadError for the first problem in the payload.

    The driver uses `decode_message`, which keeps the good fields of a flawed message."""
    decoded = decode_message(payload, model)
    if decoded.problems:
        raise Z2MPayloadError(decoded.problems[0][1])
    return decoded.readings


def decode_availability(payload: bytes) -> bool:
    """`{"state":"online"}` (or the legacy plain `online`) → True."""
    try:
        return parse_bridge_state(payload)
    except BridgeError as exc:
        raise Z2MPayloadError(str(exc).replace("bridge state", "availability")) from exc


def bridge_topic(device_topic: str) -> str:
    """The base topic of the zigbee2mqtt instance a device topic belongs to
    (`zigbee2mqtt/pir_301` → `zigbee2mqtt`): zigbee2mqtt's `mqtt.base_topic`."""
    return device_topic.split("/", 1)[0]


class Zigbee2MqttOptions(Options):
    topic: str = Field(min_length=1, description="the device's topic, e.g. zigbee2mqtt/sos_301")
    # zigbee2mqtt's model string (`definition.model` in bridge/devices); taken from the
    # bridge when omitted. Only the exceptions in MODELS change how a payload is read.
    model: str | None = None
    mapping: ModelMapping | None = None
    # One press of a button is published once, but some models and retries repeat it.
    debounce: Duration = 3.0

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if any(c in value for c in "+#") or value.endswith("/"):
            raise ValueError("a device topic has no wildcards (+, #) and no trailing /")
        if "/" not in value:
            raise ValueError("a device topic is zigbee2mqtt's base topic and the friendly name,"
                             " e.g. zigbee2mqtt/sos_301")
        return value

    @model_validator(mode="after")
    def _model_text(self) -> Zigbee2MqttOptions:
        if self.model is not None and (not self.model.strip() or len(self.model) > 128):
            raise ValueError("`model:` is zigbee2mqtt's model string, e.g. HS1EB/HS1EB-E")
        return self

    @property
    def model_map(self) -> ModelMap:
        return model_map(self.model).extended(self.mapping)


def model_hint(model: str | None) -> str | None:
    """A hint for a configured model that is an alias of zigbee2mqtt's own string."""
    canonical = canonical_model(model)
    if model is not None and canonical is not None and canonical != model:
        return f"zigbee2mqtt calls model '{model}' '{canonical}': write model: {canonical}"
    return None


@dataclass
class _Device:
    config: DeviceConfig
    options: Zigbee2MqttOptions
    model: ModelMap
    base: str
    model_name: str | None = None  # zigbee2mqtt's model string, configured or from the bridge
    bridge_actions: frozenset[str] = frozenset()
    state: dict[str, Any] = field(default_factory=dict)
    unknown_seen: set[str] = field(default_factory=set)
    actions_seen: set[str] = field(default_factory=set)
    last_alarm: tuple[str, float] | None = None
    available: bool | None = None  # the device's own availability topic
    warned: str | None = None

    @property
    def friendly_name(self) -> str:
        return self.options.topic[len(self.base) + 1:]


class Zigbee2MqttDriver:
    """The zigbee2mqtt devices of one `mqtt` bus.

    Subscribes, through the bus, to each device's state and availability topics and to each
    bridge's `bridge/state` and `bridge/devices`; every message is handled at once on the
    bus's task, so the driver owns no task of its own.

    Args:
        bus: the bus runtime the devices' broker is reached through.
        devices: this protocol's devices on that bus.
        ctx: where observations and bad input go.
    """

    def __init__(self, bus: MqttBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        self.bridge_online: dict[str, bool | None] = {}
        self.bridges: dict[str, list[_Device]] = {}
        self.unknown_actions = 0  # actions never seen before, over all devices
        for device in devices:
            options = device.options
            assert isinstance(options, Zigbee2MqttOptions)
            base = bridge_topic(options.topic)
            dev = _Device(device, options, options.model_map, base,
                          canonical_model(options.model))
            if hint := model_hint(options.model):
                log.warning("device %s: %s", device.id, hint, extra={"device_id": device.id})
            self.bridges.setdefault(base, []).append(dev)
            bus.subscribe(options.topic, self._state_handler(dev))
            bus.subscribe(f"{options.topic}/availability", self._availability_handler(dev))
        for base in self.bridges:
            self.bridge_online[base] = None
            bus.subscribe(f"{base}/bridge/state", self._bridge_state_handler(base))
            bus.subscribe(f"{base}/bridge/devices", self._bridge_devices_handler(base),
                          max_payload=MAX_BRIDGE_DEVICES_BYTES)

    def _state_handler(self, dev: _Device) -> Callable[[str, bytes], None]:
        def handle(topic: str, payload: bytes) -> None:
            if topic == dev.options.topic:
                self.handle_state(dev, payload)

        return handle

    def handle_state(self, dev: _Device, payload: bytes) -> None:
        device = dev.config
        try:
            decoded = decode_message(payload, dev.model)
        except Z2MPayloadError as exc:
            self.ctx.frame_error(device.id, "bad_payload", payload[:128], str(exc))
            return
        for kind, detail in decoded.problems:
            self.ctx.frame_error(device.id, kind, payload[:128], detail)
        for name in decoded.unknown:
            if name not in dev.unknown_seen and len(dev.unknown_seen) < _MAX_UNKNOWN_FIELDS:
                dev.unknown_seen.add(name)
                self.ctx.frame_error(
                    device.id, "unknown_field", b"", f"'{name}' (add it to `mapping:` to use it)"
                )
        now = self.ctx.clock.now()
        readings = list(decoded.readings)
        if decoded.action is not None:
            readings.extend(self._press(dev, decoded.action))
        for metric, value, attrs in readings:
            self._reading(dev, metric, value, attrs, now)

    def _press(self, dev: _Device, action: str) -> list[Reading]:
        """An sos_button's action as an `sos` press (or nothing for the end of a press)."""
        if dev.config.kind != "sos_button" or action in (dev.model.sos_actions
                                                         | dev.model.fall_actions):
            return []  # the model's own SOS and fall actions are already readings
        known = action in KNOWN_PRESSES or action in dev.bridge_actions or not is_press(action)
        if not known and action not in dev.actions_seen:
            if len(dev.actions_seen) < _MAX_UNKNOWN_ACTIONS:
                dev.actions_seen.add(action)
                self.unknown_actions += 1
                log.warning(
                    "device %s sent action '%s', never seen from %s; taken as an SOS press",
                    dev.config.id, action[:64], dev.model_name or "this model",
                    extra={"device_id": dev.config.id},
                )
            self.ctx.frame_error(dev.config.id, "unknown_action", b"", action[:64])
        if not is_press(action):
            return []
        return [("sos", True, {"action": action})]

    def _reading(self, dev: _Device, metric: str, value: Any, attrs: dict[str, Any],
                 now: Any) -> None:
        device = dev.config
        if metric == "occupancy" and device.kind in ("presence_sensor", "fall_sensor"):
            metric = "presence"  # a radar's occupancy is someone there, still or moving
        if metric in EDGE_METRICS:
            level = bool(value)
            before = dev.state.get(metric)
            dev.state[metric] = level
            if level == before:
                return  # zigbee2mqtt's cache repeating the last level: nothing new
            out = EDGE_METRICS[metric]
            if out == "sos":
                if not level:
                    return
                self._emit_alarm(dev, "sos", {"zone": "sos"}, now)
            elif out == "fall":
                if level:
                    self._emit_alarm(dev, "fall", {}, now)
                else:
                    self.ctx.emit(device, "fall", False, at=now)
            else:
                self.ctx.emit(device, out, level, at=now)
            return
        if metric in ("sos", "fall"):
            if value is True:
                self._emit_alarm(dev, metric, attrs, now)
            return
        if metric in STATE_METRICS:
            if dev.state.get(metric) == value:
                return
            dev.state[metric] = value
        self.ctx.emit(device, metric, value, at=now, attrs=attrs)

    def _emit_alarm(self, dev: _Device, metric: str, attrs: dict[str, Any], now: Any) -> None:
        if not self._repeat(dev, metric, attrs, now.mono):
            self.ctx.emit(dev.config, metric, True, at=now, attrs=attrs)

    def _repeat(self, dev: _Device, metric: str, attrs: dict[str, Any], mono: float) -> bool:
        """Whether this alarm is the same press as the last one (within `debounce`)."""
        key = f"{metric}:{attrs.get('action', '')}"
        last = dev.last_alarm
        dev.last_alarm = (key, mono)
        return last is not None and last[0] == key and mono - last[1] < dev.options.debounce

    def _availability_handler(self, dev: _Device) -> Callable[[str, bytes], None]:
        def handle(topic: str, payload: bytes) -> None:
            if not payload:
                return  # a cleared retained message
            try:
                online = decode_availability(payload)
            except Z2MPayloadError as exc:
                self.ctx.frame_error(dev.config.id, "bad_availability", payload[:128], str(exc))
                return
            dev.available = online
            self._update_reachable(dev)

        return handle

    def _update_reachable(self, dev: _Device) -> None:
        bridge = self.bridge_online.get(dev.base)
        if bridge is False:
            # A dead zigbee2mqtt leaves every device's retained availability "online".
            self.ctx.set_reachable(dev.config, False, "zigbee2mqtt bridge offline")
        elif dev.available is not None:
            # Retained: "online" arrives at every start, whenever the device last spoke.
            self.ctx.set_reachable(dev.config, dev.available, "zigbee2mqtt availability",
                                   heard=False)
        elif bridge is True and self.ctx.reachable(dev.config) is False:
            self.ctx.set_reachable(dev.config, True, "zigbee2mqtt bridge online", heard=False)

    def _bridge_state_handler(self, base: str) -> Callable[[str, bytes], None]:
        def handle(topic: str, payload: bytes) -> None:
            if not payload:
                return
            try:
                online = parse_bridge_state(payload)
            except BridgeError as exc:
                self.ctx.frame_error(None, "bad_bridge_state", payload[:128], str(exc))
                return
            if self.bridge_online.get(base) is not online:
                (log.info if online else log.warning)(
                    "zigbee2mqtt bridge %s is %s", base, "online" if online else "offline")
            self.bridge_online[base] = online
            for dev in self.bridges[base]:
                self._update_reachable(dev)

        return handle

    def _bridge_devices_handler(self, base: str) -> Callable[[str, bytes], None]:
        def handle(topic: str, payload: bytes) -> None:
            if not payload:
                return
            try:
                listed = parse_bridge_devices(payload)
            except BridgeError as exc:
                self.ctx.frame_error(None, "bad_bridge_devices", payload[:64], str(exc))
                return
            for reason in listed.skipped[:8]:
                self.ctx.frame_error(None, "bad_bridge_device", b"", reason)
            for dev in self.bridges[base]:
                paired = listed.devices.get(dev.friendly_name)
                if paired is not None:
                    self._paired(dev, paired)

        return handle

    def _paired(self, dev: _Device, paired: BridgeDevice) -> None:
        device = dev.config
        dev.bridge_actions = paired.actions
        if paired.model and dev.options.model is None and dev.model_name != paired.model:
            dev.model_name = paired.model
            dev.model = model_map(paired.model).extended(dev.options.mapping)
            log.info("device %s is a %s (from zigbee2mqtt's bridge/devices)", device.id,
                     paired.model, extra={"device_id": device.id})
        warning = contradiction(device.kind, paired)
        if warning is None and dev.model_name and paired.model and dev.model_name != paired.model:
            warning = (f"configured as model {dev.model_name} but zigbee2mqtt reports "
                       f"{paired.model}")
        if warning and warning != dev.warned:
            log.warning("device %s: %s", device.id, warning, extra={"device_id": device.id})
            self.ctx.emit(device, "warning", warning)
        dev.warned = warning

    async def run(self) -> None:
        # Nothing to own: the bus delivers our messages. Returning ends this task cleanly.
        return None


def _create(bus: Any, devices: list[DeviceConfig], ctx: DriverContext) -> Zigbee2MqttDriver:
    return Zigbee2MqttDriver(bus, devices, ctx)


PROTOCOL = ProtocolSpec(
    "zigbee2mqtt",
    Zigbee2MqttOptions,
    kinds=frozenset({
        "sos_button", "motion_sensor", "presence_sensor", "door_contact", "fall_sensor",
        "smoke_sensor", "gas_sensor", "co_sensor", "leak_sensor",
    }),
    bus_types=frozenset({"mqtt"}),
    create=_create,
    description="Zigbee devices through zigbee2mqtt on a local broker",
    address=("topic",),
)
