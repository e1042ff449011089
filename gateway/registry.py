"""The bus types, device protocols and rule types this gateway knows, as explicit tables.

Each driver module declares its `BUS_TYPE` or `PROTOCOL`, each rule module its
`RULE_SPECS`; this module lists them by name and module, so what the gateway can run is
read here, in one place, rather than discovered by importing packages for their side
effects (the shape of pymodbus' `FRAMER_NAME_TO_CLASS`). The config loader validates each
bus, device and rule against the option model of its entry, so adding a driver or a rule
adds one line here and never edits the loader. Tests build their own `Registry` with
`STANDARD.extended(...)`.

An entry's module is imported when the entry is first looked up (`STANDARD.protocols
["zigbee2mqtt"]`), not when this module is: a gateway that drives zigbee2mqtt buttons
never loads the OSDP, meter or GPIO drivers nor the rules its sites do not name (about
3 MB of a Raspberry Pi's memory, docs/performance.md). What the loader needs of entries a
config does not name is written here: their names, that every protocol's device kinds are
in `BASE_DEVICE_KINDS`, and which rule types have a site expectation that `hearthgate check`
applies to every site (`Lazy.expected`); tests/config/test_registry.py holds each module to
what this table says of it. Listing all values (`hearthgate check`'s schema, `values()`)
imports every module.

Heavy dependencies (pymodbus, gpiozero) are imported inside the functions that need them,
so even a loaded entry stays cheap until its driver runs.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from hearthgate.core.options import Options
from hearthgate.drivers.base import BusType, ProtocolSpec
from hearthgate.rules.base import RuleSpec

__all__ = ["STANDARD", "BusType", "Lazy", "Options", "ProtocolSpec", "Registry", "RuleSpec"]

# Device kinds the gateway knows (docs/configuration.md). Every standard protocol's kinds
# are among them (tests/config/test_registry.py), so that a kind is known without importing
# the protocols a config does not name; a protocol a test adds may bring more.
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


@dataclass(frozen=True)
class Lazy:
    """A standard entry by the module that declares it, imported when first looked up.

    Args:
        name: the entry's name (`zigbee2mqtt`, `sos`).
        module: the module declaring it, in its `BUS_TYPE`, `PROTOCOL` or `RULE_SPECS`.
        expected: (rule types) the spec has a site expectation, which `hearthgate check`
            applies to every site, so it is loaded with every config.
    """

    name: str
    module: str
    expected: bool = False


class Table(Mapping[str, E], Generic[E]):
    """A read-only table by name whose `Lazy` entries are imported when looked up.

    Names, `in` and `len` never import; `[name]` and `get` import that entry's module;
    `values()` and `items()` import them all.
    """

    def __init__(self, entries: Iterable[E | Lazy], what: str, attr: str) -> None:
        self._entries: dict[str, E | Lazy] = {}
        for entry in entries:
            if entry.name in self._entries and self._entries[entry.name] != entry:
                raise ValueError(f"{what} '{entry.name}' is listed twice")
            self._entries[entry.name] = entry
        self._what = what
        self._attr = attr  # where a module declares its entries: BUS_TYPE, PROTOCOL, RULE_SPECS
        self._loaded: dict[str, E] = {}
        self._lock = threading.Lock()  # the loader may run in a thread (a pushed config)

    def __getitem__(self, name: str) -> E:
        entry = self._entries[name]
        if not isinstance(entry, Lazy):
            return entry
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(entry)
            return self._loaded[name]

    def _load(self, ref: Lazy) -> E:
        declared = getattr(importlib.import_module(ref.module), self._attr, ())
        for spec in declared if isinstance(declared, tuple | list) else (declared,):
            if spec.name == ref.name:
                return spec  # type: ignore[no-any-return]
        raise LookupError(f"{self._what} '{ref.name}': {ref.module} does not declare it")

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __eq__(self, other: object) -> bool:
        # By what is listed: Mapping's own comparison would import every entry.
        if isinstance(other, Table):
            return self._attr == other._attr and self._entries == other._entries
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def entries(self) -> list[E | Lazy]:
        """As listed, `Lazy` ones not imported (what `Registry.extended` builds on)."""
        return list(self._entries.values())

    def eager(self) -> list[E]:
        """The entries given as specs rather than by module (a test's own protocols)."""
        return [e for e in self._entries.values() if not isinstance(e, Lazy)]


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

    bus_types: Table[BusType]
    protocols: Table[ProtocolSpec]
    rules: Table[RuleSpec]

    @classmethod
    def build(
        cls,
        bus_types: Iterable[BusType | Lazy] = (),
        protocols: Iterable[ProtocolSpec | Lazy] = (),
        rules: Iterable[RuleSpec | Lazy] = (),
    ) -> Registry:
        return cls(
            Table(bus_types, "bus type", "BUS_TYPE"),
            Table(protocols, "protocol", "PROTOCOL"),
            Table(rules, "rule type", "RULE_SPECS"),
        )

    def extended(
        self,
        bus_types: Iterable[BusType] = (),
        protocols: Iterable[ProtocolSpec] = (),
        rules: Iterable[RuleSpec] = (),
    ) -> Registry:
        """A new registry with these entries added (tests add their own protocols)."""
        return Registry.build(
            [*self.bus_types.entries(), *bus_types],
            [*self.protocols.entries(), *protocols],
            [*self.rules.entries(), *rules],
        )

    def __deepcopy__(self, memo: dict[int, object]) -> Registry:
        # Read-only tables of specs: a copy of a config shares them.
        return self

    @property
    def device_kinds(self) -> frozenset[str]:
        kinds = set(BASE_DEVICE_KINDS)
        for spec in self.protocols.eager():
            kinds.update(spec.kinds)
        return frozenset(kinds)

    def expecting(self) -> list[RuleSpec]:
        """The rule types with a site expectation (`RuleSpec.expected`), which `hearthgate
        check` weighs for every site: only these are imported for it."""
        out = []
        for entry in self.rules.entries():
            if isinstance(entry, Lazy):
                if entry.expected:
                    out.append(self.rules[entry.name])
            elif entry.expected is not None:
                out.append(entry)
        return out


_D = "hearthgate.drivers."
_R = "hearthgate.rules."

STANDARD = Registry.build(
    bus_types=[
        Lazy("serial", _D + "serial_bus"),
        Lazy("mqtt", _D + "mqtt_bus"),
        Lazy("gpio", _D + "gpio"),
    ],
    protocols=[
        Lazy("dlt645", _D + "dlt645"),
        Lazy("cjt188", _D + "cjt188"),
        Lazy("modbus", _D + "modbus"),
        Lazy("zigbee2mqtt", _D + "zigbee2mqtt"),
        Lazy("rflink", _D + "rflink"),
        Lazy("osdp", _D + "osdp"),
        Lazy("gpio", _D + "gpio"),
    ],
    rules=[
        Lazy("sos", _R + "sos", expected=True),
        Lazy("fall", _R + "sos"),
        Lazy("smoke", _R + "hazards"),
        Lazy("gas_leak", _R + "hazards"),
        Lazy("carbon_monoxide", _R + "hazards"),
        Lazy("water_leak", _R + "hazards"),
        Lazy("no_water", _R + "absence", expected=True),
        Lazy("inactivity", _R + "absence"),
        Lazy("no_exit", _R + "absence"),
        Lazy("continuous_water", _R + "water"),
        Lazy("door_night", _R + "doors"),
        Lazy("door_held_open", _R + "doors"),
        Lazy("access_denied_repeated", _R + "doors"),
        Lazy("no_power_use", _R + "power"),
        Lazy("power_high", _R + "power"),
        Lazy("device_offline", _R + "health"),
        Lazy("battery_low", _R + "health"),
        Lazy("tamper", _R + "health"),
        Lazy("not_up", _R + "routine"),
        Lazy("stillness", _R + "routine"),
        Lazy("night_bathroom", _R + "routine"),
        Lazy("low_use", _R + "low_use"),
    ],
)
