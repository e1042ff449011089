"""`P/devices` and the `device_offline` alert agree on when a device went offline.

Both sides are the gateway's own: the `DeviceHealth` that builds `P/devices` and the rule
engine that `build_engine` makes from the same config, fed the same observations on the
same simulated clock, ticked once a second as the service would be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hearthgate.config import GatewayConfig, parse_config_data
from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import AlertState, AlertTransition, Instant, Observation
from hearthgate.engine_builder import build_engine
from hearthgate.health import DeviceHealth
from hearthgate.replay import Replayer

START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
HORIZON = 3 * 3600  # longer than every limit below
TICK = 1.0

Z2M = {"protocol": "zigbee2mqtt", "bus": "zigbee"}
DEVICES = [
    # site home: device_offline without `after`
    {"id": "power-1", "site": "home", "kind": "power_meter", "protocol": "modbus",
     "bus": "rs485", "unit": 1, "model": "sdm120", "poll": "1m"},
    {"id": "water-1", "site": "home", "kind": "water_meter", "protocol": "cjt188",
     "bus": "rs485", "address": "00000000001234", "poll": "5m"},
    {"id": "pir-1", "site": "home", "kind": "motion_sensor", **Z2M,
     "topic": "zigbee2mqtt/pir_1"},
    {"id": "door-1", "site": "home", "kind": "door_contact", **Z2M,
     "topic": "zigbee2mqtt/door_1", "offline_after": "10m"},
    {"id": "sos-1", "site": "home", "kind": "sos_button", "protocol": "rflink",
     "bus": "rf433", "match": "EV1527;ID=0x5a3c1"},
    {"id": "gate-1", "site": "home", "kind": "access_controller", "protocol": "osdp",
     "bus": "rs485", "address": 1},
    # site flat: device_offline with `after: 45m`
    {"id": "pir-2", "site": "flat", "kind": "motion_sensor", **Z2M,
     "topic": "zigbee2mqtt/pir_2"},
    {"id": "water-2", "site": "flat", "kind": "water_meter", "protocol": "cjt188",
     "bus": "rs485", "address": "00000000005678", "poll": "30m"},
    {"id": "sos-2", "site": "flat", "kind": "sos_button", **Z2M,
     "topic": "zigbee2mqtt/sos_2"},
]
# Seconds of silence to offline, by the policy of hearthgate.core.health.
EXPECTED = {
    "power-1": 3 * 60 + 60,  # three missed polls and a minute of slack
    "water-1": 3 * 300 + 60,
    "pir-1": 2 * 3600,  # the kind's default
    "door-1": 600,  # the device's own offline_after
    "sos-1": None,  # a 433 MHz button says nothing until pressed
    "gate-1": None,  # the OSDP driver reports the reader unreachable itself
    "pir-2": 45 * 60,  # the site's after
    "water-2": 3 * 1800 + 60,  # never fewer than three missed polls
    "sos-2": None,
}


def config() -> GatewayConfig:
    return parse_config_data({
        "gateway": {"id": "gw-test-0001", "timezone": "Asia/Shanghai", "language": "en"},
        "uplink": {"host": "127.0.0.1"},
        "buses": [
            {"id": "rs485", "type": "serial", "port": "/dev/null"},
            {"id": "rf433", "type": "serial", "port": "/dev/null", "parity": "N"},
            {"id": "zigbee", "type": "mqtt", "host": "127.0.0.1"},
        ],
        "devices": DEVICES,
        "sites": [
            {"id": "home", "rules": [{"type": "device_offline"}]},
            {"id": "flat", "rules": [{"type": "device_offline", "after": "45m"}]},
        ],
    })


class BothSides:
    """P/devices and the rules, fed alike, as the service's rules loop feeds them."""

    def __init__(self) -> None:
        self.config = config()
        self.clock = SimulatedClock(start=START)
        self.health = DeviceHealth(self.config)
        self.engine = build_engine(self.config)
        self.replayer = Replayer(self.engine)
        self.t0 = self.clock.now().mono
        self.raised: dict[str, float] = {}  # device -> tick of its device_offline
        self.offline: dict[str, float] = {}  # device -> tick it turned offline in P/devices
        self._record(self.replayer.advance_to(self.clock.now()))

    def _record(self, transitions: list[AlertTransition]) -> None:
        t = self.clock.now().mono - self.t0
        for tr in transitions:
            if tr.type == "device_offline" and tr.state == AlertState.RAISED:
                for d in tr.device_ids:
                    self.raised.setdefault(d, t)

    def observe(self, device_id: str, metric: str, value: object) -> None:
        now = self.clock.now()
        site = next(d.site for d in self.config.devices if d.id == device_id)
        obs = Observation(device_id, site, metric, value, now)  # type: ignore[arg-type]
        self.health.observe(obs)
        self._record(self.engine.on_observation(obs, now))
        self.look(now)

    def tick(self, seconds: float) -> None:
        now = self.clock.now()
        target = Instant(now.mono + seconds, now.wall + timedelta(seconds=seconds))
        self.clock.set(target.mono, target.wall)
        self._record(self.replayer.advance_to(target))
        self.look(target)

    def look(self, now: Instant) -> None:
        t = now.mono - self.t0
        for device_id, state in self.health.devices.items():
            if state.last_seen is not None and not state.online(now):
                self.offline.setdefault(device_id, t)


def test_p_devices_and_device_offline_agree_on_when() -> None:
    both = BothSides()
    heard: dict[str, float] = {}
    for i, d in enumerate(DEVICES):
        both.tick(7)  # each device speaks once, at its own moment
        both.observe(d["id"], "battery_pct", 90 - i)
        heard[d["id"]] = both.clock.now().mono - both.t0
    elapsed = 0.0
    while elapsed < HORIZON:
        both.tick(TICK)
        elapsed += TICK
    for device_id, limit in EXPECTED.items():
        assert both.health.devices[device_id].limit == limit, device_id
        if limit is None:
            assert device_id not in both.offline and device_id not in both.raised, device_id
            continue
        # The instant P/devices says offline is the instant the alert is raised, and both
        # are the limit after the device was last heard (to the tick).
        assert both.offline[device_id] == both.raised[device_id], device_id
        assert both.offline[device_id] == pytest.approx(heard[device_id] + limit, abs=TICK)


def test_alive_false_makes_a_device_offline_at_once_on_both_sides() -> None:
    both = BothSides()
    for d in DEVICES:
        both.observe(d["id"], "battery_pct", 80)
    both.tick(30)
    for d in DEVICES:
        both.observe(d["id"], "alive", False)
    both.tick(TICK)
    assert set(both.offline) == set(both.raised) == {d["id"] for d in DEVICES}
    assert set(both.offline.values()) == set(both.raised.values()) == {30.0}
