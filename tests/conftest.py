"""Shared fixtures: a real mosquitto on a free port, a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hearthgate.core.clock import SimulatedClock
from hearthgate.devkit.local_broker import MosquittoBroker

REPO = Path(__file__).resolve().parent.parent

# These machines are shared and noisy: no per-example deadlines, no "too slow" failures.
settings.register_profile(
    "hearthgate", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("hearthgate")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh mosquitto for one test; `broker.stop()` / `broker.start()` make an outage."""
    b = MosquittoBroker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def home_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The home's own broker, the one zigbee2mqtt publishes to (the `mqtt` bus)."""
    b = MosquittoBroker(tmp_path / "home-broker").start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()
