"""systemd/install.sh: shellcheck, the dry run, a real install into a temporary root,
idempotence and uninstall. `--root DIR` keeps everything inside tmp_path: accounts are made
with the real useradd/groupadd (`--prefix DIR`), the unit is enabled with the real
`systemctl --root`; only actions on the running system (udevadm, daemon-reload) are skipped,
and the script says so on each such line."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "systemd" / "install.sh"
IS_ROOT = os.geteuid() == 0
HAVE_SHADOW = all(shutil.which(t) for t in ("useradd", "groupadd", "usermod"))
HAVE_SYSTEMCTL = shutil.which("systemctl") is not None

EXAMPLE = """\
gateway:
  id: gw-test-0001
uplink:
  host: 127.0.0.1
"""

FTDI = """\
DEVNAME=/dev/ttyUSB0
SUBSYSTEM=tty
ID_BUS=usb
ID_VENDOR_ID=0403
ID_MODEL_ID=6001
ID_SERIAL=FTDI_FT232R_USB_UART_A50285BI
ID_SERIAL_SHORT=A50285BI
ID_PATH=platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.0
"""

CH340 = """\
DEVNAME=/dev/ttyUSB1
SUBSYSTEM=tty
ID_BUS=usb
ID_VENDOR_ID=1a86
ID_MODEL_ID=7523
ID_SERIAL=1a86_USB_Serial
ID_PATH=platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4:1.0
"""


def make_root(tmp_path: Path) -> Path:
    """A minimal Debian-like /etc: root, dialout and (as on Raspberry Pi OS) gpio."""
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\ngpio:x:997:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\ndialout:*::\ngpio:!::\n")
    for f in ("shadow", "gshadow"):
        (etc / f).chmod(0o640)
    return root


def run(root: Path, *args: str, example: Path | None = None, prefix: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(SCRIPT), "--root", str(root)]
    if prefix is not None:
        cmd += ["--prefix", prefix]
    if example is not None:
        cmd += ["--example", str(example)]
    # --no-deps: the dependencies are not what is under test and would take minutes.
    cmd += ["--pip-opts", "--no-deps", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """path -> (mode, uid, gid, content hash or link target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            digest = "->" + os.readlink(p)
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            digest = ""
        out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, digest)
    return out


def expected_install_actions(prefix: str = "/opt/hearthgate") -> list[str]:
    docs = sorted(p.name for p in (REPO / "docs").glob("*")
                  if p.suffix in (".md", ".yaml")) if (REPO / "docs").is_dir() else []
    lines = [
        "create group hearthgate",
        "create system user hearthgate (home /var/lib/hearthgate, no login shell)",
        "add user hearthgate to group dialout",
        "add user hearthgate to group gpio",
        "create directory /opt/hearthgate (0755 root:root)",
        "create virtualenv /opt/hearthgate/venv",
        "install hearthgate VERSION (source HASH) into /opt/hearthgate/venv",
        "create directory /usr/local/bin (0755 root:root)",
        "link /usr/local/bin/hearthgate -> /opt/hearthgate/venv/bin/hearthgate",
    ]
    if (REPO / "docs").is_dir():
        lines.append("create directory /opt/hearthgate/docs (0755 root:root)")
        lines += [f"install /opt/hearthgate/docs/{d} (0644 root:root)"
                  for d in sorted(docs, key=lambda n: (not n.endswith(".md"), n))]
    lines += [
        "create directory /etc/hearthgate (0770 root:hearthgate)",
        "create /etc/hearthgate/config.yaml from EXAMPLE (0640 root:hearthgate)",
        "create /etc/hearthgate/secrets.yaml placeholder (0640 root:hearthgate)",
        "create directory /var/lib/hearthgate (0750 hearthgate:hearthgate)",
        "create directory /etc/udev/rules.d (0755 root:root)",
        "create /etc/udev/rules.d/99-hearthgate-serial.rules "
        "(stable names for USB serial adapters) (0644 root:root)",
        "reload udev rules (skipped: --root)",
        "re-apply udev rules to serial ports (skipped: --root)",
        "create directory /etc/systemd/system (0755 root:root)",
        "install /etc/systemd/system/hearthgate.service (0644 root:root)",
        "systemctl daemon-reload (skipped: --root)",
        "enable hearthgate.service (starts at boot)",
    ]
    return [line.replace("/opt/hearthgate", prefix) for line in lines]


def normalize(stdout: str, example: Path) -> list[str]:
    text = re.sub(r"\(source [0-9a-f]{16}\)", "(source HASH)", stdout)
    # The version is `git describe` of the checkout (tags come and go): any word.
    text = re.sub(r"install hearthgate \S+ \(source", "install hearthgate VERSION (source", text)
    return text.replace(str(example), "EXAMPLE").splitlines()


@pytest.fixture
def example(tmp_path: Path) -> Path:
    p = tmp_path / "home.yaml"
    p.write_text(EXAMPLE)
    return p


def test_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, "--severity=style", str(SCRIPT)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_dry_run_lists_every_action_and_changes_nothing(tmp_path: Path, example: Path) -> None:
    root = make_root(tmp_path)
    before = snapshot(root)
    result = run(root, "--dry-run", "install", example=example)
    assert normalize(result.stdout, example) == expected_install_actions()
    assert snapshot(root) == before


def test_help_and_bad_usage(tmp_path: Path) -> None:
    r = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "udev-add NAME DEVICE" in r.stderr
    r = subprocess.run([str(SCRIPT), "--dry-run", "frobnicate"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "unknown command frobnicate" in r.stderr
    r = subprocess.run([str(SCRIPT), "--dry-run", "--prefix", "relative"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "absolute" in r.stderr
    root = make_root(tmp_path)
    r = run(root, "--dry-run", "install", example=tmp_path / "missing.yaml", check=False)
    assert r.returncode == 1 and "missing.yaml not found" in r.stderr


def test_every_file_the_help_names_exists() -> None:
    # An installer copies the examples `--help` offers; a name that is not in the repository
    # sends them looking for a file nobody shipped (issue 14).
    r = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    named = re.findall(r"(?<![\w/.-])((?:config|systemd|docs)/[\w./-]+\.\w+)", r.stderr)
    named += re.findall(r"(?<![\w/.-])([\w-]+\.ya?ml)\b", r.stderr)
    assert "config/minimal.yaml" in named
    for name in named:
        if "/" in name:
            assert (REPO / name).is_file(), f"--help names {name}, which is not in the repo"
        else:
            # A bare file name is one the installer makes (config.yaml, secrets.yaml) or one
            # of the examples.
            assert name in ("config.yaml", "secrets.yaml") or (REPO / "config" / name
                                                               ).is_file(), name


@pytest.mark.parametrize("guide", ["install.md", "install.zh.md"])
def test_install_guides_name_the_mirror_option_and_mosquitto_clients(guide: str) -> None:
    text = (REPO / "docs" / guide).read_text(encoding="utf-8")
    # Mainland sites reach PyPI through a mirror: the option the installer takes for it.
    assert '--pip-opts "--index-url https://' in text
    # `mosquitto_sub`, which the troubleshooting guide uses, comes with mosquitto-clients.
    assert "apt install -y mosquitto mosquitto-clients" in text


def test_dry_run_without_root_privileges_is_allowed_on_the_real_system() -> None:
    # Lists against the real /, changes nothing (no --root): safe anywhere, as any user.
    result = subprocess.run(
        [str(SCRIPT), "--dry-run", "--example", str(REPO / "pyproject.toml"), "install"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("enable hearthgate.service") for line in lines)
    for line in lines:
        # Host actions run for real here, or say plainly why not (a container without
        # systemd or udev); nothing claims --root.
        assert "(skipped: --root)" not in line
        if "(skipped" in line:
            assert line.endswith(("(skipped: systemd is not running)",
                                  "(skipped: udev is not running)")), line


@pytest.mark.slow
@pytest.mark.skipif(not IS_ROOT, reason="useradd --prefix needs root; the dry-run test covers "
                                        "the action list without it")
@pytest.mark.skipif(not (HAVE_SHADOW and HAVE_SYSTEMCTL), reason="needs useradd and systemctl")
def test_real_install_idempotence_and_uninstall(tmp_path: Path, example: Path) -> None:
    root = make_root(tmp_path)
    P = "/srv/hg"  # a non-default prefix, to see it reach the unit
    dry = run(root, "--dry-run", "install", example=example, prefix=P)
    first = run(root, "install", example=example, prefix=P)
    # The dry run listed exactly what the real run then did.
    assert first.stdout == dry.stdout
    assert normalize(dry.stdout, example) == expected_install_actions("/srv/hg")
    assert "hearthgate is installed" in first.stderr

    passwd = (root / "etc/passwd").read_text()
    mo = re.search(r"^hearthgate:x:(\d+):(\d+):hearthgate gateway:/var/lib/hearthgate:"
                   r"/usr/sbin/nologin$", passwd, re.M)
    assert mo, passwd
    uid, gid = int(mo.group(1)), int(mo.group(2))
    groups = (root / "etc/group").read_text()
    assert re.search(r"^dialout:x:20:hearthgate$", groups, re.M)
    assert re.search(r"^gpio:x:997:hearthgate$", groups, re.M)

    venv = root / "srv/hg/venv"
    assert (venv / "bin/hearthgate").exists()
    assert os.readlink(root / "usr/local/bin/hearthgate") == "/srv/hg/venv/bin/hearthgate"
    probe = subprocess.run([str(venv / "bin/python"), "-c",
                            "import hearthgate.sdnotify, hearthgate.metrics;"
                            " print(hearthgate.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert probe.returncode == 0 and str(venv) in probe.stdout, probe.stderr

    conf = root / "etc/hearthgate"
    assert (conf / "config.yaml").read_text() == EXAMPLE
    for f in ("config.yaml", "secrets.yaml"):
        st = (conf / f).stat()
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, gid)
    assert "uplink_password" in (conf / "secrets.yaml").read_text()
    st = conf.stat()
    assert (st.st_mode & 0o777, st.st_gid) == (0o770, gid)  # writable by the service: config pushes
    st = (root / "var/lib/hearthgate").stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, uid, gid)
    unit = (root / "etc/systemd/system/hearthgate.service").read_text()
    assert unit == (REPO / "systemd/hearthgate.service").read_text().replace(
        "/opt/hearthgate", "/srv/hg")
    assert "ExecStart=/srv/hg/venv/bin/hearthgate run -c /etc/hearthgate/config.yaml" in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/hearthgate.service"
    assert wants.is_symlink()

    # Idempotent: the second run prints no action and changes nothing.
    state = snapshot(root)
    second = run(root, "install", example=example, prefix=P)
    assert second.stdout == ""
    assert "up to date" in second.stderr
    assert snapshot(root) == state

    # An edited config is never overwritten; a changed mode on our files is repaired.
    (conf / "config.yaml").write_text(EXAMPLE + "# edited by the installer\n")
    (root / "etc/systemd/system/hearthgate.service").chmod(0o600)
    third = run(root, "install", example=example, prefix=P)
    assert third.stdout.splitlines() == [
        "set /etc/systemd/system/hearthgate.service to 0644 root:root"]
    assert (conf / "config.yaml").read_text().endswith("# edited by the installer\n")
    assert "hearthgate is updated" in third.stderr

    # Name an adapter, then uninstall: data and config stay, the rest goes.
    props = tmp_path / "ftdi.props"
    props.write_text(FTDI)
    run(root, "--properties", str(props), "udev-add", "rs485-1", "/dev/ttyUSB0")
    (root / "var/lib/hearthgate/hearthgate.sqlite").write_bytes(b"SQLite format 3\0data")
    out = run(root, "uninstall", prefix=P)
    assert out.stdout.splitlines() == [
        "disable hearthgate.service",
        "remove /etc/systemd/system/hearthgate.service",
        "systemctl daemon-reload (skipped: --root)",
        "save /etc/udev/rules.d/99-hearthgate-serial.rules as "
        "/etc/hearthgate/99-hearthgate-serial.rules.saved",
        "remove /etc/udev/rules.d/99-hearthgate-serial.rules",
        "reload udev rules (skipped: --root)",
        "re-apply udev rules to serial ports (skipped: --root)",
        "remove /usr/local/bin/hearthgate",
        "remove /srv/hg",
    ]
    assert (root / "var/lib/hearthgate/hearthgate.sqlite").read_bytes() == \
        b"SQLite format 3\0data"
    assert (conf / "config.yaml").exists() and (conf / "secrets.yaml").exists()
    assert not (root / "srv/hg").exists()
    assert not wants.exists() and not wants.is_symlink()
    assert "hearthgate:" in (root / "etc/passwd").read_text()  # the user stays (owns the data)
    assert run(root, "uninstall", prefix=P).stdout == ""

    # Reinstalling would bring the adapter names back.
    again = run(root, "--dry-run", "install", example=example, prefix=P)
    assert ("create /etc/udev/rules.d/99-hearthgate-serial.rules from "
            "/etc/hearthgate/99-hearthgate-serial.rules.saved (0644 root:root)") in again.stdout
    assert 'SYMLINK+="hearthgate/rs485-1"' in \
        (root / "etc/hearthgate/99-hearthgate-serial.rules.saved").read_text()


# --- udev-add ---------------------------------------------------------------------------------

def rules_lines(root: Path) -> list[str]:
    text = (root / "etc/udev/rules.d/99-hearthgate-serial.rules").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_udev_add_by_serial_then_by_path(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    ftdi = tmp_path / "ftdi"
    ftdi.write_text(FTDI)
    ch340 = tmp_path / "ch340"
    ch340.write_text(CH340)

    out = run(root, "--properties", str(ftdi), "udev-add", "rs485-1", "/dev/ttyUSB0")
    assert out.stdout.splitlines()[-3:] == [
        "add udev rule for /dev/hearthgate/rs485-1 to /etc/udev/rules.d/99-hearthgate-serial.rules",
        "reload udev rules (skipped: --root)",
        "re-apply udev rules to serial ports (skipped: --root)",
    ]
    # An adapter without a serial number is matched by its USB port, with a note saying so.
    out = run(root, "--properties", str(ch340), "udev-add", "rf433", "/dev/ttyUSB1")
    assert "follows the USB port" in out.stderr
    assert rules_lines(root) == [
        'SUBSYSTEM=="tty", ENV{ID_SERIAL}=="FTDI_FT232R_USB_UART_A50285BI", '
        'SYMLINK+="hearthgate/rs485-1"',
        'SUBSYSTEM=="tty", ENV{ID_PATH}=="platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4:1.0", '
        'SYMLINK+="hearthgate/rf433"',
    ]
    # Same again: nothing to do. Re-pointing a name replaces its line.
    assert run(root, "--properties", str(ftdi), "udev-add", "rs485-1", "x").stdout == ""
    out = run(root, "--properties", str(ftdi), "--by", "path", "udev-add", "rs485-1", "x")
    assert out.stdout.startswith("replace udev rule for /dev/hearthgate/rs485-1")
    assert rules_lines(root)[-1] == (
        'SUBSYSTEM=="tty", ENV{ID_PATH}=="platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.0", '
        'SYMLINK+="hearthgate/rs485-1"')
    assert len(rules_lines(root)) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["udev-add", "RS485", "/dev/ttyUSB0"], "use lowercase letters"),
    (["udev-add", "a/b", "/dev/ttyUSB0"], "use lowercase letters"),
    (["udev-add", "rs485-1"], "usage: install.sh udev-add"),
    (["--by", "serial", "udev-add", "x1", "/dev/ttyUSB1"], "no serial number"),
    (["--by", "colour", "udev-add", "x1", "/dev/ttyUSB1"], "--by must be serial or path"),
])
def test_udev_add_errors(tmp_path: Path, args: list[str], message: str) -> None:
    root = make_root(tmp_path)
    props = tmp_path / "p"
    props.write_text(CH340.replace("ID_SERIAL=1a86_USB_Serial\n", ""))
    r = run(root, "--properties", str(props), *args, check=False)
    assert r.returncode == 1 and message in r.stderr
    assert not (root / "etc/udev").exists()


def test_udev_add_garbage_properties(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    props = tmp_path / "p"
    props.write_bytes(b"\x00\xffgarbage without equals\nID_PATH\n=\n")
    r = run(root, "--properties", str(props), "udev-add", "x1", "/dev/ttyUSB9", check=False)
    assert r.returncode == 1 and "no ID_PATH" in r.stderr
