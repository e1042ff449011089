"""A home with a status page, shared by the page's tests: two SOS buttons (a radio folds a
button's repeated presses, so a second alert soon after the first needs the other) and a door
contact on zigbee2mqtt (the platform and zigbee2mqtt on one real broker), the page on a free
loopback port."""

from __future__ import annotations

from pathlib import Path

from hearthgate.devkit.local_broker import MosquittoBroker, free_port

TOKEN = "tok-0123456789abcdef"  # what the tests log in with; secrets.yaml holds it


def write_page_config(tmp: Path, broker: MosquittoBroker, gateway_id: str, *,
                      language: str = "en", port: int | None = None) -> tuple[Path, int]:
    """The config file and the page's port."""
    port = port or free_port()
    (tmp / "secrets.yaml").write_text(f"web_token: {TOKEN}\n")
    path = tmp / "config.yaml"
    path.write_text(f"""\
gateway:
  id: {gateway_id}
  data_dir: {tmp / "data"}
  language: {language}
  web:
    listen: 127.0.0.1:{port}
    token: !secret web_token
uplink:
  host: 127.0.0.1
  port: {broker.port}
  keepalive: 5s
buses:
  - {{id: zigbee, type: mqtt, host: 127.0.0.1, port: {broker.port}}}
devices:
  - {{id: sos-101, site: home, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,
     topic: zigbee2mqtt/sos_101, model: TS0215A_sos}}
  - {{id: sos-102, site: home, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,
     topic: zigbee2mqtt/sos_102, model: TS0215A_sos}}
  - {{id: door-101, site: home, kind: door_contact, protocol: zigbee2mqtt, bus: zigbee,
     topic: zigbee2mqtt/door_101}}
sites:
  - {{id: home, resident: r-0001, rules: [{{type: sos}}]}}
""")
    return path, port
