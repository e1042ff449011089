"""Helpers for the presence-device tests: configs built like an installer's, a collecting sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hearthgate.config import GatewayConfig, parse_config_data
from hearthgate.core.clock import Clock
from hearthgate.core.model import Observation
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.osdp_codec import OSDPPacket, OSDPStreamDecoder
from hearthgate.simulators.links import PtyLink


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
async def pty(tmp_path: Path) -> AsyncIterator[PtyLink]:
    """A pseudo-terminal: the simulator's side is the link, the gateway's bus opens link.path."""
    link = PtyLink(tmp_path / "ttyPRESENCE")
    yield link
    link.unplug()


async def wait_until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Wait (real time: the line is real) for a condition; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


async def scripted_pd(pty: PtyLink, answer: Callable[[OSDPPacket], bytes | None]) -> None:
    """An OSDP reader that answers each command on `pty` with what `answer` returns
    (nothing: silence), for replies no real reader would send."""
    decoder = OSDPStreamDecoder()
    while True:
        for item in decoder.feed(await pty.read()):
            if isinstance(item, OSDPPacket):
                out = answer(item)
                if out:
                    pty.write(out)
