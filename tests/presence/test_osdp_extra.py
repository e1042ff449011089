"""The OSDP Secure Channel is the optional extra `osdp-secure` (`cryptography`): without it the
gateway works for everything else, and `hearthgate check` refuses a reader with `scbk` at
that key, with a hint, never with a traceback. The reader side (a session that still finds
it missing at run time) is in test_osdp_libosdp.py.

`cryptography` is made unimportable with `sys.modules['cryptography'] = None`: in a fresh
`hearthgate check` process (nothing has imported it there), and in-process by blanking every
`cryptography*` entry (the codec imports it on each use, so that is enough).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from hearthgate.check import run_check
from hearthgate.drivers.osdp_codec import OSDPError
from hearthgate.drivers.osdp_secure_codec import SecureSession, unavailable

KEY = "00112233445566778899AABBCCDDEEFF"

CONFIG = """\
gateway: {id: gw-test, data_dir: DATA}
uplink: {host: 127.0.0.1}
buses:
  - {id: pins, type: gpio}
  - {id: door-rs485, type: serial, port: /dev/null, baudrate: 9600, parity: N}
devices:
  - {id: hall-motion, site: block-a, kind: motion_sensor, protocol: gpio, bus: pins, pin: 17}
  - {id: gate-front, site: block-a, kind: access_controller, protocol: osdp, bus: door-rs485,
     address: 1}
  - {id: gate-back, site: block-a, kind: access_controller, protocol: osdp, bus: door-rs485,
     address: 2, scbk: SCBK}
sites:
  - id: block-a
    rules: [{type: door_held_open}]
"""

# Runs `hearthgate check` as the command line does, with `cryptography` unimportable.
WITHOUT_CRYPTOGRAPHY = (
    "import sys; sys.modules['cryptography'] = None\n"
    "from hearthgate.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def write(tmp_path: Path, scbk: str | None) -> Path:
    text = CONFIG.replace("DATA", str(tmp_path / "data"))
    if scbk is None:
        text = text.replace(",\n     address: 2, scbk: SCBK}", ",\n     address: 2}")
    else:
        text = text.replace("SCBK", scbk)
    (tmp_path / "secrets.yaml").write_text(f"gate_back_scbk: '{KEY}'\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def check_without_cryptography(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_CRYPTOGRAPHY, "check", "-c", str(path)],
        capture_output=True, text=True, timeout=120, cwd=path.parent,
    )


def test_the_config_is_valid_where_cryptography_imports(tmp_path: Path) -> None:
    path = write(tmp_path, "!secret gate_back_scbk")
    out, err = io.StringIO(), io.StringIO()
    assert run_check(path, out, err) == 0, err.getvalue()


@pytest.mark.parametrize("scbk", ["!secret gate_back_scbk", "default"])
def test_check_refuses_an_scbk_without_cryptography_at_the_key(
    tmp_path: Path, scbk: str
) -> None:
    path = write(tmp_path, scbk)
    r = check_without_cryptography(path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.splitlines()
    # FILE:LINE:COL at the value of gate-back's scbk (just after `scbk: `).
    number, line = next((n, x) for n, x in enumerate(path.read_text().splitlines(), 1)
                        if "scbk:" in x)
    col = line.index("scbk: ") + len("scbk: ") + 1
    assert lines[0].startswith(f"{path}:{number}:{col}: error: device 'gate-back': scbk: "), (
        lines)
    assert "the secure channel cannot run here" in lines[0]
    assert "'cryptography' (the extra osdp-secure) cannot be imported" in lines[0]
    assert len([x for x in lines if ": error: " in x]) == 1  # the plain reader is fine
    hint = next(x for x in lines if x.strip().startswith("hint:"))
    assert "-m pip install 'hearthgate[osdp-secure]'" in hint
    assert "armv7l" in hint and "cffi" in hint
    assert KEY not in r.stderr and KEY.lower() not in r.stderr  # the key is never shown


def test_without_cryptography_a_config_with_no_scbk_is_fine(tmp_path: Path) -> None:
    # Plain OSDP, GPIO, the rules: nothing else needs the extra.
    path = write(tmp_path, None)
    r = check_without_cryptography(path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{path}: ok: ")


def test_a_bad_key_is_still_said_first(tmp_path: Path) -> None:
    # A key that is not one is the installer's first problem, cryptography or not.
    path = write(tmp_path, "'0011'")
    r = check_without_cryptography(path)
    assert r.returncode == 2
    assert "scbk must be 32 hex digits" in r.stderr and "cryptography" not in r.stderr


def blank_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "cryptography" or n.startswith("cryptography.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)


def test_the_codec_says_why_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert unavailable() is None
    SecureSession(bytes(16))  # computes its session keys: the cipher is there
    blank_cryptography(monkeypatch)
    why = unavailable()
    assert why is not None and "osdp-secure" in why and "cryptography" in why
    with pytest.raises(OSDPError) as caught:
        SecureSession(bytes(16))
    assert caught.value.kind == "security" and "cryptography" in caught.value.detail
    assert "pip install 'hearthgate[osdp-secure]'" in caught.value.detail
    monkeypatch.undo()
    assert unavailable() is None
