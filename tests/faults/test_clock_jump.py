"""Fault: the wall clock jumps by ±12 h (a Raspberry Pi has no RTC; NTP sets the time after
boot) while alerts are open and rule windows are running.

An in-process gateway with real I/O (both brokers, its SQLite file) runs on a simulated clock
whose wall reading jumps while its monotonic reading does not.

Outcome: no false alert (a +12 h jump neither fires a 3 h inactivity window nor escalates an
SOS early) and no missed one (after a -24 h jump the window still ends on time, measured on
the monotonic clock, and escalation still comes); the SOS raised before the jumps is
delivered once, with timestamps in the site's offset.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hearthgate.core.clock import SimulatedClock
from tests.faults.faultkit import (
    ALERTS,
    InProcessGateway,
    check_duplicates,
    press_sos,
    record,
    site_ids,
    wait_until,
    write_config,
)

H = 3600.0


async def test_wall_clock_jumps_raise_nothing_false_and_miss_nothing(
    tmp_path, broker, home_broker, platform, zigbee
):
    sites = site_ids(6)
    home, caller, markers = sites[0], sites[1], iter(sites[2:])
    config = write_config(
        tmp_path, broker, home_broker, sites,
        sos_options=", repeat_window: 0s, escalate_after: 10m",
        extra_devices=(
            f"  - {{id: pir-301, site: {home}, kind: motion_sensor, protocol: zigbee2mqtt,"
            " bus: zigbee, topic: zigbee2mqtt/pir_301, model: SNZB-03, offline_after: 1d}\n"
        ),
        site_rules={home: "{type: inactivity, window: 3h, active_hours: null,"
                          " pause_when_away: false}"},
    )
    clock = SimulatedClock(start=datetime.now(UTC).replace(microsecond=0))
    start_wall = clock.now().wall

    def alerts(site: str, state: str | None = None) -> list[dict]:
        return [m.json() for m in platform.on(ALERTS)
                if m.json()["site_id"] == site and (state is None or m.json()["state"] == state)]

    async def through_the_rules() -> None:
        """An SOS on a spare site: once it arrives, every earlier input has been through the
        rules loop (with the clock as it is now)."""
        site = next(markers)
        await press_sos(zigbee, site)
        await platform.wait_json(ALERTS, lambda b: b["site_id"] == site, timeout=20)

    async def advance(seconds: float, step: float = 60.0) -> None:
        # In steps, so that the rules loop wakes at each deadline of its own.
        while seconds > 0:
            await clock.advance(min(step, seconds))
            seconds -= step

    async with InProcessGateway(config, clock=clock) as gw:
        await wait_until(lambda: gw.gateway.uplink.stats.connected, 20, "the uplink")
        await zigbee.publish("zigbee2mqtt/pir_301", {"occupancy": True, "battery": 90})
        await press_sos(zigbee, caller)
        [raised] = await platform.wait_json(ALERTS, lambda b: b["site_id"] == caller, timeout=20)

        # +12 h: a wall-clock rule would see 12 h without motion, an SOS 12 h unanswered.
        clock.jump_wall(12 * H)
        await through_the_rules()
        assert not alerts(home), "a wall-clock jump raised an inactivity alert"
        assert not alerts(caller, "escalated"), "a wall-clock jump escalated an SOS"

        # Escalation runs on the monotonic clock: not at 9 min, at 10 min.
        await advance(9 * 60)
        await through_the_rules()
        assert not alerts(caller, "escalated")
        await advance(2 * 60)
        [escalated] = await platform.wait_json(
            ALERTS, lambda b: b["site_id"] == caller and b["state"] == "escalated", timeout=20
        )

        # -24 h (12 h behind where we began): the 3 h window is not stretched by a day.
        clock.jump_wall(-24 * H)
        await advance(3 * H - 11 * 60 - 60)  # a minute short of 3 h since the motion
        await through_the_rules()
        assert not alerts(home), "the inactivity window ended early"
        await advance(2 * 60)
        [inactive] = await platform.wait_json(
            ALERTS, lambda b: b["site_id"] == home and b["state"] == "raised", timeout=20
        )
        assert inactive["type"] == "inactivity"

        # Motion clears it: a new detection, after zigbee2mqtt cleared occupancy on its timeout.
        await zigbee.publish("zigbee2mqtt/pir_301", {"occupancy": False})
        await zigbee.publish("zigbee2mqtt/pir_301", {"occupancy": True})
        await platform.wait_json(
            ALERTS, lambda b: b["site_id"] == home and b["state"] == "cleared", timeout=20
        )
        assert gw.running

    # Delivered once, with sane timestamps in the site's offset.
    assert len(alerts(caller, "raised")) == 1
    assert raised["raised_at"].endswith("+08:00") and raised["ts"] == raised["raised_at"]
    assert datetime.fromisoformat(raised["ts"]) - start_wall < datetime.resolution * 10**7
    assert escalated["alert_id"] == raised["alert_id"]
    assert escalated["raised_at"] == raised["raised_at"]
    jumped = (datetime.fromisoformat(escalated["ts"]) - start_wall).total_seconds()
    assert 12 * H + 10 * 60 <= jumped < 12 * H + 12 * 60  # the wall time of the escalation
    check_duplicates(platform.on(ALERTS))
    record("clock_jump", jumps_h=[12, -24], inactivity_window_h=3,
           escalated_after_min=10, inactivity_raised_at=inactive["ts"],
           escalated_at=escalated["ts"], raised_at=raised["ts"])
