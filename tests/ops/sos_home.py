"""A one-button home config shared by the ops tests that run a real gateway."""

from __future__ import annotations

from pathlib import Path

from hearthgate.devkit.local_broker import MosquittoBroker


def write_sos_config(tmp: Path, broker: MosquittoBroker, gateway_id: str,
                     gateway_extra: str = "") -> Path:
    """A one-button home on `broker` (platform and zigbee2mqtt on the same broker)."""
    path = tmp / "config.yaml"
    path.write_text(f"""\
gateway:
  id: {gateway_id}
  data_dir: {tmp / "data"}
  language: en
{gateway_extra}uplink:
  host: 127.0.0.1
  port: {broker.port}
buses:
  - {{id: zigbee, type: mqtt, host: 127.0.0.1, port: {broker.port}}}
devices:
  - {{id: sos-101, site: home, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,
     topic: zigbee2mqtt/sos_101, model: TS0215A_sos}}
sites:
  - {{id: home, resident: r-0001, rules: [{{type: sos}}]}}
""")
    return path
