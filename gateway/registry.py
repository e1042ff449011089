"""The bus types, device protocols and rule types this gateway knows, as explicit tables.

Each driver module declares its `BUS_TYPE` or `PROTOCOL`, each rule module its
`RULE_SPECS`; this module lists them, so what the gateway can run is read here, in one
place, rather than discovered by importing packages for their side effects (the shape of
pymodbus' `FRAMER_NAME_TO_CLASS`). The config loader validates each bus, device and rule
against the option model of its entry, so adding a driver or a rule adds one line here and
never edits the loader. Tests build their own `Registry` with `STANDARD.extended(...)`.

Heavy dependencies (pymodbus, gpiozero) are imported inside the functions that need them,
so importing the tables stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypeVar

from hearthgate.core.options import Options
from hearthgate.drivers import (
    cjt188,
    dlt645,
    gpio,
    modbus,
    mqtt_bus,
    osdp,
    rflink,
    serial_bus,
    zigbee2mqtt,
)
from hearthgate.drivers.base import BusType, ProtocolSpec
from hearthgate.rules import (
    absence,
    doors,
    hazards,
    health,
    low_use,
    power,
    routine,
    sos,
    water,
)
from hearthgate.rules.base import RuleSpec

__all__ = ["STANDARD", "BusType", "Options", "ProtocolSpec", "Registry", "RuleSpec"]

# Device kinds the gateway knows (docs/configuration.md); a protocol may add more.
BASE_DEVICE_KINDS = frozenset({
    "water_meter",
    "power_meter",
    "motion_sensor",
    "presence_sensor",
    "door_contact",
    "sos_button",
    "fall_sensor",
    "access_controller",
    "smoke_sensor",
    "gas_sensor",
    "co_sensor",
    "leak_sensor",
})


class _Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=_Named)


def _table(entries: Iterable[E], what: str) -> Mapping[str, E]:
    table: dict[str, E] = {}
    for entry in entries:
        if entry.name in table and table[entry.name] != entry:
            raise ValueError(f"{what} '{entry.name}' is listed twice")
        table[entry.name] = entry
    return MappingProxyType(table)


@dataclass(frozen=True)
class Registry:
    """Three read-only tables: bus types, device protocols and rule types, by name.

    Args:
        bus_types: what `buses[].type` may name.
        protocols: what `devices[].protocol` may name.
        rules: what `sites[].rules[].type` (and a profile) may name.

    Raises:
        ValueError: (from `build` and `extended`) two different entries with one name.
    """

    bus_types: Mapping[str, BusType]
    protocols: Mapping[str, ProtocolSpec]
    rules: Mapping[str, RuleSpec]

    @classmethod
    def build(
        cls,
        bus_types: Iterable[BusType] = (),
        protocols: Iterable[ProtocolSpec] = (),
        rules: Iterable[RuleSpec] = (),
    ) -> Registry:
        return cls(
            _table(bus_types, "bus type"),
            _table(protocols, "protocol"),
            _table(rules, "rule type"),
        )

    def extended(
        self,
        bus_types: Iterable[BusType] = (),
        protocols: Iterable[ProtocolSpec] = (),
        rules: Iterable[RuleSpec] = (),
    ) -> Registry:
        """A new registry with these entries added (tests add their own protocols)."""
        return Registry.build(
            [*self.bus_types.values(), *bus_types],
            [*self.protocols.values(), *protocols],
            [*self.rules.values(), *rules],
        )

    def __deepcopy__(self, memo: dict[int, object]) -> Registry:
        # Read-only tables of specs: a copy of a config shares them.
        return self

    @property
    def device_kinds(self) -> frozenset[str]:
        kinds = set(BASE_DEVICE_KINDS)
        for spec in self.protocols.values():
            kinds.update(spec.kinds)
        return frozenset(kinds)


STANDARD = Registry.build(
    bus_types=[serial_bus.BUS_TYPE, mqtt_bus.BUS_TYPE, gpio.BUS_TYPE],
    protocols=[
        dlt645.PROTOCOL,
        cjt188.PROTOCOL,
        modbus.PROTOCOL,
        zigbee2mqtt.PROTOCOL,
        rflink.PROTOCOL,
        osdp.PROTOCOL,
        gpio.PROTOCOL,
    ],
    rules=[
        *sos.RULE_SPECS,
        *hazards.RULE_SPECS,
        *absence.RULE_SPECS,
        *water.RULE_SPECS,
        *doors.RULE_SPECS,
        *power.RULE_SPECS,
        *health.RULE_SPECS,
        *routine.RULE_SPECS,
        *low_use.RULE_SPECS,
    ],
)
