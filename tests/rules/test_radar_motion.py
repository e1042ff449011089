"""Presence radars and the absence rules: a radar's movement is a sign of life, its still
presence is not; `check` accepts radars for `inactivity` and warns when only radars feed it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from hearthgate.check import run_check
from tests.rules.support import Harness, local, make_config

H = 3600.0
M = 60.0
RADAR_HOME: list[dict[str, Any]] = [
    {"id": "radar-1", "kind": "presence_sensor"},
    {"id": "fall-1", "kind": "fall_sensor"},
    {"id": "door-1", "kind": "door_contact"},
]
RULES = [{"type": "inactivity", "window": "4h", "active_hours": "00:00-23:59"}]


def harness(devices: list[dict[str, Any]]) -> Harness:
    return Harness(make_config(RULES, devices=devices), local("Asia/Shanghai", 2026, 11, 22, 8))


def run(h: Harness, seconds: float, beat: tuple[str, ...] = ("radar-1", "fall-1")) -> list[Any]:
    """Time passing with the radars online (a report every 10 minutes), nothing new."""
    got: list[Any] = []
    for _ in range(round(seconds / (10 * M))):
        got += h.advance(10 * M)
        for d in beat:
            got += h.obs(d, "linkquality", 120)
    return got


def raised(got: list[Any]) -> list[Any]:
    return [t for t in got if str(t.state) == "raised" and t.type == "inactivity"]


def test_a_radars_movement_is_a_sign_of_life_and_its_presence_is_not() -> None:
    h = harness(RADAR_HOME)
    h.obs("radar-1", "motion", True)  # the driver's `movement` / `motion_state`: a new move
    assert raised(run(h, 3 * H + 50 * M)) == []
    h.obs("fall-1", "motion", True)  # a fall radar that reports movement counts the same
    assert raised(run(h, 3 * H + 50 * M)) == []
    # Someone lies still in front of the radars for hours: present, and not moving.
    h.obs("radar-1", "presence", True)
    h.obs("fall-1", "presence", True)
    got = run(h, 30 * M)
    a = raised(got)
    assert len(a) == 1
    assert set(a[0].device_ids) == {"radar-1", "fall-1"}
    # Movement again clears it.
    got = h.obs("radar-1", "motion", True)
    assert [str(t.state) for t in got if t.type == "inactivity"] == ["cleared"]


def test_a_radar_and_a_pir_both_reset_the_count() -> None:
    h = harness([*RADAR_HOME, {"id": "pir-1", "kind": "motion_sensor"}])
    beat = ("radar-1", "fall-1", "pir-1")
    for _ in range(4):  # 12 h of alternating motion, never 4 h without
        h.obs("pir-1", "motion", True)
        assert raised(run(h, 3 * H, beat)) == []
        h.obs("radar-1", "motion", True)
        assert raised(run(h, 3 * H, beat)) == []


def test_radars_offline_pause_inactivity_like_pirs() -> None:
    h = harness(RADAR_HOME)
    h.obs("radar-1", "motion", True)
    h.obs("radar-1", "alive", False)
    h.obs("fall-1", "alive", False)
    assert raised(run(h, 10 * H, beat=())) == []  # device_offline speaks, not inactivity


def write(tmp: Path, devices: list[dict[str, Any]], rule: dict[str, Any]) -> Path:
    path = tmp / "config.yaml"
    data = {
        "gateway": {"id": "gw-test"}, "uplink": {"host": "127.0.0.1"},
        "buses": [{"id": "zigbee", "type": "mqtt"}],
        "devices": [{"site": "room-1", "protocol": "zigbee2mqtt", "bus": "zigbee",
                     "topic": f"zigbee2mqtt/{d['id']}", **d} for d in devices],
        "sites": [{"id": "room-1", "rules": [rule]}],
    }
    with path.open("w") as f:
        YAML().dump(data, f)
    return path


def check(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    return run_check(path, out=io.StringIO(), err=err), err.getvalue()


def test_check_takes_a_radar_for_inactivity_and_warns_when_only_radars_feed_it(
        tmp_path: Path) -> None:
    radar = {"id": "radar-1", "kind": "presence_sensor", "model": "ZG-204ZK"}
    code, err = check(write(tmp_path, [radar],
                            {"type": "inactivity", "devices": ["radar-1"]}))
    assert code == 0, err
    assert "rule 'inactivity' of site 'room-1' reads only radars (radar-1)" in err
    assert "never by presence alone" in err
    pir = {"id": "pir-1", "kind": "motion_sensor"}
    code, err = check(write(tmp_path, [radar, pir], {"type": "inactivity"}))
    assert code == 0 and "reads only radars" not in err
