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
    ALERTS,
    P,
    check_duplicates,
    db_rows,
    outbox_alert_count,
    press_sos,
    record,
    site_ids,
    started,
    wait_until,
    write_config,
)


def table(data: Path) -> dict[str, tuple[str, str]]:
    """alert_id → (site_id, state) as the gateway's store has it."""
    return {a: (s, st) for a, s, st in db_rows(data, "SELECT alert_id, site_id, state FROM alerts")}


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
            before = table(data)
            open_alerts = {a: s for a, (s, st) in before.items() if st != "cleared"}
            # One site per open alert, at most (the engine's invariant, from its own store).
            assert len(set(open_alerts.values())) == len(open_alerts)
            idle = [s for s in sites if s not in open_alerts.values()]
            if open_alerts and idle:
                # The window survived: the button pressed again is part of the open alert.
                # A press on an idle site right after it, on the same bus, is the marker:
                # once its alert arrives, the re-press has been through the rules.
                site = open_alerts[rng.choice(sorted(open_alerts))]
                marker = idle.pop(rng.randrange(len(idle)))
                for s in (site, marker):
                    await press_sos(zigbee, s, presses[s])
                    presses[s] += 1
                await platform.wait_json(
                    ALERTS,
                    lambda b, m=marker, old=before: b["site_id"] == m and b["alert_id"] not in old,
                    timeout=20,
                )
                assert not [
                    m for m in platform.on(ALERTS)
                    if m.json()["site_id"] == site and m.json()["alert_id"] not in before
                ], "a press on a site with an alert open across a kill raised a new alert"
                re_pressed += 1
            for ack in rng.sample(sorted(open_alerts), min(len(open_alerts), 2)):
                # The platform's ack, after the restart, clears the very alert raised before.
                await platform.publish(f"{P}/cmd/ack", {"alert_id": ack, "by": f"w-{i}"})
                await platform.wait_json(
                    ALERTS, lambda b, a=ack: b["alert_id"] == a and b["state"] == "cleared",
                    timeout=20,
                )
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
            after = table(data)
            # No transition of an open alert was undone by the kill.
            for alert_id, (_, state) in before.items():
                assert alert_id in after
                if state == "cleared":
                    assert after[alert_id][1] == "cleared"

        # The last restart: everything the store ever accepted must reach the platform.
        await started(gw, platform, connects=kills + 1)
        await wait_until(lambda: outbox_alert_count(data) == 0, 30, "the outbox to drain",
                         gw.log_text)
        final = table(data)
        messages = platform.on(ALERTS)
        got = {(m.json()["alert_id"], m.json()["state"]) for m in messages}
        for alert_id, (_, state) in final.items():
            assert (alert_id, "raised") in got, f"accepted alert {alert_id} never arrived"
            if state == "cleared":
                assert (alert_id, "cleared") in got
        # And the platform never saw an alert the store does not know.
        assert {a for a, _ in got} == set(final)
        # Re-pressing a site whose alert survived raised nothing new: one raised per alert.
        raised_ids = [m.json()["alert_id"] for m in messages if m.json()["state"] == "raised"]
        assert set(raised_ids) == set(final)
        duplicates = check_duplicates(messages)
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
