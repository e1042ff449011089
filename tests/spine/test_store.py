"""The SQLite outbox: priorities, durability across reopen, the telemetry bound."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hearthgate.core.model import AlertState, AlertTransition, Priority, Severity, new_id
from hearthgate.store import DB_NAME, SCHEMA_VERSION, Store, read_alerts, read_only


def transition(kind: str = "no_water", state: AlertState = AlertState.RAISED,
               alert_id: str | None = None) -> AlertTransition:
    now = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    return AlertTransition(
        event_id=new_id(), alert_id=alert_id or new_id(), state=state, type=kind,
        severity=Severity.HIGH, site_id="room-301", resident_id="r-1", device_ids=("w-1",),
        raised_at=now, ts=now, message="m",
    )


def payload(t: AlertTransition) -> str:
    return json.dumps(t.to_payload("gw-x", UTC))


async def started(tmp_path: Path, bound: int = 200_000) -> Store:
    store = await Store.open(tmp_path, telemetry_bound=bound)
    store.start()
    return store


async def test_urgent_alerts_are_their_own_class_and_order_is_kept(tmp_path):
    store = await started(tmp_path)
    try:
        ts = [transition("no_water"), transition("sos"), transition("door_night"),
              transition("fall")]
        await store.add_alerts(ts, [payload(t) for t in ts])
        await store.add_telemetry([("{}", 10)])
        urgent = await store.pending(Priority.URGENT)
        alerts = await store.pending(Priority.ALERT)
        tele = await store.pending(Priority.TELEMETRY)
        assert [json.loads(i.payload)["type"] for i in urgent] == ["sos", "fall"]
        assert [json.loads(i.payload)["type"] for i in alerts] == ["no_water", "door_night"]
        assert [i.readings for i in tele] == [10]
        # A cursor skips what is already in flight.
        assert await store.pending(Priority.URGENT, after_seq=urgent[0].seq) == urgent[1:]
    finally:
        await store.close()


async def test_alerts_survive_reopen_until_delivered(tmp_path):
    store = await started(tmp_path)
    t = transition("sos")
    await store.add_alerts([t], [payload(t)])
    await store.close()  # as after a crash: nothing was PUBACKed

    store = await started(tmp_path)
    try:
        [item] = await store.pending(Priority.URGENT)
        assert item.event_id == t.event_id
        [row] = await store.alerts()
        assert row.status == "pending"
        await store.delivered([item])
        assert await store.pending(Priority.URGENT) == []
        [row] = await store.alerts()
        assert row.status == "delivered"
    finally:
        await store.close()


async def test_alert_log_tracks_ack_and_clear(tmp_path):
    store = await started(tmp_path)
    try:
        raised = transition("sos")
        await store.add_alerts([raised], [payload(raised)])
        await store.mark_acknowledged(raised.alert_id, "worker-17", "2026-11-22T08:00:00+08:00")
        cleared = transition("sos", AlertState.CLEARED, alert_id=raised.alert_id)
        await store.add_alerts([cleared], [payload(cleared)])
        await store.delivered(await store.pending(Priority.URGENT))
        conn = read_only(tmp_path)
        assert conn is not None
        [row] = read_alerts(conn)
        conn.close()
        assert (row.state, row.acked_by, row.status) == ("cleared", "worker-17", "cleared")
    finally:
        await store.close()


async def test_telemetry_bound_drops_oldest_telemetry_never_alerts(tmp_path):
    store = await started(tmp_path, bound=1000)
    try:
        alerts = [transition() for _ in range(5)]
        await store.add_alerts(alerts, [payload(t) for t in alerts])
        for i in range(30):
            await store.add_telemetry([(json.dumps({"batch": i}), 100)])
        tele = await store.pending(Priority.TELEMETRY, limit=1000)
        assert sum(i.readings for i in tele) <= 1000
        assert [json.loads(i.payload)["batch"] for i in tele] == list(range(20, 30))
        assert store.telemetry_dropped == 2000
        assert len(await store.pending(Priority.ALERT, limit=100)) == 5
    finally:
        await store.close()


async def test_group_commit_many_writers(tmp_path):
    store = await started(tmp_path)
    try:
        ts = [transition() for _ in range(200)]
        await asyncio.gather(*(store.add_alerts([t], [payload(t)]) for t in ts))
        assert len(await store.pending(Priority.ALERT, limit=1000)) == 200
        assert store.commits < 200  # writes waiting together were committed together
    finally:
        await store.close()


async def test_state_roundtrip_and_wal(tmp_path):
    store = await started(tmp_path)
    try:
        await store.put_state("engine", {"a": [1, 2, 3]}, durable=True)
        assert await store.get_state("engine") == {"a": [1, 2, 3]}
        assert await store.get_state("missing") is None
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_refuses_a_store_from_a_newer_version(tmp_path):
    store = await started(tmp_path)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer hearthgate"):
        await Store.open(tmp_path)
