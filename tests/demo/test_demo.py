"""`hearthgate demo`: the whole showcase as a subprocess, and its parts on their own.

The end-to-end test runs the real thing (two mosquittos, two ptys with a 433 MHz
receiver and four meters, zigbee2mqtt, the gateway) for a whole simulated day at an
hour a second (what `make demo` shows), then checks the summary against the lines
the console printed, and that nothing it started is left behind.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hearthgate.cli import main as cli_main
from hearthgate.demo import runner as demo
from hearthgate.demo.clock import PacedClock
from hearthgate.demo.console import CareWorker, PlatformConsole
from hearthgate.devkit.testkit import REPO

P = "hearthgate/gw-demo-0001"


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def summary_rows(out: str) -> dict[str, list[int]]:
    """The summary's alert table: type -> [raised, escalated, acknowledged, cleared]."""
    rows = re.findall(r"^([a-z_]+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", out, re.MULTILINE)
    return {name: [int(x) for x in counts] for name, *counts in rows}


def test_a_day_runs_to_its_summary_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path))
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hearthgate", "demo", "--speed", "3600", "--hours", "24"],
        capture_output=True, text=True, env=env, timeout=90, cwd=REPO,
    )
    took = time.monotonic() - began
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert took < 60, took
    assert "== summary: 24 simulated hours" in out
    rows = summary_rows(out)

    # Both SOS presses (zigbee in room-301, 433 MHz in room-302) were raised, taken by
    # the care worker and cleared; neither was taken within 5 minutes, so each escalated.
    raised, escalated, acked, cleared = rows["sos"]
    assert (raised, acked, cleared) == (2, 2, 2) and escalated >= 2
    # The tap left running, the door at 03:00, the dead motion sensor, the weak pendant.
    assert rows["continuous_water"][0] == rows["continuous_water"][3] == 1
    assert rows["door_night"][0] == rows["door_night"][3] == 1
    assert rows["device_offline"][0] >= 1
    assert rows["battery_low"][0] == 1 and rows["battery_low"][3] == 0
    assert "open at the end: battery_low at room-302" in out
    # An absence rule: room-302 sat still from 16:35 past her 4 hours; she moved at 21:00.
    assert rows["inactivity"][0] == rows["inactivity"][3] == 1, out
    # The learned `stillness` rule, still on its fixed window on the demo's first day, sees
    # the same afternoon (at most once, cleared with it).
    assert rows.get("stillness", [0, 0, 0, 0])[0] == rows.get("stillness", [0, 0, 0, 0])[3] <= 1
    # An ordinary day otherwise: no false alarm of any other kind.
    assert set(rows) <= {"all", "sos", "continuous_water", "door_night", "device_offline",
                         "battery_low", "inactivity", "stillness"}, out
    assert rows["all"][0] == sum(r[0] for k, r in rows.items() if k != "all")
    assert "gateway status: online -> offline" in out
    m = re.search(r"readings forwarded: (\d+) in \d+ telemetry messages \((.*)\)", out)
    assert m and int(m.group(1)) > 1000, out
    assert all(f"{group} " in m.group(2) for group in ("water", "electricity", "motion", "door"))
    assert "pir-301 offline at Sun 18:" in out and "pir-301 back online at Sun 20:" in out

    # The console's lines agree with the summary, and come in time order.
    lines = out.splitlines()
    for kind, (raised, _, _, cleared) in rows.items():
        if kind != "all":
            assert sum(1 for x in lines if re.search(rf"\sRAISED\s+{kind}\s", x)) == raised
            assert sum(1 for x in lines if re.search(rf"\scleared\s+{kind}\s", x)) == cleared
    press = next(x for x in lines if "RAISED" in x and " sos " in x and "room-301" in x)
    # Pressed at 15:20; the gateway's own latency shows as simulated minutes.
    assert press.startswith("Sun 15:") and "[sos-301]" in press and "critical" in press
    assert any("RAISED" in x and "room-302" in x and "[sos-302]" in x for x in lines)
    assert any(re.search(r"RAISED\s+device_offline .*\[pir-301\]", x) for x in lines)
    assert any(x.startswith("Mon 03:0") and re.search(r"RAISED\s+door_night", x) for x in lines)
    assert any("acknowledged by worker-17" in x for x in lines)
    # In time order, but for what arrives late: a message that crossed another on the
    # way (an ack sent while an escalation was in flight) is minutes apart at this pace.
    minutes = [
        (0 if x.startswith("Sun") else 1440) + int(x[4:6]) * 60 + int(x[7:9])
        for x in lines if re.match(r"^(Sun|Mon) \d\d:\d\d ", x)
    ]
    assert minutes and all(b >= a - 10 for a, b in itertools.pairwise(minutes)), out

    # Clean shutdown: no broker, no temp dir left over.
    assert processes_mentioning(str(tmp_path)) == []
    assert [p.name for p in tmp_path.iterdir()] == []


def test_interrupted_it_stops_cleanly_with_a_summary_so_far(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path))
    # Its own session, as a terminal's Ctrl-C reaches the whole foreground group (the
    # brokers too).
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearthgate", "demo", "--speed", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if "gateway     online" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "interrupted: the summary covers the day so far" in out
    assert "== summary:" in out and "Traceback" not in err
    assert processes_mentioning(str(tmp_path)) == []
    assert [p.name for p in tmp_path.iterdir()] == []


def test_without_mosquitto_it_says_so_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "mosquitto_binary", lambda: None)
    assert demo.run_demo(["--hours", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mosquitto is not installed" in err[0]


@pytest.mark.parametrize(
    "argv", [["--speed", "0"], ["--hours", "0"], ["--hours", "100"], ["--speed", "fast"],
             ["--colour"]],
)
def test_bad_options_are_usage_errors(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["demo", *argv])
    assert exc.value.code == 2
    assert "hearthgate demo" in capsys.readouterr().err


def test_demo_help_lists_its_own_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(option in out for option in ("--speed", "--hours", "--quiet", "--language"))


def test_cli_passes_options_through_to_demo(monkeypatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(demo, "run_demo", lambda argv: seen.append(argv) or 0)
    assert cli_main(["demo", "--speed", "600", "--hours", "2", "--quiet"]) == 0
    assert seen == [["--speed", "600", "--hours", "2", "--quiet"]]
    with pytest.raises(SystemExit):
        cli_main(["check", "-c", "x.yaml", "--speed", "3"])


# -- the clock -----------------------------------------------------------------------


async def test_paced_clock_sleepers_reaim_when_the_pace_changes() -> None:
    clock = PacedClock(factor=1.0)
    sleeper = asyncio.create_task(clock.sleep(3600))  # an hour at real pace
    await asyncio.sleep(0.05)
    assert not sleeper.done()
    began = time.monotonic()
    clock.set_pace(36000)  # now an hour takes 0.1 s
    await asyncio.wait_for(sleeper, 2)
    assert time.monotonic() - began < 1.0
    assert clock.now().mono >= 3600
    clock.set_pace(1.0)
    before = clock.now()
    await clock.sleep(0.05)
    after = clock.now()
    assert 0.04 <= after.mono - before.mono < 1.0
    assert (after.wall - before.wall).total_seconds() == pytest.approx(
        after.mono - before.mono, abs=1e-5)


def test_paced_clock_rejects_a_pace_of_zero() -> None:
    with pytest.raises(ValueError):
        PacedClock(factor=0)
    with pytest.raises(ValueError):
        PacedClock().set_pace(-1)


# -- the console -------------------------------------------------------------------------


def alert(state: str, ts: str, **extra) -> bytes:
    body = {
        "schema": "hearthgate.alert/1", "event_id": f"e-{state}-{ts}", "alert_id": "a-1",
        "state": state, "type": "sos", "severity": "critical", "site_id": "room-301",
        "device_ids": ["sos-301"], "raised_at": "2026-11-22T15:20:00+08:00", "ts": ts,
        "message": "Emergency call (SOS)", "details": {},
    }
    body.update(extra)
    return json.dumps(body).encode()


def test_console_prints_what_arrives_and_counts_it() -> None:
    out = io.StringIO()
    console = PlatformConsole(P, out=out)
    raised_seen: list[dict] = []
    console.on_raised = raised_seen.append
    reading = {"device_id": "pir-301", "site_id": "room-301", "metric": "motion",
               "value": True, "unit": None}
    console.handle(f"{P}/telemetry", json.dumps({"readings": [
        dict(reading, ts="2026-11-22T06:10:00+08:00"),
        dict(reading, ts="2026-11-22T08:50:00+08:00"),
    ]}).encode())
    console.handle(f"{P}/alerts", alert("raised", "2026-11-22T15:20:00+08:00"))
    console.handle(f"{P}/alerts", alert("escalated", "2026-11-22T15:25:00+08:00",
                                        details={"escalation": 1}))
    console.expect_ack("ack-1", "sos")
    console.handle(f"{P}/cmd/result", json.dumps(
        {"id": "ack-1", "command": "ack", "ok": True, "error": None}).encode())
    console.handle(f"{P}/alerts", alert("cleared", "2026-11-22T15:27:00+08:00",
                                        details={"acknowledged_by": "worker-17"}))
    device = {"device_id": "pir-302", "site_id": "room-302", "online": True,
              "last_seen": "2026-11-22T16:00:00+08:00"}
    for online, ts in ((False, "16:00"), (True, "17:00"), (False, "18:00"), (True, "19:00")):
        console.handle(f"{P}/devices", json.dumps({
            "ts": f"2026-11-22T{ts}:00+08:00", "devices": [dict(device, online=online)]
        }).encode())
    console.handle(f"{P}/status", b'{"state": "offline"}')
    lines = out.getvalue().splitlines()

    assert lines[0].startswith("Sun 09:00  -          telemetry")
    assert "2 readings since 06:00" in lines[0]
    assert lines[1].startswith("Sun 15:20  room-301   RAISED      sos")
    assert lines[1].endswith("Emergency call (SOS)  [sos-301]")
    assert lines[2].startswith("Sun 15:25  room-301   ESCALATED") and "escalation 1" in lines[2]
    assert lines[3].startswith("Sun 15:27  room-301   cleared") and "worker-17" in lines[3]
    # Never heard before 16:00, so its first "offline" is no news; then it comes online
    # (first heard), goes offline (news) and comes back (news).
    assert [x[:9] for x in lines[4:]] == ["Sun 18:00", "Sun 19:00"]
    assert "pir-302 OFFLINE (last heard 16:00)" in lines[4] and "back online" in lines[5]
    assert [a["state"] for a in raised_seen] == ["raised"]
    t = console.alerts["sos"]
    assert (t.raised, t.escalated, t.acknowledged, t.cleared) == (1, 1, 1, 1)
    assert console.readings == 2 and console.open_alerts == {}
    summary = "\n".join(console.summary(24, 12.5))
    assert "24 simulated hours in 12.5 s" in summary
    assert re.search(r"^sos\s+1\s+1\s+1\s+1$", summary, re.MULTILINE)
    assert "readings forwarded: 2 in 1 telemetry messages (motion 2)" in summary
    assert "gateway status: offline" in summary


@pytest.mark.parametrize(
    "topic, payload",
    [
        ("alerts", b"not json"), ("alerts", b"[1, 2]"), ("alerts", b"{}"),
        ("alerts", b'{"state": "raised", "ts": 5, "details": "x", "device_ids": null}'),
        ("telemetry", b'{"readings": 7}'), ("telemetry", b'{"readings": [1, {"ts": "x"}]}'),
        ("devices", b'{"devices": {"a": 1}}'), ("devices", b'{"devices": [1, {"device_id": 2}]}'),
        ("cmd/result", b'{"id": ["x"], "command": "ack"}'), ("status", b"\xff\xfe"),
        ("other/topic", b"{}"),
    ],
)
def test_console_survives_bad_messages(topic: str, payload: bytes) -> None:
    console = PlatformConsole(P, out=io.StringIO())
    console.handle(f"{P}/{topic}", payload)
    console.handle("elsewhere/alerts", payload)
    console.summary(1, 1.0)  # still summarizes


async def test_care_worker_acks_open_alerts_only_after_its_delay() -> None:
    clock = PacedClock(factor=3600.0)  # sos after 10 ms, anything else after 0.5 s
    console = PlatformConsole(P, out=io.StringIO())
    sent: list[tuple[str, dict]] = []

    async def publish(topic: str, body: dict) -> None:
        sent.append((topic, body))

    worker = CareWorker(publish, P, clock, console, delays={"sos": 36.0}, default_delay=1800.0)
    console.on_raised = worker.on_raised
    console.handle(f"{P}/alerts", alert("raised", "2026-11-22T15:20:00+08:00"))
    other = json.loads(alert("raised", "2026-11-22T15:21:00+08:00"))
    other.update(alert_id="a-2", type="door_night")
    console.handle(f"{P}/alerts", json.dumps(other).encode())
    assert sent == []
    await asyncio.sleep(0.1)
    assert sent == [(f"{P}/cmd/ack", {"id": "ack-1", "alert_id": "a-1", "by": "worker-17"})]
    # The door alert clears by itself before its turn comes: no ack.
    cleared = dict(other, state="cleared")
    console.handle(f"{P}/alerts", json.dumps(cleared).encode())
    await asyncio.sleep(0.6)
    assert len(sent) == 1
    await worker.stop()


# -- the day -------------------------------------------------------------------------------


def test_the_days_config_scenario_and_usage_agree(tmp_path: Path) -> None:
    from hearthgate.config import parse_config_data
    from hearthgate.demo.day import (
        DAY,
        DAY_START,
        POWER_METERS,
        WATER_METERS,
        build_config,
        offset_of,
        usage_timeline,
    )
    from hearthgate.simulators.scenario import devices_from_config, parse_scenario, timeline

    config = parse_config_data(build_config(tmp_path, 1883, 1884, "/dev/null", "/dev/null", "en"))
    devices = {d.id for d in config.devices}
    scenario = parse_scenario(DAY).with_devices(devices_from_config(config))
    steps = list(timeline(scenario, DAY_START, 24 * 3600))
    assert {a.device for a in steps} <= devices
    assert {a.do for a in steps} >= {"press", "motion", "door_open", "silent", "online"}
    # The night's door at 03:00 is the same night, not a day later.
    [night] = [a for a in steps if a.device == "door-302" and a.do == "door_open"
               and a.offset > 12 * 3600]
    assert night.offset == 21 * 3600
    assert offset_of("06:30") == 1800 and offset_of("03:00") == 21 * 3600
    usage = usage_timeline()
    assert [u[0] for u in usage] == sorted(u[0] for u in usage)
    assert {u[1] for u in usage} == set(WATER_METERS) | set(POWER_METERS)
    # Every tap and appliance that is turned on is turned off again within the day.
    for meter in {u[1] for u in usage}:
        rates = [u[2] for u in usage if u[1] == meter]
        assert rates[-1] == 0.0
    assert all(s.profile == "living_alone" for s in config.sites)
