"""A good config using the test-only registry entries of conftest.py; the examples as on a Pi."""

import re
from pathlib import Path

GOOD = """\
gateway:
  id: gw-test-0001
  timezone: Asia/Shanghai
  language: en
uplink:
  host: 127.0.0.1
  keepalive: 45s
  telemetry_interval: 500ms
buses:
  - {id: rs485-1, type: t_serial, port: /dev/ttyUSB0, baudrate: 2400, parity: E, timeout: 800ms}
  - {id: zigbee, type: t_mqtt}
devices:
  - {id: water-1, site: home, kind: water_meter, protocol: t_meter, bus: rs485-1,
     address: "000000001234", poll: 5m, offline_after: 1h}
  - {id: sos-1, site: home, kind: sos_button, protocol: t_zigbee, bus: zigbee,
     topic: zigbee2mqtt/sos_1}
sites:
  - id: home
    resident: r-1001
    rules:
      - {type: sos}
      - {type: no_water, window: 12h, devices: [water-1]}
      - {type: t_window, window: 4h, active_hours: "22:00-06:00"}
"""


INSTALLED_TLS = "/etc/hearthgate/"  # where install.sh puts the TLS files the examples name


def as_installed(example: Path, tmp_path: Path) -> Path:
    """An example config beside the TLS files it names, as on a Pi: `check` refuses a TLS file
    that is not there, and a development machine has no /etc/hearthgate. Lines stay."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    text = example.read_text(encoding="utf-8")
    for name in re.findall(rf"{re.escape(INSTALLED_TLS)}([\w.-]+)", text):
        (etc / name).write_text("-----BEGIN CERTIFICATE-----\n")
    target = tmp_path / example.name
    target.write_text(text.replace(INSTALLED_TLS, f"{etc}/"), encoding="utf-8")
    return target
