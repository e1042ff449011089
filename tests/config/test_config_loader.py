"""The loader on good files, secrets, profiles, and `check` output (summary and warnings)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from hearthgate import config
from hearthgate.check import run_check
from hearthgate.config import ConfigError
from hearthgate.rules.base import RuleSpec, SiteExpectation
from hearthgate.rules.sos import SosRule
from tests.config.config_samples import GOOD
from tests.config.conftest import (
    TEST_REGISTRY,
    WindowTestOptions,
    load,
    load_config,
    parse_config_data,
)

REPO = Path(__file__).resolve().parents[2]




def pos(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of needle in text."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_check(path, out, err, TEST_REGISTRY)
    return code, out.getvalue(), err.getvalue()


def test_good_config_loads_with_typed_options(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.gateway.id == "gw-test-0001"
    assert cfg.uplink.keepalive == 45.0 and cfg.uplink.telemetry_interval == 0.5
    bus = cfg.bus("rs485-1")
    assert bus.type == "t_serial"
    assert bus.options.baudrate == 2400 and bus.options.timeout == 0.8  # type: ignore[attr-defined]
    water = cfg.devices[0]
    assert water.options.poll == 300.0 and water.offline_after == 3600.0  # type: ignore[attr-defined]
    home = cfg.site("home")
    assert [r.type for r in home.rules] == ["sos", "no_water", "t_window"]
    window = home.rules[2].options
    assert str(window.active_hours) == "22:00-06:00"  # type: ignore[attr-defined]
    assert cfg.source == tmp_path / "config.yaml"


def test_check_prints_summary_and_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    code, out, err = check(path)
    assert code == 0, err
    assert out == f"{path}: ok: 2 devices, 2 buses, 1 sites, 3 rules\n"
    assert err == ""


def test_python_m_gateway_check(tmp_path: Path) -> None:
    text = "gateway: {id: gw-test}\nuplink: {host: 127.0.0.1, prt: 1}\n"
    bad = write(tmp_path, text)
    line, col = pos(text, "prt")
    run = subprocess.run(
        [sys.executable, "-m", "hearthgate.check", "-c", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert run.returncode == 2
    assert f"{bad}:{line}:{col}: error: uplink: unknown key 'prt'" in run.stderr
    assert "hint: did you mean 'port'?" in run.stderr
    assert "Traceback" not in run.stderr


def test_all_problems_are_reported_not_only_the_first(tmp_path: Path) -> None:
    text = GOOD.replace("baudrate: 2400", "baudrate: fast").replace("window: 12h", "window: 12x")
    text = text.replace("language: en", "language: fr")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    positions = [(p.line, p.col) for p in caught.value.problems]
    assert positions == sorted(positions)
    assert len(positions) == 3


def test_profile_expands_and_explicit_rules_override(tmp_path: Path) -> None:
    text = GOOD.replace("    rules:\n      - {type: sos}\n", "    profile: sos_only\n    rules:\n")
    text = text.replace(
        "      - {type: no_water", "      - {type: sos, severity: high}\n      - {type: no_water"
    )
    cfg = load_config(write(tmp_path, text))
    rules = cfg.site("home").rules
    assert [r.type for r in rules] == ["sos", "no_water", "t_window"]
    assert rules[0].options.severity == "high"


def test_error_in_a_rule_merged_into_a_profile_points_at_the_explicit_key(tmp_path: Path) -> None:
    text = GOOD.replace("    rules:\n      - {type: sos}\n", "    profile: sos_only\n    rules:\n")
    text = text.replace(
        "      - {type: no_water", "      - {type: sos, severity: hgh}\n      - {type: no_water"
    )
    path = write(tmp_path, text)
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if "severity: hgh" in t)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (line, lines[line - 1].index("hgh") + 1)
    assert problem.hint == "did you mean 'high'?"


def test_secret_and_password_file(tmp_path: Path) -> None:
    write(tmp_path, "uplink_password: 'hunter2-long'\n", "secrets.yaml")
    text = GOOD.replace(
        "  keepalive: 45s\n", "  keepalive: 45s\n  password: !secret uplink_password\n"
    )
    cfg = load_config(write(tmp_path, text))
    assert isinstance(cfg.uplink.password, SecretStr)
    assert cfg.uplink.password.get_secret_value() == "hunter2-long"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())

    (tmp_path / "pw").write_text("file-password\n")
    text = GOOD.replace("  keepalive: 45s\n", "  keepalive: 45s\n  password_file: pw\n")
    cfg = load_config(write(tmp_path, text))
    assert cfg.uplink.password is not None
    assert cfg.uplink.password.get_secret_value() == "file-password"
    assert cfg.uplink.password_file == Path("pw")


def test_secret_value_never_appears_in_errors(tmp_path: Path) -> None:
    write(tmp_path, "port_secret: not-a-port-value\n", "secrets.yaml")
    text = "gateway: {id: gw-test}\nuplink:\n  host: 127.0.0.1\n  port: !secret port_secret\n"
    code, _, err = check(write(tmp_path, text))
    assert code == 2
    assert f"{tmp_path / 'config.yaml'}:4:9: error: uplink: port: should be a whole number" in err
    assert "not-a-port-value" not in err


@pytest.mark.parametrize(
    ("secrets", "fragment", "file_is_secrets"),
    [
        ("just text\n", "must be a mapping", True),
        ("a: [1, 2\n", "YAML syntax error", True),
        ("uplink_password: [a, b]\n", "must be a single value", True),
    ],
)
def test_broken_secrets_file_is_reported_in_that_file(
    tmp_path: Path, secrets: str, fragment: str, file_is_secrets: bool
) -> None:
    write(tmp_path, secrets, "secrets.yaml")
    text = (
        "gateway: {id: gw-test}\nuplink:\n  host: 127.0.0.1\n  password: !secret uplink_password\n"
    )
    code, _, err = check(write(tmp_path, text))
    assert code == 2
    assert fragment in err
    assert f"{tmp_path / 'secrets.yaml'}:" in err


def test_unreadable_secrets_and_password_file(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").mkdir()
    text = "gateway: {id: gw-test}\nuplink:\n  host: 127.0.0.1\n  password: !secret pw\n"
    code, _, err = check(write(tmp_path, text))
    assert code == 2 and "config.yaml:4:13: error: secret 'pw' cannot be read" in err

    text = "gateway: {id: gw-test}\nuplink:\n  host: 127.0.0.1\n  password_file: /nonexistent/pw\n"
    code, _, err = check(write(tmp_path, text))
    assert code == 2
    assert "config.yaml:4:18: error: uplink: password_file /nonexistent/pw cannot be read" in err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"gateway: {id: gw-\xff\xfe}\n", "1:18: error: not UTF-8 text"),
        (b"a: 1\n" + b"#" * (1024 * 1024 + 10), "1:1: error: the file is larger than 1024 KiB"),
        (b"a: &a [*a]\n", "an alias refers to the value it is part of"),
        (b"[" * 5000, "1:1: error:"),
    ],
)
def test_hostile_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    code, out, err = check(path)
    assert code == 2 and out == ""
    assert fragment in err, err


def test_missing_config_file_and_directory(tmp_path: Path) -> None:
    code, _, err = check(tmp_path / "nope.yaml")
    assert code == 2 and "nope.yaml:1:1: error: cannot read the config file" in err
    code, _, err = check(tmp_path)
    assert code == 2 and "error: cannot read the config file" in err


def test_merge_keys_work_and_keep_positions(tmp_path: Path) -> None:
    text = GOOD.replace(
        "buses:\n",
        "buses:\n  - &serial {id: rs485-2, type: t_serial, port: /dev/ttyUSB1, parity: X}\n"
        "  - {<<: *serial, id: rs485-3}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    # The bad value is written once, in the anchor: both buses report it there.
    where = pos(text, "X}")
    assert [(p.line, p.col) for p in caught.value.problems] == [where, where]
    assert "bus 'rs485-2'" in caught.value.problems[0].message
    assert "bus 'rs485-3'" in caught.value.problems[1].message


def test_parse_config_data_reports_without_positions() -> None:
    cfg = parse_config_data(
        {"gateway": {"id": "gw-test"}, "uplink": {"host": "127.0.0.1"}, "sites": [{"id": "a"}]}
    )
    assert cfg.site("a").rules == ()
    with pytest.raises(ConfigError) as caught:
        parse_config_data({"gateway": {"id": "gw-test"}, "uplink": {"hots": "x"}})
    messages = [p.message for p in caught.value.problems]
    assert "uplink: unknown key 'hots'" in messages
    assert "uplink: missing required key 'host'" not in messages  # the typo explains it


# -- warnings -----------------------------------------------------------------------------------


def warnings_of(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    result = load(write(tmp_path, text))
    return [(w.line, w.col, w.message) for w in result.warnings]


def test_good_config_has_no_warnings(tmp_path: Path) -> None:
    assert warnings_of(tmp_path, GOOD) == []


def test_warning_water_meter_without_no_water_rule(tmp_path: Path) -> None:
    text = GOOD.replace("      - {type: no_water, window: 12h, devices: [water-1]}\n", "")
    (w,) = warnings_of(tmp_path, text)
    assert (
        w[:2] == pos(text, "water_meter")
        and "water meter but site 'home' has no 'no_water' rule" in w[2]
    )


def test_warning_sos_button_without_sos_rule_and_the_reverse(tmp_path: Path) -> None:
    text = GOOD.replace("      - {type: sos}\n", "")
    (w,) = warnings_of(tmp_path, text)
    assert w[:2] == pos(text, "sos_button") and "SOS button ('sos-1') but no 'sos' rule" in w[2]

    # The reverse, an 'sos' rule with no button, is refused (tests/config/broken/).
    text = GOOD.replace("kind: sos_button", "kind: motion_sensor")
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text))
    (p,) = caught.value.problems
    assert (p.line, p.col) == pos(text, "sos}") and "'sos' rule but no sos_button" in p.message


def test_warning_site_without_sos_device(tmp_path: Path) -> None:
    text = GOOD + "  - id: garden\n"
    (w,) = warnings_of(tmp_path, text)
    assert w[:2] == pos(text, "garden") and "site 'garden' has no SOS device" in w[2]


def test_warning_poll_longer_than_window(tmp_path: Path) -> None:
    text = GOOD.replace("poll: 5m", "poll: 13h")
    found = warnings_of(tmp_path, text)
    assert [w[:2] for w in found] == [pos(text, "13h")] * 2
    assert "polled every 13h, longer than the 12h window of rule 'no_water'" in found[0][2]
    assert "polled every 13h, longer than the 4h window of rule 't_window'" in found[1][2]


def test_warning_bus_without_devices(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - {id: zigbee, type: t_mqtt}\n",
        "  - {id: zigbee, type: t_mqtt}\n  - {id: spare, type: t_mqtt}\n",
    )
    (w,) = warnings_of(tmp_path, text)
    assert w[:2] == pos(text, "spare") and "bus 'spare' has no devices" in w[2]


@pytest.mark.parametrize(
    ("host", "warned"),
    [("mqtt.platform.example", True), ("10.0.0.5", True), ("localhost", False), ("::1", False)],
)
def test_warning_uplink_without_tls(tmp_path: Path, host: str, warned: bool) -> None:
    text = GOOD.replace("host: 127.0.0.1", f"host: '{host}'")
    found = warnings_of(tmp_path, text)
    assert bool(found) == warned
    if warned:
        assert found[0][:2] == pos(text, f"'{host}'") and "no 'tls:'" in found[0][2]
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with_tls = text.replace(
        "  keepalive: 45s\n", f"  keepalive: 45s\n  tls: {{ca_file: {ca}}}\n"
    )
    assert warnings_of(tmp_path, with_tls) == []


def test_a_rule_type_brings_its_own_site_warnings(tmp_path: Path) -> None:
    # The warnings about missing rules are data of the rule types, not code of the loader.
    expected = SiteExpectation(
        kinds=frozenset({"motion_sensor"}),
        unwatched="'{device}' moves unwatched in '{site}'",
        hint="add {type: t_motion}",
        each_device=True,
        idle="'{site}' has t_motion but nothing that moves",
        absent="'{site}' has no motion sensor",
    )
    registry = TEST_REGISTRY.extended(
        rules=[RuleSpec("t_motion", WindowTestOptions, SosRule, expected=expected)]
    )

    def found(text: str) -> list[tuple[int, int, str, str | None]]:
        result = config.load(write(tmp_path, text), registry)
        return [(w.line, w.col, w.message, w.hint) for w in result.warnings]

    line, col = pos(GOOD, "id: home")
    assert found(GOOD) == [(line, col + 4, "'home' has no motion sensor", None)]

    motion = "".join(
        f"  - {{id: pir-{n}, site: home, kind: motion_sensor, protocol: t_zigbee, bus: zigbee,\n"
        f"     topic: zigbee2mqtt/pir_{n}}}\n"
        for n in (1, 2)
    )
    text = GOOD.replace("sites:\n", motion + "sites:\n")
    assert found(text) == [
        (*pos(text, "motion_sensor", n), f"'pir-{n + 1}' moves unwatched in 'home'",
         "add {type: t_motion}")
        for n in (0, 1)
    ]

    # Written without anything it reads, it is refused with its own words.
    text = GOOD.replace("      - {type: sos}\n", "      - {type: sos}\n      - {type: t_motion}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text), registry)
    assert [(p.line, p.col, p.message) for p in caught.value.problems] == [
        (*pos(text, "t_motion"), "'home' has t_motion but nothing that moves")
    ]


def test_check_prints_warnings_and_still_exits_0(tmp_path: Path) -> None:
    text = GOOD + "  - id: garden\n    resident: r-9\n"
    path = write(tmp_path, text)
    code, out, err = check(path)
    assert code == 0
    assert out.startswith(f"{path}: ok: ")
    line, col = pos(text, "garden")
    assert err.splitlines() == [
        f"{path}:{line}:{col}: warning: site 'garden' has no SOS device and no absence rule:"
        " nothing can raise an alert about its resident",
        "  hint: add an sos_button to the site, or a rule such as {type: inactivity, window: 4h}"
        " with a motion sensor",
    ]


def test_redact_hides_quoted_and_long_secrets_only() -> None:
    from hearthgate.config.secrets import redact

    assert redact("got 'ab', not a number", ["ab"]) == "got '***', not a number"
    assert redact("a bad value at b", ["a"]) == "a bad value at b"
    assert redact("token s3cr3t-xyz leaked", ["s3cr3t-xyz"]) == "token *** leaked"


def test_uplink_protocol_defaults_to_5_and_3_1_1_without_receipts_warns(tmp_path: Path) -> None:
    assert load(write(tmp_path, GOOD)).config.uplink.protocol == "5"
    text = GOOD.replace("  keepalive: 45s\n", "  keepalive: 45s\n  protocol: 3.1.1\n")
    (w,) = warnings_of(tmp_path, text)
    assert w[:2] == pos(text, "3.1.1") and "cannot see the refusal" in w[2]
    with_receipts = text.replace("  protocol: 3.1.1\n", "  protocol: 3.1.1\n  receipts: true\n")
    assert warnings_of(tmp_path, with_receipts) == []
    assert load(write(tmp_path, with_receipts)).config.uplink.receipts is True
