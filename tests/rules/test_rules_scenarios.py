"""A simulated resident: 30 quiet days raise nothing; each incident raises its alert in time;
restarts and wrong wall clocks at points hypothesis picks change none of it."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hearthgate.config import GatewayConfig
from hearthgate.core.model import AlertTransition, Instant
from hearthgate.engine_builder import build_engine
from hearthgate.replay import Event, Replayer, replay_events, run_replay, simulated_instant
from hearthgate.rules import hazards
from hearthgate.rules.profiles import expand_rules
from tests.rules.scenario import DEVICES, INCIDENTS, POLL, SITE, simulate, to_jsonl
from tests.rules.support import TEST_REGISTRY, config_data, make_config

H = 3600.0


def living_alone(timezone: str = "Asia/Shanghai", **overrides: dict[str, Any]) -> GatewayConfig:
    rules = expand_rules("living_alone", [{"type": k, **v} for k, v in overrides.items()])
    return make_config(rules, devices=DEVICES, site=SITE, timezone=timezone)


def raised(out: list[AlertTransition]) -> list[AlertTransition]:
    return [t for t in out if str(t.state) == "raised"]


@cache
def scenario(incident: str | None, days: int, seed: int, tz: str = "Asia/Shanghai",
             start: str = "2026-11-02") -> tuple[list[Event], dict[str, Any]]:
    return simulate(days, seed, incident=incident, incident_day=3, timezone=tz,
                    start=datetime.fromisoformat(start).date())


@pytest.mark.parametrize(
    ("seed", "tz", "start"),
    [(1, "Asia/Shanghai", "2026-11-02"), (2, "Europe/Berlin", "2026-10-12")],  # across DST
)
def test_thirty_ordinary_days_raise_nothing(seed: int, tz: str, start: str) -> None:
    events, _ = scenario(None, 30, seed, tz, start)
    assert len(events) > 30_000
    # How fast is a bench figure (bench/routine_suite.py prints events/s), not a test: a
    # timed assertion fails on a loaded machine.
    assert replay_events(build_engine(living_alone(tz)), events) == []


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


def _seconds(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds()


def test_fall_then_no_motion_raises_inactivity_within_window() -> None:
    events, facts = scenario("fall", 6, 3)
    out = raised(replay_events(build_engine(living_alone()), events))
    inactivity = [t for t in out if t.type == "inactivity"]
    assert len(inactivity) == 1
    a = inactivity[0]
    last_motion = datetime.fromisoformat(a.details["last_motion_at"])
    assert last_motion <= _at(facts["fall"])
    assert 4 * H <= _seconds(a.raised_at, last_motion) <= 4 * H + POLL
    assert _seconds(a.raised_at, _at(facts["fall"])) <= 4 * H + POLL
    # Lying there, nobody uses water either. The routine rule `stillness`, still learning
    # after 3 days, would raise with its fixed window, the same 4 h: it leaves that to
    # inactivity, so one stillness is one alert (docs/rules.md, "stillness and inactivity").
    assert {t.type for t in out} == {"inactivity", "no_water"}
    [nw] = [t for t in out if t.type == "no_water"]
    last_use = datetime.fromisoformat(nw.details["last_use_at"])
    assert 12 * H <= _seconds(nw.raised_at, last_use) <= 12 * H + POLL


def test_a_day_without_water_raises_no_water() -> None:
    events, facts = scenario("no_water_day", 6, 3)
    out = raised(replay_events(build_engine(living_alone()), events))
    assert [t.type for t in out] == ["no_water"]
    last_use = datetime.fromisoformat(out[0].details["last_use_at"])
    assert last_use <= _at(facts["no_water_from"])
    assert 12 * H <= _seconds(out[0].raised_at, last_use) <= 12 * H + POLL


def test_door_opened_at_three_raises_door_night() -> None:
    events, facts = scenario("door_night", 6, 3)
    out = raised(replay_events(build_engine(living_alone()), events))
    assert [t.type for t in out] == ["door_night"]
    assert abs(_seconds(out[0].raised_at, _at(facts["door_at"]))) <= 1


def test_sos_raises_once_however_often_the_radio_repeats() -> None:
    events, facts = scenario("sos", 6, 3)
    out = replay_events(build_engine(living_alone()), events)
    assert [t.type for t in raised(out)] == ["sos"]
    assert abs(_seconds(raised(out)[0].raised_at, _at(facts["sos_at"]))) <= 1
    assert [str(t.state) for t in out] == ["raised", "escalated", "escalated", "escalated"]


def test_tap_left_running_raises_continuous_water() -> None:
    events, facts = scenario("tap", 6, 3)
    out = raised(replay_events(build_engine(living_alone()), events))
    assert [t.type for t in out] == ["continuous_water"]
    assert 2 * H - POLL <= _seconds(out[0].raised_at, _at(facts["tap_from"])) <= 2 * H + POLL + 10


def test_silent_meter_raises_device_offline_and_never_no_water() -> None:
    events, facts = scenario("meter_silent", 6, 3)
    out = raised(replay_events(build_engine(living_alone()), events))
    assert [(t.type, t.device_ids) for t in out] == [("device_offline", ("water-1",))]
    assert 0 < _seconds(out[0].raised_at, _at(facts["silent_from"])) <= 1800 + POLL


def test_weekend_away_raises_nothing_but_would_without_presence() -> None:
    events, facts = scenario("weekend_away", 8, 3)
    assert facts["away"][1] - facts["away"][0] == 56 * H
    assert replay_events(build_engine(living_alone()), events) == []
    blind = living_alone(inactivity={"pause_when_away": False},
                         no_water={"pause_when_away": False})
    out = raised(replay_events(build_engine(blind), events))
    assert {t.type for t in out} == {"inactivity", "no_water"}


def test_incidents_are_all_covered() -> None:
    names = {n.removeprefix("test_") for n in globals() if n.startswith("test_")}
    assert len(INCIDENTS) == 7 and names


# -- restarts and wrong wall clocks --------------------------------------------------

RESTART_SCENARIOS = ("fall", "no_water_day", "door_night", "tap", "meter_silent",
                     "weekend_away", "sos")


def run_with_restarts(
    config: GatewayConfig, events: list[Event], restarts: list[tuple[int, float, float, bool]]
) -> list[AlertTransition]:
    """Replay with gateway restarts before chosen events.

    Each restart: snapshot (JSON round trip), a new engine, restore. A reboot restarts
    the monotonic clock near zero; the wall clock comes up wrong by `error` seconds and
    NTP steps it right `delay` seconds later.
    """
    start = events[0].at
    engine = build_engine(config)
    mono_shift, wall_error = 0.0, 0.0
    ntp_at: float | None = None
    plan = sorted(restarts)
    out: list[AlertTransition] = []

    def seen(true: Instant) -> Instant:
        return Instant(true.mono + mono_shift, true.wall + timedelta(seconds=wall_error))

    for i, event in enumerate(events):
        true = simulated_instant(event.at, start)
        while plan and plan[0][0] <= i:
            _, error, delay, reboot = plan.pop(0)
            out += Replayer(engine).advance_to(seen(true))
            state = json.loads(json.dumps(engine.snapshot(seen(true))))
            if reboot:
                mono_shift = 20.0 - true.mono
            wall_error = error
            ntp_at = true.mono + delay
            engine = build_engine(config)
            engine.restore(state, seen(true))
        if ntp_at is not None and true.mono >= ntp_at:
            wall_error, ntp_at = 0.0, None
        out += Replayer(engine).feed(event, seen(true))
    return out


@cache
def baseline(incident: str) -> tuple[tuple[str, datetime], ...]:
    events, _ = scenario(incident, 8 if incident == "weekend_away" else 6, 3)
    out = raised(replay_events(build_engine(living_alone()), events))
    return tuple((t.type, t.raised_at) for t in out)


restart_st = st.tuples(
    st.floats(0, 1),
    st.integers(-12 * 60, 12 * 60).map(lambda m: m * 60.0),  # wall error, seconds
    st.integers(1, 15).map(lambda m: m * 60.0),  # NTP syncs after
    st.booleans(),  # reboot (monotonic restarts) or service restart
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incident=st.sampled_from(RESTART_SCENARIOS),
       restarts=st.lists(restart_st, min_size=1, max_size=3))
# A believed 10-minute wall-clock gap during a running tap once ended the run (the credited
# downtime looked like a gap in the meter's readings): the alert came 20 minutes late.
@example(incident="tap", restarts=[(0.5625, 600.0, 60.0, False)])
# A reboot gave the meter, silent for 20 minutes, a fresh offline threshold: its
# device_offline came 20 minutes late.
@example(incident="meter_silent", restarts=[(0.6279426137550675, -19500.0, 480.0, True)])
@example(incident="sos", restarts=[(0.7706467162321216, 600.0, 60.0, False)]).xfail(
    raises=AssertionError,
    reason="a wall clock 10 min ahead at a restart 12 s after the door opened is believed as"
    " 10 min of downtime (docs/rules.md, policy 2), so door_held_open is raised for a door that"
    " closed at once; the same page promises a clock jump never raises an alert by itself",
)
def test_restarts_and_clock_jumps_give_the_same_alerts(
    incident: str, restarts: list[tuple[float, float, float, bool]]
) -> None:
    events, _ = scenario(incident, 8 if incident == "weekend_away" else 6, 3)
    plan = [(int(f * (len(events) - 1)), err, delay, reboot) for f, err, delay, reboot in restarts]
    out = raised(run_with_restarts(living_alone(), events, plan))
    expected = list(baseline(incident))
    # A wall clock wrong by less than the downtime it is believed for (1 h) is taken at
    # its word (docs/rules.md): alerts may come that much earlier, never later.
    slack = max((err for _, err, _, _ in plan if 0 < err <= 3660), default=0.0)
    got = [(t.type, t.raised_at) for t in out]
    assert len(got) == len(expected), (got, expected)
    for kind, at in expected:
        match = [g for g in got if g[0] == kind and -slack - 360 <= _seconds(g[1], at) <= 360]
        assert match, (kind, at, got)
        got.remove(match[0])


HAZARD_TYPES = {spec.name for spec in hazards.RULE_SPECS}


# -- the replay command --------------------------------------------------------------


def _write_config(tmp_path: Path, rules: list[dict[str, Any]]) -> Path:
    from ruamel.yaml import YAML

    data = config_data(rules, devices=DEVICES, site=SITE)
    path = tmp_path / "hearthgate.yaml"
    with path.open("w") as f:
        YAML().dump(data, f)
    return path


def test_replay_command_thirty_days_in_seconds(tmp_path: Path) -> None:
    events, facts = simulate(30, 4, incident="sos", incident_day=20)
    # Written out rule by rule, as an installer would; the profile's hazard rules are left
    # out because this home has no hazard sensors (check refuses a rule nothing can feed).
    rules = [r for r in expand_rules("living_alone", []) if r["type"] not in HAZARD_TYPES]
    cfg = _write_config(tmp_path, rules)
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(to_jsonl(events))
    out, err = io.StringIO(), io.StringIO()
    # How fast a replay runs is the benchmarks' business (bench/routine_suite.py prints
    # events replayed per second), not an assertion on a shared machine.
    assert run_replay(cfg, jsonl, out, err, TEST_REGISTRY) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(p["type"], p["state"]) for p in lines] == [("sos", "raised")] + [
        ("sos", "escalated")
    ] * 3
    first = lines[0]
    assert first["schema"] == "hearthgate.alert/1" and first["gateway_id"] == "gw-test-0001"
    assert first["raised_at"] == _at(facts["sos_at"]).astimezone(
        make_config([]).gateway.tz).isoformat(timespec="seconds")
    assert first["raised_at"].endswith("+08:00")
    assert len({p["event_id"] for p in lines}) == 4 and len({p["alert_id"] for p in lines}) == 1
    assert err.getvalue() == ""


BAD_LINES = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "an event is a JSON object"),
    ('{"at": "2026-11-22T07:00:00", "device_id": "pir-living", "metric": "motion", '
     '"value": true}', "needs a UTC offset"),
    ('{"at": "yesterday", "device_id": "pir-living", "metric": "motion", "value": true}',
     "not an ISO 8601 time"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-9", "metric": "motion", '
     '"value": true}', "unknown device 'pir-9'"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": 7, "metric": "motion", "value": true}',
     "'device_id' must be a string"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-living", "metric": "Motion!", '
     '"value": true}', "'metric' must be a name"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-living", "metric": "motion", '
     '"value": null}', "'value' must be"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-living", "metric": "motion", '
     '"value": [1]}', "'value' must be"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-living", "metric": "motion", '
     '"value": true, "colour": "red"}', "unknown key 'colour'"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-living", "site_id": "x", '
     '"metric": "motion", "value": true}', "belongs to site 'home-1'"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-living", "metric": "motion", '
     '"value": 1, "attrs": 5}', "'attrs' must be an object"),
    ('{"at": "2026-11-22T05:00:00+08:00", "device_id": "pir-living", "metric": "motion", '
     '"value": true}', "out of order"),
    ('{"at": "2026-11-22T07:00:00+08:00", "device_id": "pir-living", "metric": "motion", '
     '"value": "' + "x" * 70_000 + '"}', "longer than 65536 bytes"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_replay_bad_event_line(tmp_path: Path, line: str, message: str) -> None:
    cfg = _write_config(tmp_path, [{"type": "sos"}])
    good = ('{"at": "2026-11-22T06:00:00+08:00", "device_id": "pir-living", "metric": "motion",'
            ' "value": true}')
    (tmp_path / "e.jsonl").write_text(f"{good}\n\n{line}\n{good}\n")
    out, err = io.StringIO(), io.StringIO()
    assert run_replay(cfg, tmp_path / "e.jsonl", out, err, TEST_REGISTRY) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith(f"{tmp_path / 'e.jsonl'}:3: error: ")
    assert message in err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_replay_bad_bytes_and_missing_file(tmp_path: Path) -> None:
    cfg = _write_config(tmp_path, [{"type": "sos"}])
    (tmp_path / "e.jsonl").write_bytes(b'\xff\xfe{"at"\n')
    err = io.StringIO()
    assert run_replay(cfg, tmp_path / "e.jsonl", io.StringIO(), err, TEST_REGISTRY) == 2
    assert ":1: error: not UTF-8" in err.getvalue()
    err = io.StringIO()
    assert run_replay(cfg, tmp_path / "missing.jsonl", io.StringIO(), err, TEST_REGISTRY) == 2
    assert "missing.jsonl" in err.getvalue()


def test_replay_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gateway: {id: X}\n")
    (tmp_path / "e.jsonl").write_text("")
    err = io.StringIO()
    assert run_replay(path, tmp_path / "e.jsonl", io.StringIO(), err, TEST_REGISTRY) == 2
    assert err.getvalue().startswith(f"{path}:")
    assert ": error: " in err.getvalue()


def test_replay_empty_file_prints_nothing(tmp_path: Path) -> None:
    cfg = _write_config(tmp_path, [{"type": "sos"}])
    (tmp_path / "e.jsonl").write_text("\n")
    out = io.StringIO()
    assert run_replay(cfg, tmp_path / "e.jsonl", out, io.StringIO(), TEST_REGISTRY) == 0
    assert out.getvalue() == ""
