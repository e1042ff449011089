"""An alert just committed goes out without being read back from the outbox, and the order
and the at-least-once delivery of each class hold whatever the timing (issue 17).

Real mosquitto, real SQLite store, the uplink in-process (tests/delivery/harness.py)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from hearthgate.core.model import Priority
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber
from hearthgate.store import Store
from hearthgate.store.outbox import FRESH_MAX
from tests.delivery.harness import P, alert_payload, running_uplink, wait_until
from tests.spine.test_store import transition


def count_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> dict[Priority, int]:
    reads: dict[Priority, int] = dict.fromkeys(Priority, 0)
    real = store.pending

    async def pending(priority: Priority, after_seq: int = 0, limit: int = 100) -> Any:
        reads[priority] += 1
        return await real(priority, after_seq, limit)

    monkeypatch.setattr(store, "pending", pending)
    return reads


async def test_an_sos_committed_is_published_without_a_read(
    tmp_path: Path, broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/alerts",)) as platform, \
            running_uplink(tmp_path, broker) as (up, store):
        reads = count_reads(store, monkeypatch)
        sent = []
        for _ in range(30):
            sos = transition("sos")
            assert sos.priority is Priority.URGENT
            await store.add_alerts([sos], [alert_payload(sos)])
            up.wake()
            sent.append(sos.event_id)
            n = len(sent)
            await wait_until(lambda: len(platform.on(f"{P}/alerts")) >= n,  # noqa: B023
                             10, "the SOS")
    assert [m.json()["event_id"] for m in platform.on(f"{P}/alerts")] == sent
    # Thirty presses, and the urgent class read at most by the stuck check's rounds.
    assert reads[Priority.URGENT] <= 3, reads


async def test_order_and_once_each_whatever_the_timing(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """Alerts of both classes committed in bursts: a backlog before the uplink starts, longer
    than what the store keeps for the sender to take without a read, then more while it
    reads and sends. Each arrives once, in its class's commit order."""
    import contextlib

    from hearthgate.uplink import Uplink
    from tests.delivery.harness import no_commands, uplink_config

    rnd = random.Random(23)
    committed: dict[Priority, list[str]] = {Priority.URGENT: [], Priority.ALERT: []}

    async def burst(store: Store, n: int) -> None:
        ts = [transition(rnd.choice(["sos", "no_water"])) for _ in range(n)]
        # Concurrent commits: they may share a group, and finish while the sender reads.
        jobs = [store.add_alerts([t], [alert_payload(t)]) for t in ts]
        for t in ts:
            committed[t.priority].append(t.event_id)
        await asyncio.gather(*jobs)

    config = uplink_config(tmp_path, broker)
    store = await Store.open(config.gateway.data_dir)
    store.start()
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/alerts",)) as platform:
        # More than the store keeps for the uplink to take without a read (FRESH_MAX per
        # class): the oldest rows exist only in the outbox, and must still go first.
        while min(map(len, committed.values())) < FRESH_MAX + 50:
            await burst(store, rnd.randint(20, 100))
        up = Uplink(config, store, no_commands)
        task = asyncio.create_task(up.run())
        try:
            for _ in range(60):
                await burst(store, rnd.randint(1, 6))
                up.wake()
                await asyncio.sleep(rnd.choice([0, 0, 0.001, 0.005]))
            total = sum(map(len, committed.values()))
            await wait_until(
                lambda: len({m.json()["event_id"] for m in platform.on(f"{P}/alerts")})
                >= total, 30, "every alert")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await store.close()
    got = [m.json()["event_id"] for m in platform.on(f"{P}/alerts")]
    assert set(got) == {e for ids in committed.values() for e in ids}
    assert len(got) == len(set(got)), "an alert was sent twice in one session"
    for prio, ids_in_order in committed.items():
        mine = set(ids_in_order)
        assert [e for e in got if e in mine] == ids_in_order, f"{prio.name} out of order"
