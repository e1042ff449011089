"""Fault: the gateway is SIGKILLed at random moments (a seeded random source chooses when)
while SOS alerts are being raised, acknowledged and published.

Outcome, after every restart:
- nothing accepted is lost: every alert the gateway's store committed arrives at the
  platform (raised, and cleared if it was cleared), and the outbox drains;
- no rule forgets its window: an SOS raised before a kill is still open after it (pressing the
  same button again raises nothing new) and an ack after the restart clears it;
- a message that arrives twice is the same message (same event_id, same body).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber
from tests.faults.faultkit import (
    ack_and_wait,
    alert_table,
    check_store_reached_platform,
    outbox_alert_count,
    press_open_site_again,
    press_sos,
    record,
    site_ids,
    started,
    wait_until,
    write_config,
)


async def run_kills(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker,
    platform: PlatformSubscriber, zigbee: PlatformSubscriber, *, kills: int, seed: int,
    name: str,
) -> None:
    rng = random.Random(seed)
    sites = site_ids(8)
    data = tmp_path / "data"
    gw = GatewayProcess(write_config(tmp_path, broker, home_broker, sites))
    presses = dict.fromkeys(sites, 0)
    t0 = time.monotonic()
    killed_with_unsent = 0  # kills that left committed alerts not yet PUBACKed
    remembered = 0  # open alerts that survived a kill and were then cleared by an ack
    re_pressed = 0  # presses on a site whose alert survived a kill: must raise nothing
    try:
        for i in range(kills):
            await started(gw, platform, connects=i + 1)
            before = alert_table(data)
            open_alerts = {a: s for a, (s, st) in before.items() if st != "cleared"}
            # One site per open alert, at most (the engine's invariant, from its own store).
            assert len(set(open_alerts.values())) == len(open_alerts)
            idle = [s for s in sites if s not in open_alerts.values()]
            if open_alerts and idle:
                await press_open_site_again(zigbee, platform, rng, before, idle, presses,
                                            "a kill")
                re_pressed += 1
            for ack in rng.sample(sorted(open_alerts), min(len(open_alerts), 2)):
                # The platform's ack, after the restart, clears the very alert raised before.
                await ack_and_wait(platform, ack, f"w-{i}")
                remembered += 1
            for site in rng.sample(idle, min(len(idle), rng.randint(1, 2))):
                await press_sos(zigbee, site, presses[site])
                presses[site] += 1
            # Kill somewhere between "not yet received" and "long since published"; half of
            # the kills in the first 30 ms, where commit and publish happen.
            await asyncio.sleep(rng.uniform(0.0, 0.03) if rng.random() < 0.5
                                else rng.uniform(0.03, 0.25))
            gw.kill()
            if outbox_alert_count(data):
                killed_with_unsent += 1
            after = alert_table(data)
            # No transition of an open alert was undone by the kill.
            for alert_id, (_, state) in before.items():
                assert alert_id in after
                if state == "cleared":
                    assert after[alert_id][1] == "cleared"

        # The last restart: everything the store ever accepted must reach the platform.
        await started(gw, platform, connects=kills + 1)
        await wait_until(lambda: outbox_alert_count(data) == 0, 30, "the outbox to drain",
                         gw.log_text)
        final, messages, duplicates = check_store_reached_platform(data, platform)
        record(
            name, kills=kills, seed=seed, presses=sum(presses.values()), alerts=len(final),
            kills_with_unsent_alerts=killed_with_unsent, open_alerts_remembered=remembered,
            re_presses_absorbed=re_pressed, received=len(messages), duplicates=duplicates,
            seconds=round(time.monotonic() - t0, 1),
        )
    finally:
        gw.close()


async def test_random_sigkills_lose_nothing(tmp_path, broker, home_broker, platform, zigbee):
    await run_kills(tmp_path, broker, home_broker, platform, zigbee, kills=12, seed=2026,
                    name="sigkill")


@pytest.mark.slow
async def test_many_random_sigkills_lose_nothing(
    tmp_path, broker, home_broker, platform, zigbee
):
    await run_kills(tmp_path, broker, home_broker, platform, zigbee, kills=60, seed=4242,
                    name="sigkill_long")
