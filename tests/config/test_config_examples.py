"""Every example in config/ checks clean; config/schema.json is current and matches the loader."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hearthgate.check import run_check
from hearthgate.config.positions import read_yaml
from hearthgate.config.schema import build_schema, render
from tests.config.config_samples import INSTALLED_TLS, as_installed
from tests.config.conftest import TEST_REGISTRY

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "config").glob("*.yaml"))


def _data(path: Path) -> Any:
    data, _, problems = read_yaml(path.read_bytes(), str(path))
    assert not problems
    return data


INSTALLED = INSTALLED_TLS
_as_installed = as_installed


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_checks_with_exit_0(path: Path, tmp_path: Path) -> None:
    installed = _as_installed(path, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert run_check(installed, out, err, TEST_REGISTRY, lang="en") == 0, err.getvalue()
    assert out.getvalue().startswith(f"{installed}: ok: ")
    assert "error" not in err.getvalue()


@pytest.mark.parametrize("path", [p for p in EXAMPLES if INSTALLED in p.read_text()],
                         ids=lambda p: p.name)
def test_an_example_without_its_tls_file_is_refused_naming_it(path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    if Path(INSTALLED).is_dir():
        pytest.skip("this machine has the installed TLS files")
    assert run_check(path, out, err, TEST_REGISTRY, lang="en") == 2
    assert f"tls.ca_file {INSTALLED}ca.pem cannot be read: No such file" in err.getvalue()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_names_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./schema.json"


def test_committed_schema_is_current() -> None:
    # A fresh process: other tests register stand-in protocols in this one's registry.
    fresh = subprocess.run(
        [sys.executable, "-m", "hearthgate.config.schema"], capture_output=True, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=True,
    ).stdout
    committed = (REPO / "config" / "schema.json").read_text(encoding="utf-8")
    assert committed == fresh, (
        "config/schema.json is stale: run `python -m hearthgate.config.schema > config/schema.json`"
    )


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(render()))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_schema(path: Path) -> None:
    jsonschema.Draft202012Validator(build_schema(TEST_REGISTRY)).validate(_data(path))


GOOD_WITH_TEST_TYPES = {
    "gateway": {"id": "gw-test", "timezone": "Asia/Shanghai"},
    "uplink": {"host": "127.0.0.1", "keepalive": "30s", "tls": {"ca_file": "/etc/ca.pem"}},
    "buses": [{"id": "rs485-1", "type": "t_serial", "port": "/dev/ttyUSB0", "baudrate": 2400}],
    "devices": [
        {
            "id": "water-1",
            "site": "home",
            "kind": "water_meter",
            "protocol": "t_meter",
            "bus": "rs485-1",
            "address": "000000001234",
            "poll": "5m",
        }
    ],
    "sites": [
        {"id": "home", "profile": "sos_only", "rules": [{"type": "no_water", "window": "12h"}]}
    ],
}


def test_schema_follows_the_registry() -> None:
    validator = jsonschema.Draft202012Validator(build_schema(TEST_REGISTRY))
    assert list(validator.iter_errors(GOOD_WITH_TEST_TYPES)) == []

    def errors(mutate: Any) -> list[str]:
        data = json.loads(json.dumps(GOOD_WITH_TEST_TYPES))
        mutate(data)
        return [e.message for e in validator.iter_errors(data)]

    # A key of another bus type's options, a misspelt option, a kind the protocol does not drive,
    # a bad duration, an unknown rule type: each is flagged as the loader would.
    assert errors(lambda d: d["buses"][0].update(host="x"))
    assert errors(lambda d: d["devices"][0].update(adress="1"))
    assert errors(lambda d: d["devices"][0].update(kind="sos_button"))
    assert errors(lambda d: d["uplink"].update(keepalive="soon"))
    assert errors(lambda d: d["sites"][0]["rules"].append({"type": "nope"}))
    assert errors(lambda d: d["sites"][0].update(profile="nope"))
    assert errors(lambda d: d.update(extra=1))


def test_hearthgate_check_through_the_cli() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "hearthgate", "check", "-c", "config/minimal.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "config/minimal.yaml: ok: 1 devices, 1 buses, 1 sites, 1 rules\n"


def test_loading_the_config_does_not_import_the_yaml_library_up_front() -> None:
    """The loader module is imported by every command; ruamel.yaml loads only when reading."""
    import subprocess
    import sys

    code = "import sys, hearthgate.config, hearthgate.check; print('ruamel.yaml' in sys.modules)"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert run.stdout.strip() == "False", run.stderr
