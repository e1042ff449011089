"""Restarts and wall-clock jumps: the policy of docs/rules.md, "Restarts and clock jumps"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from hearthgate.engine_builder import build_engine
from tests.rules.support import Harness
from tests.rules.test_rule_types import H, Life, M, cleared, raised

Build = Callable[..., Harness]


def _no_water(harness: Build) -> tuple[Harness, Life]:
    h = harness([{"type": "no_water", "window": "12h"}, {"type": "sos"}])
    life = Life(h)
    life.run(5 * M)  # the first reading anchors the meter
    life.run(5 * M, use_water=0.002)  # used at 08:10
    return h, life


def _raise_time_local(h: Harness, kind: str) -> str:
    [a] = raised(h.out, kind)
    return a.raised_at.astimezone(h.tz).strftime("%d %H:%M")


@pytest.mark.parametrize("reboot", [True, False])
def test_restart_neither_forgets_nor_restarts_the_window(harness: Build, reboot: bool) -> None:
    h, life = _no_water(harness)
    life.run(6 * H)
    h.restart(reboot=reboot)
    life.run(7 * H)
    assert _raise_time_local(h, "no_water") == "22 20:10"


def test_short_downtime_is_credited_from_a_plausible_wall_clock(harness: Build) -> None:
    h, life = _no_water(harness)
    life.run(6 * H)
    h.restart(downtime=40 * M)  # a reboot: the monotonic clock cannot prove it
    life.run(6 * H)
    assert _raise_time_local(h, "no_water") == "22 20:10"


def test_same_boot_downtime_is_proven_by_the_monotonic_clock(harness: Build) -> None:
    h, life = _no_water(harness)
    life.run(6 * H)
    h.restart(downtime=3 * H, reboot=False)
    life.run(4 * H)
    assert _raise_time_local(h, "no_water") == "22 20:10"


def test_long_unproven_downtime_delays_but_never_hides(harness: Build) -> None:
    h, life = _no_water(harness)
    life.run(6 * H)
    h.restart(downtime=3 * H)  # more than the 1 h a wall clock is believed for
    got = life.run(8 * H)
    assert len(raised(got, "no_water")) == 1
    assert _raise_time_local(h, "no_water") == "22 23:10"


@pytest.mark.parametrize("error_h", [12, -12, 5, -3])
def test_wrong_wall_clock_at_boot_neither_raises_nor_hides(harness: Build, error_h: int) -> None:
    h, life = _no_water(harness)
    life.run(6 * H)
    h.restart(wall_error=error_h * H)
    # Timestamps and schedules run on the estimated wall time, not the wrong clock.
    got = life.run(10 * M)
    sos = h.obs("sos-1", "sos", True)[0]
    assert abs((sos.raised_at - (h.clock.now().wall - timedelta(hours=error_h)))
               .total_seconds()) < 1
    assert raised(got) == []
    # NTP steps the clock to the truth: trusted from now on, no alert from the jump.
    now = h.clock.now()
    h.clock.set(now.mono, now.wall - timedelta(hours=error_h))
    life.run(6 * H)
    assert _raise_time_local(h, "no_water") == "22 20:10"


def test_wall_clock_trusted_again_after_an_hour_without_a_step(harness: Build) -> None:
    h, life = _no_water(harness)
    h.restart(downtime=5 * H)  # genuine, long, and the clock is right
    life.run(2 * H)
    sos = h.obs("sos-1", "sos", True)[0]
    assert abs((sos.raised_at - h.clock.now().wall).total_seconds()) < 1


@pytest.mark.parametrize("jump_h", [12, -12])
def test_wall_jump_while_running_moves_no_duration(harness: Build, jump_h: int) -> None:
    h, life = _no_water(harness)
    life.run(3 * H)
    h.clock.jump_wall(jump_h * 3600)
    life.run(8 * H + 55 * M)
    assert raised(h.out) == []
    life.run(10 * M)
    [a] = raised(h.out, "no_water")
    # 12 h of monotonic time after the use at 08:10, shown on the jumped wall clock.
    true_local = (a.raised_at - timedelta(hours=jump_h)).astimezone(h.tz)
    assert true_local.strftime("%d %H:%M") == "22 20:10"


@pytest.mark.parametrize("reboot", [True, False])
def test_restart_keeps_a_running_tap_and_credits_its_downtime(
    harness: Build, reboot: bool
) -> None:
    h = harness([{"type": "continuous_water", "window": "2h"}])
    life = Life(h)
    life.run(30 * M)
    life.run(90 * M, use_water=0.03)  # running since the reading at 08:30
    # Nobody read the meter for 20 minutes; that is not a pause in use.
    h.restart(downtime=20 * M, reboot=reboot)
    assert raised(life.run(5 * M, use_water=0.03)) == []
    got = life.run(5 * M, use_water=0.03)
    assert len(raised(got, "continuous_water")) == 1
    assert _raise_time_local(h, "continuous_water") == "22 10:30"


@pytest.mark.parametrize("reboot", [True, False])
def test_restarts_do_not_hide_a_dead_meter(harness: Build, reboot: bool) -> None:
    h = harness([{"type": "device_offline"}])  # meters: offline after 30 min of silence
    life = Life(h)
    life.run(10 * M)
    life.silent.add("water-1")  # last heard at 08:10
    for _ in range(2):
        # Restarting more often than the threshold; the downtimes (10 min each) are not the
        # meter's silence, so the 30 minutes heard are complete at 09:00.
        assert raised(life.run(10 * M), "device_offline") == []
        h.restart(downtime=10 * M, reboot=reboot)
    got = life.run(10 * M)
    assert [t.device_ids for t in raised(got, "device_offline")] == [("water-1",)]
    assert _raise_time_local(h, "device_offline") == "22 09:00"


def test_open_alert_survives_restart_and_escalation_resumes(harness: Build) -> None:
    h = harness([{"type": "tamper", "escalate_after": "10m"}])
    alert = h.obs("door-1", "tamper", True)[0]
    h.advance(4 * M)
    h.restart()
    assert [t.alert_id for t in h.engine.open_alerts()] == [alert.alert_id]
    got = h.advance(7 * M)
    esc = [t for t in got if str(t.state) == "escalated"]
    assert len(esc) == 1 and esc[0].alert_id == alert.alert_id
    got = h.obs("door-1", "tamper", False)
    assert cleared(got) and cleared(got)[0].alert_id == alert.alert_id
    assert len({t.event_id for t in h.out}) == len(h.out)


def test_inactivity_credit_counts_only_active_hours(harness: Build) -> None:
    from tests.rules.support import local

    h = harness([{"type": "inactivity", "window": "4h", "active_hours": "07:00-22:00"}],
                start=local("Asia/Shanghai", 2026, 11, 22, 21, 0))
    life = Life(h)
    h.obs("pir-1", "motion", True)  # 21:00: 1 h counted by 22:00
    life.run(30 * M)
    h.restart(downtime=50 * M)  # 21:30 -> 22:20, credited: 30 min inside active hours
    life.run(13 * H)  # to 11:20
    assert _raise_time_local(h, "inactivity") == "23 10:00"


def test_restart_keeps_presence_and_held_door(harness: Build) -> None:
    h = harness([{"type": "door_held_open", "after": "10m"}, {"type": "no_water"}])
    life = Life(h)
    h.obs("pir-1", "motion", True)
    h.obs("door-1", "door_open", True)
    h.advance(5 * M)
    h.restart()
    got = h.advance(6 * M)
    assert len(raised(got, "door_held_open")) == 1
    h.obs("door-1", "door_open", False)
    life.run(H)
    h.restart()
    assert h.engine.sites["room-1"].presence.away_at(h.clock.now().mono)
    assert raised(life.run(20 * H), "no_water") == []


def test_foreign_or_old_snapshot_is_ignored(harness: Build) -> None:
    h = harness([{"type": "no_water", "window": "1h"}])
    life = Life(h)
    h.engine.restore({"version": 1, "whatever": True}, h.clock.now())
    other = harness([{"type": "sos"}, {"type": "door_held_open"}])
    bad: dict[str, Any] = other.engine.snapshot(other.clock.now())
    bad["rules"]["room-1/0/no_water"] = {"counted": "not a number"}
    h2 = harness([{"type": "no_water", "window": "1h"}])
    h2.engine.restore(bad, h2.clock.now())  # logged, rule starts afresh
    life2 = Life(h2)
    assert len(raised(life2.run(70 * M), "no_water")) == 1
    assert len(raised(life.run(70 * M), "no_water")) == 1


ALL_TYPES = ["sos", "fall", "no_water", "continuous_water", "inactivity", "no_exit",
             "door_night", "door_held_open", "access_denied_repeated", "no_power_use",
             "power_high", "device_offline", "battery_low", "tamper"]


def test_every_rule_type_state_survives_a_json_round_trip(harness: Build) -> None:
    import json

    from hearthgate.engine_builder import build_engine

    h = harness([{"type": t} for t in ALL_TYPES])
    life = Life(h)
    life.power = 2500.0
    life.run(30 * M, use_water=0.03, use_kwh=0.2)
    h.obs("pir-1", "motion", True)
    h.obs("door-1", "door_open", True)
    h.obs("door-1", "door_open", False)
    h.obs("door-1", "door_open", True)
    for card in ("1", "2"):
        h.obs("gate-1", "card", card, granted=False)
    h.obs("pir-2", "battery_pct", 9)
    h.obs("pir-2", "tamper", True)
    h.obs("sos-1", "sos", True)
    life.run(20 * M, use_water=0.03, use_kwh=0.2)
    now = h.clock.now()
    first = json.loads(json.dumps(h.engine.snapshot(now)))
    assert set(first["rules"]) == {f"room-1/{i}/{t}" for i, t in enumerate(ALL_TYPES)}
    again = build_engine(h.config)
    again.restore(first, now)
    second = json.loads(json.dumps(again.snapshot(now)))
    assert second["rules"] == first["rules"]
    assert second["sites"]["room-1"]["presence"] == first["sites"]["room-1"]["presence"]
    # Devices keep the silence heard before the save (and here no downtime passed).
    for d, item in second["sites"]["room-1"]["health"].items():
        assert item["alive"] == first["sites"]["room-1"]["health"][d]["alive"]
        assert item["seen_ago"] == first["sites"]["room-1"]["health"][d]["seen_ago"]
    assert second["alerts"] == first["alerts"]
    assert again.next_deadline() == h.engine.next_deadline()


@pytest.mark.parametrize(
    ("day", "hours"), [((2026, 3, 29), 5.0), ((2026, 10, 25), 7.0), ((2026, 6, 1), 6.0)]
)
def test_schedule_hours_on_dst_nights(day: tuple[int, int, int], hours: float) -> None:
    from zoneinfo import ZoneInfo

    from hearthgate.core.durations import TimeRange
    from hearthgate.rules.schedule import Schedule
    from tests.rules.support import local

    s = Schedule(TimeRange.parse("00:00-06:00"), ZoneInfo("Europe/Berlin"))
    start = local("Europe/Berlin", *day, 0, 0) - timedelta(hours=1)
    assert s.seconds_inside(start, start + timedelta(hours=12)) == hours * 3600
    assert s.wall_needed(start, hours * 3600) == hours * 3600 + 3600


def test_alert_of_a_removed_rule_is_closed_after_restart(harness: Build) -> None:
    import json

    from tests.rules.support import make_config

    h = harness([{"type": "tamper"}, {"type": "sos"}])
    tamper = h.obs("door-1", "tamper", True)[0]
    sos = h.obs("sos-1", "sos", True)[0]
    state = json.loads(json.dumps(h.engine.snapshot(h.clock.now())))
    # The installer swapped the rules around and dropped tamper.
    engine = build_engine(make_config([{"type": "sos"}]))
    engine.restore(state, h.clock.now())
    assert engine.next_deadline() == float("-inf")
    got = engine.on_tick(h.clock.now())
    assert sorted((t.alert_id, str(t.state), t.details["closed_because"]) for t in got) == sorted(
        [(tamper.alert_id, "cleared", "rules changed"), (sos.alert_id, "cleared", "rules changed")]
    )
    assert engine.open_alerts() == []
    # Same rules, same order: nothing is closed.
    engine2 = build_engine(h.config)
    engine2.restore(state, h.clock.now())
    assert engine2.on_tick(h.clock.now()) == []
    assert {t.alert_id for t in engine2.open_alerts()} == {tamper.alert_id, sos.alert_id}
