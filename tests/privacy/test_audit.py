"""The access trail: downlink commands and local acks on `P/audit` and in the local trail,
with who, what and when, and never a secret (issue 18, docs/privacy.md)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber, run_cli
from tests.faults.faultkit import (
    ALERTS,
    GW,
    RESULTS,
    InProcessGateway,
    press_sos,
    write_config,
)

P = f"hearthgate/{GW}"
SECRET = "uplink-pw-Zq81!"


async def test_commands_and_local_acks_are_audited(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301", "room-302"])
    config.write_text(config.read_text().replace(
        "  topic_prefix: hearthgate\n", f"  topic_prefix: hearthgate\n  password: {SECRET}\n"))
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform, \
            PlatformSubscriber(home_broker.host, home_broker.port) as zigbee:
        async with InProcessGateway(config) as gw:
            await press_sos(zigbee, "room-301")
            await press_sos(zigbee, "room-302")
            raised = await platform.wait_for(lambda ms: [
                m.json() for m in ms if m.topic == ALERTS and m.json()["state"] == "raised"
            ][:2] if len([m for m in ms if m.topic == ALERTS]) >= 2 else None, timeout=15)
            by_site = {a["site_id"]: a["alert_id"] for a in raised}

            await platform.publish(f"{P}/cmd/ack", {"alert_id": by_site["room-301"],
                                                    "by": "worker-17", "id": "c1"})
            await platform.publish(f"{P}/cmd/ping", {"id": "c2"})
            await platform.publish(f"{P}/cmd/selfdestruct", {"id": "c3"})
            await platform.publish(f"{P}/cmd/ack", b"\xff not json")
            await platform.wait_for(lambda ms: len([m for m in ms if m.topic == RESULTS]) >= 4)

            # `hearthgate ack` reaches the running service through its control socket.
            out = await run_cli("ack", "-c", str(config), by_site["room-302"], "--by", "li")
            assert out.returncode == 0, out.stderr
            assert "by the running service" in out.stdout
            unknown = await run_cli("ack", "-c", str(config), "no-such-alert", "--by", "li")
            assert unknown.returncode == 2 and "unknown" in unknown.stderr

            await platform.wait_for(lambda ms: len([m for m in ms
                                                    if m.topic == f"{P}/audit"]) >= 6)
            # The local ack is published like a platform ack, with by = local:NAME.
            await platform.wait_for(lambda ms: any(
                m.topic == ALERTS and m.json()["alert_id"] == by_site["room-302"]
                and m.json()["state"] == "cleared"
                and m.json()["details"].get("acknowledged_by") == "local:li" for m in ms))
            assert gw.running

        audit = platform.on(f"{P}/audit")
    records = [m.json() for m in audit]
    got = [(r["via"], r["actor"], r["action"], r["target"], r["ok"]) for r in records]
    assert got == [
        ("mqtt", "worker-17", "ack", by_site["room-301"], True),
        ("mqtt", "platform", "ping", "c2", True),
        ("mqtt", "platform", "selfdestruct", "c3", False),
        ("mqtt", "platform", "ack", None, False),
        ("local", "li", "ack", by_site["room-302"], True),
        ("local", "li", "ack", "no-such-alert", False),
    ]
    assert all(r["schema"] == "hearthgate.audit/1" and r["ts"].endswith("+08:00")
               and r["gateway_id"] == GW and r["event_id"] for r in records)
    assert "unknown command" in records[2]["error"]
    assert not any(m.retain for m in audit)

    # The local trail holds the same records; no secret anywhere in it or on P/audit.
    db = sqlite3.connect(tmp_path / "data" / "hearthgate.sqlite3")
    local = [json.loads(p) for (p,) in db.execute("SELECT payload FROM audit ORDER BY seq")]
    db.close()
    assert local == records
    assert not [m for m in audit if SECRET.encode() in m.payload]
    assert SECRET not in json.dumps(local)


async def test_config_pushes_and_log_requests_are_audited(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    """Through the real runner (`hearthgate run`), which owns `config` and `logs`."""
    import asyncio
    import logging

    from hearthgate.config_files import config_hash
    from hearthgate.log_ring import LogRing
    from hearthgate.runner import GatewayRunner
    from tests.fleet.test_fleet_ops import (
        GW as FLEET_GW,
    )
    from tests.fleet.test_fleet_ops import (
        KEY,
        PASSWORD,
        Fleet,
        config_text,
        online,
        write_files,
    )

    text = config_text(tmp_path, broker.port, home_broker.port)
    path = write_files(tmp_path, text)
    base = config_hash(text.encode())
    ring = LogRing()
    root = logging.getLogger()
    root.addHandler(ring)
    old_level = root.level
    root.setLevel(logging.INFO)
    stop = asyncio.Event()
    runner = GatewayRunner(path, ring=ring)
    fleet_p = f"hearthgate/{FLEET_GW}"
    async with PlatformSubscriber("127.0.0.1", broker.port, ("hearthgate/#",)) as platform:
        fleet = Fleet(platform)
        task = asyncio.create_task(runner.run(stop))
        try:
            await online(platform)
            # Signed with the wrong key; for another base; well signed but invalid YAML keys.
            bad_sig = await fleet.push(text, base, key="not-the-key")
            other_base = await fleet.push(text, "0" * 64)
            invalid = await fleet.push(
                "# pushed-body-marker-Zx91\n" + text.replace("rules:", "rulez:"), base)
            await fleet.command("logs", {"id": "logs-1", "lines": 100, "by": "ops-3"})
            for command_id in (bad_sig, other_base, invalid, "logs-1"):
                await fleet.result(command_id)
            await platform.wait_for(lambda ms: len(
                [m for m in ms if m.topic == f"{fleet_p}/audit"]) >= 4, timeout=20)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            root.removeHandler(ring)
            root.setLevel(old_level)
        audit = platform.on(f"{fleet_p}/audit")
    records = [m.json() for m in audit]
    assert [(r["via"], r["actor"], r["action"], r["target"], r["ok"]) for r in records] == [
        ("mqtt", "platform", "config", bad_sig, False),
        ("mqtt", "platform", "config", other_base, False),
        ("mqtt", "platform", "config", invalid, False),
        ("mqtt", "ops-3", "logs", "logs-1", True),
    ]
    assert "signature" in records[0]["error"]
    # Never the pushed YAML, the config key, the uplink password or the log lines.
    for secret in (PASSWORD, KEY, "pushed-body-marker-Zx91", "uplink connected"):
        assert not [m for m in audit if secret.encode() in m.payload], secret
    db = sqlite3.connect(tmp_path / "data" / "hearthgate.sqlite3")
    local = [json.loads(p) for (p,) in db.execute("SELECT payload FROM audit ORDER BY seq")]
    db.close()
    assert local == records
