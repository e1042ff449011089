"""An SOS committed while a stored backlog drains goes out before the rest of it (issue 17).

Real mosquitto, real SQLite store, the uplink in-process; the platform's one subscriber
sees the broker's order, which is the order the gateway sent in (one connection, QoS 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from hearthgate.core.model import Priority
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber
from hearthgate.store import Store
from hearthgate.uplink import BACKLOG_WINDOW, Uplink
from tests.delivery.harness import P, alert_payload, no_commands, uplink_config, wait_until
from tests.spine.test_store import transition

BATCHES = 120  # stored telemetry batches of READINGS readings each
READINGS = 200


def telemetry_batch(i: int) -> str:
    readings = [{"device_id": f"d-{i}-{j}", "site_id": "s-1", "metric": "battery_pct",
                 "value": j % 100, "unit": "%", "ts": "2026-12-01T12:00:00+08:00"}
                for j in range(READINGS)]
    return json.dumps({"schema": "hearthgate.telemetry/1", "batch": i, "readings": readings})


async def test_sos_during_a_drain_is_published_before_the_rest_of_the_backlog(
    tmp_path: Path, broker: MosquittoBroker,
) -> None:
    config = uplink_config(tmp_path, broker)
    store = await Store.open(config.gateway.data_dir)
    store.start()
    # The backlog an outage left: in the outbox before the uplink connects.
    await store.add_telemetry([(telemetry_batch(i), READINGS) for i in range(BATCHES)])
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform:
        up = Uplink(config, store, no_commands)
        task = asyncio.create_task(up.run())
        try:
            await wait_until(lambda: platform.on(f"{P}/telemetry"), 20, "the drain to start")
            sos = transition("sos")
            await store.add_alerts([sos], [alert_payload(sos)])
            up.wake()
            # PUBACKed by the broker by now: the batches that may precede the SOS.
            acked = up.stats.published["telemetry"]
            await wait_until(lambda: len(platform.on(f"{P}/telemetry")) >= BATCHES, 30,
                             "the whole backlog")
            await wait_until(lambda: platform.on(f"{P}/alerts"), 10, "the SOS")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await store.close()
    order = [m.topic for m in platform.messages if m.topic.endswith(("/alerts", "/telemetry"))]
    at = order.index(f"{P}/alerts")
    batches = [m.json()["batch"] for m in platform.on(f"{P}/telemetry")]
    assert sorted(batches) == list(range(BATCHES)), "every stored batch arrived once"
    # Before the SOS: what the broker had PUBACKed when it was committed, then at most the
    # backlog's window in flight and one more read of it under way then (2 + 2), not the
    # rest of the backlog.
    assert acked < BATCHES - 20, "the backlog was gone before the SOS: nothing shown"
    assert at <= acked + 2 * BACKLOG_WINDOW, (
        f"the SOS went after {at} batches; {acked} were PUBACKed when it was committed")
    assert platform.on(f"{P}/alerts")[0].json()["event_id"] == sos.event_id


async def test_a_durable_write_does_not_share_a_transaction_with_deletions(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "data")
    store.start()
    try:
        await store.add_telemetry([(telemetry_batch(i), READINGS) for i in range(4)])
        items = await store.pending(store_priority(), 0, 4)
        before = store.commits
        sos = transition("sos")
        # Queued together: the deletion of delivered batches first, then the SOS.
        deleted = asyncio.create_task(store.delivered(items))
        added = asyncio.create_task(store.add_alerts([sos], [alert_payload(sos)]))
        done_first: list[str] = []
        deleted.add_done_callback(lambda _t: done_first.append("deletion"))
        added.add_done_callback(lambda _t: done_first.append("sos"))
        await asyncio.gather(deleted, added)
        assert store.commits - before == 2, "the SOS's commit carried the deletion"
        assert done_first == ["sos", "deletion"]
        assert await store.pending(store_priority(), 0, 10) == []
        [alert] = await store.pending(sos.priority, 0, 10)
        assert alert.event_id == sos.event_id
    finally:
        await store.close()


def store_priority() -> Priority:
    return Priority.TELEMETRY
