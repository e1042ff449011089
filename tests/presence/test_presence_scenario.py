"""The scenario format: parsing (YAML, JSON lines), timing, silence, and the simulate CLI."""

from __future__ import annotations

import os
import tty
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hearthgate.core.clock import SimulatedClock
from hearthgate.simulators.presence import simulate_main
from hearthgate.simulators.scenario import (
    ScenarioAction,
    ScenarioError,
    load_scenario,
    parse_scenario,
    play,
    timeline,
)

START = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)  # 06:00 next day in Shanghai


def test_yaml_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "night.yaml"
    path.write_text(
        """timezone: Asia/Shanghai
start: "2026-11-22T06:00:00+08:00"
devices:
  sos-301: {protocol: rflink, match: "EV1527;ID=0x5a3c1"}
  gate-a: {protocol: osdp, address: 1}
steps:
  - {at: 10s, device: sos-301, do: press}
  - {every: 2h, from: "07:00", until: "12:00", device: pir-301, do: motion}
  - {at: "03:00", device: door-301, do: door_open}
  - {at: 1h, device: gate-a, do: card, card: "123:4567"}
  - {at: 90m, device: pir-301, do: silent}
"""
    )
    scenario = load_scenario(path)
    assert scenario.devices["sos-301"].options == {"match": "EV1527;ID=0x5a3c1"}
    assert scenario.devices_of("osdp").keys() == {"gate-a"}
    actions = list(timeline(scenario, START, 86400))
    got = [(a.offset, a.device, a.do) for a in actions]
    assert got == [
        (10.0, "sos-301", "press"),
        (3600.0, "pir-301", "motion"),  # 07:00 local
        (3600.0, "gate-a", "card"),
        (5400.0, "pir-301", "silent"),  # 09:00 and 11:00 motion: silent by then
        (75600.0, "door-301", "door_open"),  # 03:00 the next night
    ]
    assert actions[2].card == (123, 4567)


def test_jsonl_scenario_and_midnight_ranges(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"timezone": "UTC"}\n'
        "# a comment\n"
        '{"every": "1h", "from": "22:00", "until": "01:00", "device": "d", "do": "motion"}\n'
        '{"at": "10m", "device": "d", "do": "silent"}\n'
        '{"at": "30m", "device": "d", "do": "online"}\n'
        '{"every": "30s", "count": 2, "device": "e", "do": "press", "repeats": 3}\n'
    )
    scenario = load_scenario(path)
    got = [(a.offset, a.device, a.do) for a in timeline(scenario, START, 86400)]
    assert got == [
        (0.0, "d", "motion"),
        (0.0, "e", "press"),
        (30.0, "e", "press"),
        (600.0, "d", "silent"),
        (1800.0, "d", "online"),
        (3600.0, "d", "motion"),  # 23:00
        (7200.0, "d", "motion"),  # 00:00
        (10800.0, "d", "motion"),  # 01:00 (until is inclusive)
    ]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"steps": [{"device": "d", "do": "press"}]}, "exactly one of"),
        ({"steps": [{"at": "1s", "every": "1m", "device": "d", "do": "press"}]}, "exactly one"),
        ({"steps": [{"at": "soon", "device": "d", "do": "press"}]}, "not a duration"),
        ({"steps": [{"at": "1s", "device": "d", "do": "dance"}]}, "do"),
        ({"steps": [{"at": "1s", "device": "d", "do": "card"}]}, "card"),
        ({"steps": [{"at": "1s", "device": "d", "do": "card", "card": "12-34"}]}, "FACILITY"),
        ({"steps": [{"at": "1s", "device": "d", "do": "battery"}]}, "value"),
        ({"steps": [{"every": "0s", "device": "d", "do": "motion"}]}, "longer than zero"),
        ({"timezone": "Mars/Olympus", "steps": []}, "time zone"),
        ({"steps": [{"at": "1s", "device": "d", "do": "press", "colour": 1}]}, "colour"),
        ("press", "mapping"),
    ],
)
def test_bad_scenarios(data: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data)


def test_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"at": "1s", "device": "d", "do": "press"}\n{oops\n')
    with pytest.raises(ScenarioError, match="line 2"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="line 1"):
        bad.write_text('[1]\n')
        load_scenario(bad)
    yaml = tmp_path / "bad.yaml"
    yaml.write_text("steps: [\n")
    with pytest.raises(ScenarioError, match="not YAML"):
        load_scenario(yaml)
    with pytest.raises(ScenarioError):
        load_scenario(tmp_path / "missing.yaml")


class Recorder:
    def __init__(self, clock: SimulatedClock, devices: set[str]) -> None:
        self.clock = clock
        self.devices = devices
        self.seen: list[tuple[float, str]] = []

    def handles(self, device: str) -> bool:
        return device in self.devices

    async def perform(self, action: ScenarioAction) -> None:
        self.seen.append((self.clock.now().mono, action.do))


async def test_player_waits_on_the_clock(clock: SimulatedClock) -> None:
    import asyncio

    scenario = parse_scenario({"steps": [
        {"at": "5m", "device": "a", "do": "motion"},
        {"at": "1m", "device": "a", "do": "press"},
        {"at": "2m", "device": "nobody", "do": "press"},
    ]})
    rec = Recorder(clock, {"a"})
    t0 = clock.now().mono
    task = asyncio.create_task(play(scenario, clock, [rec], duration=3600))
    await asyncio.sleep(0)  # the player starts and sleeps until its first step
    await clock.advance(60)
    assert rec.seen == [(t0 + 60, "press")]
    await clock.advance(600)
    report = await task
    assert rec.seen == [(t0 + 60, "press"), (t0 + 300, "motion")]
    assert [a.device for a in report.unhandled] == ["nobody"]


def test_simulate_rflink_cli_presses_on_a_serial_port(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        code = simulate_main(
            "rflink", ["--serial", os.ttyname(slave), "--press", "EV1527;ID=5a3c1",
                       "--repeats", "3", "--duration", "300ms"]
        )
        assert code == 0
        os.set_blocking(master, False)
        data = os.read(master, 4096)
    finally:
        os.close(master)
        os.close(slave)
    lines = data.decode().split("\r\n")
    assert lines[0].startswith("20;00;Nodo RadioFrequencyLink")
    press = "EV1527;ID=05A3C1;SWITCH=1;CMD=ON;"
    assert [line.split(";", 2)[2] for line in lines[1:4]] == [press] * 3


def test_simulate_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_main("toaster", []) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [{at: 1s, device: d, do: fly}]\n")
    assert simulate_main("rflink", ["--scenario", str(bad)]) == 2
    assert simulate_main("osdp", ["--bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown simulator" in err and "bad.yaml" in err


REPO = Path(__file__).resolve().parents[2]


def test_examples_in_config_and_docs_are_valid(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    from hearthgate.config import load_config
    from hearthgate.simulators.scenario import devices_from_config
    from tests.config.config_samples import as_installed

    config = load_config(as_installed(REPO / "config" / "devices-home.yaml", tmp_path))
    assert {d.protocol for d in config.devices} == {"zigbee2mqtt", "rflink", "osdp", "gpio"}
    docs = (REPO / "docs" / "devices.md").read_text()
    section = docs[docs.index("## Scenarios"):]
    begin = section.index("```yaml") + len("```yaml")
    block = section[begin : section.index("```", begin)]
    scenario = parse_scenario(YAML(typ="safe").load(block)).with_devices(
        devices_from_config(config)
    )
    assert len(scenario.steps) == 6
    assert scenario.devices["sos-bath"].options["match"] == "EV1527;ID=0x5a3c1"


async def test_simulate_rflink_press_stays_up_and_presses_on_a_key(tmp_path: Path) -> None:
    """`--press` no longer exits at once (the gateway would see its port vanish and call
    the button offline): it stays until stopped, pressing again on Enter."""
    import asyncio
    import sys

    from hearthgate.devkit.testkit import REPO

    link = tmp_path / "ttyRF"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hearthgate", "simulate", "rflink", "--link", str(link),
        "--press", "EV1527;ID=5a3c1", "--repeats", "1", "--key", cwd=REPO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    async with asyncio.timeout(20):
        lines = [(await proc.stdout.readline()).decode() for _ in range(3)]
        assert "pressed EV1527;ID=5a3c1" in lines[1] and "Enter" in lines[2]
        assert link.is_symlink() and proc.returncode is None
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        assert "pressed EV1527" in (await proc.stdout.readline()).decode()
        proc.terminate()
        assert await proc.wait() == 0
    assert not link.is_symlink()


def test_simulate_scenario_honours_duration_after_its_last_step(tmp_path: Path) -> None:
    import time

    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "devices: {b: {protocol: rflink, match: \"EV1527;ID=0x5a3c1\"}}\n"
        "steps: [{at: 0s, device: b, do: press}]\n")
    began = time.monotonic()
    assert simulate_main("rflink", ["--link", str(tmp_path / "ttyRF"), "--scenario",
                                    str(scenario), "--duration", "2s", "--speed", "4"]) == 0
    assert time.monotonic() - began >= 0.5  # 2 s of scenario time at 4x, not at once
    assert not (tmp_path / "ttyRF").is_symlink()
