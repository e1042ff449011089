"""The first end-to-end path, black box: a zigbee2mqtt SOS press → the platform.

Real parts only: two real mosquitto brokers (the home's zigbee2mqtt broker and the
platform's), the gateway as a real process, its real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber, run_cli
from hearthgate.store import state

GW = "gw-test-0001"
P = f"hearthgate/{GW}"
SITES = ("room-301", "room-302", "room-303")


def outbox_alerts(tmp: Path) -> list[dict]:
    db = tmp / "data" / "hearthgate.sqlite3"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT payload FROM outbox WHERE kind='alert' ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [state.decode(r[0]) for r in rows]  # an alert's payload is packed (state.pack)


def raised(body: dict) -> bool:
    return body["type"] == "sos" and body["state"] == "raised"


async def test_sos_press_arrives_as_contract_alert(gateway, platform, started, press_sos):
    await started(gateway)
    await press_sos()
    [alert] = await platform.wait_json(f"{P}/alerts", raised)
    assert alert["schema"] == "hearthgate.alert/1"
    assert alert["severity"] == "critical"
    assert alert["gateway_id"] == GW
    assert alert["site_id"] == "room-301"
    assert alert["resident_id"] == "r-301"
    assert alert["device_ids"] == ["sos-301"]
    assert alert["raised_at"].endswith("+08:00") and alert["ts"].endswith("+08:00")
    assert alert["message"] == "Emergency call (SOS)"
    assert alert["details"]["action"] == "emergency"
    assert len(alert["event_id"]) == 36 and len(alert["alert_id"]) == 36
    contract_fields = {
        "schema", "event_id", "alert_id", "state", "type", "severity", "gateway_id", "site_id",
        "resident_id", "device_ids", "raised_at", "ts", "message", "details",
    }
    assert contract_fields <= alert.keys()
    # The radio (or zigbee2mqtt) repeating the press is still one alert.
    await press_sos()
    await asyncio.sleep(1.0)
    assert len([m for m in platform.on(f"{P}/alerts") if raised(m.json())]) == 1


async def test_presses_during_uplink_outage_all_arrive(
    gateway, platform, started, press_sos, broker, tmp_path
):
    await started(gateway)
    broker.stop()
    for site in SITES:
        await press_sos(site)
    deadline = time.monotonic() + 15
    while len(outbox_alerts(tmp_path)) < len(SITES):
        assert time.monotonic() < deadline, gateway.log_text()
        await asyncio.sleep(0.1)
    stored = {a["event_id"] for a in outbox_alerts(tmp_path)}
    broker.start()
    alerts = await platform.wait_json(f"{P}/alerts", raised, count=len(SITES), timeout=20)
    assert {a["site_id"] for a in alerts} == set(SITES)
    assert {a["event_id"] for a in alerts} == stored
    deadline = time.monotonic() + 10
    while outbox_alerts(tmp_path):
        assert time.monotonic() < deadline, "delivered alerts must leave the outbox"
        await asyncio.sleep(0.1)


async def test_sigkill_between_commit_and_puback_resends_same_event(
    gateway, platform, started, press_sos, broker, tmp_path
):
    await started(gateway)
    assert broker.proc is not None
    # The broker hangs: the PUBLISH goes out but no PUBACK can come back.
    os.kill(broker.proc.pid, signal.SIGSTOP)
    try:
        await press_sos()
        deadline = time.monotonic() + 15
        while not outbox_alerts(tmp_path):
            assert time.monotonic() < deadline, gateway.log_text()
            await asyncio.sleep(0.05)
        [committed] = outbox_alerts(tmp_path)
        gateway.kill()
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    gateway.start()
    hits = await platform.wait_json(
        f"{P}/alerts", lambda b: b["event_id"] == committed["event_id"], timeout=20
    )
    assert all(h == committed for h in hits)  # the same message, byte for byte in content
    deadline = time.monotonic() + 10
    while outbox_alerts(tmp_path):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def test_ack_clears_sos_and_bad_commands_get_errors(
    gateway, platform, started, press_sos, config
):
    await started(gateway)
    await press_sos()
    [alert] = await platform.wait_json(f"{P}/alerts", raised)
    bad = [
        ("ack", b"not json"),
        ("ack", b"[1, 2]"),
        ("ack", json.dumps({"alert_id": 5}).encode()),
        ("ack", json.dumps({"alert_id": "no-such-alert", "by": "worker-17"}).encode()),
        ("ack", b'{"alert_id": "' + b"x" * (70 * 1024) + b'"}'),
        ("reboot", b"{}"),
        ("ping", json.dumps({"id": {"nested": True}}).encode()),
    ]
    for name, payload in bad:
        await platform.publish(f"{P}/cmd/{name}", payload)
    results = await platform.wait_json(f"{P}/cmd/result", lambda b: not b["ok"], count=len(bad))
    assert all(r["schema"] == "hearthgate.cmd_result/1" and r["error"] for r in results)
    assert any("unknown or already cleared alert" in r["error"] for r in results)
    assert any("larger than" in r["error"] for r in results)

    await platform.publish(f"{P}/cmd/ack", {"alert_id": alert["alert_id"], "by": "worker-17"})
    [cleared] = await platform.wait_json(
        f"{P}/alerts", lambda b: b["state"] == "cleared" and b["alert_id"] == alert["alert_id"]
    )
    assert cleared["event_id"] != alert["event_id"]
    assert cleared["details"]["acknowledged_by"] == "worker-17"
    await platform.publish(f"{P}/cmd/ping", {"id": "p-1"})
    [pong] = await platform.wait_json(f"{P}/cmd/result", lambda b: b.get("id") == "p-1")
    assert pong["ok"] is True and pong["error"] is None

    # The store marks a transition delivered in its next light commit after the PUBACK (at
    # most LAZY_WINDOW later, gateway/store/writer.py): until then it is rightly "pending".
    for _ in range(20):
        listing = await run_cli("alerts", "-c", str(config))
        assert listing.returncode == 0, listing.stderr
        row = next(line for line in listing.stdout.splitlines() if alert["alert_id"] in line)
        if not row.startswith("pending"):
            break
        await asyncio.sleep(0.25)
    assert row.startswith("cleared") and "worker-17" in row
    as_json = await run_cli("alerts", "-c", str(config), "--json")
    [entry] = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert entry["acked_by"] == "worker-17" and entry["state"] == "cleared"


async def test_status_online_then_offline_on_clean_stop_and_on_kill(
    gateway, platform, broker, started
):
    await started(gateway)
    assert gateway.stop() == 0
    [offline] = await platform.wait_json(f"{P}/status", lambda b: b["state"] == "offline")
    assert offline["schema"] == "hearthgate.status/1" and offline["version"]
    # Retained: a platform that connects later still learns the state.
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/status",)) as late:
        [m] = await late.wait_for(lambda ms: ms[:1])
        assert m.retain and m.json()["state"] == "offline"

    platform.messages.clear()
    await started(gateway)
    gateway.kill()  # no chance to say goodbye: the Last Will speaks for it
    await platform.wait_json(f"{P}/status", lambda b: b["state"] == "offline")


async def test_an_sos_is_committed_before_the_rest_of_its_batch(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    """An SOS first in a batch of hundreds of readings (the queue after a stall) is on disk
    and on its way before the readings after it are looked at; none of them is lost."""
    from hearthgate.core.model import Observation
    from tests.faults.faultkit import ALERTS, InProcessGateway, write_config

    config = write_config(tmp_path, broker, home_broker, ["room-301", "room-302"])
    async with PlatformSubscriber(broker.host, broker.port, (ALERTS,)) as platform:
        async with InProcessGateway(config) as gw:
            g = gw.gateway
            assert g.store is not None
            # At each alert commit: has the rules loop taken in room-302's readings yet?
            seen_at_commit: list[float | None] = []
            commit = g.store.add_alerts

            async def add_alerts(*args: Any, **kwargs: Any) -> Any:
                seen_at_commit.append(g.health.devices["sos-302"].battery)
                return await commit(*args, **kwargs)

            g.store.add_alerts = add_alerts  # type: ignore[method-assign]
            now = g.clock.now()
            # All in the queue at once, before the rules loop runs again.
            g.queue.put_nowait(Observation("sos-301", "room-301", "sos", True, now,
                                           attrs={"action": "sos"}))
            for i in range(300):
                g.queue.put_nowait(Observation("sos-302", "room-302", "battery_pct",
                                               50 + i % 50, now))
            await platform.wait_for(lambda ms: [m for m in ms if m.topic == ALERTS])
            await asyncio.wait_for(g.queue.join(), 10)
            assert seen_at_commit == [None]
            assert g.health.devices["sos-302"].battery == 50 + 299 % 50  # the last one
