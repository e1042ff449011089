"""`hearthgate forget`: a resident's data erased from the gateway, other sites untouched, the
site's rules afresh (issue 18, docs/privacy.md)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber, run_cli
from tests.faults.faultkit import ALERTS, GW, InProcessGateway, press_sos, write_config

P = f"hearthgate/{GW}"


def store_text(data: Path) -> str:
    """Every row of every table but the access trail (which records the erasure itself, in
    its table and in the outbox for P/audit), as text."""
    db = sqlite3.connect(data / "hearthgate.sqlite3")
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                  if t not in ("audit", "sqlite_sequence")]
        rows = [row for t in tables for row in db.execute(
            f"SELECT * FROM {t}" + (" WHERE kind != 'audit'" if t == "outbox" else ""))]
        return "\n".join(repr(row) for row in rows)
    finally:
        db.close()


async def test_forget_erases_one_site_and_its_rules_start_fresh(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301", "room-302"])
    data = tmp_path / "data"
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform, \
            PlatformSubscriber(home_broker.host, home_broker.port) as zigbee:
        async with InProcessGateway(config):
            await press_sos(zigbee, "room-301")
            await press_sos(zigbee, "room-302")
            await platform.wait_for(lambda ms: len([m for m in ms if m.topic == ALERTS]) >= 2)
            busy = await run_cli("forget", "-c", str(config), "--site", "room-301")
            assert busy.returncode == 1 and "is running" in busy.stderr
        assert "room-301" in store_text(data)

        unknown = await run_cli("forget", "-c", str(config), "--site", "room-999")
        assert unknown.returncode == 2 and "unknown site 'room-999'" in unknown.stderr
        out = await run_cli("forget", "-c", str(config), "--site", "room-301", "--by", "dpo")
        assert out.returncode == 0, out.stderr
        assert "1 alerts in the local alert log" in out.stdout
        assert "rule state entries" in out.stdout and "saved device states" in out.stdout

        assert "room-301" not in store_text(data) and "sos-301" not in store_text(data)
        assert "room-302" in store_text(data)
        alerts = [json.loads(x) for x in (await run_cli(
            "alerts", "-c", str(config), "--json")).stdout.splitlines()]
        assert [a["site_id"] for a in alerts] == ["room-302"]
        devices = json.loads((await run_cli("devices", "-c", str(config), "--json")).stdout)
        gone = next(d for d in devices["devices"] if d["device_id"] == "sos-301")
        assert gone["last_seen"] is None and gone["values"] == {}
        kept = next(d for d in devices["devices"] if d["device_id"] == "sos-302")
        assert kept["last_seen"] is not None

        # The site's rules start afresh: a press raises a new alert (had the old one's state
        # survived, it would be an escalation of the open one); room-302's alert stays open.
        first = {m.json()["alert_id"] for m in platform.on(ALERTS)}
        async with InProcessGateway(config) as gw:
            assert any("restored rule state: 1 open alerts" in x for x in gw.log_lines)
            assert [a.transition.site_id for a in gw.gateway.engine.open.values()] == ["room-302"]
            await press_sos(zigbee, "room-301", 1)
            new = await platform.wait_for(lambda ms: [
                m.json() for m in ms if m.topic == ALERTS and m.json()["alert_id"] not in first])
        assert [(a["site_id"], a["state"]) for a in new] == [("room-301", "raised")]
    db = sqlite3.connect(data / "hearthgate.sqlite3")
    trail = [json.loads(p) for (p,) in db.execute("SELECT payload FROM audit")]
    db.close()
    assert [(r["actor"], r["action"], r["target"], r["via"]) for r in trail] == [
        ("dpo", "forget", "room-301", "local")]
    assert trail[0]["detail"]["alerts in the local alert log"] == 1
