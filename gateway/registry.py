"""Where bus types, device protocols and rule types announce themselves.

The config loader validates each bus, device and rule against the option model
its entry declares, so adding a driver or a rule never edits the loader:
a module in drivers/ or rules/ calls `register_*` at import time, and
`load_plugins()` imports every module of those packages.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from drivers.base import BusRuntime, Driver, DriverContext
    from gateway.config import BusConfig, DeviceConfig
    from rules.base import Rule


class Options(BaseModel):
    """Base of every option model: unknown keys are errors (contract §2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BusType:
    name: str
    options: type[Options]
    # Builds the object that owns the link (a serial port, an MQTT connection).
    open: Callable[[BusConfig, DriverContext], BusRuntime]
    description: str = ""


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    options: type[Options]  # device keys beyond id/site/kind/protocol/bus/name
    kinds: frozenset[str]  # device kinds this protocol can drive
    bus_types: frozenset[str]  # bus types it runs on
    # Builds one driver for all devices of this protocol on one bus.
    create: Callable[[BusRuntime, list[DeviceConfig], DriverContext], Driver]
    description: str = ""


@dataclass(frozen=True)
class RuleSpec:
    name: str
    options: type[Options]
    cls: type[Rule]
    # Device kinds whose observations the rule reads; empty means any kind.
    kinds: frozenset[str] = field(default_factory=frozenset)
    description: str = ""


BUS_TYPES: dict[str, BusType] = {}
PROTOCOLS: dict[str, ProtocolSpec] = {}
RULES: dict[str, RuleSpec] = {}

# Device kinds the gateway knows (contract §2); drivers may add more.
DEVICE_KINDS: set[str] = {
    "water_meter",
    "power_meter",
    "motion_sensor",
    "door_contact",
    "sos_button",
    "access_controller",
}


def _add(table: dict[str, Any], name: str, entry: Any, what: str) -> None:
    existing = table.get(name)
    if existing is not None and existing != entry:
        raise RuntimeError(f"{what} '{name}' is registered twice")
    table[name] = entry


def register_bus_type(entry: BusType) -> BusType:
    _add(BUS_TYPES, entry.name, entry, "bus type")
    return entry


def register_protocol(entry: ProtocolSpec) -> ProtocolSpec:
    _add(PROTOCOLS, entry.name, entry, "protocol")
    DEVICE_KINDS.update(entry.kinds)
    return entry


def register_rule(entry: RuleSpec) -> RuleSpec:
    _add(RULES, entry.name, entry, "rule type")
    return entry


_loaded = False


def load_plugins() -> None:
    """Import every module of drivers/ and rules/ so that they register themselves.

    Modules import their heavy dependencies (pymodbus, gpiozero) inside the
    functions that need them, so loading the registry stays cheap.
    """
    global _loaded
    if _loaded:
        return
    for package_name in ("drivers", "rules"):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            importlib.import_module(info.name)
    _loaded = True
