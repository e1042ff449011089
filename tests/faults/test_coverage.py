"""Coverage at run time (issue 13, item 2): a site's only motion sensor dies, and `P/status`,
the `device_offline` alert, the log and `hearthgate status` say that `inactivity` is blind and
why; the sensor comes back and the rule is watching again. Real gateway, real mosquitto,
`hearthgate status` as a real process talking to the control socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber, run_cli
from tests.faults.faultkit import ALERTS, InProcessGateway, P, write_config

STATUS = f"{P}/status"
PIR = (
    "  - {id: pir-301, site: room-301, kind: motion_sensor, protocol: zigbee2mqtt,"
    " bus: zigbee, topic: zigbee2mqtt/pir_301, model: SNZB-03}\n"
)
RULES = ("{type: inactivity, window: 1h, active_hours: null},"
         " {type: device_offline, after: 2s}")


def coverage(body: dict[str, Any], site: str = "room-301") -> dict[str, Any] | None:
    return next((c for c in body.get("coverage", []) if c["site_id"] == site), None)


def blind(body: dict[str, Any]) -> dict[str, str]:
    c = coverage(body)
    return {b["rule"]: b["why"] for b in c["blind"]} if c else {}


def watching(body: dict[str, Any]) -> list[str]:
    c = coverage(body)
    return c["watching"] if c else []


async def next_status(platform: PlatformSubscriber, match: Any, timeout: float = 10.0
                      ) -> dict[str, Any]:
    """The first `P/status` from now on that `match`es."""
    start = len(platform.messages)

    def found(messages: list[Any]) -> dict[str, Any] | None:
        for m in messages[start:]:
            if m.topic == STATUS and match(body := m.json()):
                return body
        return None

    return await platform.wait_for(found, timeout)


async def keep_reporting(zigbee: PlatformSubscriber, topic: str) -> None:
    """A live sensor: word from it every half second until cancelled."""
    while True:
        await zigbee.publish(topic, {"occupancy": True, "linkquality": 80})
        await asyncio.sleep(0.5)


async def test_only_motion_sensor_dies_inactivity_blind_then_back(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker,
    platform: PlatformSubscriber, zigbee: PlatformSubscriber,
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301"], extra_devices=PIR,
                          site_rules={"room-301": RULES})
    async with InProcessGateway(config) as gw:
        await zigbee.publish("zigbee2mqtt/pir_301", {"occupancy": True, "battery": 90})
        await platform.wait_json(STATUS, lambda b: "inactivity" in watching(b), timeout=10)

        # The sensor falls silent: after 2 s it is offline, and the status says so at once
        # (well before the periodic status, minutes away).
        gone = await next_status(platform, lambda b: "inactivity" in blind(b), timeout=15)
        assert blind(gone) == {"inactivity": "pir-301 offline"}
        assert watching(gone) == ["sos", "device_offline"]
        assert gone["state"] == "online" and gone["schema"] == "hearthgate.status/1"

        # The alert about the sensor says what is left watching the resident.
        [offline] = await platform.wait_json(
            ALERTS, lambda b: b["type"] == "device_offline" and b["state"] == "raised")
        assert offline["details"]["coverage"] == "room-301: only SOS is watched"
        assert offline["details"]["watching"] == ["sos"]
        assert any("inactivity is blind: pir-301 offline" in x for x in gw.log_lines)

        # `hearthgate status`: the running gateway as the platform sees it.
        out = await run_cli("status", "-c", str(config))
        assert out.returncode == 0, out.stderr
        assert "uplink: connected" in out.stdout
        assert "BLIND:    inactivity: pir-301 offline" in out.stdout
        assert "watching: sos, device_offline" in out.stdout
        as_json = json.loads((await run_cli("status", "-c", str(config), "--json")).stdout)
        assert as_json["uplink"]["connected"] is True
        assert blind(as_json) == {"inactivity": "pir-301 offline"}
        assert set(as_json["outbox"]) == {"urgent", "alert", "telemetry"}

        # The sensor comes back: watching again, at once. (Its cached `occupancy: true`
        # repeated is no news for the driver; the link quality is word from it.)
        await zigbee.publish("zigbee2mqtt/pir_301", {"occupancy": True, "linkquality": 80})
        back = await next_status(platform, lambda b: "inactivity" in watching(b), timeout=10)
        assert not blind(back)
        assert watching(back) == ["sos", "inactivity", "device_offline"]
        # `hearthgate status` while the sensor keeps reporting: its offline limit is 2 s,
        # shorter than a CLI process takes to start on a loaded machine.
        async with asyncio.TaskGroup() as tg:
            chatter = tg.create_task(keep_reporting(zigbee, "zigbee2mqtt/pir_301"))
            out = await run_cli("status", "-c", str(config))
            chatter.cancel()
        assert "BLIND" not in out.stdout and "watching: sos, inactivity" in out.stdout
        assert any("inactivity is watching again" in x for x in gw.log_lines)

    # Stopped: `status` says so and exits 1, without a traceback.
    out = await run_cli("status", "-c", str(config))
    assert out.returncode == 1 and "is not running" in out.stderr
    assert "Traceback" not in out.stderr


async def test_bridge_offline_is_the_reason(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker,
    platform: PlatformSubscriber, zigbee: PlatformSubscriber,
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301"], extra_devices=PIR,
                          site_rules={"room-301": "{type: inactivity, window: 1h}"})
    async with InProcessGateway(config):
        await zigbee.publish("zigbee2mqtt/pir_301", {"occupancy": True})
        await platform.wait_json(STATUS, lambda b: "inactivity" in watching(b), timeout=10)
        await zigbee.publish("zigbee2mqtt/bridge/state", {"state": "offline"})
        body = await next_status(platform, lambda b: "inactivity" in blind(b))
        assert blind(body)["inactivity"] == "pir-301 offline (zigbee2mqtt bridge offline)"
        # the SOS button is behind the same bridge
        assert blind(body)["sos"] == "sos-301 offline (zigbee2mqtt bridge offline)"
        await zigbee.publish("zigbee2mqtt/bridge/state", {"state": "online"})
        await next_status(platform, lambda b: coverage(b) is not None and not blind(b))


async def test_status_and_devices_against_a_dead_or_garbage_socket(tmp_path: Path) -> None:
    """A socket file with nobody behind it is "not running"; one that answers garbage, or
    hangs up, is a clear error; exit 1 and no traceback either way."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"""gateway: {{id: gw-sock-0001, timezone: UTC, data_dir: {data},
          language: en}}
uplink: {{host: 127.0.0.1, port: 1}}
devices: []
sites: []
""")
    sock = data / "control.sock"
    sock.write_text("")  # a file, not a socket: left behind by something
    out = await run_cli("status", "-c", str(config))
    assert out.returncode == 1 and "is not running" in out.stderr, out.stderr
    sock.unlink()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"\x00\xffnot json at all\n")
        await writer.drain()
        writer.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    # A hang-up lands as an empty answer or a reset, depending on the race.
    for handler, words in ((garbage, ("not hearthgate's",)),
                           (hang_up, ("without an answer", "broke off"))):
        server = await asyncio.start_unix_server(handler, path=str(sock))
        try:
            for command in ("status", "devices"):
                out = await run_cli(command, "-c", str(config))
                assert out.returncode == 1, (command, out.stdout, out.stderr)
                assert any(w in out.stderr for w in words), out.stderr
                assert "Traceback" not in out.stderr and "control.sock" in out.stderr
        finally:
            server.close()
            await server.wait_closed()
            sock.unlink(missing_ok=True)
