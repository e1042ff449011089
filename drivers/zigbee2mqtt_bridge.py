"""zigbee2mqtt's own bridge topics, read without I/O: `bridge/state` and `bridge/devices`.

`bridge/state` is zigbee2mqtt's Last Will: `{"state":"online"|"offline"}` (JSON since 2.0;
a plain `online`/`offline` in older versions). `bridge/devices` (retained) lists every
paired device: `friendly_name`, `ieee_address`, `type`, `definition: {model, vendor,
exposes}`. Both are outside input: a malformed entry is skipped and counted, never a crash.
The kinds are guessed from the exposes by the same names the driver reads, so a model
zigbee2mqtt knows and the gateway has never seen is understood from what it exposes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# bridge/devices grows with every paired device and its exposes (~5-20 KiB a device).
MAX_BRIDGE_DEVICES_BYTES = 8 * 1024 * 1024
MAX_BRIDGE_ENTRIES = 2000

# What a device of each kind must expose to be any use as that kind (any one of them).
KIND_PROPERTIES: dict[str, frozenset[str]] = {
    "sos_button": frozenset({"action", "sos"}),
    "motion_sensor": frozenset({"occupancy", "movement", "motion_state"}),
    "presence_sensor": frozenset({"presence", "occupancy"}),
    "door_contact": frozenset({"contact"}),
    "fall_sensor": frozenset({"fall", "fall_status", "fall_down_status"}),
    "smoke_sensor": frozenset({"smoke"}),
    "gas_sensor": frozenset({"gas"}),
    "co_sensor": frozenset({"carbon_monoxide"}),
    "leak_sensor": frozenset({"water_leak"}),
}
# Most telling first: a fall radar also exposes presence, a smoke alarm also tamper.
# presence_sensor is not here: `occupancy` alone is a PIR's (a motion sensor), and a
# radar is told by `presence` or its radar-only exposes (guess_kind's first test).
_GUESS_ORDER = ("fall_sensor", "smoke_sensor", "gas_sensor", "co_sensor", "leak_sensor",
                "door_contact", "motion_sensor", "sos_button")


class BridgeError(ValueError):
    """A bridge message that is not what zigbee2mqtt publishes."""


@dataclass(frozen=True)
class BridgeDevice:
    """One paired device as `bridge/devices` describes it."""

    friendly_name: str
    ieee_address: str
    model: str | None
    vendor: str | None
    device_type: str  # Coordinator | Router | EndDevice
    properties: frozenset[str] = frozenset()  # every exposed property, features flattened
    actions: frozenset[str] = frozenset()  # the `action` enum's values
    has_presence: bool = False
    description: str | None = None  # zigbee2mqtt's words for the model ("SOS button")

    def guess_kind(self) -> str | None:
        """The device kind its exposes suggest, or None (a light, a plug, a thermometer)."""
        props = self.properties
        if "presence" in props or ("occupancy" in props and self._radar()):
            # A radar that also detects falls is a fall sensor first.
            if props & KIND_PROPERTIES["fall_sensor"]:
                return "fall_sensor"
            return "presence_sensor"
        for kind in _GUESS_ORDER:
            if props & KIND_PROPERTIES[kind]:
                return kind
        return None

    def _radar(self) -> bool:
        return bool(self.properties & {"fall_status", "fall_down_status", "target_distance"})


@dataclass
class BridgeDevices:
    devices: dict[str, BridgeDevice] = field(default_factory=dict)  # by friendly name
    skipped: list[str] = field(default_factory=list)  # why entries were left out


def parse_bridge_state(payload: bytes) -> bool:
    """`online` → True, `offline` → False, in either form. Raises BridgeError."""
    text = payload.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise BridgeError(f"bridge/state is not JSON: {exc}") from exc
        text = data.get("state") if isinstance(data, dict) else None
    if text == "online":
        return True
    if text == "offline":
        return False
    raise BridgeError(f"unknown bridge state {str(text)[:40]!r}")


def _features(exposes: Any, depth: int = 0) -> Iterable[dict[str, Any]]:
    if not isinstance(exposes, list) or depth > 4:
        return
    for item in exposes:
        if isinstance(item, dict):
            yield item
            yield from _features(item.get("features"), depth + 1)


def parse_bridge_devices(payload: bytes) -> BridgeDevices:
    """The paired devices in a `bridge/devices` message. Raises BridgeError if it is not a
    JSON list or is larger than MAX_BRIDGE_DEVICES_BYTES; bad entries are skipped."""
    if len(payload) > MAX_BRIDGE_DEVICES_BYTES:
        raise BridgeError(f"bridge/devices is {len(payload)} bytes, more than "
                          f"{MAX_BRIDGE_DEVICES_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BridgeError(f"bridge/devices is not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise BridgeError(f"bridge/devices is not a list but {type(data).__name__}")
    out = BridgeDevices()
    for i, entry in enumerate(data[:MAX_BRIDGE_ENTRIES]):
        try:
            device = _entry(entry)
        except BridgeError as exc:
            out.skipped.append(f"entry {i}: {exc}")
            continue
        out.devices[device.friendly_name] = device
    if len(data) > MAX_BRIDGE_ENTRIES:
        out.skipped.append(f"{len(data) - MAX_BRIDGE_ENTRIES} entries past {MAX_BRIDGE_ENTRIES}")
    return out


def _text(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise BridgeError(f"{what} is not a short text")
    return value


def _entry(entry: Any) -> BridgeDevice:
    if not isinstance(entry, dict):
        raise BridgeError(f"not an object but {type(entry).__name__}")
    name = _text(entry.get("friendly_name"), "friendly_name")
    assert name is not None
    ieee = _text(entry.get("ieee_address"), "ieee_address")
    assert ieee is not None
    definition = entry.get("definition")
    model = vendor = description = None
    props: set[str] = set()
    actions: set[str] = set()
    if isinstance(definition, dict):
        model = _text(definition.get("model"), "definition.model", optional=True)
        vendor = _text(definition.get("vendor"), "definition.vendor", optional=True)
        if isinstance(definition.get("description"), str):
            # Only shown to installers: cut, never a reason to skip the device.
            description = definition["description"][:120] or None
        for feature in _features(definition.get("exposes")):
            prop = feature.get("property") or feature.get("name")
            if isinstance(prop, str) and len(prop) <= 64:
                props.add(prop)
                if prop == "action" and isinstance(feature.get("values"), list):
                    actions.update(v for v in feature["values"] if isinstance(v, str))
    elif definition is not None:
        raise BridgeError("definition is not an object")
    kind = entry.get("type")
    return BridgeDevice(
        name, ieee, model, vendor, kind if isinstance(kind, str) else "Unknown",
        frozenset(props), frozenset(actions), "presence" in props, description,
    )


def contradiction(kind: str, device: BridgeDevice) -> str | None:
    """Why a configured kind cannot work with what the device exposes, or None."""
    needed = KIND_PROPERTIES.get(kind)
    if needed is None or device.model is None or needed & device.properties:
        return None
    return (f"configured as {kind} but zigbee2mqtt's {device.model} exposes none of "
            f"{', '.join(sorted(needed))}: it can never report as a {kind}")
