"""The default config and every example in config/ publish `summary` or less (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearthgate.config import load_config, parse_config_data
from tests.config.config_samples import as_installed

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "config").glob("*.yaml"))


def test_the_default_level_is_summary() -> None:
    config = parse_config_data({"gateway": {"id": "gw-default"}, "uplink": {"host": "x"},
                                "sites": [{"id": "room-1"}]})
    assert config.gateway.telemetry == "summary"
    assert config.telemetry_level("room-1") == "summary" and config.raw_reasons() == {}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_publish_summary_or_less(path: Path, tmp_path: Path) -> None:
    config = load_config(as_installed(path, tmp_path))
    assert config.gateway.telemetry in ("health", "summary")
    assert all(config.telemetry_level(s.id) in ("health", "summary") for s in config.sites)
