"""docs/asyncapi.yaml checked against the contract (§3 of shared/design/contract.md beside the
checkout, or the copy of its facts below when that file is not there) and against the code's
payloads.

The contract is ahead of the code: topics and alert types that open issues will build are
listed in PLANNED_* with their issue, and left out of what the documents must carry. A planned
entry that the contract no longer has, or that the documents already carry, fails the test, so
each entry goes when its issue lands and none is forgotten.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ruamel.yaml import YAML

from hearthgate.core.model import AlertState, AlertTransition, Severity

REPO = Path(__file__).resolve().parents[2]
ASYNCAPI = REPO / "docs" / "asyncapi.yaml"
MQTT_API = REPO / "docs" / "mqtt-api.md"
CONTRACT_PLACES = (
    REPO.parent / "shared" / "design" / "contract.md",
    Path("/work/shared/design/contract.md"),
)

# In the contract, not yet in this build: the issue that builds each.
PLANNED_TOPICS = {
}
PLANNED_ALERT_TYPES: dict[str, str] = {}

# A copy of the contract's facts, used when contract.md is not readable (a fresh clone).
FALLBACK_TOPICS = {
    "status": ("up", {1}, True),
    "alerts": ("up", {1}, False),
    "telemetry": ("up", {0, 1}, False),
    "devices": ("up", {1}, True),
    "audit": ("up", {1}, False),
    "cmd/ack": ("down", {1}, False),
    "cmd/ping": ("down", {1}, False),
    "cmd/config": ("down", {1}, False),
    "cmd/logs": ("down", {1}, False),
    "cmd/restart": ("down", {1}, False),
    "cmd/receipt": ("down", {1}, False),
    "cmd/result": ("up", {1}, False),
}
FALLBACK_ALERT_FIELDS = [
    "schema", "event_id", "alert_id", "state", "type", "severity", "gateway_id", "site_id",
    "resident_id", "device_ids", "raised_at", "ts", "message", "details",
]
FALLBACK_ALERT_TYPES = [
    "sos", "fall", "no_water", "continuous_water", "inactivity", "no_exit", "door_night",
    "door_held_open", "access_denied_repeated", "no_power_use", "power_high", "device_offline",
    "battery_low", "tamper", "smoke", "gas_leak", "carbon_monoxide", "water_leak",
]


def contract_text() -> str | None:
    for place in CONTRACT_PLACES:
        try:
            return place.read_text(encoding="utf-8")
        except OSError:
            continue
    return None


def contract_topics() -> dict[str, tuple[str, set[int], bool]]:
    """The contract's topics that this build serves (planned ones left out)."""
    return {k: v for k, v in all_contract_topics().items() if k not in PLANNED_TOPICS}


def all_contract_topics() -> dict[str, tuple[str, set[int], bool]]:
    text = contract_text()
    if text is None:
        return FALLBACK_TOPICS
    topics = {}
    for mo in re.finditer(r"^\| `P/([a-z/]+)` \| (up|down) \| ([^|]+) \|", text, re.M):
        suffix, direction, qos_text = mo.groups()
        qos = {int(d) for d in re.findall(r"\b([012])\b", qos_text.split("(")[0])}
        topics[suffix] = (direction, qos, "retained" in qos_text)
    assert topics, "no topic table found in contract §3"
    return topics


def contract_alert_fields() -> list[str]:
    text = contract_text()
    if text is None:
        return FALLBACK_ALERT_FIELDS
    mo = re.search(r"An alert transition:\s*```json\n(.*?)```", text, re.S)
    assert mo, "no alert JSON block in contract §3"
    # The block carries // comments; strip them (no value contains '//').
    body = re.sub(r"\s*//[^\n]*", "", mo.group(1))
    body = body.replace('"0193a6e2-..."', '"x"').replace('"0193a6d0-..."', '"x"')
    return list(json.loads(body))


def contract_alert_types() -> list[str]:
    """The contract's alert types that this build raises (planned ones left out)."""
    return [t for t in all_contract_alert_types() if t not in PLANNED_ALERT_TYPES]


def all_contract_alert_types() -> list[str]:
    text = contract_text()
    if text is None:
        return FALLBACK_ALERT_TYPES
    mo = re.search(r"Alert types: (.*?);", text, re.S)
    assert mo
    return re.findall(r"`([a-z_]+)`", mo.group(1))


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    data = YAML(typ="safe").load(ASYNCAPI.read_text(encoding="utf-8"))
    # Round-trip through JSON: plain dicts, and proof the document is JSON-compatible.
    return json.loads(json.dumps(data))


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Inline local $refs (the document has no cycles)."""
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return resolve(doc, target)
        return {k: resolve(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(doc, v) for v in node]
    return node


def test_document_shape(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    # Every $ref points somewhere.
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(doc))
    assert refs
    for ref in refs:
        target: Any = doc
        for part in ref.split("/"):
            assert part in target, ref
            target = target[part]


def test_every_contract_topic_with_direction_qos_retain(doc: dict[str, Any]) -> None:
    topics = contract_topics()
    assert set(topics) == set(FALLBACK_TOPICS)  # the copy above still matches the contract
    by_address = {c["address"]: name for name, c in doc["channels"].items()}
    expected_addresses = {f"{{prefix}}/{{gatewayId}}/{suffix}" for suffix in topics}
    assert set(by_address) == expected_addresses
    for suffix, (direction, qos, retained) in topics.items():
        channel = by_address[f"{{prefix}}/{{gatewayId}}/{suffix}"]
        ops = [op for op in doc["operations"].values()
               if op["channel"]["$ref"] == f"#/channels/{channel}"]
        assert len(ops) == 1, suffix
        op = ops[0]
        assert op["action"] == ("send" if direction == "up" else "receive"), suffix
        binding = op["bindings"]["mqtt"]
        if len(qos) > 1:
            # Configurable QoS: the default is in the binding, the choices beside it.
            assert set(op["x-qos-configurable"]) == qos, suffix
            assert binding["qos"] in qos
        else:
            assert {binding["qos"]} == qos, suffix
        assert binding["retain"] is retained, suffix
        params = doc["channels"][channel]["parameters"]
        assert set(params) == {"prefix", "gatewayId"}


def test_last_will(doc: dict[str, Any]) -> None:
    will = doc["servers"]["platform"]["bindings"]["mqtt"]["lastWill"]
    assert will["topic"].endswith("/status") and will["qos"] == 1 and will["retain"] is True
    message = json.loads(will["message"])
    assert message["state"] == "offline" and message["schema"] == "hearthgate.status/1"


def test_alert_examples_carry_every_contract_field(doc: dict[str, Any]) -> None:
    fields = contract_alert_fields()
    assert fields == FALLBACK_ALERT_FIELDS
    message = doc["components"]["messages"]["alert"]
    schema = resolve(doc, message["payload"])
    assert set(schema["required"]) == set(fields)
    # `test` is optional in the contract (§3: "a transition may carry"), so not in its example.
    assert set(schema["properties"]) == set(fields) | {"test"}
    assert "test" not in schema["required"]
    assert len(message["examples"]) >= 2
    states = set()
    for example in message["examples"]:
        payload = example["payload"]
        assert list(payload) == fields, example["name"]  # every field, in contract order
        states.add(payload["state"])
    assert states == {"raised", "escalated", "cleared"}
    assert schema["properties"]["state"]["enum"] == [str(s) for s in AlertState]
    assert schema["properties"]["severity"]["enum"] == [str(s) for s in Severity]


def test_alert_types_match_contract(doc: dict[str, Any]) -> None:
    types = contract_alert_types()
    assert types == FALLBACK_ALERT_TYPES
    schema = doc["components"]["schemas"]["Alert"]
    assert schema["properties"]["type"]["examples"] == types


def test_planned_entries_are_in_the_contract_and_not_yet_documented(doc: dict[str, Any]) -> None:
    if contract_text() is None:
        pytest.skip("contract.md is not beside this checkout")
    assert set(PLANNED_TOPICS) <= set(all_contract_topics())
    assert set(PLANNED_ALERT_TYPES) <= set(all_contract_alert_types())
    addresses = {c["address"] for c in doc["channels"].values()}
    text = MQTT_API.read_text(encoding="utf-8")
    for suffix in PLANNED_TOPICS:
        assert f"{{prefix}}/{{gatewayId}}/{suffix}" not in addresses, f"{suffix} is built now"
        assert f"P/{suffix}" not in text, f"{suffix} is documented now"
    documented = doc["components"]["schemas"]["Alert"]["properties"]["type"]["examples"]
    assert not set(PLANNED_ALERT_TYPES) & set(documented)


def test_examples_validate_against_their_schemas(doc: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    count = 0
    for name, message in doc["components"]["messages"].items():
        schema = resolve(doc, message["payload"])
        jsonschema.Draft7Validator.check_schema(schema)
        validator = jsonschema.Draft7Validator(schema)
        assert message["examples"], name
        for example in message["examples"]:
            errors = list(validator.iter_errors(example["payload"]))
            assert not errors, (name, example["name"], [e.message for e in errors])
            count += 1
    assert count >= 12
    # And a wrong payload is caught, so the check above is not vacuous.
    alert = resolve(doc, doc["components"]["messages"]["alert"]["payload"])
    bad = dict(doc["components"]["messages"]["alert"]["examples"][0]["payload"])
    del bad["event_id"]
    bad["severity"] = "urgent"
    assert len(list(jsonschema.Draft7Validator(alert).iter_errors(bad))) == 2


def test_code_payload_matches_the_document(doc: dict[str, Any]) -> None:
    """AlertTransition.to_payload (what the uplink sends) against the documented schema."""
    jsonschema = pytest.importorskip("jsonschema")
    at = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    transition = AlertTransition(
        event_id="e1", alert_id="a1", state=AlertState.RAISED, type="no_water",
        severity=Severity.HIGH, site_id="room-301", resident_id="r-1001",
        device_ids=("water-301",), raised_at=at, ts=at, message="12 小时未用水",
        details={"window_s": 43200})
    payload = transition.to_payload("gw-hz-xihu-0001", ZoneInfo("Asia/Shanghai"))
    assert list(payload) == contract_alert_fields()
    assert payload["ts"] == "2026-11-22T08:00:00+08:00"
    schema = resolve(doc, doc["components"]["messages"]["alert"]["payload"])
    jsonschema.validate(payload, schema)


def test_prose_doc_names_every_topic() -> None:
    text = MQTT_API.read_text(encoding="utf-8")
    for suffix in contract_topics():
        assert f"P/{suffix}" in text, suffix
    for word in ("event_id", "last will", "at least once", "puback", "de-duplicate"):
        assert word in text.lower(), word
