"""Helpers for the rules tests: a test-only protocol so configs validate without drivers,
and a harness that drives a RuleEngine with a SimulatedClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hearthgate.config import GatewayConfig, parse_config_data
from hearthgate.core.clock import SimulatedClock
from hearthgate.core.durations import Duration
from hearthgate.core.model import AlertTransition, Observation
from hearthgate.engine_builder import build_engine
from hearthgate.registry import STANDARD, BusType, Options, ProtocolSpec
from hearthgate.replay import Replayer

ALL_KINDS = frozenset(
    {"water_meter", "power_meter", "motion_sensor", "door_contact", "sos_button",
     "access_controller", "fall_sensor", "presence_sensor"}
)


class _TestBusOptions(Options):
    pass


class _TestDeviceOptions(Options):
    poll: Duration | None = None


def _no_runtime(*_: Any) -> Any:
    raise RuntimeError("the rules tests never open buses")


TEST_BUS = BusType("rulestest", _TestBusOptions, _no_runtime)
TEST_PROTOCOL = ProtocolSpec(
    "rulestest", _TestDeviceOptions, ALL_KINDS, frozenset({"rulestest"}), _no_runtime
)
# A 433 MHz-like protocol: buttons with no heartbeat.
TEST_RF = ProtocolSpec(
    "rulestest_rf", _TestDeviceOptions, frozenset({"sos_button"}), frozenset({"rulestest"}),
    _no_runtime,
)
TEST_REGISTRY = STANDARD.extended(bus_types=[TEST_BUS], protocols=[TEST_PROTOCOL, TEST_RF])

HOME_DEVICES: list[dict[str, Any]] = [
    {"id": "water-1", "kind": "water_meter"},
    {"id": "power-1", "kind": "power_meter"},
    {"id": "pir-1", "kind": "motion_sensor"},
    {"id": "pir-2", "kind": "motion_sensor"},
    {"id": "door-1", "kind": "door_contact"},
    {"id": "sos-1", "kind": "sos_button", "protocol": "rulestest_rf"},
    {"id": "gate-1", "kind": "access_controller"},
]


def config_data(
    rules: list[dict[str, Any]],
    devices: list[dict[str, Any]] | None = None,
    *,
    timezone: str = "Asia/Shanghai",
    language: str = "en",
    site: str = "room-1",
) -> dict[str, Any]:
    devs = [
        {"protocol": "rulestest", "bus": "b1", "site": site, **d}
        for d in (HOME_DEVICES if devices is None else devices)
    ]
    return {
        "gateway": {"id": "gw-test-0001", "timezone": timezone, "language": language},
        "uplink": {"host": "127.0.0.1"},
        "buses": [{"id": "b1", "type": "rulestest"}],
        "devices": devs,
        "sites": [{"id": site, "resident": "r-1", "rules": rules}],
    }


def make_config(rules: list[dict[str, Any]], **kwargs: Any) -> GatewayConfig:
    return parse_config_data(config_data(rules, **kwargs), registry=TEST_REGISTRY)


class Harness:
    """A RuleEngine on a SimulatedClock; `advance` ticks every deadline on the way."""

    def __init__(self, config: GatewayConfig, start: datetime) -> None:
        self.config = config
        self.clock = SimulatedClock(start=start)
        self.engine = build_engine(config)
        self.site_of = {d.id: d.site for d in config.devices}
        self.out: list[AlertTransition] = []
        self.tz = config.gateway.tz
        # The service ticks once at start (the engine asks for it: next_deadline -inf).
        self.out += Replayer(self.engine).advance_to(self.clock.now())

    def now_local(self) -> datetime:
        return self.clock.now().wall.astimezone(self.tz)

    def advance(self, seconds: float) -> list[AlertTransition]:
        now = self.clock.now()
        target = now.after(seconds)
        self.clock.set(target.mono, target.wall)
        got = Replayer(self.engine).advance_to(target)
        self.out += got
        return got

    def advance_to_local(self, hh: int, mm: int = 0, days: int = 0) -> list[AlertTransition]:
        local = self.now_local()
        target = (local + timedelta(days=days)).replace(hour=hh, minute=mm, second=0,
                                                        microsecond=0)
        return self.advance((target - local).total_seconds())

    def obs(self, device: str, metric: str, value: Any, **attrs: Any) -> list[AlertTransition]:
        now = self.clock.now()
        got = Replayer(self.engine).advance_to(now)
        got += self.engine.on_observation(
            Observation(device, self.site_of[device], metric, value, now, attrs=attrs), now
        )
        self.out += got
        return got

    def ack(self, alert_id: str, by: str = "worker-1") -> list[AlertTransition]:
        got = self.engine.acknowledge(alert_id, by, self.clock.now())
        self.out += got
        return got

    def restart(self, downtime: float = 0.0, *, reboot: bool = True,
                wall_error: float = 0.0) -> None:
        """Snapshot, lose the engine, start a new one and restore (JSON round trip)."""
        import json

        state = json.loads(json.dumps(self.engine.snapshot(self.clock.now())))
        now = self.clock.now()
        true_wall = now.wall + timedelta(seconds=downtime)
        mono = 25.0 if reboot else now.mono + downtime
        self.clock.set(mono, true_wall + timedelta(seconds=wall_error))
        self.engine = build_engine(self.config)
        self.engine.restore(state, self.clock.now())

    def types(self, state: str = "raised") -> list[str]:
        return [t.type for t in self.out if str(t.state) == state]


def local(tz: str, *args: int) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(UTC)  # type: ignore[misc]


