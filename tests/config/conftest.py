"""Test-only bus types, protocols and rules, so config tests do not wait for real drivers.

They are added to the registry for one test and removed after, leaving whatever the real
plugins registered untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import Field

from gateway import registry
from gateway.durations import Duration, TimeRangeField
from gateway.registry import BusType, Options, ProtocolSpec, RuleSpec, load_plugins
from rules.base import RuleOptions
from rules.sos import SosRule


class SerialTestOptions(Options):
    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    timeout: Duration = 1.0


class MqttTestOptions(Options):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)


class MeterTestOptions(Options):
    address: str = Field(pattern=r"^[0-9]{12}$")
    poll: Duration = 300.0


class ZigbeeTestOptions(Options):
    topic: str


class WindowTestOptions(RuleOptions):
    window: Duration = 43200.0
    active_hours: TimeRangeField | None = None


def _never(*_: Any) -> Any:
    raise AssertionError("config tests never open buses or drivers")


TEST_BUS_TYPES = [
    BusType("t_serial", SerialTestOptions, _never),
    BusType("t_mqtt", MqttTestOptions, _never),
]
TEST_PROTOCOLS = [
    ProtocolSpec(
        "t_meter",
        MeterTestOptions,
        frozenset({"water_meter", "power_meter"}),
        frozenset({"t_serial"}),
        _never,
    ),
    ProtocolSpec(
        "t_zigbee",
        ZigbeeTestOptions,
        frozenset({"sos_button", "motion_sensor", "door_contact"}),
        frozenset({"t_mqtt"}),
        _never,
    ),
]
TEST_RULES = [
    RuleSpec("t_window", WindowTestOptions, SosRule, kinds=frozenset({"water_meter"})),
    # Stands in for the real `no_water` until the rules branch is merged.
    RuleSpec("no_water", WindowTestOptions, SosRule, kinds=frozenset({"water_meter"})),
]


@pytest.fixture
def test_registry() -> Iterator[None]:
    load_plugins()
    kinds = set(registry.DEVICE_KINDS)
    added: list[tuple[dict[str, Any], str]] = []
    for table, entries in (
        (registry.BUS_TYPES, TEST_BUS_TYPES),
        (registry.PROTOCOLS, TEST_PROTOCOLS),
        (registry.RULES, TEST_RULES),
    ):
        for entry in entries:
            if entry.name not in table:
                table[entry.name] = entry
                added.append((table, entry.name))
    registry.DEVICE_KINDS.update(k for p in TEST_PROTOCOLS for k in p.kinds)
    try:
        yield
    finally:
        for table, name in added:
            del table[name]
        registry.DEVICE_KINDS.clear()
        registry.DEVICE_KINDS.update(kinds)
