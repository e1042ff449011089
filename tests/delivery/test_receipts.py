"""End-to-end receipts (`uplink.receipts: true`): a transition leaves the outbox only on the
platform's `P/cmd/receipt`, never on a PUBACK alone.

Faults: the platform's broker (mosquitto 2, no persistence) SIGKILLed mid-flight while alerts
go out; a slow platform subscriber behind `max_queued_messages 10`, which drops what does not
fit. Outcome: every alert reaches the reference platform (hearthgate.devkit.platform), and any
duplicate carries the same event_id (the platform de-duplicates on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from pathlib import Path

import pytest

from hearthgate.core.model import Priority
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.platform import ReceiptingPlatform
from tests.delivery.harness import raise_sos, running_uplink, wait_until
from tests.faults.faultkit import record


@contextlib.asynccontextmanager
async def platform_consumer(broker: MosquittoBroker, db: Path):
    platform = ReceiptingPlatform(broker.host, broker.port, db)
    task = asyncio.create_task(platform.run())
    try:
        yield platform
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def kill_runs(tmp_path: Path, runs: int, per_run: int, seed: int) -> None:
    rng = random.Random(seed)
    started = time.monotonic()
    broker = MosquittoBroker(tmp_path / "platform-broker", persistence=False).start()
    try:
        async with platform_consumer(broker, tmp_path / "platform.sqlite3") as platform, \
                running_uplink(tmp_path, broker, receipts=True, receipt_timeout="1s") as (up, st):
            sent: list[str] = []
            for _ in range(runs):
                await asyncio.wait_for(up.connected.wait(), 30)
                ts = await raise_sos(up, st, per_run // 2)
                # SIGKILL while the first half is in flight, with the second half committed
                # just before: the broker forgets whatever it had PUBACKed and not forwarded.
                await asyncio.sleep(rng.uniform(0.0, 0.05))
                ts += await raise_sos(up, st, per_run - len(ts))
                broker.kill()
                sent += [t.event_id for t in ts]
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                broker.start()
            # event_ids(), not stored(): decoding thousands of bodies every 50 ms in the loop
            # the gateway and the platform share slowed both (the first 20-kill run timed out).
            want = set(sent)
            await wait_until(lambda: platform.event_ids() >= want, 300,
                             f"all {len(sent)} alerts at the platform")
            # Only receipted transitions leave the outbox: it empties once all are receipted.
            await wait_until(lambda: up.stats.receipts >= len(sent), 60, "the receipts")
            depth = await st.depth()
            for _ in range(200):
                if depth[Priority.URGENT] == 0:
                    break
                await asyncio.sleep(0.05)
                depth = await st.depth()
            assert depth[Priority.URGENT] == 0
            stored = platform.stored()
            assert set(stored) == set(sent)  # nothing lost, nothing invented
            assert all(stored[e]["event_id"] == e for e in sent)
            assert platform.bad == 0
            record("receipts_kills", kills=runs, alerts=len(sent), lost=len(want - set(stored)),
                   platform_messages=platform.taken, duplicates=platform.duplicates,
                   resent_for_want_of_receipt=up.stats.resent,
                   published=up.stats.published["alert"], connects=up.stats.connects,
                   seconds=round(time.monotonic() - started, 1))
    finally:
        broker.close()


async def test_broker_sigkilled_mid_flight_loses_nothing_end_to_end(tmp_path):
    await kill_runs(tmp_path, runs=3, per_run=60, seed=12)


@pytest.mark.slow
async def test_broker_sigkilled_20_times_with_200_alerts_each(tmp_path):
    await kill_runs(tmp_path, runs=20, per_run=200, seed=1212)


async def slow_subscriber(tmp_path: Path, alerts: int) -> None:
    """mosquitto drops QoS 1 messages beyond `max_queued_messages` for a slow subscriber and
    PUBACKs them anyway; without a receipt they go again until the platform has them all.
    About 12 get through per round, and the rounds come after 1, 2, 4, 8, 8... timeouts
    (the platform is quiet, nothing tells a drop from a backlog): 48 alerts take ~15 s."""
    started = time.monotonic()
    broker = MosquittoBroker(tmp_path / "b", extra="max_queued_messages 10\n").start()
    try:
        # One message at a time, 20 ms each, at most 2 unacknowledged (Receive Maximum, acked
        # once stored): a platform that cannot keep up, so the broker's queue for it fills.
        # Without the Receive Maximum, paho PUBACKs on arrival and mosquitto never queues.
        platform = ReceiptingPlatform(broker.host, broker.port, tmp_path / "p.sqlite3",
                                      batch=1, receive_maximum=2)
        slow_take = platform._take

        async def take_slowly(client, batch):
            await asyncio.sleep(0.02)
            await slow_take(client, batch)

        platform._take = take_slowly  # type: ignore[method-assign]
        task = asyncio.create_task(platform.run())
        try:
            async with running_uplink(tmp_path, broker, receipts=True,
                                      receipt_timeout="1s") as (up, st):
                await asyncio.sleep(0.5)  # the platform's subscription is in place
                ts = await raise_sos(up, st, alerts)
                want = {t.event_id for t in ts}
                await wait_until(lambda: platform.event_ids() >= want, 180, "every alert")
                assert platform.event_ids() == want
                assert up.stats.resent > 0  # the broker did drop some: the receipts mattered
                assert "dropped" in broker.log.read_text().lower()
                record("receipts_slow_subscriber", alerts=len(want), lost=0,
                       platform_messages=platform.taken, duplicates=platform.duplicates,
                       resent_for_want_of_receipt=up.stats.resent,
                       seconds=round(time.monotonic() - started, 1))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        broker.close()


async def test_bad_receipts_are_counted_and_change_nothing(tmp_path, broker):
    async with running_uplink(tmp_path, broker, receipts=True, receipt_timeout="60s") as (up, st):
        [sos] = await raise_sos(up, st)
        await wait_until(lambda: up.stats.published["alert"] >= 1, 20, "the PUBACK")
        for raw in (b"", b"garbage", b"[]", b'{"event_ids": "x"}', b'{"event_ids": [1]}',
                    b'{"event_ids": ["' + b"x" * 70_000 + b'"]}', b"\xff\xfe"):
            await up.on_receipt(raw)
        assert up.stats.bad_commands == 7
        await up.on_receipt(json.dumps({"event_ids": ["not-ours"]}).encode())
        await asyncio.sleep(0.3)
        assert (await st.depth())[Priority.URGENT] == 1  # PUBACKed, but not receipted
        await up.on_receipt(json.dumps({"event_ids": [sos.event_id]}).encode())
        for _ in range(100):
            if (await st.depth())[Priority.URGENT] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await st.depth())[Priority.URGENT] == 0


async def test_a_slow_subscriber_behind_a_short_queue_still_gets_every_alert(tmp_path):
    await slow_subscriber(tmp_path, 48)


@pytest.mark.slow
async def test_a_slow_subscriber_gets_all_of_120_alerts(tmp_path):
    await slow_subscriber(tmp_path, 120)
