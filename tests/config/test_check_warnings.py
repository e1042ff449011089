"""The safety review's warnings: legal but suspicious, each at its line and column."""

from __future__ import annotations

import io
from pathlib import Path

from hearthgate.check import run_check
from tests.config.conftest import TEST_REGISTRY, load

HEAD = """gateway: {id: gw-test}
uplink: {host: 127.0.0.1}
buses:
  - {id: zigbee, type: mqtt}
"""
SOS = ("  - {id: sos-1, site: home, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,"
       " topic: zigbee2mqtt/sos_1}\n")


def warnings(tmp_path: Path, text: str) -> list[tuple[int, int, str, str | None]]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return [(w.line, w.col, w.message, w.hint) for w in load(path).warnings]


def pos(text: str, needle: str) -> tuple[int, int]:
    before = text[: text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def test_a_baud_rate_no_meter_uses_is_warned_with_the_nearest(tmp_path: Path) -> None:
    text = HEAD + (
        "  - {id: rs485-1, type: serial, port: /dev/ttyUSB0, baudrate: 24000, parity: E}\n"
        "devices:\n" + SOS +
        '  - {id: power-1, site: home, kind: power_meter, protocol: dlt645, bus: rs485-1,'
        ' address: "000000005678"}\n'
        "sites:\n  - id: home\n    rules: [{type: sos}, {type: no_power_use}]\n"
    )
    (w,) = warnings(tmp_path, text)
    assert w[:2] == pos(text, "24000")
    assert "baudrate 24000 is not a rate meters or receivers use" in w[2]
    assert w[3] is not None and w[3].startswith("did you mean 19200?")
    assert warnings(tmp_path, text.replace("24000", "2400")) == []


def test_a_parity_unusual_for_the_protocol_is_warned(tmp_path: Path) -> None:
    # RFLink receivers speak 57600 8N1; the serial default is even parity (for meters).
    text = HEAD.replace("  - {id: zigbee, type: mqtt}\n", "") + (
        "  - {id: rf433, type: serial, port: /dev/ttyACM0, baudrate: 57600}\n"
        "devices:\n"
        '  - {id: sos-1, site: home, kind: sos_button, protocol: rflink, bus: rf433,'
        ' match: "EV1527;ID=5a3c1"}\n'
        "sites:\n  - id: home\n    rules: [{type: sos}]\n"
    )
    (w,) = warnings(tmp_path, text)
    assert w[:2] == pos(text, "rf433")
    assert "parity even (the default) is unusual for rflink devices (device 'sos-1')" in w[2]
    assert w[3] is not None and "parity: N" in w[3]
    written = text.replace("baudrate: 57600}", "baudrate: 57600, parity: O}")
    (w,) = warnings(tmp_path, written)
    assert w[:2] == pos(written, "O}") and "parity odd is unusual" in w[2]
    assert warnings(tmp_path, text.replace("baudrate: 57600}", "baudrate: 57600, parity: N}")) == []


def test_a_resident_nothing_can_raise_an_alert_about_is_warned(tmp_path: Path) -> None:
    text = HEAD + (
        "devices:\n"
        "  - {id: door-1, site: home, kind: door_contact, protocol: zigbee2mqtt, bus: zigbee,"
        " topic: zigbee2mqtt/door_1}\n"
        "sites:\n  - id: home\n    resident: r-1\n"
        "    rules: [{type: door_night, quiet_hours: '22:00-06:00'}]\n"
    )
    (w,) = warnings(tmp_path, text)
    assert w[:2] == pos(text, "home\n")
    assert "no SOS device and no absence rule: nothing can raise an alert" in w[2]
    # An absence rule its devices feed is enough; so is an SOS button.
    fed = warnings(tmp_path, text.replace("rules: [", "rules: [{type: no_exit}, "))
    assert [m for *_, m, _ in fed] == ["site 'home' has no SOS device (sos_button)"]
    # A shared area has no resident to watch.
    assert not any("absence" in m for *_, m, _ in warnings(
        tmp_path, text.replace("    resident: r-1\n", "")))


def test_a_profile_rules_the_site_lacks_devices_for_are_one_line(tmp_path: Path) -> None:
    text = HEAD + "devices:\n" + SOS.replace("site: home", "site: room-301") + (
        "sites:\n  - id: room-301\n    resident: r-1\n    profile: living_alone\n"
    )
    (w,) = warnings(tmp_path, text)
    assert w[:2] == pos(text, "living_alone")
    prefix = "room-301: living_alone: "
    assert w[2].startswith(prefix)
    off = set(w[2].removeprefix(prefix).split(", "))
    # Every rule of the profile that needs a device the site lacks, each with why (the
    # profile grows: hazards and learned rules are in it too, so this is a superset check).
    assert off >= {
        "no_water off (no water meter)", "continuous_water off (no water meter)",
        "inactivity off (no fall sensor or motion sensor or presence sensor)",
        "no_exit off (no access controller or door contact)",
        "door_night off (no access controller or door contact)",
        "door_held_open off (no access controller or door contact)",
        "no_power_use off (no power meter)", "power_high off (no power meter)",
        "smoke off (no smoke sensor)", "water_leak off (no leak sensor)",
    }
    # The SOS button feeds `sos`, so it is not off.
    assert not any(item.startswith("sos off") for item in off)
    out, err = io.StringIO(), io.StringIO()
    assert run_check(tmp_path / "config.yaml", out, err, TEST_REGISTRY) == 0
    assert "warning: room-301: living_alone: " in err.getvalue()
    assert "no_water off (no water meter)" in err.getvalue()
