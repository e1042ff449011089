"""Helpers for the presence-device tests: configs built like an installer's, a collecting sink."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.base import DriverContext
from gateway.clock import Clock
from gateway.config import GatewayConfig, parse_config_data
from gateway.model import Observation


def make_config(buses: list[dict[str, Any]], devices: list[dict[str, Any]]) -> GatewayConfig:
    sites = sorted({d["site"] for d in devices})
    return parse_config_data(
        {
            "gateway": {"id": "gw-test"},
            "uplink": {"host": "127.0.0.1"},
            "buses": buses,
            "devices": devices,
            "sites": [{"id": s} for s in sites],
        }
    )


class Collector:
    """The gateway's observation sink, as a list."""

    def __init__(self) -> None:
        self.items: list[Observation] = []

    def __call__(self, obs: Observation) -> None:
        self.items.append(obs)

    def of(self, metric: str, device: str | None = None) -> list[Observation]:
        return [o for o in self.items if o.metric == metric and device in (None, o.device_id)]

    def values(self, metric: str, device: str | None = None) -> list[Any]:
        return [o.value for o in self.of(metric, device)]


def make_ctx(clock: Clock) -> tuple[DriverContext, Collector]:
    sink = Collector()
    return DriverContext(clock=clock, sink=sink), sink


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """A pseudo-terminal: (master fd for the simulator, slave path for the gateway's bus)."""
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        yield master, path
    finally:
        os.close(master)
        os.close(slave)
