"""Build a serial bus and its meter drivers from config, the way the gateway does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from hearthgate.config import GatewayConfig, parse_config_data
from hearthgate.core.clock import Clock
from hearthgate.core.model import Observation
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.serial_bus import SerialBus
from hearthgate.registry import STANDARD


def meter_config(port: str, devices: list[dict[str, Any]], **bus: Any) -> GatewayConfig:
    bus_entry = {"id": "rs485-1", "type": "serial", "port": port, "baudrate": 9600,
                 "parity": "N", "timeout": "400ms", "retries": 1, "reopen_backoff": "50ms",
                 "reopen_backoff_max": "100ms", **bus}
    return parse_config_data({
        "gateway": {"id": "gw-test-0001"},
        "uplink": {"host": "127.0.0.1"},
        "buses": [bus_entry],
        "devices": [{"site": "room-301", "bus": "rs485-1", **d} for d in devices],
        "sites": [{"id": "room-301", "rules": [{"type": "sos"}]}],
    })


@dataclass
class RunningBus:
    bus: SerialBus
    ctx: DriverContext
    observations: list[Observation] = field(default_factory=list)

    def values(self, device_id: str, metric: str) -> list[Any]:
        return [o.value for o in self.observations
                if o.device_id == device_id and o.metric == metric]

    def last(self, device_id: str, metric: str) -> Any:
        found = self.values(device_id, metric)
        return found[-1] if found else None


@asynccontextmanager
async def running_bus(config: GatewayConfig, clock: Clock) -> AsyncIterator[RunningBus]:
    """Open the bus and start one driver per protocol on it, as the supervisor would."""
    observations: list[Observation] = []
    ctx = DriverContext(clock, observations.append)
    bus_cfg = config.buses[0]
    bus = STANDARD.bus_types[bus_cfg.type].open(bus_cfg, ctx)
    assert isinstance(bus, SerialBus)
    by_protocol: dict[str, list[Any]] = {}
    for device in config.devices:
        by_protocol.setdefault(device.protocol, []).append(device)
    drivers = [STANDARD.protocols[p].create(bus, devs, ctx) for p, devs in by_protocol.items()]
    tasks = [asyncio.create_task(bus.run())]
    tasks += [asyncio.create_task(d.run()) for d in drivers]
    try:
        yield RunningBus(bus, ctx, observations)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
