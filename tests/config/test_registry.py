"""The standard registry imports an entry's module only when a config names it.

A Raspberry Pi driving zigbee2mqtt buttons must not carry the OSDP, meter, GPIO and Modbus
drivers, the rules its sites do not use, nor aiohttp without `gateway.web`
(docs/performance.md, idle memory). The table in hearthgate.registry says a few things of
each module without importing it; the tests below hold the modules to what it says.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hearthgate.drivers
import hearthgate.rules
from hearthgate.core.options import Options
from hearthgate.drivers.base import ProtocolSpec
from hearthgate.registry import BASE_DEVICE_KINDS, STANDARD, Lazy, Registry
from hearthgate.rules.sos import SosRule

ZIGBEE_ONLY = """\
gateway: {id: gw-lazy, timezone: Asia/Shanghai, data_dir: DATA, language: en}
uplink: {host: 127.0.0.1, port: 1883, topic_prefix: hearthgate}
buses:
  - {id: zigbee, type: mqtt, host: 127.0.0.1, port: 1884}
devices:
  - {id: btn-1, site: home, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,
     topic: zigbee2mqtt/btn-1}
  - {id: pir-1, site: home, kind: motion_sensor, protocol: zigbee2mqtt, bus: zigbee,
     topic: zigbee2mqtt/pir-1}
sites:
  - {id: home, resident: r-1, rules: [{type: sos}, {type: inactivity, window: 6h}]}
"""

# What the gateway does with that config up to its first connection: `hearthgate run`'s
# imports, the load, the gateway object (rule engine included) and each bus and driver.
BUILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import hearthgate.cli, hearthgate.runner
    from hearthgate.config import load
    from hearthgate.service import Gateway
    config = load(Path(sys.argv[1])).config
    gateway = Gateway(config)
    for bus in config.buses:
        runtime = config.registry.bus_types[bus.type].open(bus, gateway.ctx)
        mine = [d for d in config.devices if d.bus == bus.id]
        config.registry.protocols["zigbee2mqtt"].create(runtime, mine, gateway.ctx)
    print(json.dumps(sorted(sys.modules)))
""")

NOT_FOR_ZIGBEE = (
    "pymodbus", "gpiozero", "aiohttp", "cryptography", "serial", "serial_asyncio_fast",
    "hearthgate.web", "hearthgate.drivers.osdp", "hearthgate.drivers.osdp_codec",
    "hearthgate.drivers.modbus", "hearthgate.drivers.gpio", "hearthgate.drivers.dlt645",
    "hearthgate.drivers.cjt188", "hearthgate.drivers.meter_poller",
    "hearthgate.drivers.rflink", "hearthgate.drivers.serial_bus",
    "hearthgate.rules.routine", "hearthgate.rules.low_use", "hearthgate.rules.doors",
    "hearthgate.rules.power", "hearthgate.rules.water", "hearthgate.rules.hazards",
)


def test_a_zigbee_config_imports_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(ZIGBEE_ONLY.replace("DATA", str(tmp_path / "data")))
    out = subprocess.run(
        [sys.executable, "-c", BUILD, str(path)], capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    modules = set(json.loads(out.stdout))
    # What it does use is there: the proof that the script built what the gateway builds.
    assert {"hearthgate.drivers.zigbee2mqtt", "hearthgate.drivers.mqtt_bus",
            "hearthgate.rules.sos", "hearthgate.rules.absence"} <= modules
    loaded = sorted(m for m in modules if m.startswith(NOT_FOR_ZIGBEE))
    assert loaded == []


def _declared() -> dict[str, dict[str, tuple[str, object]]]:
    """Every entry the driver and rule modules declare: table -> name -> (module, spec)."""
    found: dict[str, dict[str, tuple[str, object]]] = {"BUS_TYPE": {}, "PROTOCOL": {},
                                                       "RULE_SPECS": {}}
    for package in (hearthgate.drivers, hearthgate.rules):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for attr, table in found.items():
                value = getattr(module, attr, None)
                for spec in value if isinstance(value, tuple) else [value] if value else []:
                    assert spec.name not in table, f"{spec.name} declared twice"
                    table[spec.name] = (info.name, spec)
    return found


def test_the_table_lists_every_declared_entry_by_its_module() -> None:
    declared = _declared()
    for attr, table in (("BUS_TYPE", STANDARD.bus_types), ("PROTOCOL", STANDARD.protocols),
                        ("RULE_SPECS", STANDARD.rules)):
        listed = {e.name: e for e in table.entries()}
        assert set(listed) == set(declared[attr]), attr
        for name, entry in listed.items():
            assert isinstance(entry, Lazy)
            module, spec = declared[attr][name]
            assert entry.module == module, name
            assert table[name] is spec


def test_what_the_table_says_without_importing_holds() -> None:
    for spec in STANDARD.protocols.values():
        assert spec.kinds <= BASE_DEVICE_KINDS, spec.name
    flagged = {e.name for e in STANDARD.rules.entries() if isinstance(e, Lazy) and e.expected}
    assert flagged == {s.name for s in STANDARD.rules.values() if s.expected is not None}
    assert {s.name for s in STANDARD.expecting()} == flagged


def test_a_lookup_imports_nothing_else() -> None:
    code = ("import sys; from hearthgate.registry import STANDARD as S; "
            "assert 'zigbee2mqtt' in S.protocols and len(S.rules) > 20; "
            "S.protocols['zigbee2mqtt']; "
            "print(sorted(m for m in sys.modules if m.startswith(('hearthgate.drivers.', "
            "'hearthgate.rules.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "['hearthgate.drivers.base',", "'hearthgate.drivers.zigbee2mqtt',",
        "'hearthgate.drivers.zigbee2mqtt_bridge',", "'hearthgate.rules.base',",
        "'hearthgate.rules.site_state']",
    ]


def test_an_entry_its_module_does_not_declare_is_refused_when_looked_up() -> None:
    registry = Registry.build(protocols=[Lazy("zigbee3mqtt", "hearthgate.drivers.zigbee2mqtt")])
    assert "zigbee3mqtt" in registry.protocols  # listed: the loader accepts the name...
    with pytest.raises(LookupError, match=r"zigbee3mqtt.*does not declare it"):
        registry.protocols["zigbee3mqtt"]  # ...and its first use says what is wrong
    missing = Registry.build(rules=[Lazy("nope", "hearthgate.rules.no_such_module")])
    with pytest.raises(ModuleNotFoundError):
        missing.rules["nope"]


def test_two_entries_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="protocol 'zigbee2mqtt' is listed twice"):
        Registry.build(protocols=[Lazy("zigbee2mqtt", "hearthgate.drivers.zigbee2mqtt"),
                                  Lazy("zigbee2mqtt", "hearthgate.drivers.mqtt_bus")])
    own = ProtocolSpec("zigbee2mqtt", Options, frozenset(), frozenset({"mqtt"}),
                       create=lambda *_: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="listed twice"):
        STANDARD.extended(protocols=[own])


def test_an_extended_registry_stays_lazy_and_adds_its_kinds() -> None:
    own = ProtocolSpec("bed", Options, frozenset({"bed_sensor"}), frozenset({"mqtt"}),
                       create=lambda *_: None)  # type: ignore[arg-type,return-value]
    registry = STANDARD.extended(protocols=[own])
    assert registry.protocols["bed"] is own
    assert isinstance(registry.protocols.entries()[0], Lazy)
    assert registry.device_kinds == BASE_DEVICE_KINDS | {"bed_sensor"}
    assert registry.rules["sos"].cls is SosRule
    assert registry == STANDARD.extended(protocols=[own]) and registry != STANDARD
