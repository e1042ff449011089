"""Fault: the platform's broker goes away, comes back, goes away again, while SOS presses on
many sites, acknowledgements and telemetry keep flowing.

Outcome: every alert transition (raised, and cleared after an ack) arrives at least once;
none is lost; a message that arrives twice is the same message (same event_id, same body).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
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
    send_reading,
    site_ids,
    started,
    wait_until,
    write_config,
)


@pytest.fixture
def gateway_factory(tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
                    ) -> Iterator[list[GatewayProcess]]:
    made: list[GatewayProcess] = []
    yield made
    for gw in made:
        gw.close()


async def run_flapping_uplink(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker,
    platform: PlatformSubscriber, zigbee: PlatformSubscriber, made: list[GatewayProcess],
    *, n_sites: int, outages: int, seed: int, name: str,
) -> None:
    rng = random.Random(seed)
    sites = site_ids(n_sites)
    gw = GatewayProcess(write_config(tmp_path, broker, home_broker, sites))
    made.append(gw)
    await started(gw, platform)
    t0 = time.monotonic()

    # The platform's side of the conversation: ack every raised alert it sees (while it can).
    acked: set[str] = set()
    expected_raised = 0
    presses = 0
    readings = 0
    idle = set(sites)  # sites whose last alert the test has seen cleared (or never pressed)
    done: set[str] = set()  # alerts seen raised and cleared
    per_site = dict.fromkeys(sites, 0)

    def seen(state: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for m in platform.on(ALERTS):
            body = m.json()
            if body["state"] == state:
                out[body["alert_id"]] = body
        return out

    async def traffic(seconds: float, broker_up: bool) -> None:
        nonlocal expected_raised, presses, readings
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            raised, cleared = seen("raised"), seen("cleared")
            for alert_id, body in raised.items():
                if alert_id in done:
                    continue
                if alert_id in cleared:
                    # A site has at most one alert in play: pressed again only once cleared.
                    done.add(alert_id)
                    idle.add(body["site_id"])
                elif broker_up and alert_id not in acked and rng.random() < 0.5:
                    acked.add(alert_id)
                    await platform.publish(f"{P}/cmd/ack", {"alert_id": alert_id, "by": "w-1"})
            if idle and rng.random() < 0.6:
                site = rng.choice(sorted(idle))
                idle.discard(site)
                # Each site's presses cycle the actions: the driver's debounce drops a repeat
                # of the same action within seconds, as it should.
                await press_sos(zigbee, site, per_site[site])
                per_site[site] += 1
                presses += 1
                expected_raised += 1
            for _ in range(5):
                await send_reading(zigbee, rng.choice(sites), readings)
                readings += 1
            await asyncio.sleep(0.05)

    outage_seconds: list[float] = []
    await traffic(2.0, True)
    for _ in range(outages):
        broker.stop()
        down = time.monotonic()
        await traffic(rng.uniform(2.0, 4.0), False)
        broker.start()
        outage_seconds.append(round(time.monotonic() - down, 1))
        await traffic(rng.uniform(1.5, 3.0), True)

    # Settle: ack everything still open (again, if an ack was lost with the broker) until
    # every press has been raised and cleared.
    async def all_cleared() -> bool:
        raised, cleared = seen("raised"), seen("cleared")
        if len(raised) < expected_raised:
            return False
        pending = [a for a in raised if a not in cleared]
        for alert_id in pending:
            await platform.publish(f"{P}/cmd/ack", {"alert_id": alert_id, "by": "w-2"})
        return not pending

    deadline = time.monotonic() + 60
    while not await all_cleared():
        if time.monotonic() > deadline:
            stuck = [a for a in seen("raised") if a not in seen("cleared")]
            answers = [m.payload for m in platform.on(f"{P}/cmd/result")
                       if any(a.encode() in m.payload for a in stuck)]
            lines = [ln for ln in gw.log_text().splitlines() if any(a in ln for a in stuck)]
            raise AssertionError(
                f"{len(seen('raised'))} raised of {expected_raised}, {len(seen('cleared'))}"
                f" cleared; stuck {stuck}: {answers[-3:]}\n" + "\n".join(lines[-20:])
            )
        await asyncio.sleep(0.5)
    await wait_until(lambda: outbox_alert_count(tmp_path / "data") == 0, 30,
                     "the outbox to drain", gw.log_text)
    assert gw.proc is not None and gw.proc.poll() is None, "the gateway must never stop"

    raised, cleared = seen("raised"), seen("cleared")
    # None lost: one raised per press, and each raised alert cleared (by an ack).
    assert len(raised) == expected_raised == presses
    assert set(cleared) == set(raised)
    # Nothing invented: every alert the gateway recorded arrived, in its final state.
    table = {a: s for a, s in db_rows(tmp_path / "data", "SELECT alert_id, state FROM alerts")}
    assert set(table) == set(raised)
    assert set(table.values()) == {"cleared"}
    duplicates = check_duplicates(platform.on(ALERTS))
    telemetry = sum(len(m.json()["readings"]) for m in platform.on(f"{P}/telemetry"))
    assert telemetry > 0
    record(
        name, sites=n_sites, outages=outages, outage_seconds=outage_seconds, presses=presses,
        transitions=len(raised) + len(cleared), received=len(platform.on(ALERTS)),
        duplicates=duplicates, readings_sent=2 * readings + 3 * presses,
        readings_received=telemetry,
        seconds=round(time.monotonic() - t0, 1),
    )


async def test_uplink_flaps_no_alert_transition_lost(
    tmp_path, broker, home_broker, platform, zigbee, gateway_factory
):
    await run_flapping_uplink(
        tmp_path, broker, home_broker, platform, zigbee, gateway_factory,
        n_sites=12, outages=2, seed=7, name="uplink_outage",
    )


@pytest.mark.slow
async def test_uplink_flaps_many_times_no_alert_transition_lost(
    tmp_path, broker, home_broker, platform, zigbee, gateway_factory
):
    await run_flapping_uplink(
        tmp_path, broker, home_broker, platform, zigbee, gateway_factory,
        n_sites=40, outages=8, seed=11, name="uplink_outage_long",
    )
