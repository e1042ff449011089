"""`P/devices` encoded part by part (issue 17): each device's part is encoded again only when
what it shows changed, and the message is exactly what encoding every device afresh gives,
whatever happens to the devices (random observations, silences, a restore)."""

from __future__ import annotations

import json
import random
from typing import Any

from hearthgate.config import parse_config_data
from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import Observation, isoformat
from hearthgate.health import DeviceHealth


def health_of(n: int) -> DeviceHealth:
    config = parse_config_data({
        "gateway": {"id": "gw-test", "timezone": "Asia/Shanghai"},
        "uplink": {"host": "127.0.0.1"},
        "buses": [{"id": "zigbee", "type": "mqtt"}],
        "devices": [
            {"id": f"pir-{i}", "site": f"home-{i % 3}", "kind": "motion_sensor",
             "protocol": "zigbee2mqtt", "bus": "zigbee", "topic": f"zigbee2mqtt/pir_{i}",
             "offline_after": "10m"} for i in range(n)
        ],
        "sites": [{"id": f"home-{i}"} for i in range(3)],
    })
    return DeviceHealth(config)


def afresh(health: DeviceHealth, now: Any, raw_sites: frozenset[str]) -> str:
    """The message as it was built before the parts were kept: every device encoded."""
    devices = health.snapshot(now)
    for d in devices:
        if d["site_id"] in raw_sites:
            continue
        del d["values"]
        seen = health.devices[d["device_id"]].last_seen
        if seen is not None:
            hour = seen.wall.astimezone(health.tz).replace(minute=0, second=0, microsecond=0)
            d["last_seen"] = isoformat(hour, health.tz)
    return json.dumps({"schema": "hearthgate.devices/1", "ts": isoformat(now.wall, health.tz),
                       "devices": devices}, ensure_ascii=False, separators=(",", ":"))


async def test_the_message_is_what_encoding_every_device_gives(clock: SimulatedClock) -> None:
    rnd = random.Random(5)
    health = health_of(12)
    health.start(clock.now())
    raw = frozenset({"home-1"})
    metrics = [("motion", True), ("motion", False), ("battery_pct", 80), ("linkquality", 99),
               ("alive", False), ("alive", True), ("warning", "wrong model"), ("温度", 21.5)]
    for step in range(400):
        roll = rnd.random()
        if roll < 0.6:
            metric, value = rnd.choice(metrics)
            device = f"pir-{rnd.randrange(12)}"
            attrs = {"reason": "bridge offline"} if metric == "alive" and not value else {}
            health.observe(Observation(device, f"home-{int(device[4:]) % 3}", metric, value,
                                       clock.now(), attrs=attrs))
        elif roll < 0.95:
            await clock.advance(rnd.choice([1, 59, 600, 1800, 3600]))
        else:
            saved = {"ts": isoformat(clock.now().wall, health.tz),
                     "devices": health.snapshot(clock.now())}
            health = health_of(12)
            health.restore(saved, clock.now())
            health.start(clock.now())
        now = clock.now()
        assert health.payload(now, raw) == afresh(health, now, raw), f"step {step}"
        assert json.loads(health.payload(now, raw))["devices"][0]["device_id"] == "pir-0"
