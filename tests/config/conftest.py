"""Test-only bus types, protocols and rules, so config tests do not wait for real drivers.

They extend the standard tables into `TEST_REGISTRY`, which the config tests validate
against (`load_config`, `parse_config_data` and `load` below bind it); the standard tables
stay untouched.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import pytest
from pydantic import Field

from hearthgate import config
from hearthgate.core.durations import Duration, TimeRangeField
from hearthgate.registry import STANDARD, BusType, Options, ProtocolSpec, Registry, RuleSpec
from hearthgate.rules.base import RuleOptions
from hearthgate.rules.sos import SosRule


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
]
TEST_REGISTRY = STANDARD.extended(TEST_BUS_TYPES, TEST_PROTOCOLS, TEST_RULES)
load_config = functools.partial(config.load_config, registry=TEST_REGISTRY)
parse_config_data = functools.partial(config.parse_config_data, registry=TEST_REGISTRY)
load = functools.partial(config.load, registry=TEST_REGISTRY)


@pytest.fixture
def test_registry() -> Registry:
    return TEST_REGISTRY
