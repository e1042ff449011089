"""Fault: a driver that crashes every time it runs, and a device handler that raises on every
message, next to healthy SOS buttons.

Outcome: the crashing driver is restarted with growing (exponential) backoff and never takes
the gateway down; the raising handler is counted per message; SOS presses on the healthy
devices of the same bus and site still raise alerts.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from hearthgate.core.options import BusConfig, DeviceConfig
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.mqtt_bus import MqttBus
from hearthgate.registry import STANDARD, BusType, Options, ProtocolSpec
from tests.faults.faultkit import (
    ALERTS,
    InProcessGateway,
    press_sos,
    record,
    site_ids,
    wait_until,
    write_config,
)

CRASH_STARTS: list[float] = []


class NoOptions(Options):
    pass


class IdleBus:
    """A bus with nothing to own."""

    def __init__(self, config: BusConfig, ctx: DriverContext) -> None:
        self.config = config

    async def run(self) -> None:
        return None


class CrashingDriver:
    def __init__(self, bus: Any, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.devices = devices

    async def run(self) -> None:
        CRASH_STARTS.append(time.monotonic())
        raise RuntimeError("simulated driver bug")


class TopicOptions(Options):
    topic: str


class RaisingHandlerDriver:
    """Subscribes like a zigbee2mqtt driver, but its handler raises on every message."""

    def __init__(self, bus: MqttBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        for device in devices:
            bus.subscribe(device.options.topic, self.handle)  # type: ignore[attr-defined]

    def handle(self, topic: str, payload: bytes) -> None:
        raise ValueError(f"simulated handler bug on {topic}")

    async def run(self) -> None:
        return None


CRASH_REGISTRY = STANDARD.extended(
    bus_types=[BusType("idle_test", NoOptions, IdleBus)],
    protocols=[
        ProtocolSpec("crashing_test", NoOptions, frozenset({"sos_button"}),
                     frozenset({"idle_test"}), CrashingDriver),
        ProtocolSpec("raising_test", TopicOptions, frozenset({"sos_button"}),
                     frozenset({"mqtt"}), RaisingHandlerDriver),
    ],
)


async def test_crashing_driver_restarted_with_backoff(
    tmp_path, broker, home_broker, platform, zigbee, monkeypatch
):
    import hearthgate.supervisor

    backoff_min = 0.1
    monkeypatch.setattr(hearthgate.supervisor, "BACKOFF_MIN", backoff_min)
    CRASH_STARTS.clear()
    sites = site_ids(2)
    config = write_config(
        tmp_path, broker, home_broker, sites,
        extra_buses="  - {id: flaky, type: idle_test}\n",
        extra_devices=(
            f"  - {{id: crash-1, site: {sites[0]}, kind: sos_button, protocol: crashing_test,"
            " bus: flaky}\n"
            f"  - {{id: raise-1, site: {sites[0]}, kind: sos_button, protocol: raising_test,"
            " bus: zigbee, topic: zigbee2mqtt/raiser}\n"
        ),
    )
    async with InProcessGateway(config, registry=CRASH_REGISTRY) as gw:
        restarts = 6
        await wait_until(lambda: len(CRASH_STARTS) > restarts, 30, "the driver to crash again")
        sup = gw.gateway.supervisor
        assert sup is not None
        assert sup.restarts["driver:flaky:crashing_test"] >= restarts
        # Exponential backoff: the k-th restart waits at least half of min·2^(k-1).
        gaps = [b - a for a, b in itertools.pairwise(CRASH_STARTS)]
        for k, gap in enumerate(gaps[:restarts], start=1):
            assert gap >= backoff_min * 2 ** (k - 1) / 2 * 0.99, gaps
        # The raising handler: counted, the bus lives on.
        for n in range(5):
            await zigbee.publish("zigbee2mqtt/raiser", {"action": "emergency", "n": n})
        await wait_until(
            lambda: gw.gateway.ctx.errors[("-", "handler_error")] >= 5, 20, "handler errors"
        )
        # The healthy devices of the same site and bus still raise an SOS.
        await press_sos(zigbee, sites[0])
        [alert] = await platform.wait_json(ALERTS, lambda b: b["state"] == "raised", timeout=20)
        assert alert["device_ids"] == [f"sos-{sites[0][5:]}"]
        assert gw.running, "a crashing driver must never take the gateway down"
        record("driver_crash", restarts=sup.restarts["driver:flaky:crashing_test"],
               gaps_s=[round(g, 2) for g in gaps[:restarts]],
               handler_errors=gw.gateway.ctx.errors[("-", "handler_error")])
