"""One truth about a device (issue 13, item 3): `hearthgate devices` asks the running service
for what it knows now, falls back to the store (and says so) when it is not running; "last
seen" survives a restart; a button never pressed is "not heard yet", not "offline"."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hearthgate.config import load_config
from hearthgate.core.model import Instant, Observation
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber, run_cli
from hearthgate.health import DeviceHealth
from tests.faults.faultkit import InProcessGateway, wait_until, write_config

DOOR = (
    "  - {id: door-301, site: room-301, kind: door_contact, protocol: zigbee2mqtt,"
    " bus: zigbee, topic: zigbee2mqtt/door_301, model: SNZB-04}\n"
)


def device(listing: dict[str, Any], device_id: str) -> dict[str, Any]:
    return next(d for d in listing["devices"] if d["device_id"] == device_id)


async def devices_json(config: Path) -> dict[str, Any]:
    out = await run_cli("devices", "-c", str(config), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_devices_live_then_saved_then_last_seen_after_restart(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker,
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301"], extra_devices=DOOR)
    async with PlatformSubscriber(home_broker.host, home_broker.port) as zigbee:
        async with InProcessGateway(config) as gw:
            health = gw.gateway.health.devices["door-301"]
            await zigbee.publish("zigbee2mqtt/door_301", {"contact": False, "battery": 80})
            await wait_until(lambda: health.values.get("door_open") is True, 10, "door open")
            await zigbee.publish("zigbee2mqtt/door_301", {"contact": True})
            await wait_until(lambda: health.values.get("door_open") is False, 10, "door shut")
            # Asked the moment the service knows it, not a file written every 5 s.
            live = await devices_json(config)
            assert live["live"] is True
            assert device(live, "door-301")["values"]["door_open"] is False
            assert device(live, "door-301")["online"] is True
            # The SOS button has never been pressed: not heard yet, not offline.
            assert device(live, "sos-301")["online"] is None
            table = (await run_cli("devices", "-c", str(config))).stdout
            sos_line = next(line for line in table.splitlines() if line.startswith("sos-301"))
            assert "not heard yet" in sos_line and "NO" not in sos_line
            assert "1 of 2 devices online, 1 not heard yet (now)" in table
            heard = device(live, "door-301")["last_seen"]

        # Stopped: the states saved on the way out, and it says so.
        out = await run_cli("devices", "-c", str(config))
        assert out.returncode == 0
        assert out.stdout.startswith("hearthgate is not running: devices as last saved at")
        saved = await devices_json(config)
        assert saved["live"] is False and device(saved, "door-301")["last_seen"] == heard

        # zigbee2mqtt's retained availability arrives at every start: it is the link's
        # word, not the door's, and "last seen" stays when the door was last heard.
        await zigbee.publish("zigbee2mqtt/door_301/availability", {"state": "online"},
                             retain=True)
        async with InProcessGateway(config) as gw:
            health = gw.gateway.health.devices["door-301"]
            await wait_until(lambda: health.alive is True, 10, "the availability")
            again = await devices_json(config)
            assert again["live"] is True
            assert device(again, "door-301")["last_seen"] == heard
            assert device(again, "door-301")["online"] is True
            assert device(again, "door-301")["values"]["door_open"] is False
        await zigbee.publish("zigbee2mqtt/door_301/availability", b"", retain=True)


def test_never_heard_states(tmp_path: Path) -> None:
    """A button (no heartbeat) never pressed stays "not heard yet"; a sensor that should
    check in and never does is offline after its limit, counted from the gateway's start,
    as the `device_offline` rule counts it."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(f"""gateway: {{id: gw-truth-0001, timezone: UTC, data_dir: {tmp_path}}}
uplink: {{host: 127.0.0.1}}
buses:
  - {{id: rf433, type: serial, port: /dev/null, baudrate: 57600}}
  - {{id: zigbee, type: mqtt, host: 127.0.0.1}}
devices:
  - {{id: sos-1, site: home, kind: sos_button, protocol: rflink, bus: rf433,
      match: "EV1527;ID=0x5a3c1"}}
  - {{id: pir-1, site: home, kind: motion_sensor, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/pir_1, offline_after: 10m}}
sites:
  - {{id: home, rules: [{{type: sos}}, {{type: inactivity}}]}}
""")
    health = DeviceHealth(load_config(config_path))
    t0 = datetime(2026, 11, 22, 8, tzinfo=UTC)

    def at(s: float) -> Instant:
        return Instant(100.0 + s, datetime.fromtimestamp(t0.timestamp() + s, UTC))

    def online(snapshot: list[dict[str, Any]]) -> dict[str, Any]:
        return {d["device_id"]: (d["online"], d["why"]) for d in snapshot}

    health.start(at(0))
    assert online(health.snapshot(at(1))) == {"sos-1": (None, None), "pir-1": (None, None)}
    assert health.next_expiry(at(1)) == 100.0 + 600
    assert online(health.snapshot(at(600))) == {
        "sos-1": (None, None), "pir-1": (False, "never heard")}
    assert health.changed(at(1)) and not health.changed(at(2)) and health.changed(at(600))
    # Pressed once: heard, and a button stays online in its silence.
    health.observe(Observation("sos-1", "home", "sos", True, at(700)))
    assert online(health.snapshot(at(90000)))["sos-1"] == (True, None)

    # Restored after a restart: the last word from each device, not the restart's time.
    saved = {"ts": "2026-11-22T08:30:00+00:00", "devices": health.snapshot(at(1800))}
    after = DeviceHealth(load_config(config_path))
    after.restore(saved, Instant(5.0, datetime(2026, 11, 22, 9, tzinfo=UTC)))
    after.start(Instant(5.0, datetime(2026, 11, 22, 9, tzinfo=UTC)))
    [sos] = [d for d in after.snapshot(Instant(6.0, t0)) if d["device_id"] == "sos-1"]
    assert sos["last_seen"] == "2026-11-22T08:11:40+00:00" and sos["online"] is True
