"""`hearthgate discover`: zigbee2mqtt's paired devices as config entries.

The choice and the YAML are tested pure; the command against a real mosquitto holding a
retained bridge/devices built from the corpus (what zigbee2mqtt would publish for those
models), and against bridges and brokers that are not there or not right.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from hearthgate.check import run_check
from hearthgate.cli import main
from hearthgate.core.options import ID_PATTERN
from hearthgate.devkit.local_broker import MosquittoBroker, free_port
from hearthgate.discover import propose, render, run_discover
from hearthgate.drivers.zigbee2mqtt_bridge import MAX_BRIDGE_DEVICES_BYTES, parse_bridge_devices
from hearthgate.simulators.zigbee2mqtt import mqtt_publish
from tests.presence.test_z2m_corpus import DEVICES, bridge_devices, slug


def entry(name: str, model: str | None, exposes: list[dict[str, Any]], *,
          ieee: str = "0x00158d0000aabbcc", kind: str = "EndDevice",
          description: str | None = None) -> dict[str, Any]:
    definition = None if model is None else {
        "model": model, "vendor": "Acme", "description": description, "exposes": exposes}
    return {"friendly_name": name, "ieee_address": ieee, "type": kind,
            "definition": definition}


ACTION = [{"type": "enum", "property": "action", "values": ["single", "double"]}]
CONTACT = [{"type": "binary", "property": "contact"}]
LIGHT = [{"type": "light", "features": [{"property": "state"}, {"property": "brightness"}]}]


def listed(*entries: dict[str, Any]) -> Any:
    return parse_bridge_devices(json.dumps(list(entries)).encode())


def load_yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


# -- pure: the guess, the choice, the YAML ------------------------------------------


def test_the_kind_guessed_from_the_exposes_is_the_corpus_kind_for_every_model() -> None:
    devices = parse_bridge_devices(bridge_devices()).devices
    for d in DEVICES:
        assert devices[slug(d["model"])].guess_kind() == d["kind"], d["model"]


def test_the_coordinator_and_configured_devices_are_skipped() -> None:
    bridge = listed(entry("Coordinator", None, [], kind="Coordinator"),
                    entry("door_1", "SNZB-04", CONTACT), entry("door_2", "SNZB-04", CONTACT))
    report = propose("zigbee", "zigbee2mqtt", bridge, {"zigbee2mqtt/door_1"}, set())
    assert (report.paired, report.configured) == (2, 1)
    assert [p.topic for p in report.proposals] == ["zigbee2mqtt/door_2"]
    assert report.proposals[0].kind == "door_contact"


def test_ids_are_valid_and_unique_whatever_the_friendly_names() -> None:
    names = ["Door 1", "door-1", "DOOR 1", "卧室门", "客厅门", "-x-", "a" * 200,
             "living/room/door", "0x00158d0001"]
    bridge = listed(*(entry(n, "SNZB-04", CONTACT, ieee=f"0x00158d00000000{i:02x}")
                      for i, n in enumerate(names)))
    report = propose("zigbee", "zigbee2mqtt", bridge, set(), {"door-1-2"})
    ids = [p.id for p in report.proposals]
    assert len(set(ids)) == len(ids) == len(names)
    assert all(re.match(ID_PATTERN, i) for i in ids), ids
    assert "door-1-2" not in ids  # already the config's
    assert ids[:3] == ["door-1", "door-1-3", "door-1-4"]
    assert ids[3].startswith("door-")  # a Chinese name: the kind and the IEEE address
    assert ids[7] == "living-room-door"


def test_the_yaml_reads_back_as_written_and_comments_what_is_uncertain() -> None:
    bridge = listed(
        entry("Living room PIR", "9290012607",
              [{"type": "binary", "property": "occupancy"}], ieee="0x01"),
        entry("on", "SNZB-01", ACTION, ieee="0x02", description="Wireless button"),
        entry("sos", "TS0215A_sos", [{"type": "enum", "property": "action",
                                      "values": ["emergency"]}], ieee="0x03"),
        entry("lamp", "LED1545G12", LIGHT, ieee="0x04", kind="Router"),
        entry("new thing", None, [], ieee="0x05"),
        entry('odd "name"\nwith: a colon, [brackets]', "SNZB-04", CONTACT, ieee="0x06"),
    )
    report = propose("zigbee", "zigbee2mqtt", bridge, set(), set())
    text = render([report], ["room-1", "room-2"])
    data = load_yaml(text)
    # Only what fits is an entry; the lamp and the undefined device are commented out.
    assert [d["topic"] for d in data] == [
        "zigbee2mqtt/Living room PIR", "zigbee2mqtt/on", "zigbee2mqtt/sos",
        'zigbee2mqtt/odd "name"\nwith: a colon, [brackets]']
    pir, button, _sos, odd = data
    assert pir["model"] == "9290012607" and pir["kind"] == "motion_sensor"
    assert pir["name"] == "Living room PIR" and pir["site"] is None
    assert button["id"] == "on"  # not YAML 1.1's true
    assert odd["name"] == 'odd "name"\nwith: a colon, [brackets]'
    assert {d["protocol"] for d in data} == {"zigbee2mqtt"}
    assert {d["bus"] for d in data} == {"zigbee"}
    assert "one of: room-1, room-2" in text
    assert "an ordinary button" in comments_on(text, "SNZB-01")
    assert "an ordinary button" not in comments_on(text, "TS0215A_sos")
    assert "nothing the gateway watches" in comments_on(text, "LED1545G12")
    assert "no definition" in comments_on(text, "(no model)")


def comments_on(text: str, model: str) -> str:
    """The comment lines above the entry whose header names `model`."""
    lines = text.splitlines()
    header = re.compile(rf"^  # .* {re.escape(model)}[ ,]")
    start = next(i for i, line in enumerate(lines) if header.match(line))
    end = next(i for i in range(start, len(lines)) if "- id:" in lines[i])
    return "\n".join(lines[start:end])


def test_nothing_new_prints_nothing() -> None:
    bridge = listed(entry("door_1", "SNZB-04", CONTACT))
    report = propose("zigbee", "zigbee2mqtt", bridge, {"zigbee2mqtt/door_1"}, set())
    assert render([report], ["room-1"]) == ""


# -- against a real broker ------------------------------------------------------------


def write_config(tmp: Path, port: int, *, extra_buses: str = "", devices: str = "") -> Path:
    path = tmp / "hearthgate.yaml"
    path.write_text(
        f"gateway: {{id: gw-test, data_dir: {tmp / 'data'}}}\n"
        "uplink: {host: 127.0.0.1}\n"
        "buses:\n"
        f"  - {{id: zigbee, type: mqtt, host: 127.0.0.1, port: {port}}}\n{extra_buses}"
        "devices:\n"
        "  - {id: sos-1, site: room-1, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,"
        f" topic: zigbee2mqtt/hs1eb-hs1eb-e}}\n{devices}"
        "sites:\n"
        "  - {id: room-1, profile: living_alone}\n"
        "  - {id: room-2, profile: facility_room}\n"
    )
    return path


def retain(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    async def go() -> None:
        async with mqtt_publish(broker.host, broker.port) as publish:
            await publish(topic, payload, True)

    asyncio.run(go())


def discover(path: Path, timeout: float = 5.0) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_discover(path, timeout=timeout, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_corpus_bridge_gives_an_entry_per_new_device_that_passes_check(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    retain(broker, "zigbee2mqtt/bridge/devices", bridge_devices())
    cfg = write_config(tmp_path, broker.port)
    code, out, err = discover(cfg)
    assert code == 0, err
    assert "47 paired, 1 already in the config, 46 new" in err
    entries = load_yaml(out)
    assert len(entries) == len(DEVICES) - 1
    by_topic = {e["topic"]: e for e in entries}
    for d in DEVICES:
        topic = f"zigbee2mqtt/{slug(d['model'])}"
        if d["model"] == "HS1EB/HS1EB-E":
            assert topic not in by_topic  # configured already
            continue
        assert by_topic[topic]["kind"] == d["kind"]
        assert by_topic[topic]["model"] == d["model"]  # zigbee2mqtt's exact string

    # Pasted under `devices:` with each site filled in, the config passes check.
    filled = out.replace("site:    # FILL IN", "site: room-2    # FILL IN")
    text = cfg.read_text().replace("sites:\n", filled + "sites:\n", 1)
    cfg.write_text(text)
    check_out, check_err = io.StringIO(), io.StringIO()
    assert run_check(cfg, out=check_out, err=check_err) == 0, check_err.getvalue()
    assert "47 devices" in check_out.getvalue()

    # And a second run finds nothing new.
    code, out, err = discover(cfg)
    assert (code, out) == (0, "")
    assert "47 already in the config, 0 new" in err


def test_the_command_line(broker: MosquittoBroker, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    retain(broker, "home/bridge/devices",
           json.dumps([entry("door_9", "SNZB-04", CONTACT)]).encode())
    cfg = write_config(tmp_path, broker.port)
    assert main(["discover", "-c", str(cfg), "--timeout", "2s", "--base-topic", "home"]) == 0
    captured = capsys.readouterr()
    assert load_yaml(captured.out)[0]["topic"] == "home/door_9"
    assert main(["discover", "-c", str(cfg), "--timeout", "soon"]) == 2
    assert "--timeout" in capsys.readouterr().err


@pytest.mark.parametrize(("payload", "said"), [
    (b'[{"friendly_name": "x", "ieee_', "not JSON"),
    (b'{"devices": []}', "not a list but dict"),
    (b"[" + b"1," * (MAX_BRIDGE_DEVICES_BYTES // 2) + b"1]", "more than 8388608"),
], ids=["malformed", "wrong-typed", "huge"])
def test_a_bridge_message_that_is_not_zigbee2mqtts_is_reported(
        broker: MosquittoBroker, tmp_path: Path, payload: bytes, said: str) -> None:
    retain(broker, "zigbee2mqtt/bridge/devices", payload)
    code, out, err = discover(write_config(tmp_path, broker.port))
    assert code == 1 and out == ""
    assert "bus 'zigbee': zigbee2mqtt/bridge/devices: not zigbee2mqtt's device list" in err
    assert said in err and "Traceback" not in err


def test_bad_entries_are_skipped_and_said(broker: MosquittoBroker, tmp_path: Path) -> None:
    retain(broker, "zigbee2mqtt/bridge/devices", json.dumps(
        [42, {"friendly_name": ["x"]}, entry("door_9", "SNZB-04", CONTACT)]).encode())
    code, out, err = discover(write_config(tmp_path, broker.port))
    assert code == 0
    assert [e["id"] for e in load_yaml(out)] == ["door_9"]
    assert "skipped entry 0: not an object" in err and "skipped entry 1" in err


def test_no_bridge_message_and_no_broker_are_said_and_the_rest_still_read(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    retain(broker, "zigbee2mqtt/bridge/devices",
           json.dumps([entry("door_9", "SNZB-04", CONTACT)]).encode())
    cfg = write_config(
        tmp_path, broker.port,
        extra_buses=f"  - {{id: zigbee-b, type: mqtt, host: 127.0.0.1, port: {dead}}}\n"
                    f"  - {{id: zigbee-c, type: mqtt, host: 127.0.0.1, port: {broker.port}}}\n",
        devices="  - {id: pir-c, site: room-1, kind: motion_sensor, protocol: zigbee2mqtt,"
                " bus: zigbee-c, topic: z2m-c/pir}\n"
                "  - {id: pir-b, site: room-1, kind: motion_sensor, protocol: zigbee2mqtt,"
                " bus: zigbee-b, topic: z2m-b/pir}\n")
    code, out, err = discover(cfg, 0.5)
    assert code == 0
    assert [e["id"] for e in load_yaml(out)] == ["door_9"]
    assert f"bus 'zigbee-b': cannot reach the broker at 127.0.0.1:{dead}" in err
    assert "bus 'zigbee-c': z2m-c/bridge/devices: no retained message within 0.5s" in err
    assert "Traceback" not in err


def test_nothing_readable_exits_1(tmp_path: Path) -> None:
    code, out, err = discover(write_config(tmp_path, free_port()), 0.5)
    assert (code, out) == (1, "")
    assert "cannot reach the broker" in err
