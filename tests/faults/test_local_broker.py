"""Fault: the home's zigbee2mqtt broker goes away and comes back (twice).

Outcome: the gateway process never stops, its mqtt bus reconnects on its own, and SOS presses
made after each return arrive at the platform as alerts.
"""

from __future__ import annotations

import time

from hearthgate.devkit.testkit import GatewayProcess
from tests.faults.faultkit import (
    ALERTS,
    P,
    press_sos,
    record,
    site_ids,
    started,
    wait_until,
    write_config,
)


async def test_zigbee_broker_goes_away_and_comes_back(
    tmp_path, broker, home_broker, platform, zigbee
):
    sites = site_ids(3)
    gw = GatewayProcess(write_config(tmp_path, broker, home_broker, sites))
    try:
        await started(gw, platform)
        await press_sos(zigbee, sites[0])
        await platform.wait_json(ALERTS, lambda b: b["site_id"] == sites[0], timeout=20)
        reconnect_seconds = []
        for round_, site in enumerate(sites[1:], start=2):
            home_broker.stop()
            await wait_until(lambda: "bus zigbee lost its broker" in gw.log_text(), 30,
                             "the bus to notice", gw.log_text)
            assert gw.proc is not None and gw.proc.poll() is None
            # The platform side is unaffected: the gateway still answers.
            await platform.publish(f"{P}/cmd/ping", {"id": f"during-{round_}"})
            await platform.wait_json(
                f"{P}/cmd/result", lambda b, r=round_: b.get("id") == f"during-{r}", timeout=20
            )
            home_broker.start()
            back = time.monotonic()
            await wait_until(
                lambda r=round_: gw.log_text().count("bus zigbee connected") >= r, 30,
                "the bus to reconnect", gw.log_text,
            )
            reconnect_seconds.append(round(time.monotonic() - back, 2))
            await press_sos(zigbee, site)
            await platform.wait_json(ALERTS, lambda b, s=site: b["site_id"] == s, timeout=20)
        assert gw.proc.poll() is None, "the gateway must never stop"
        record("zigbee_broker_outage", outages=2, reconnect_seconds=reconnect_seconds,
               alerts_after_return=2)
    finally:
        gw.close()
