"""Readings and device health reach the platform: batched P/telemetry, retained P/devices."""

from __future__ import annotations

import json

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber, run_cli

P = "hearthgate/gw-test-0001"


def readings(platform: PlatformSubscriber) -> list[dict]:
    out = []
    for m in platform.on(f"{P}/telemetry"):
        body = m.json()
        assert body["schema"] == "hearthgate.telemetry/1"
        out += body["readings"]
    return out


async def test_readings_batched_to_telemetry_and_health_to_devices(
    gateway, platform, started, zigbee
):
    await started(gateway)
    for i in range(20):
        await zigbee.publish("zigbee2mqtt/sos_302", {"battery": 90 - i, "linkquality": 100 + i})
    await platform.wait_for(lambda _: len(readings(platform)) >= 40, timeout=15)
    got = readings(platform)
    battery = [r for r in got if r["metric"] == "battery_pct"]
    assert [r["value"] for r in battery] == [90.0 - i for i in range(20)]  # none lost, in order
    assert battery[0]["unit"] == "%" and battery[0]["site_id"] == "room-302"
    assert battery[0]["ts"].endswith("+08:00")
    assert len(platform.on(f"{P}/telemetry")) < 20  # batched, not one message per reading

    [snapshot] = (await platform.wait_json(
        f"{P}/devices",
        lambda b: any(d["device_id"] == "sos-302" and d["battery"] == 71.0
                      for d in b["devices"]),
    ))[-1:]
    dev = next(d for d in snapshot["devices"] if d["device_id"] == "sos-302")
    assert dev["online"] is True and dev["linkquality"] == 119.0 and dev["last_seen"]
    never = next(d for d in snapshot["devices"] if d["device_id"] == "sos-303")
    # A button never pressed is not heard yet: neither known working nor known dead.
    assert never["online"] is None and never["last_seen"] is None
    assert snapshot["schema"] == "hearthgate.devices/1"


async def test_silent_device_goes_offline_and_devices_cli_shows_it(
    make_config, broker: MosquittoBroker, platform, zigbee, started
):
    config = make_config(", offline_after: 2s")
    gw = GatewayProcess(config)
    try:
        await started(gw)
        await zigbee.publish("zigbee2mqtt/sos_301", {"battery": 64, "linkquality": 88})

        def state(b: dict) -> bool | None:
            return next(d["online"] for d in b["devices"] if d["device_id"] == "sos-301")

        def seen_then_silent(b: dict) -> bool:
            dev = next(d for d in b["devices"] if d["device_id"] == "sos-301")
            return dev["last_seen"] is not None and dev["online"] is False

        await platform.wait_json(f"{P}/devices", lambda b: state(b) is True)
        await platform.wait_json(f"{P}/devices", seen_then_silent, timeout=15)
        out = await run_cli("devices", "-c", str(config))
        assert out.returncode == 0, out.stderr
        row = next(line for line in out.stdout.splitlines() if line.startswith("sos-301"))
        assert " NO " in row and "64%" in row and "88" in row
        assert "0 of 3 devices online" in out.stdout
        data = json.loads((await run_cli("devices", "-c", str(config), "--json")).stdout)
        assert {d["device_id"]: d["online"] for d in data["devices"]} == {
            "sos-301": False, "sos-302": False, "sos-303": False}
        # Retained: a platform that connects now still gets the latest snapshot.
        async with PlatformSubscriber(broker.host, broker.port, (f"{P}/devices",)) as late:
            [m] = await late.wait_for(lambda ms: ms[:1])
            assert m.retain and seen_then_silent(m.json())
    finally:
        gw.close()
