"""Each rule type on a simulated clock: raise, clear, schedules, DST, gating, lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.rules.support import Harness, local

H = 3600.0
M = 60.0


class Life:
    """Heartbeats that keep the devices of a harness online while time passes."""

    def __init__(self, h: Harness, water: float = 10.0, energy: float = 100.0) -> None:
        self.h = h
        self.water = water
        self.energy = energy
        self.power = 80.0
        self.silent: set[str] = set()
        self.since_sensor = 0.0

    def run(self, seconds: float, *, use_water: float = 0.0, use_kwh: float = 0.0,
            step: float = 5 * M) -> list[Any]:
        """Advance in poll steps; meters report, sensors send a battery report hourly."""
        got: list[Any] = []
        steps = max(1, round(seconds / step))
        for _ in range(steps):
            got += self.h.advance(step)
            self.water += use_water
            self.energy += use_kwh
            if "water-1" not in self.silent:
                got += self.h.obs("water-1", "water_total_m3", round(self.water, 4))
            if "power-1" not in self.silent:
                got += self.h.obs("power-1", "energy_total_kwh", round(self.energy, 4))
                got += self.h.obs("power-1", "power_w", self.power)
            if "gate-1" not in self.silent:
                got += self.h.obs("gate-1", "alive", True)
            self.since_sensor += step
            if self.since_sensor >= H:
                self.since_sensor = 0.0
                for d in ("pir-1", "pir-2", "door-1"):
                    if d not in self.silent:
                        got += self.h.obs(d, "battery_pct", 90)
        return got


def raised(got: list[Any], kind: str | None = None) -> list[Any]:
    return [t for t in got if str(t.state) == "raised" and (kind is None or t.type == kind)]


def cleared(got: list[Any], kind: str | None = None) -> list[Any]:
    return [t for t in got if str(t.state) == "cleared" and (kind is None or t.type == kind)]


Build = Callable[..., Harness]


# -- sos / fall ------------------------------------------------------------------


def test_sos_one_press_one_alert_ack_clears_and_escalation_is_bounded(harness: Build) -> None:
    h = harness([{"type": "sos"}])
    got = h.obs("sos-1", "sos", True)
    assert [(t.type, str(t.severity)) for t in raised(got)] == [("sos", "critical")]
    alert = got[0]
    assert alert.details["pressed_at"].endswith("+08:00")
    assert alert.message == "Emergency call (SOS)"
    # The radio repeats the press: not a press.
    h.advance(1)
    assert h.obs("sos-1", "sos", True) == []
    # Unacknowledged: escalated every 5 minutes, three times, then quiet.
    got = h.advance(2 * H)
    esc = [t for t in got if str(t.state) == "escalated"]
    assert [t.details["escalation"] for t in esc] == [1, 2, 3]
    assert {t.details["reason"] for t in esc} == {"unacknowledged"}
    assert len({t.event_id for t in esc} | {alert.event_id}) == 4
    assert all(t.alert_id == alert.alert_id for t in esc)
    got = h.ack(alert.alert_id, "worker-17")
    assert [(str(t.state), t.details["acknowledged_by"]) for t in got] == [("cleared", "worker-17")]
    h.advance(60)
    got = h.obs("sos-1", "sos", True)
    assert len(raised(got, "sos")) == 1 and got[0].alert_id != alert.alert_id


SOS_BUTTONS = [
    {"id": "sos-1", "kind": "sos_button", "protocol": "rulestest_rf"},
    {"id": "sos-2", "kind": "sos_button", "protocol": "rulestest_rf"},
    {"id": "sos-3", "kind": "sos_button", "protocol": "rulestest_rf"},
]


def test_sos_pressed_again_is_escalated_at_once_naming_each_button(harness: Build) -> None:
    h = harness([{"type": "sos"}], devices=SOS_BUTTONS)
    alert = h.obs("sos-1", "sos", True)[0]
    # A second button a second later is a press of its own, not the first one's radio repeat.
    h.advance(1)
    got = h.obs("sos-2", "sos", True)
    assert [(str(t.state), t.device_ids, t.details["reason"], t.details["presses"])
            for t in got] == [("escalated", ("sos-2",), "pressed_again", 2)]
    assert got[0].alert_id == alert.alert_id and got[0].event_id != alert.event_id
    assert "escalation" not in got[0].details  # not one of the regular escalations
    h.advance(1)
    assert h.obs("sos-2", "sos", True) == []  # sos-2's radio repeating itself
    h.advance(30)
    got = h.obs("sos-3", "sos", True)
    assert [(t.device_ids, t.details["presses"]) for t in got] == [(("sos-3",), 3)]
    # The regular escalations still run, three of them, and then stop ...
    esc = [t for t in h.advance(H) if str(t.state) == "escalated"]
    assert [t.details["escalation"] for t in esc] == [1, 2, 3]
    assert h.advance(H) == []
    # ... and a press after they ran out is still published at once.
    got = h.obs("sos-1", "sos", True)
    assert [(str(t.state), t.device_ids, t.details["reason"], t.details["presses"])
            for t in got] == [("escalated", ("sos-1",), "pressed_again", 4)]
    # The press count survives a restart.
    h.restart(60, reboot=False)
    got = h.obs("sos-2", "sos", True)
    assert [t.details["presses"] for t in got] == [5]
    assert [str(t.state) for t in h.ack(alert.alert_id)] == ["cleared"]


def test_fall_reported_again_is_escalated_too(harness: Build) -> None:
    h = harness([{"type": "fall"}])
    h.obs("sos-1", "fall", True)
    h.advance(2 * M)
    got = h.obs("sos-1", "fall", True)
    assert [(t.type, str(t.state), t.details["reason"]) for t in got] == [
        ("fall", "escalated", "pressed_again")]


def test_ack_stops_escalation(harness: Build) -> None:
    h = harness([{"type": "sos"}])
    alert = h.obs("sos-1", "sos", True)[0]
    h.advance(4 * M)
    assert h.engine.acknowledge(alert.alert_id, "w", h.clock.now())  # sos: ack clears
    assert h.advance(H) == []
    with pytest.raises(LookupError):
        h.engine.acknowledge(alert.alert_id, "w", h.clock.now())


def test_fall_and_zh_message(harness: Build) -> None:
    h = harness([{"type": "fall"}], language="zh")
    got = h.obs("sos-1", "fall", True)
    assert got[0].type == "fall" and got[0].message == "检测到跌倒"


def test_escalate_after_per_rule_and_severity_override(harness: Build) -> None:
    h = harness([{"type": "tamper", "severity": "high", "escalate_after": "2m"}])
    got = h.obs("door-1", "tamper", True)
    assert str(got[0].severity) == "high"
    got = h.advance(10 * M)
    assert [t.details["escalation"] for t in got] == [1, 2, 3]
    h2 = harness([{"type": "tamper", "escalate_after": 0}])
    h2.obs("door-1", "tamper", True)
    assert h2.advance(10 * H) == []


def test_non_sos_ack_stops_escalation_but_keeps_alert_open(harness: Build) -> None:
    h = harness([{"type": "tamper"}])
    alert = h.obs("door-1", "tamper", True)[0]
    assert h.ack(alert.alert_id) == []
    assert h.advance(3 * H) == []
    assert [t.type for t in h.engine.open_alerts()] == ["tamper"]
    assert cleared(h.obs("door-1", "tamper", False), "tamper")


# -- no_water --------------------------------------------------------------------


def test_no_water_raised_after_window_and_cleared_on_use(harness: Build) -> None:
    h = harness([{"type": "no_water", "window": "12h"}])
    life = Life(h)
    life.run(30 * M, use_water=0.002)  # some use, ends at 08:30
    got = life.run(11.5 * H)
    assert raised(got) == []
    got = life.run(30 * M)
    alerts = raised(got, "no_water")
    assert len(alerts) == 1
    a = alerts[0]
    assert a.details["window_s"] == 43200
    assert a.details["last_use_at"] == "2026-11-22T08:30:00+08:00"
    assert a.raised_at.astimezone(h.tz).strftime("%H:%M") == "20:30"
    assert a.message == "No water used for 12 h"
    got = life.run(5 * M, use_water=0.001)
    assert len(cleared(got, "no_water")) == 1


def test_no_water_meter_reset_is_not_use_and_min_use(harness: Build) -> None:
    h = harness([{"type": "no_water", "window": "2h", "min_use": 0.01}])
    life = Life(h)
    life.run(H, use_water=0.001)  # 12 litres in an hour: one use of 10 l at most
    life.water = 0.0  # meter replaced: reading drops
    got = life.run(2 * H)
    assert len(raised(got, "no_water")) == 1
    h2 = harness([{"type": "no_water", "window": "2h"}])
    life2 = Life(h2)
    life2.run(10 * M)
    # The drivers' marker for a new baseline (drivers/meter_sense.py).
    h2.obs("water-1", "water_total_m3", 55.0, baseline="reset", previous_total=0.0)
    got = life2.run(110 * M)
    assert len(raised(got, "no_water")) == 1


def test_no_water_not_counted_while_away(harness: Build) -> None:
    h = harness([{"type": "no_water", "window": "12h"}, {"type": "inactivity"}])
    life = Life(h)
    life.run(H, use_water=0.001)
    h.obs("pir-1", "motion", True)
    h.advance(30)
    h.obs("door-1", "door_open", True)
    h.advance(20)
    h.obs("door-1", "door_open", False)
    got = life.run(2 * 86400)  # a weekend away
    assert raised(got) == []
    h.obs("door-1", "door_open", True)
    h.advance(10)
    h.obs("door-1", "door_open", False)
    h.advance(20)
    h.obs("pir-1", "motion", True)
    got = life.run(11 * H)
    assert raised(got, "no_water") == []
    got = life.run(1.5 * H)
    assert len(raised(got, "no_water")) == 1


def test_no_water_pause_when_away_off(harness: Build) -> None:
    h = harness([{"type": "no_water", "window": "12h", "pause_when_away": False}])
    life = Life(h)
    h.obs("pir-1", "motion", True)
    h.obs("door-1", "door_open", True)
    h.obs("door-1", "door_open", False)
    got = life.run(13 * H)
    assert len(raised(got, "no_water")) == 1


def test_no_water_silent_meter_is_device_offline_not_no_water(harness: Build) -> None:
    h = harness([{"type": "no_water", "window": "12h"}, {"type": "device_offline"}])
    life = Life(h)
    life.run(H, use_water=0.001)
    life.silent.add("water-1")
    got = life.run(2 * 86400)
    assert [t.device_ids for t in raised(got)] == [("water-1",)]
    assert raised(got)[0].type == "device_offline"
    assert raised(got)[0].details["reason"] == "silent"


def test_no_water_unreachable_meter_counts_nothing(harness: Build) -> None:
    h = harness([{"type": "no_water", "window": "3h"}])
    life = Life(h)
    life.run(H)
    life.silent.add("water-1")
    h.obs("water-1", "alive", False)
    got = life.run(5 * H)
    assert raised(got) == []
    life.silent.discard("water-1")
    got = life.run(1.5 * H)  # 1 h counted before + 1.5 h after: still under 3 h
    assert raised(got) == []
    got = life.run(45 * M)
    assert len(raised(got, "no_water")) == 1


# -- continuous_water ----------------------------------------------------------


def test_continuous_water_tap_left_running(harness: Build) -> None:
    h = harness([{"type": "continuous_water", "window": "2h"}])
    life = Life(h)
    life.run(30 * M)
    got = life.run(115 * M, use_water=0.03)
    assert raised(got) == []
    got = life.run(5 * M, use_water=0.03)
    alerts = raised(got, "continuous_water")
    assert len(alerts) == 1 and alerts[0].device_ids == ("water-1",)
    got = life.run(10 * M)  # one idle reading is not enough...
    assert cleared(got) == []
    got = life.run(10 * M)  # ...a 15-minute pause is
    assert len(cleared(got, "continuous_water")) == 1


def test_continuous_water_washing_machine_pauses_break_the_run(harness: Build) -> None:
    h = harness([{"type": "continuous_water", "window": "2h"}])
    life = Life(h)
    for _ in range(8):  # 3 hours of fill 10 min / pause 20 min
        assert raised(life.run(10 * M, use_water=0.01)) == []
        assert raised(life.run(20 * M)) == []


def test_continuous_water_gap_in_readings_restarts_run(harness: Build) -> None:
    h = harness([{"type": "continuous_water", "window": "2h"}])
    life = Life(h)
    life.run(H, use_water=0.03)
    life.silent.add("water-1")
    life.run(H)
    life.silent.discard("water-1")
    got = life.run(90 * M, use_water=0.03)
    assert raised(got) == []


# -- inactivity ----------------------------------------------------------------


def test_inactivity_counts_only_active_hours(harness: Build) -> None:
    h = harness([{"type": "inactivity", "window": "4h", "active_hours": "07:00-22:00"}],
                start=local("Asia/Shanghai", 2026, 11, 22, 20, 0))
    life = Life(h)
    h.obs("pir-1", "motion", True)  # 20:00; 2 h count until 22:00, then 07:00-09:00
    got = life.run(12 * H + 55 * M)
    assert raised(got) == []
    got = life.run(10 * M)
    a = raised(got, "inactivity")
    assert len(a) == 1
    assert a[0].raised_at.astimezone(h.tz).strftime("%H:%M") in ("09:00", "09:05")
    assert a[0].details["last_motion_at"] == "2026-11-22T20:00:00+08:00"
    assert a[0].details["active_hours"] == "07:00-22:00"
    got = h.obs("pir-2", "motion", True)
    assert len(cleared(got, "inactivity")) == 1


def test_inactivity_active_hours_crossing_midnight(harness: Build) -> None:
    h = harness([{"type": "inactivity", "window": "3h", "active_hours": "20:00-02:00"}],
                start=local("Asia/Shanghai", 2026, 11, 22, 23, 0))
    life = Life(h)
    h.obs("pir-1", "motion", True)  # 23:00 -> 02:00 is exactly 3 h
    got = life.run(2 * H + 55 * M)
    assert raised(got) == []
    got = life.run(10 * M)
    assert len(raised(got, "inactivity")) == 1


@pytest.mark.parametrize(
    ("day", "expect_utc"),
    [((2026, 3, 28), datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),  # spring forward night
     ((2026, 10, 24), datetime(2026, 10, 25, 8, 0, tzinfo=UTC))],  # fall back night
)
def test_inactivity_dst(harness: Build, day: tuple[int, int, int], expect_utc: datetime) -> None:
    tz = "Europe/Berlin"
    h = harness([{"type": "inactivity", "window": "4h", "active_hours": "07:00-22:00"}],
                start=local(tz, *day, 20, 0), timezone=tz)
    life = Life(h)
    h.obs("pir-1", "motion", True)  # 2 h before 22:00, 2 h after 07:00 local: 09:00 local
    got = life.run(16 * H, step=M)
    a = raised(got, "inactivity")
    assert len(a) == 1
    assert abs((a[0].raised_at - expect_utc).total_seconds()) <= 60
    assert a[0].raised_at.astimezone(h.tz).strftime("%H:%M") == "09:00"


def test_inactivity_not_while_away_and_not_with_dead_sensors(harness: Build) -> None:
    h = harness([{"type": "inactivity", "window": "4h", "active_hours": "00:00-23:59"},
                 {"type": "device_offline"}])
    life = Life(h)
    h.obs("pir-1", "motion", True)
    h.obs("door-1", "door_open", True)
    h.obs("door-1", "door_open", False)
    h.advance(60)
    h.obs("pir-1", "motion", True)  # the leaving person, within the settle time
    got = life.run(10 * H)
    assert raised(got) == []
    # Back home, then both motion sensors become unreachable.
    h.obs("door-1", "door_open", True)
    h.obs("door-1", "door_open", False)
    h.advance(30)
    h.obs("pir-1", "motion", True)
    mark = len(h.out)
    h.obs("pir-1", "alive", False)
    h.obs("pir-2", "alive", False)
    life.silent |= {"pir-1", "pir-2"}
    life.run(10 * H)
    got = h.out[mark:]
    assert sorted(t.device_ids[0] for t in raised(got)) == ["pir-1", "pir-2"]
    assert {t.type for t in raised(got)} == {"device_offline"}


def test_inactivity_silent_sensors_stop_the_count(harness: Build) -> None:
    h = harness([{"type": "inactivity", "window": "4h", "active_hours": "00:00-23:59"},
                 {"type": "device_offline"}])
    life = Life(h)
    h.obs("pir-1", "motion", True)
    life.silent |= {"pir-1", "pir-2"}
    got = life.run(8 * H)
    assert {t.type for t in raised(got)} == {"device_offline"}  # at 2 h, before 4 h of count


def test_presence_unknown_after_door_while_away_counts(harness: Build) -> None:
    """Someone came in but was never seen: doubt counts like home."""
    h = harness([{"type": "inactivity", "window": "2h", "active_hours": "00:00-23:59"}])
    life = Life(h)
    h.obs("pir-1", "motion", True)
    h.obs("door-1", "door_open", True)
    h.obs("door-1", "door_open", False)
    life.run(3 * H)
    h.obs("door-1", "door_open", True)
    h.obs("door-1", "door_open", False)
    got = life.run(3 * H)
    assert len(raised(got, "inactivity")) == 1


# -- no_exit, doors, access ------------------------------------------------------


def test_no_exit(harness: Build) -> None:
    h = harness([{"type": "no_exit", "window": "3d"}])
    life = Life(h)
    h.obs("door-1", "door_open", True)
    h.obs("door-1", "door_open", False)
    h.advance(5 * M)
    h.obs("pir-1", "motion", True)
    got = life.run(71 * H, step=15 * M)
    assert raised(got) == []
    got = life.run(2 * H, step=15 * M)
    a = raised(got, "no_exit")
    assert len(a) == 1 and str(a[0].severity) == "medium"
    assert len(cleared(h.obs("door-1", "door_open", True), "no_exit")) == 1


def test_door_night_quiet_hours_and_cooldown(harness: Build) -> None:
    h = harness([{"type": "door_night", "quiet_hours": "22:00-06:00"}],
                start=local("Asia/Shanghai", 2026, 11, 22, 21, 59))
    assert h.obs("door-1", "door_open", True) == []
    h.obs("door-1", "door_open", False)
    h.advance_to_local(3, 0, days=1)
    got = h.obs("door-1", "door_open", True)
    assert [(t.type, str(t.severity)) for t in got] == [("door_night", "high")]
    assert got[0].details["opened_at"].startswith("2026-11-23T03:00:00")
    h.advance(10 * M)
    assert h.obs("door-1", "door_open", True) == []  # same episode
    got = h.advance(29 * M)
    assert cleared(got) == []
    got = h.advance(2 * M)
    assert len(cleared(got, "door_night")) == 1
    h.advance_to_local(6, 0)
    assert h.obs("door-1", "door_open", True) == []


def test_door_night_dst(harness: Build) -> None:
    tz = "Europe/Berlin"
    h = harness([{"type": "door_night", "quiet_hours": "22:00-06:00"}],
                start=datetime(2026, 3, 29, 3, 30, tzinfo=UTC), timezone=tz)
    assert len(h.obs("door-1", "door_open", True)) == 1  # 05:30 CEST
    h.advance(3600)  # 06:30 CEST; a fixed +01:00 would still say 05:30
    h.obs("door-1", "door_open", False)
    h.advance(H)
    assert raised(h.obs("door-1", "door_open", True)) == []


def test_door_held_open(harness: Build) -> None:
    h = harness([{"type": "door_held_open", "after": "10m"}])
    h.obs("door-1", "door_open", True)
    assert h.advance(9 * M) == []
    h.obs("door-1", "door_open", False)
    assert h.advance(H) == []
    h.obs("door-1", "door_open", True)
    got = h.advance(11 * M)
    assert len(raised(got, "door_held_open")) == 1
    assert len(cleared(h.obs("door-1", "door_open", False), "door_held_open")) == 1


def test_every_door_rule_watches_a_controllers_door_input(harness: Build) -> None:
    # An OSDP reader's door input reports door_open like a contact (agreed metric): the
    # door rules watch any device that reports it, not only kind door_contact.
    h = harness([{"type": "door_night", "quiet_hours": "22:00-06:00"},
                 {"type": "door_held_open", "after": "10m"}],
                start=local("Asia/Shanghai", 2026, 11, 22, 23, 0))
    got = h.obs("gate-1", "door_open", True)
    assert [(t.type, t.device_ids) for t in raised(got)] == [("door_night", ("gate-1",))]
    got = h.advance(11 * M)
    assert [t.device_ids for t in raised(got, "door_held_open")] == [("gate-1",)]
    assert len(cleared(h.obs("gate-1", "door_open", False), "door_held_open")) == 1


def test_no_exit_counts_a_controllers_door_input(harness: Build) -> None:
    h = harness([{"type": "no_exit", "window": "3d"}])
    life = Life(h)
    h.obs("pir-1", "motion", True)
    assert raised(life.run(24 * H, step=15 * M)) == []
    # a day later the resident goes out through the reader's door: a new 3-day window
    h.obs("gate-1", "door_open", True)
    h.obs("gate-1", "door_open", False)
    h.advance(5 * M)
    h.obs("pir-1", "motion", True)  # back inside: home, so no_exit is watching
    got = life.run(71 * H, step=15 * M)
    assert raised(got) == []
    got = life.run(2 * H, step=15 * M)
    assert len(raised(got, "no_exit")) == 1
    assert len(cleared(h.obs("gate-1", "door_open", True), "no_exit")) == 1


def test_access_denied_repeated(harness: Build) -> None:
    h = harness([{"type": "access_denied_repeated", "count": 3, "within": "5m"}])
    for _ in range(3):  # spread out: never 3 within 5 min
        assert h.obs("gate-1", "card", "1234", granted=False) == []
        h.advance(3 * M)
    h.advance(H)
    h.obs("gate-1", "card", "1", granted=False)
    h.obs("gate-1", "card", "2", granted=True)
    h.obs("gate-1", "card", "3", granted=None)
    h.advance(30)
    h.obs("gate-1", "card", "4", granted=False)
    assert h.out == []
    h.advance(30)
    got = h.obs("gate-1", "card", "5", granted=False)
    assert [(t.type, t.details["count"]) for t in got] == [("access_denied_repeated", 3)]
    got = h.advance(16 * M)
    assert len(cleared(got, "access_denied_repeated")) == 1


# -- power -------------------------------------------------------------------------


def test_no_power_use(harness: Build) -> None:
    h = harness([{"type": "no_power_use", "window": "24h", "min_kwh": 0.1}])
    life = Life(h)
    got = life.run(3 * 86400, use_kwh=0.01)  # a fridge: ~3 kWh a day
    assert raised(got) == []
    got = life.run(23 * H, use_kwh=0.0)
    assert raised(got) == []
    got = life.run(2 * H, use_kwh=0.0)
    assert len(raised(got, "no_power_use")) == 1
    got = life.run(30 * M, use_kwh=0.05)
    assert len(cleared(got, "no_power_use")) == 1


def test_power_high_stove_left_on(harness: Build) -> None:
    h = harness([{"type": "power_high", "above": 2000, "window": "1h"}])
    life = Life(h)
    life.power = 2100.0  # a kettle for 5 minutes, then off
    life.run(5 * M)
    life.power = 80.0
    life.run(H)
    life.power = 2500.0
    got = life.run(55 * M)
    assert raised(got) == []
    got = life.run(10 * M)
    assert len(raised(got, "power_high")) == 1
    life.power = 1900.0  # above the 1800 W hysteresis line
    assert cleared(life.run(10 * M)) == []
    life.power = 300.0
    assert len(cleared(life.run(5 * M), "power_high")) == 1


# -- device health -------------------------------------------------------------------


def test_device_offline_silence_alive_and_cooldown(harness: Build) -> None:
    h = harness([{"type": "device_offline", "after": "30m", "cooldown": "10m"}],
                devices=[{"id": "water-1", "kind": "water_meter"},
                         {"id": "sos-1", "kind": "sos_button", "protocol": "rulestest_rf"}])
    h.obs("water-1", "water_total_m3", 1.0)
    got = h.advance(31 * M)
    assert [(t.type, t.device_ids) for t in raised(got)] == [("device_offline", ("water-1",))]
    assert raised(got)[0].details["after_s"] == 1800
    assert len(cleared(h.obs("water-1", "water_total_m3", 1.0), "device_offline")) == 1
    # Flapping: unreachable again within the cooldown waits, and is dropped if it recovers.
    assert h.obs("water-1", "alive", False) == []
    h.advance(M)
    assert h.obs("water-1", "water_total_m3", 1.0) == []
    h.obs("water-1", "alive", False)
    got = h.advance(10 * M)
    assert [t.details["reason"] for t in raised(got)] == ["unreachable"]
    # The 433 MHz button has no heartbeat: days of silence are normal.
    assert all("sos-1" not in t.device_ids for t in h.out)


def test_device_never_heard_goes_offline(harness: Build) -> None:
    h = harness([{"type": "device_offline"}],
                devices=[{"id": "power-1", "kind": "power_meter", "offline_after": "10m"}])
    got = h.advance(11 * M)
    assert [t.device_ids for t in raised(got)] == [("power-1",)]


def test_battery_low_hysteresis(harness: Build) -> None:
    h = harness([{"type": "battery_low", "below": 15}])
    assert len(raised(h.obs("pir-1", "battery_pct", 14))) == 1
    assert h.obs("pir-1", "battery_pct", 17) == []
    assert h.obs("pir-1", "battery_pct", 14) == []
    assert len(cleared(h.obs("pir-1", "battery_pct", 21))) == 1
    assert str(h.out[0].severity) == "low"
    assert h.advance(10 * H) == []  # low severity does not escalate
    assert len(raised(h.obs("door-1", "battery_low", True))) == 1


def test_tamper(harness: Build) -> None:
    h = harness([{"type": "tamper"}], language="zh")
    got = h.obs("pir-2", "tamper", True)
    assert got[0].message == "设备被拆动：pir-2"
    assert h.obs("pir-2", "tamper", True) == []
    assert len(cleared(h.obs("pir-2", "tamper", False))) == 1


def test_devices_option_limits_a_rule(harness: Build) -> None:
    h = harness([{"type": "tamper", "devices": ["pir-1"]}])
    assert h.obs("pir-2", "tamper", True) == []
    assert len(h.obs("pir-1", "tamper", True)) == 1


def test_broken_rule_does_not_silence_others(harness: Build, monkeypatch: Any) -> None:
    h = harness([{"type": "tamper"}, {"type": "sos"}])
    rule = h.engine.rules_by_site["room-1"][0]

    def boom(*_: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(rule, "on_observation", boom)
    assert len(h.obs("sos-1", "sos", True)) == 1


def test_payload_shape(harness: Build) -> None:
    h = harness([{"type": "sos"}])
    t = h.obs("sos-1", "sos", True)[0]
    p = t.to_payload("gw-test-0001", h.tz)
    assert p["schema"] == "hearthgate.alert/1" and p["state"] == "raised"
    assert p["raised_at"].endswith("+08:00") and p["resident_id"] == "r-1"
    assert p["device_ids"] == ["sos-1"]
    _ = timedelta


def test_messages_name_the_device(harness: Build) -> None:
    h = harness([{"type": "battery_low"}, {"type": "device_offline"}], language="zh",
                devices=[{"id": "sos-9", "kind": "sos_button", "name": "卫生间拉绳"}])
    [low] = h.obs("sos-9", "battery_pct", 5)
    assert low.message == "电池电量低：卫生间拉绳 (sos-9)（5%）"
    [off] = h.obs("sos-9", "alive", False)
    assert off.message == "设备无法连接：卫生间拉绳 (sos-9)"
