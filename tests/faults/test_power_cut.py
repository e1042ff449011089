"""Fault: the power goes at random moments (a seeded random source chooses when) while SOS
alerts are raised, acknowledged and published: the gateway is SIGKILLed and, at the same
instant, every write its disk had not fsynced is lost (tests/faults/powerfs.py: the
filesystem is frozen first, so that nothing slips in between). Every other cut keeps a
random prefix of the unsynced writes instead, the last one torn at a sector. Then the "reboot": the
gateway starts again on what the disk kept.

Outcome, after every reboot:
- the store opens and is sound (`PRAGMA integrity_check`, nothing "malformed" in the log);
- nothing accepted is lost: every alert transition the platform has seen is in the store at
  that state or later (raised: known; cleared: cleared), and every ack the gateway answered
  `ok` is still cleared; at the end everything the store holds has arrived;
- no rule forgets its window: an SOS open before the cut is still open after it (pressing
  that button again raises nothing) and the platform's ack after the reboot clears that very
  alert;
- a message that arrives twice is the same message (same event_id, same body).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber
from tests.faults.faultkit import (
    ALERTS,
    RESULTS,
    P,
    ack_and_wait,
    alert_table,
    check_store_reached_platform,
    db_path,
    db_rows,
    outbox_alert_count,
    press_open_site_again,
    press_sos,
    record,
    site_ids,
    started,
    wait_until,
    write_config,
)
from tests.faults.powerfs import PowerFS


def power_cut(gw: GatewayProcess, fs: PowerFS, seed: int, torn: bool) -> dict[str, int]:
    """SIGKILL and lose the unsynced writes at one instant; the disk usable again after."""
    assert gw.proc is not None
    fs.freeze()
    try:
        os.kill(gw.pid, signal.SIGKILL)
        lost = fs.cut(seed, torn=torn)
        # Operations the dying process had under way are answered EIO only now: it is dead by
        # the time they return, so it never sees them (a pending SIGKILL ends it on the way).
        gw.proc.wait(20)
    finally:
        fs.thaw()  # also when something above failed: a frozen disk would hang the teardown
    return lost


def seen_by_platform(platform: PlatformSubscriber) -> set[tuple[str, str]]:
    return {(m.json()["alert_id"], m.json()["state"]) for m in platform.on(ALERTS)}


def acks_answered_ok(platform: PlatformSubscriber) -> set[str]:
    return {
        b["alert_id"] for b in (m.json() for m in platform.on(RESULTS))
        if b.get("command") == "ack" and b.get("ok")
    }


def check_after_reboot(data: Path, platform: PlatformSubscriber, log: str) -> int:
    """What the disk kept agrees with everything the gateway said before the cut; how many
    transitions were checked."""
    assert db_path(data).exists(), "the store's file is gone after a power cut"
    assert db_rows(data, "PRAGMA integrity_check") == [("ok",)]
    assert "malformed" not in log
    now = alert_table(data)
    seen = seen_by_platform(platform)
    for alert_id, state in seen:
        assert alert_id in now, f"alert {alert_id} reached the platform, then the store lost it"
        if state == "cleared":
            assert now[alert_id][1] == "cleared", f"alert {alert_id}'s clearing was undone"
    for alert_id in acks_answered_ok(platform):
        assert now[alert_id][1] == "cleared", f"ack of {alert_id} answered ok, then undone"
    return len(seen)


async def run_cuts(
    tmp_path: Path, fs: PowerFS, broker: MosquittoBroker, home_broker: MosquittoBroker,
    platform: PlatformSubscriber, zigbee: PlatformSubscriber, *, cuts: int, seed: int, name: str,
) -> None:
    rng = random.Random(seed)
    sites = site_ids(6)
    # Below a directory the gateway creates itself: those entries must survive too.
    data = fs.mountpoint / "var" / "hearthgate"
    gw = GatewayProcess(write_config(tmp_path, broker, home_broker, sites, data_dir=data))
    presses = dict.fromkeys(sites, 0)
    t0 = time.monotonic()
    # Transitions seen by the platform, checked against the store after a reboot (each one
    # again after every later reboot).
    checked = 0
    re_pressed = remembered = acks_in_flight = 0
    lost_writes = lost_bytes = torn_cuts = 0
    cut_with_unsent = 0  # cuts after which the disk held alert transitions not yet PUBACKed
    try:
        for i in range(cuts):
            await started(gw, platform, connects=i + 1)
            if i:
                checked += check_after_reboot(data, platform, gw.log_text())
            before = alert_table(data)
            open_alerts = {a: s for a, (s, st) in before.items() if st != "cleared"}
            assert len(set(open_alerts.values())) == len(open_alerts)
            idle = [s for s in sites if s not in open_alerts.values()]
            if open_alerts and idle:
                await press_open_site_again(zigbee, platform, rng, before, idle, presses,
                                            "a power cut")
                re_pressed += 1
            acks = rng.sample(sorted(open_alerts), min(len(open_alerts), 2))
            for ack in acks[:1]:
                await ack_and_wait(platform, ack, f"w-{i}")
                remembered += 1
            for site in rng.sample(idle, min(len(idle), rng.randint(1, 2))):
                await press_sos(zigbee, site, presses[site])
                presses[site] += 1
            # A second ack goes out with the presses and is not waited for: the cut may
            # find it anywhere from unread to answered.
            for ack in acks[1:]:
                await platform.publish(f"{P}/cmd/ack", {"alert_id": ack, "by": f"w-{i}"})
                acks_in_flight += 1
            await asyncio.sleep(rng.uniform(0.0, 0.03) if rng.random() < 0.5
                                else rng.uniform(0.03, 0.3))
            torn = bool(i % 2)  # every other cut keeps some unsynced writes, one torn
            lost = power_cut(gw, fs, rng.randrange(1 << 30), torn)
            if outbox_alert_count(data):
                cut_with_unsent += 1
            lost_writes += lost["writes_lost"]
            lost_bytes += lost["bytes_lost"]
            torn_cuts += torn

        # The last reboot: everything the store holds must reach the platform.
        await started(gw, platform, connects=cuts + 1)
        checked += check_after_reboot(data, platform, gw.log_text())
        await wait_until(lambda: outbox_alert_count(data) == 0, 30, "the outbox to drain",
                         gw.log_text)
        final, messages, duplicates = check_store_reached_platform(data, platform)
        stats = fs.stats()
        record(
            name, cuts=cuts, torn_cuts=torn_cuts, seed=seed, presses=sum(presses.values()),
            alerts=len(final), transitions_seen=len(seen_by_platform(platform)),
            transitions_checked=checked,
            re_presses_absorbed=re_pressed,
            open_alerts_cleared_after_cut=remembered, acks_in_flight=acks_in_flight,
            cuts_with_unsent_alerts=cut_with_unsent,
            unsynced_writes_lost=lost_writes, unsynced_bytes_lost=lost_bytes,
            fsyncs=stats["fsyncs"], dir_fsyncs=stats["dir_fsyncs"], received=len(messages),
            duplicates=duplicates, seconds=round(time.monotonic() - t0, 1),
        )
    finally:
        gw.close()


async def test_power_cuts_lose_nothing_accepted(
    tmp_path, powerfs, broker, home_broker, platform, zigbee
):
    await run_cuts(tmp_path, powerfs, broker, home_broker, platform, zigbee, cuts=4, seed=2027,
                   name="power_cut")


@pytest.mark.slow
async def test_many_power_cuts_lose_nothing_accepted(
    tmp_path, powerfs, broker, home_broker, platform, zigbee
):
    await run_cuts(tmp_path, powerfs, broker, home_broker, platform, zigbee, cuts=50, seed=5150,
                   name="power_cut_long")
