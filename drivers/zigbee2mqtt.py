"""zigbee2mqtt devices on an `mqtt` bus: motion sensors, door contacts, SOS buttons.

`decode_message` is the sans-I/O part: a zigbee2mqtt JSON state payload in, normalized
(metric, value, attrs) readings out, plus the problems found, by a per-model table in the
spirit of zigbee-herdsman-converters. `Zigbee2MqttDriver` subscribes to each device's
topic and its retained `<topic>/availability`, decodes and emits.

The table (`MODELS`) maps a model to the `action` values that mean SOS (or a fall) and
to extra payload fields. Every model also reads the common fields: `occupancy` →
`motion`, `contact` → `door_open` (zigbee2mqtt's `contact: true` means CLOSED),
`tamper`, `battery` → `battery_pct`, `battery_low`, `linkquality`. An installer extends
the table in YAML, without code, with a device's `mapping:` (see docs/devices.md).

Bad input is never a crash: a payload that is not a JSON object is skipped whole; a
field of the wrong type or with an absurd value (battery 250, linkquality -3) is skipped
alone, so an SOS in the same message still counts; each is counted through
`ctx.frame_error`. A field nobody mapped is counted once per device and field name.
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

if TYPE_CHECKING:
    from hearthgate.core.options import DeviceConfig
    from hearthgate.drivers.base import DriverContext
    from hearthgate.drivers.mqtt_bus import MqttBus

log = logging.getLogger("hearthgate.drivers.zigbee2mqtt")

# A bool metric that describes a lasting state is reported when it changes; a reading
# that is news every time (motion seen, a battery level) is reported every time.
STATE_METRICS = frozenset({"door_open", "tamper", "battery_low", "power_fault", "valve_open"})
_MAX_UNKNOWN_FIELDS = 64


class Z2MPayloadError(ValueError):
    """A payload that is not a zigbee2mqtt state object we can read."""


class FieldMap(Options):
    """How one payload field becomes an observation."""

    metric: str = Field(min_length=1)
    # What the payload holds; default: `number` when min/max are given, else `bool`.
    type: Literal["bool", "number", "text"] | None = None
    invert: bool = False  # for booleans: report the opposite (contact true = door closed)
    # For text values: which text means what (`{"ON": true, "OFF": false}`).
    values: dict[str, bool | float | str] | None = None
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


COMMON_FIELDS: dict[str, FieldMap] = {
    "occupancy": FieldMap(metric="motion"),
    "presence": FieldMap(metric="motion"),
    "contact": FieldMap(metric="door_open", invert=True),
    "tamper": FieldMap(metric="tamper"),
    "battery": FieldMap(metric="battery_pct", min=0, max=100),
    "battery_low": FieldMap(metric="battery_low"),
    "linkquality": FieldMap(metric="linkquality", min=0, max=255),
}
# Fields zigbee2mqtt sends that say nothing the gateway uses; not worth a count.
COMMON_IGNORED = frozenset({
    "action", "voltage", "update", "update_available", "last_seen", "elapsed", "illuminance",
    "illuminance_lux", "temperature", "humidity", "device_temperature", "power_outage_count",
    "motion_sensitivity", "detection_interval", "trigger_indicator", "led_indication",
    "occupancy_timeout", "no_occupancy_since", "battery_state", "alarm_1", "alarm_2",
})


def _model(sos: set[str] | None = None, fall: set[str] | None = None,
           fields: dict[str, FieldMap] | None = None) -> ModelMap:
    return ModelMap(
        frozenset(sos or ()), frozenset(fall or ()), {**COMMON_FIELDS, **(fields or {})},
        COMMON_IGNORED,
    )


# zigbee2mqtt `model` ids. SOS buttons differ by their `action` values
# (docs/protocols.md, "Zigbee sensors via zigbee2mqtt").
MODELS: dict[str, ModelMap] = {
    "generic": _model(sos={"emergency", "sos", "panic"}),
    # SOS buttons
    "TS0215A_sos": _model(sos={"emergency"}),
    "HS1EB": _model(sos={"single", "double", "hold"}),
    "HS2SOS": _model(sos={"emergency", "sos"}),
    "SOS-button": _model(sos={"emergency", "sos"}),
    # motion sensors (occupancy)
    "RTCGQ11LM": _model(),  # Aqara motion; zigbee2mqtt clears occupancy after 90 s
    "RTCGQ01LM": _model(),
    "SNZB-03": _model(),
    "TS0202": _model(),
    "IH012-RT01": _model(),
    # door / window contacts (contact: true = closed)
    "MCCGQ11LM": _model(),
    "MCCGQ01LM": _model(),
    "SNZB-04": _model(),
    "TS0203": _model(),
    "DS01": _model(),
}

Reading = tuple[str, Any, dict[str, Any]]


@dataclass
class Decoded:
    readings: list[Reading] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)
    unknown: list[str] = field(default_factory=list)  # field names no table maps


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
        elif action in model.sos_actions:
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
    text = payload.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise Z2MPayloadError(f"availability not JSON: {exc}") from exc
        text = data.get("state") if isinstance(data, dict) else None
    if text == "online":
        return True
    if text == "offline":
        return False
    raise Z2MPayloadError(f"unknown availability {str(text)[:40]!r}")


class Zigbee2MqttOptions(Options):
    topic: str = Field(min_length=1, description="the device's topic, e.g. zigbee2mqtt/sos_301")
    model: str = "generic"
    mapping: ModelMapping | None = None
    # One press of a button is published once, but some models and retries repeat it.
    debounce: Duration = 3.0

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if any(c in value for c in "+#") or value.endswith("/"):
            raise ValueError("a device topic has no wildcards (+, #) and no trailing /")
        return value

    @model_validator(mode="after")
    def _known_model(self) -> Zigbee2MqttOptions:
        if self.model not in MODELS and self.mapping is None:
            known = ", ".join(sorted(MODELS))
            raise ValueError(
                f"unknown zigbee2mqtt model '{self.model}': use one of {known}, "
                "or describe it under `mapping:`"
            )
        return self

    @property
    def model_map(self) -> ModelMap:
        return MODELS.get(self.model, MODELS["generic"]).extended(self.mapping)


@dataclass
class _Device:
    config: DeviceConfig
    options: Zigbee2MqttOptions
    model: ModelMap
    state: dict[str, Any] = field(default_factory=dict)
    unknown_seen: set[str] = field(default_factory=set)
    last_alarm: tuple[str, float] | None = None


class Zigbee2MqttDriver:
    def __init__(self, bus: MqttBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        for device in devices:
            options = device.options
            assert isinstance(options, Zigbee2MqttOptions)
            dev = _Device(device, options, options.model_map)
            bus.subscribe(options.topic, self._state_handler(dev))
            bus.subscribe(f"{options.topic}/availability", self._availability_handler(dev))

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
        for metric, value, attrs in decoded.readings:
            if metric in ("sos", "fall"):
                if value is not True or self._repeat(dev, metric, attrs, now.mono):
                    continue
            elif metric in STATE_METRICS:
                if dev.state.get(metric) == value:
                    continue
                dev.state[metric] = value
            self.ctx.emit(device, metric, value, at=now, attrs=attrs)

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
            self.ctx.set_reachable(dev.config, online, "zigbee2mqtt availability")

        return handle

    async def run(self) -> None:
        # Nothing to own: the bus delivers our messages. Returning ends this task cleanly.
        return None


def _create(bus: Any, devices: list[DeviceConfig], ctx: DriverContext) -> Zigbee2MqttDriver:
    return Zigbee2MqttDriver(bus, devices, ctx)


PROTOCOL = ProtocolSpec(
    "zigbee2mqtt",
    Zigbee2MqttOptions,
    kinds=frozenset({"sos_button", "motion_sensor", "door_contact"}),
    bus_types=frozenset({"mqtt"}),
    create=_create,
    description="Zigbee devices through zigbee2mqtt on a local broker",
    address=("topic",),
)
