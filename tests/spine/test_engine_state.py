"""The rule engine's state stored split by site (issue 17): an alert commit writes its own
site's part, a restart restores as from one whole snapshot, an older single snapshot is
migrated."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import AlertState, Observation
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber
from hearthgate.rules.base import RuleSite, SiteDevice
from hearthgate.rules.engine import RuleEngine
from hearthgate.rules.engine.snapshot import join_snapshot, split_snapshot
from hearthgate.rules.sos import SosOptions, SosRule
from hearthgate.store import state
from tests.faults.faultkit import ALERTS, GW, InProcessGateway, press_sos, write_config

SITES = ("room-301", "room-302", "room-303")


def make_engine() -> RuleEngine:
    rules = {}
    for s in SITES:
        site = RuleSite(s, f"r-{s}", ZoneInfo("Asia/Shanghai"), "zh",
                        (SiteDevice(f"sos-{s}", "sos_button", "zigbee2mqtt"),))
        rules[s] = [SosRule(site, SosOptions())]
    return RuleEngine(rules)


def press(clock: SimulatedClock, site: str) -> Observation:
    return Observation(f"sos-{site}", site, "sos", True, clock.now(), attrs={"action": "sos"})


def stored(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state))


async def test_split_and_joined_restores_as_the_whole_snapshot(clock: SimulatedClock) -> None:
    engine = make_engine()
    engine.on_observation(press(clock, "room-301"), clock.now())
    await clock.advance(40)
    engine.on_observation(press(clock, "room-302"), clock.now())
    whole = stored(engine.snapshot(clock.now()))
    header, parts = split_snapshot(whole, engine.run)
    assert set(parts) == set(SITES)
    joined = join_snapshot(stored(header), stored(parts))

    later = SimulatedClock(mono=5.0)
    a, b = make_engine(), make_engine()
    a.restore(whole, later.now())
    b.restore(joined, later.now())
    assert stored(a.snapshot(later.now())) == stored(b.snapshot(later.now()))
    assert a.next_deadline() == b.next_deadline()


async def test_a_sites_part_is_its_share_of_the_whole_snapshot(clock: SimulatedClock) -> None:
    """The part an alert commit writes (found by site, not by going over every site) holds
    exactly what the whole snapshot holds of that site: open alerts, closed ones gone, also
    after a restore."""
    engine = make_engine()

    def part(e: RuleEngine, site: str) -> dict[str, Any]:
        _, parts = split_snapshot(stored(e.snapshot(clock.now(), {site})), e.run)
        return parts.get(site, {})

    def share(e: RuleEngine, site: str) -> dict[str, Any]:
        _, parts = split_snapshot(stored(e.snapshot(clock.now())), e.run)
        return parts.get(site, {})

    alerts = {s: engine.on_observation(press(clock, s), clock.now())[0] for s in SITES}
    await clock.advance(10)
    engine.acknowledge(alerts["room-302"].alert_id, "worker-1", clock.now())
    for s in SITES:
        assert part(engine, s) == share(engine, s)
    assert [a["rule_key"] for a in part(engine, "room-301")["alerts"]] == ["room-301/0/"]
    assert part(engine, "room-302")["alerts"] == []

    again = make_engine()
    again.restore(stored(engine.snapshot(clock.now())), clock.now())
    for s in SITES:
        assert part(again, s) == share(again, s)
    again.acknowledge(alerts["room-301"].alert_id, "worker-2", clock.now())
    assert part(again, "room-301")["alerts"] == []
    assert len(part(again, "room-303")["alerts"]) == 1


async def test_a_part_saved_earlier_is_aged_by_its_own_save(clock: SimulatedClock) -> None:
    """room-301's part is from its press; the header and room-302's from 200 s later: the
    escalation clock of room-301's alert counts those 200 s, as a whole snapshot would."""
    engine = make_engine()
    [raised] = engine.on_observation(press(clock, "room-301"), clock.now())
    assert engine.changed == {"room-301"}
    _, first = split_snapshot(stored(engine.snapshot(clock.now(), {"room-301"})), engine.run)
    assert set(first) == {"room-301"} and engine.changed == set()
    await clock.advance(200)
    engine.on_observation(Observation("sos-room-302", "room-302", "battery", 80, clock.now()),
                          clock.now())
    header, second = split_snapshot(stored(engine.snapshot(clock.now(), {"room-302"})),
                                    engine.run)
    assert set(second) == {"room-302"}
    joined = join_snapshot(stored(header), stored({**first, **second}))
    assert joined["ages"]["room-301"] == pytest.approx(200)

    later = SimulatedClock(mono=5.0)  # a reboot
    restored = make_engine()
    restored.restore(joined, later.now())
    assert [t.alert_id for t in restored.open_alerts()] == [raised.alert_id]
    # 300 s escalation for a critical alert, 200 of them gone before the newest save.
    assert restored.next_deadline() == pytest.approx(later.now().mono + 100)


async def test_a_part_saved_after_the_header_carries_the_newest_clocks(
    clock: SimulatedClock,
) -> None:
    """An alert commit writes its site's part without the header: restore counts from the
    newest part of the same engine run, not from the older header."""
    engine = make_engine()
    header, _ = split_snapshot(stored(engine.snapshot(clock.now())), engine.run)
    await clock.advance(100)
    engine.on_observation(press(clock, "room-301"), clock.now())
    _, first = split_snapshot(stored(engine.snapshot(clock.now(), {"room-301"})), engine.run)
    await clock.advance(50)
    engine.on_observation(Observation("sos-room-302", "room-302", "battery", 80, clock.now()),
                          clock.now())
    _, second = split_snapshot(stored(engine.snapshot(clock.now(), {"room-302"})), engine.run)
    joined = join_snapshot(stored(header), stored({**first, **second}))
    assert joined["saved_mono"] == second["room-302"]["saved_mono"]
    assert joined["ages"] == {"room-301": pytest.approx(50), "room-302": 0.0}

    later = SimulatedClock(mono=5.0)  # a reboot
    restored = make_engine()
    restored.restore(joined, later.now())
    assert len(restored.open_alerts()) == 1
    # 300 s escalation, 50 of them gone before the newest save (not 150: the header's age).
    assert restored.next_deadline() == pytest.approx(later.now().mono + 250)

    # A part of another run (an older gateway's) never sets the clocks.
    other = {**second["room-302"], "run": "another", "saved_mono": 10_000.0}
    assert join_snapshot(stored(header), stored({**first, "room-302": other}))[
        "saved_mono"] == first["room-301"]["saved_mono"]


def kv(data: Path) -> dict[str, Any]:
    db = sqlite3.connect(data / "hearthgate.sqlite3")
    try:
        return {k: state.decode(v) for k, v in db.execute(
            "SELECT key, value FROM kv WHERE key LIKE 'engine%'")}
    finally:
        db.close()


async def test_an_alert_commit_writes_its_own_sites_part_only(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301", "room-302"])
    data = tmp_path / "data"
    async with PlatformSubscriber(broker.host, broker.port, (f"hearthgate/{GW}/#",)) as platform, \
            PlatformSubscriber(home_broker.host, home_broker.port) as zigbee:
        async with InProcessGateway(config):
            await press_sos(zigbee, "room-302")
            await platform.wait_for(lambda ms: len([m for m in ms if m.topic == ALERTS]) >= 1)
            before = kv(data)
            assert "engine/room-302" in before
            await press_sos(zigbee, "room-301")
            await platform.wait_for(lambda ms: len([m for m in ms if m.topic == ALERTS]) >= 2)
            after = kv(data)
            # room-301's part is new; neither room-302's row nor the header was rewritten
            # (the part carries the newer clocks: join_snapshot).
            assert after["engine/room-302"] == before["engine/room-302"]
            assert "engine/room-301" in after
            assert after["engine"] == before["engine"]
            assert after["engine"]["version"] == 3
            assert (after["engine/room-301"]["saved_mono"]
                    > after["engine/room-302"]["saved_mono"] >= after["engine"]["saved_mono"])
            assert len(after["engine/room-301"]["alerts"]) == 1
            assert "room-302" not in json.dumps(after["engine/room-301"])


async def test_an_older_single_snapshot_is_migrated(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301", "room-302"])
    data = tmp_path / "data"
    async with PlatformSubscriber(broker.host, broker.port, (f"hearthgate/{GW}/#",)) as platform, \
            PlatformSubscriber(home_broker.host, home_broker.port) as zigbee:
        async with InProcessGateway(config) as gw:
            await press_sos(zigbee, "room-301")
            [raised] = await platform.wait_for(
                lambda ms: [m.json() for m in ms if m.topic == ALERTS])
            whole = gw.gateway.engine.snapshot(gw.gateway.clock.now())
        # What an older hearthgate left: one "engine" row holding the whole snapshot.
        db = sqlite3.connect(data / "hearthgate.sqlite3")
        with db:
            db.execute("DELETE FROM kv WHERE key LIKE 'engine%'")
            db.execute("INSERT INTO kv(key, value) VALUES ('engine', ?)", (json.dumps(whole),))
        db.close()

        async with InProcessGateway(config) as gw:
            assert any("restored rule state: 1 open alerts" in x for x in gw.log_lines)
            rows = kv(data)
            assert rows["engine"]["version"] == 3 and "alerts" not in rows["engine"]
            assert {"engine/room-301", "engine/room-302"} <= set(rows)
            # Still the same alert: a second press is heard as an escalation of it.
            await press_sos(zigbee, "room-301", 1)
            again = await platform.wait_for(lambda ms: [
                m.json() for m in ms if m.topic == ALERTS and m.json()["state"] != "raised"])
        assert again[0]["alert_id"] == raised["alert_id"]
        assert again[0]["state"] == str(AlertState.ESCALATED)
