"""Meter devices and serial buses validated from YAML, as installers write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearthgate.config import ConfigError, load_config
from hearthgate.drivers.cjt188 import CJT188Options
from hearthgate.drivers.dlt645 import DLT645Options
from hearthgate.drivers.modbus import ModbusOptions
from hearthgate.drivers.serial_bus import SerialBusOptions
from tests.config.config_samples import as_installed

REPO = Path(__file__).resolve().parents[2]

HEAD = """
gateway: {id: gw-test-0001}
uplink: {host: 127.0.0.1}
buses:
  - {id: rs485-1, type: serial, port: /dev/ttyUSB0}
sites:
  - {id: room-401}
devices:
"""


def load(tmp_path: Path, devices: str) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + devices, encoding="utf-8")
    return load_config(path)


def test_example_config_loads(tmp_path: Path) -> None:
    config = load_config(as_installed(REPO / "config" / "meters-home.yaml", tmp_path))
    assert config.summary() == "4 devices, 3 buses, 1 sites, 6 rules"
    water, power, sdm, _sos = config.devices
    assert isinstance(water.options, CJT188Options) and water.options.address == "00000000001234"
    assert isinstance(power.options, DLT645Options) and power.options.poll == 300
    assert isinstance(sdm.options, ModbusOptions) and sdm.options.model == "sdm120"
    bus = config.buses[0].options
    assert isinstance(bus, SerialBusOptions) and bus.parity == "E" and bus.timeout == 0.8


def test_register_map_from_the_docs(tmp_path: Path) -> None:
    config = load(tmp_path, """
  - id: water-401
    site: room-401
    kind: water_meter
    protocol: modbus
    bus: rs485-1
    unit: 5
    poll: 5m
    registers:
      - {address: 0x0010, function: 3, type: uint32, unit: L, metric: water_total_m3}
      - {address: 0x0020, function: 4, type: float32, metric: water_flow_m3h}
      - {address: 0x0030, function: 3, type: uint16, scale: 0.1, metric: battery_pct}
""")
    opts = config.devices[0].options  # type: ignore[attr-defined]
    assert isinstance(opts, ModbusOptions)
    assert [r.address for r in opts.register_map] == [0x10, 0x20, 0x30]
    assert opts.register_map[0].decode([0, 2500]) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("device", "message", "hint"),
    [
        ("{id: w, site: room-401, kind: water_meter, protocol: cjt188, bus: rs485-1,"
         " address: 1234}", "is a number", '"00000000001234"'),
        ("{id: p, site: room-401, kind: power_meter, protocol: dlt645, bus: rs485-1,"
         ' address: "00000005678"}', "has 11 digits, not 12", '"000000005678"'),
    ],
)
def test_short_addresses_are_refused_with_the_padded_one_as_hint(
    tmp_path: Path, device: str, message: str, hint: str
) -> None:
    # Padding would hide a dropped digit: the installer writes all of them.
    with pytest.raises(ConfigError, match=message) as caught:
        load(tmp_path, f"  - {device}\n")
    assert any(p.hint and hint in p.hint for p in caught.value.problems)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("{id: w, site: room-401, kind: water_meter, protocol: cjt188, bus: rs485-1}",
         "address"),
        ("{id: w, site: room-401, kind: water_meter, protocol: cjt188, bus: rs485-1,"
         " address: 12345678901234567}", "not a CJ/T 188 address"),
        ("{id: p, site: room-401, kind: power_meter, protocol: dlt645, bus: rs485-1,"
         " address: 12AB}", "not a DL/T 645 address"),
        ("{id: p, site: room-401, kind: power_meter, protocol: dlt645, bus: rs485-1,"
         " address: '000000000001', read: [energy]}", "energy_total_kwh"),
        ("{id: p, site: room-401, kind: power_meter, protocol: dlt645, bus: rs485-1,"
         " address: '000000000001', pol: 5m}", "pol"),
        ("{id: p, site: room-401, kind: power_meter, protocol: dlt645, bus: rs485-1,"
         " address: '000000000001', poll: soon}", "not a duration"),
        ("{id: w, site: room-401, kind: water_meter, protocol: cjt188, bus: rs485-1,"
         " address: '00000000000001', status: weird}", "standard"),
        ("{id: m, site: room-401, kind: power_meter, protocol: modbus, bus: rs485-1,"
         " unit: 300, model: sdm120}", "unit"),
    ],
)
def test_bad_device_keys(tmp_path: Path, device: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, f"  - {device}\n")


@pytest.mark.parametrize(
    ("bus", "message"),
    [
        ("{id: b, type: serial}", "port"),
        ("{id: b, type: serial, port: x, parity: X}", "parity"),
        ("{id: b, type: serial, port: x, baudrat: 9600}", "baudrat"),
        ("{id: b, type: serial, port: x, timeout: 0}", "timeout"),
        ("{id: b, type: serial, port: x, retries: 99}", "retries"),
    ],
)
def test_bad_bus_keys(tmp_path: Path, bus: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"gateway: {{id: gw-test-0001}}\nuplink: {{host: h}}\nbuses:\n  - {bus}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
