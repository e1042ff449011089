"""The routine rules on a simulated clock: learning, the learned alerts, the fixed fallback,
presence radars, restarts and ±12 h wall-clock jumps, corrupt learned history."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

from tests.rules.support import Harness, local, make_config

H = 3600.0
M = 60.0
ROOMS: list[dict[str, Any]] = [
    {"id": "pir-bed", "kind": "motion_sensor", "room": "bedroom"},
    {"id": "pir-bath", "kind": "motion_sensor", "room": "bathroom"},
    {"id": "pir-living", "kind": "motion_sensor", "room": "living"},
    {"id": "radar-living", "kind": "presence_sensor", "room": "living"},
]
RULES = [{"type": "not_up"}, {"type": "stillness"}, {"type": "night_bathroom"}]


def home(rules: list[dict[str, Any]] = RULES) -> Harness:
    devices = [d for d in ROOMS if d["kind"] != "presence_sensor"]
    return Harness(make_config(rules, devices=devices), local("Asia/Shanghai", 2026, 11, 2, 0, 0))


def ordinary_day(h: Harness, rng: random.Random, day: int) -> None:
    """A night visit to the bathroom, up at about 07:00, the day in the living room."""
    h.advance_to_local(2, int(rng.uniform(0, 40)), days=0)
    h.obs("pir-bed", "motion", True)
    for _ in range(3):
        h.advance(rng.uniform(60, 120))
        h.obs("pir-bath", "motion", True)
    h.advance(90)
    h.obs("pir-bed", "motion", True)
    h.advance_to_local(6, 40 + int(rng.uniform(0, 19)))
    while h.now_local().hour < 22:
        if rng.random() < 0.1:  # a visit to the bathroom, and back
            h.obs("pir-bath", "motion", True)
            h.advance(rng.uniform(2, 5) * M)
        h.obs("pir-living", "motion", True)
        h.advance(rng.uniform(3, 25) * M)
    h.obs("pir-bed", "motion", True)
    h.advance_to_local(0, 0, days=1)


def learned_home(days: int = 16, seed: int = 5) -> Harness:
    h = home()
    rng = random.Random(seed)
    for day in range(days):
        ordinary_day(h, rng, day)
    assert h.types() == [], "ordinary days raise nothing"
    return h


def test_learning_state_then_learned() -> None:
    h = home()
    rules = h.engine.rules_by_site["room-1"]
    assert [r.blind_reason(h.clock.now()) for r in rules] == [
        "still learning (0 of 14 days; fixed window meanwhile)"] * 3
    rng = random.Random(1)
    for day in range(15):
        ordinary_day(h, rng, day)
    assert [r.learning() for r in rules] == [None] * 3
    assert [r.blind_reason(h.clock.now()) for r in rules] == [None] * 3


def test_not_up_by_the_usual_time_plus_margin() -> None:
    h = learned_home()
    h.advance_to_local(9, 0)  # nobody got up this morning
    [alert] = [t for t in h.out if str(t.state) == "raised"]
    assert alert.type == "not_up"
    assert alert.message.startswith("usually up by 0")
    assert "(16 days); no movement since 22:" in alert.message
    assert "T07:" in alert.details["deadline"]
    # Getting up clears it.
    got = h.obs("pir-living", "motion", True)
    assert [(t.type, str(t.state)) for t in got] == [("not_up", "cleared")]


def test_fall_in_the_bathroom_at_night() -> None:
    h = learned_home()
    h.advance_to_local(2, 30)
    h.obs("pir-bath", "motion", True)
    got = h.advance(H)
    [alert] = [t for t in got if str(t.state) == "raised"]
    assert alert.type == "night_bathroom" and alert.device_ids == ("pir-bath",)
    minutes = (alert.raised_at - (h.clock.now().wall - timedelta(hours=1))).total_seconds() / 60
    assert 15 <= minutes <= 30, "a learned short visit: the floor of 15 min, well inside 60"
    assert alert.details["usual_visit_s"] < 5 * M
    assert "night-time bathroom visits usually end within" in alert.message


def test_still_in_the_living_room_far_longer_than_usual() -> None:
    h = learned_home()
    h.advance_to_local(16, 0)
    h.obs("pir-living", "motion", True)
    got = h.advance(2 * H)
    [alert] = [t for t in got if str(t.state) == "raised"]
    assert alert.type == "stillness" and alert.details["last_room"] == "living"
    assert alert.details["window_s"] == 45 * M  # 1.5 × the usual 25 min, at least the floor
    assert "in living at this time (16 days)" in alert.message


def test_presence_is_not_wellness() -> None:
    """A radar that keeps seeing someone who does not move: still a stillness alert."""
    h = Harness(make_config(RULES, devices=ROOMS), local("Asia/Shanghai", 2026, 11, 2, 8, 0))
    h.obs("pir-living", "motion", True)
    for _ in range(30):
        h.advance(10 * M)
        h.obs("radar-living", "presence", True)
    alerts = [t for t in h.out if str(t.state) == "raised" and t.type == "stillness"]
    assert len(alerts) == 1 and alerts[0].details["present_not_moving"] is True
    assert "present but not moving" in alerts[0].message


@pytest.mark.parametrize("jump", [12 * H, -12 * H])
def test_wall_clock_jump_during_an_incident_changes_no_alert(jump: float) -> None:
    def run(with_jump: bool) -> list[tuple[str, str, float]]:
        h = learned_home()
        h.advance_to_local(2, 30)
        h.obs("pir-bath", "motion", True)
        h.advance(5 * M)
        if with_jump:
            now = h.clock.now()
            h.clock.set(now.mono, now.wall + timedelta(seconds=jump))
        h.advance(2 * H)
        return [(t.type, str(t.state), t.message) for t in h.out]

    jumped, steady = run(True), run(False)
    assert jumped == steady
    assert steady[0][:2] == ("night_bathroom", "raised")


# Restarts with a wall clock ±12 h wrong are in test_rules_scenarios.py's hypothesis test
# (the living_alone profile carries these rules); this harness drives the resident by the
# gateway's own wall clock, so a wrong one would move the resident too.
@pytest.mark.parametrize("wall_error", [0.0, 30.0])
def test_restart_during_learning_and_incident_changes_no_alert(wall_error: float) -> None:
    def run(restart: bool) -> list[tuple[str, str, str]]:
        h = home()
        rng = random.Random(9)
        for day in range(16):
            ordinary_day(h, rng, day)
            if restart and day in (3, 10):
                h.restart(30, reboot=True, wall_error=wall_error)
        h.advance_to_local(16, 0)
        h.obs("pir-living", "motion", True)
        h.advance(10 * M)
        if restart:
            h.restart(20, reboot=False, wall_error=wall_error)
        h.advance(3 * H)
        return [(t.type, str(t.state), t.message) for t in h.out]

    assert run(True) == run(False) != []


def test_corrupt_learned_history_falls_back_to_the_fixed_window() -> None:
    h = learned_home()
    state = json.loads(json.dumps(h.engine.snapshot(h.clock.now())))
    for key, rule_state in state["rules"].items():
        if key.endswith("/stillness"):
            rule_state["figures"]["days"] = {"living@5": ["x", -3, 1e12, None], "bad": 7}
            rule_state["figures"]["days_seen"] = "many"
    from hearthgate.engine_builder import build_engine

    h.engine = build_engine(h.config)
    h.engine.restore(state, h.clock.now())
    still = h.engine.rules_by_site["room-1"][1]
    assert still.corrupt == 6 and still.learning() is not None  # learning again
    h.advance_to_local(16, 0)
    h.obs("pir-living", "motion", True)
    got = h.advance(5 * H)
    [alert] = [t for t in got if str(t.state) == "raised"]
    assert alert.type == "stillness" and alert.details["window_s"] == 4 * H  # the fixed window


# -- stillness and inactivity: one alert for one stillness ------------------------------

WITH_INACTIVITY = [*RULES, {"type": "inactivity", "window": "4h", "active_hours": "07:00-22:00"}]


def heard(h: Harness, hours: float) -> list[Any]:
    """`hours` pass with every PIR heard now and then (battery reports), nobody moving."""
    got: list[Any] = []
    for _ in range(int(hours * 4)):
        got += h.advance(15 * M)
        for pir in ("pir-bed", "pir-bath", "pir-living"):
            got += h.obs(pir, "battery_pct", 90)
    return got


def test_while_learning_one_stillness_is_one_alert() -> None:
    """Both would raise at 4 h: stillness leaves it to inactivity while it learns."""
    h = home(WITH_INACTIVITY)
    h.advance_to_local(10, 0)
    h.obs("pir-living", "motion", True)
    heard(h, 5)
    assert h.types() == ["inactivity"]
    still = h.engine.rules_by_site["room-1"][1]
    assert still.blind_reason(h.clock.now()) == (
        "still learning (0 of 14 days; inactivity watches meanwhile)")
    h.obs("pir-living", "motion", True)
    assert h.types("cleared") == ["inactivity"]


def test_once_learned_stillness_raises_first() -> None:
    h = home(WITH_INACTIVITY)
    rng = random.Random(5)
    for day in range(16):
        ordinary_day(h, rng, day)
    assert h.types() == []
    h.advance_to_local(6, 50)
    h.obs("pir-living", "motion", True)  # up as usual
    h.advance_to_local(16, 0)
    h.obs("pir-living", "motion", True)
    got = heard(h, 5)
    assert [t.type for t in got if str(t.state) == "raised"] == ["stillness", "inactivity"]
    first, second = (t for t in got if str(t.state) == "raised")
    assert (second.raised_at - first.raised_at).total_seconds() > 2 * H


@pytest.mark.parametrize("inactivity", [
    {"type": "inactivity", "window": "6h", "active_hours": "07:00-22:00"},  # later
    {"type": "inactivity", "window": "4h", "active_hours": "09:00-22:00"},  # shorter hours
])
def test_stillness_keeps_its_fixed_window_when_inactivity_would_be_later(
        inactivity: dict[str, Any]) -> None:
    h = home([*RULES, inactivity])
    h.advance_to_local(10, 0)
    h.obs("pir-living", "motion", True)
    heard(h, 4.25)
    assert "stillness" in h.types()  # (at 14:00 the shorter hours are the same 4 h)
    assert h.engine.rules_by_site["room-1"][1].cover is None


def test_stillness_speaks_when_inactivity_cannot_hear() -> None:
    """Every motion sensor offline: inactivity is blind, and stillness no longer defers."""
    h = home(WITH_INACTIVITY)
    still = h.engine.rules_by_site["room-1"][1]
    h.advance_to_local(10, 0)
    h.obs("pir-living", "motion", True)
    assert still.covered(h.clock.now())
    h.advance(3 * H)  # nothing heard from the PIRs for 3 h: offline
    assert not still.covered(h.clock.now())
