"""Whatever the file holds, loading either succeeds or raises ConfigError with positions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearthgate.check import run_check
from hearthgate.config import ConfigError
from tests.config.config_samples import GOOD
from tests.config.conftest import TEST_REGISTRY, load_config, parse_config_data

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Pieces that YAML and the loader treat specially, to reach deeper than random letters do.
TOKENS = [
    ":",
    "- ",
    "\n",
    "  ",
    "\t",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: ",
    "!secret ",
    "!!int ",
    "? ",
    "'",
    '"',
    "#",
    "---\n",
    "|\n",
    "id: ",
    "type: ",
    "t_serial",
    "t_meter",
    "sos",
    "12h",
    "25:00-06:00",
    "bus: ",
    "site: ",
    "kind: ",
    "water_meter",
    "null",
    "~",
    "1e9",
    "-1",
    "0x1f",
    "gateway:",
    "uplink:",
    "devices:",
    "sites:",
    "rules:",
    "profile: ",
]

line_text = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=6)), max_size=30).map(
    "".join
)


def _check_file(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.line >= 1 and p.col >= 1 and p.message
    out, err = io.StringIO(), io.StringIO()
    assert run_check(path, out, err, TEST_REGISTRY) in (0, 2), err.getvalue()


@FUZZ
@given(st.text(max_size=400))
def test_random_text(tmp_path: Path, text: str) -> None:
    _check_file(tmp_path, text.encode("utf-8", "replace"))


@FUZZ
@given(line_text)
def test_random_yaml_like_text(tmp_path: Path, text: str) -> None:
    _check_file(tmp_path, text)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 8), st.sampled_from(TOKENS)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_good_config(tmp_path: Path, edits: list[tuple[int, int, str]]) -> None:
    text = GOOD
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut :]
    _check_file(tmp_path, text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    _check_file(tmp_path, data)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["t_serial", "t_meter", "sos", "12h", "home", "rs485-1", "water_meter"]),
)
keys = st.one_of(
    st.sampled_from(
        [
            "gateway",
            "uplink",
            "buses",
            "devices",
            "sites",
            "id",
            "type",
            "host",
            "port",
            "protocol",
            "bus",
            "site",
            "kind",
            "rules",
            "profile",
            "window",
            "devices",
            "tls",
        ]
    ),
    st.text(max_size=8),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=30,
)


@FUZZ
@given(structures)
def test_random_structures(data: Any) -> None:
    try:
        parse_config_data(data)
    except ConfigError as exc:
        assert exc.problems


@FUZZ
@given(st.dictionaries(keys, structures, max_size=6))
def test_random_structures_inside_a_good_config(extra: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "gateway": {"id": "gw-test"},
        "uplink": {"host": "127.0.0.1"},
        "buses": [{"id": "rs485-1", "type": "t_serial", "port": "/dev/ttyUSB0"}],
        "devices": [
            {
                "id": "w",
                "site": "home",
                "kind": "water_meter",
                "protocol": "t_meter",
                "bus": "rs485-1",
                "address": "000000001234",
            }
        ],
        "sites": [{"id": "home", "rules": [{"type": "no_water"}]}],
    }
    for section in ("buses", "devices"):
        base[section][0].update(extra)
    base["sites"][0]["rules"][0].update(extra)
    try:
        cfg = parse_config_data(base)
    except ConfigError as exc:
        assert exc.problems
    else:  # nothing is dropped silently
        assert len(cfg.buses) == len(cfg.devices) == len(cfg.sites) == 1
        assert len(cfg.sites[0].rules) == 1
