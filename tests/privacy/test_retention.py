"""The store forgets: summaries, cleared alerts and the trail age out in bounded passes; raw
observations are kept at least as long as the config's rules declare (issue 18)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hearthgate.config import parse_config_data
from hearthgate.core.clock import SimulatedClock
from hearthgate.registry import STANDARD
from hearthgate.service import Gateway
from hearthgate.store import Store

NOW = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def config(data: Path, **retention: str):
    return parse_config_data({
        "gateway": {"id": "gw-ret", "data_dir": str(data), "retention": retention},
        "uplink": {"host": "127.0.0.1"}, "sites": [{"id": "room-1", "rules": [{"type": "sos"}]}],
    })


async def test_pruning_is_bounded_and_keeps_what_is_young(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        old = [{"site_id": "room-1", "hour": (NOW - timedelta(days=100, hours=h)).isoformat()}
               for h in range(30)]
        young = [{"site_id": "room-1", "hour": (NOW - timedelta(days=1)).isoformat()}]
        await store.add_summaries(old + young)
        for days in (400, 1):
            await store.add_audit('{"x":1}', (NOW - timedelta(days=days)).timestamp(), 100)
        cutoffs = Gateway(config(tmp_path), clock=SimulatedClock(start=NOW)).retention_cutoffs(
            SimulatedClock(start=NOW).now())
        first = await store.prune(cutoffs, limit=20)
        assert first["hourly summaries"] == 20 and first["access trail records"] == 1
        second = await store.prune(cutoffs, limit=20)
        assert second["hourly summaries"] == 10
        assert (await store.prune(cutoffs, limit=20))["hourly summaries"] == 0
        assert [s["hour"] for s in await store.summaries("room-1")] == [young[0]["hour"]]
        assert len(await store.audit_trail()) == 1
    finally:
        await store.close()


def test_raw_observations_are_kept_as_long_as_the_rules_need(tmp_path: Path) -> None:
    sos = STANDARD.rules["sos"]
    registry = STANDARD.extended(rules=[replace(sos, name="routine", history=35 * 86400.0)])
    cfg = parse_config_data({
        "gateway": {"id": "gw-ret", "data_dir": str(tmp_path), "retention": {
            "observations": "7d"}},
        "uplink": {"host": "127.0.0.1"},
        "sites": [{"id": "room-1", "rules": [{"type": "routine"}]}],
    }, registry=registry)
    assert cfg.observation_retention() == 35 * 86400.0
    assert config(tmp_path).observation_retention() == 28 * 86400.0


def test_bad_privacy_keys_are_config_errors_with_positions(tmp_path: Path) -> None:
    from hearthgate.check import run_check

    path = tmp_path / "bad.yaml"
    path.write_text("""gateway:
  id: gw-ret
  telemetry: everything
  retention: {summaries: soon, audit_records: many}
uplink: {host: 127.0.0.1}
sites:
  - {id: room-1, telemetry: raw, telemetry_reason: [1]}
""")
    assert run_check(path) == 2


def test_bad_privacy_keys_report_lines(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text("gateway:\n  id: gw-ret\n  retention: {summaries: soon}\n"
                    "uplink: {host: 127.0.0.1}\n")
    out = subprocess.run([sys.executable, "-m", "hearthgate", "check", "-c", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"{path}:3:26: error: gateway: retention.summaries" in out.stderr
    assert "Traceback" not in out.stderr
