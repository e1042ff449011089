"""The same day of observations through a real gateway and broker at each telemetry level:
what `P/telemetry` (and `P/devices`, `P/status`) carry (issue 18, docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path

from hearthgate.core.clock import SimulatedClock
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber, run_cli
from tests.faults.faultkit import InProcessGateway
from tests.privacy.privacykit import DAY_START, REASON, P, play_day, write_config


async def test_a_day_at_each_level(tmp_path: Path, broker: MosquittoBroker,
                                   home_broker: MosquittoBroker) -> None:
    config = write_config(tmp_path, broker, home_broker)
    clock = SimulatedClock(start=DAY_START)
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform:
        async with InProcessGateway(config, clock=clock) as gw:
            fed = await play_day(gw.gateway, clock)
            await platform.wait_for(lambda ms: any(
                s.get("hour") == "2026-11-22T23:00:00+08:00"
                for m in ms if m.topic == f"{P}/telemetry"
                for s in m.json().get("summaries", [])), timeout=20)
        bodies = [m.json() for m in platform.on(f"{P}/telemetry")]
        readings = [r for b in bodies for r in b.get("readings", [])]
        summaries = [s for b in bodies for s in b.get("summaries", [])]
        assert {b["schema"] for b in bodies} == {
            "hearthgate.telemetry/1", "hearthgate.telemetry_summary/1"}

        # health: nothing of room-h on P/telemetry at all.
        assert not [e for e in readings + summaries if e["site_id"] == "room-h"]

        # summary: one summary per hour, nothing finer, no single motion or door event.
        assert not [r for r in readings if r["site_id"] == "room-s"]
        mine = {s["hour"]: s for s in summaries if s["site_id"] == "room-s"}
        assert len(mine) == 24 and all(h.endswith(":00:00+08:00") for h in mine)
        seven, eight = mine["2026-11-22T07:00:00+08:00"], mine["2026-11-22T08:00:00+08:00"]
        assert seven["water_l"] == 30.0 and seven["movement_quarters"] == 3
        assert seven["door_openings"] == 0 and eight["door_openings"] == 2
        assert mine["2026-11-22T18:00:00+08:00"]["water_l"] == 20.0
        assert mine["2026-11-22T18:00:00+08:00"]["movement_quarters"] == 1
        assert sum(s["energy_kwh"] for s in mine.values()) == 1.5
        assert mine["2026-11-22T03:00:00+08:00"]["movement_quarters"] == 0
        assert set(seven) <= {"site_id", "hour", "water_l", "energy_kwh",
                              "movement_quarters", "door_openings", "partial"}

        # raw: every reading of the day, the motion and door events included.
        raw = [r for r in readings if r["site_id"] == "room-r"]
        assert len(raw) >= fed
        assert len([r for r in raw if r["metric"] == "motion" and r["value"] is True]) == 4
        assert len([r for r in raw if r["metric"] == "door_open"]) == 6

        # P/devices: health only, to the hour, except at raw.
        snap = platform.on(f"{P}/devices")[-1].json()
        for dev in snap["devices"]:
            if dev["site_id"] == "room-r":
                assert "values" in dev
            else:
                assert "values" not in dev
                assert dev["last_seen"] is None or dev["last_seen"].endswith(":00:00+08:00")
        # P/status names the raw site and says why.
        status = [m.json() for m in platform.on(f"{P}/status")
                  if m.json()["state"] == "online"][-1]
        assert status["telemetry"] == {"default": "summary", "sites": [
            {"site_id": "room-h", "level": "health"},
            {"site_id": "room-r", "level": "raw", "reason": REASON}]}
        assert any(REASON in line for line in gw.log_lines)


async def test_check_refuses_raw_without_a_reason(tmp_path: Path, broker: MosquittoBroker,
                                                  home_broker: MosquittoBroker) -> None:
    config = write_config(tmp_path, broker, home_broker, raw_reason=None)
    out = await run_cli("check", "-c", str(config))
    assert out.returncode == 2
    line = next(x for x in out.stderr.splitlines() if "telemetry_reason" in x)
    assert line.startswith(f"{config}:") and ": error: site 'room-r'" in line
    row = int(line.split(":")[1])
    assert "telemetry: raw" in config.read_text().splitlines()[row - 1]
