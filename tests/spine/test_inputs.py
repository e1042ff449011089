"""Outside input on the spine's paths: zigbee2mqtt payloads and downlink commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearthgate.config import parse_config_data
from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import Observation
from hearthgate.drivers.base import DriverContext
from hearthgate.drivers.mqtt_bus import MqttBus, topic_matches
from hearthgate.drivers.zigbee2mqtt import (
    MODELS,
    STANDARD_MODEL,
    Z2MPayloadError,
    Zigbee2MqttDriver,
    decode_availability,
    decode_message,
    decode_state,
)
from hearthgate.uplink import MAX_COMMAND_BYTES, CommandError, Uplink

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_zigbee_decoder_raises_only_its_own_error_on_garbage(data):
    for model in (STANDARD_MODEL, *MODELS.values()):
        try:
            decode_state(data, model)
        except Z2MPayloadError:
            pass
    try:
        decode_availability(data)
    except Z2MPayloadError:
        pass


@given(st.dictionaries(st.sampled_from(["action", "battery", "battery_low", "linkquality",
                                        "voltage", "x"]), json_values, max_size=6))
@settings(max_examples=300)
def test_zigbee_decoder_on_wrong_types(body):
    try:
        readings = decode_state(json.dumps(body).encode(), STANDARD_MODEL)
    except Z2MPayloadError:
        return
    for metric, value, _ in readings:
        if metric == "battery_pct":
            assert 0 <= value <= 100
        if metric == "sos":
            assert value is True


def test_zigbee_sos_per_model():
    press = b'{"action":"emergency","battery":80,"voltage":2900,"linkquality":102}'
    # The action is handed to the driver, which knows the device's kind: on an sos_button
    # every press raises (tests/presence/test_z2m_corpus.py), whatever the model.
    decoded = decode_message(press, STANDARD_MODEL)
    assert decoded.action == "emergency"
    assert ("battery_pct", 80.0, {}) in decoded.readings
    assert ("linkquality", 102, {}) in decoded.readings
    assert not [r for r in decoded.readings if r[0] == "sos"]
    # The exceptions: Heiman's fall radar calls presence `occupancy`.
    assert decode_state(b'{"occupancy":true,"fall_status":"fall_alarm"}',
                        MODELS["HS2FD-EF1-3.0"]) == [("presence", True, {}), ("fall", True, {})]
    # An absurd field is a counted problem; the rest of the message still counts.
    mixed = decode_message(b'{"battery": 250, "linkquality": 90}', STANDARD_MODEL)
    assert mixed.readings == [("linkquality", 90, {})]
    assert [kind for kind, _ in mixed.problems] == ["absurd_value"]
    for bad in (b"[1]", b'"x"', b"{", b"\xff\xfe"):
        with pytest.raises(Z2MPayloadError):
            decode_state(bad, STANDARD_MODEL)
    assert decode_availability(b'{"state":"online"}') is True
    assert decode_availability(b"offline") is False


def test_topic_matching():
    assert topic_matches("zigbee2mqtt/+/availability", "zigbee2mqtt/pir/availability")
    assert topic_matches("a/#", "a/b/c") and topic_matches("a/b", "a/b")
    assert not topic_matches("a/b", "a/b/c") and not topic_matches("a/+", "b/c")


def small_config(tmp_path: Path) -> Any:
    return parse_config_data({
        "gateway": {"id": "gw-unit-1", "data_dir": str(tmp_path), "language": "en"},
        "uplink": {"host": "127.0.0.1", "port": 1},
        "buses": [{"id": "zigbee", "type": "mqtt"}],
        "devices": [{"id": "sos-1", "site": "s-1", "kind": "sos_button",
                     "protocol": "zigbee2mqtt", "bus": "zigbee", "topic": "z2m/sos_1"}],
        "sites": [{"id": "s-1", "rules": [{"type": "sos"}]}],
    })


async def test_driver_counts_bad_payloads_and_debounces_repeats(tmp_path):
    config = small_config(tmp_path)
    clock = SimulatedClock()
    seen: list[Observation] = []
    ctx = DriverContext(clock, seen.append)
    bus = MqttBus(config.buses[0], ctx)
    Zigbee2MqttDriver(bus, list(config.devices), ctx)
    for payload in (b"garbage", b"[]", b'{"battery": -3}', b"\x00" * (300 * 1024)):
        bus.dispatch("z2m/sos_1", payload)
    assert ctx.error_count("sos-1") == 3 and ctx.error_count() == 4
    press = b'{"action":"sos"}'
    bus.dispatch("z2m/sos_1", press)
    await clock.advance(1)
    bus.dispatch("z2m/sos_1", press)  # the same press, repeated
    await clock.advance(10)
    bus.dispatch("z2m/sos_1", press)  # a new press
    bus.dispatch("z2m/sos_1/availability", b'{"state":"offline"}')
    bus.dispatch("z2m/sos_1/availability", b'{"state":"offline"}')
    bus.dispatch("z2m/sos_1/availability", b'{"state":"sleepy"}')
    assert [o.metric for o in seen] == ["sos", "sos", "alive"]
    assert seen[-1].value is False


class RecordingCommands:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, body))
        if name != "ping":
            raise CommandError(f"unknown command '{name}'")
        return {}


@pytest.fixture
def uplink(tmp_path) -> Uplink:
    return Uplink(small_config(tmp_path), store=None, on_command=RecordingCommands())  # type: ignore[arg-type]


async def test_commands_bad_input_gets_error_results(uplink):
    cases = [b"", b"not json", b"[]", b"null", b"\xff\xfe", b'{"id": [1]}',
             b"{" * 100_000, b" " * (MAX_COMMAND_BYTES + 1), None]
    for raw in cases:
        result = await uplink.handle_command("ping", raw)
        assert result["ok"] is False and result["error"], raw
        assert result["schema"] == "hearthgate.cmd_result/1"
    ok = await uplink.handle_command("ping", b'{"id": "abc"}')
    assert ok == {"schema": "hearthgate.cmd_result/1", "id": "abc", "command": "ping", "ok": True,
                  "error": None}
    unknown = await uplink.handle_command("reboot", b'{"id": "r1"}')
    assert unknown["ok"] is False and "unknown command" in unknown["error"]


@given(st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_commands_never_raise(uplink, raw):
    result = await uplink.handle_command("ack", raw)
    assert set(result) >= {"schema", "id", "ok", "error"}
