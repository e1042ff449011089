"""The offline install bundle (tools/make_bundle.py, `make bundle`) and `hearthgate --version`.

The bundle is built once per session for x86_64 only (this machine's architecture; the
dependencies come from PyPI or pip's configured mirror, about 10 s), then installed with
systemd/install.sh --bundle into a temporary root with no index reachable: the installed
`hearthgate --version` must name the build the bundle was made from, without git. The full
three-architecture build from PyPI is `-m slow`.

The project's extra `osdp-secure` (cryptography, for the OSDP Secure Channel) is bundled for
an architecture whose wheels all exist, and left out, saying so, for one that lacks any
(armv7l on PyPI: cffi has no armv7l wheel); a core dependency without a wheel still refuses
the architecture.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "tools" / "make_bundle.py"
# The status page's aiohttp and its helpers with C speed-ups: wheels for every architecture.
WEB_COMPILED = frozenset({"aiohttp", "frozenlist", "multidict", "propcache", "yarl"})
SCRIPT = REPO / "systemd" / "install.sh"
CAN_INSTALL_FOR_REAL = os.geteuid() == 0 and all(
    shutil.which(t) for t in ("useradd", "groupadd", "usermod", "systemctl"))


def offline_env(**extra: str) -> dict[str, str]:
    """No index and no wheel from anywhere but what a test names: a dead index address, no
    pip configuration files, no find-links of the machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def git(*args: str) -> str | None:
    r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                       timeout=30)
    return r.stdout.strip() if r.returncode == 0 else None


def check_describe(line: str, version: str) -> None:
    """`hearthgate --version` names this version and the checkout's commit and tag."""
    assert line.startswith(f"hearthgate {version} ("), line
    head = git("rev-parse", "HEAD")
    if head is None:  # a source tree without git: nothing to compare the commit with
        return
    mo = re.search(r"commit ([0-9a-f]{7,12})", line)
    assert mo and head.startswith(mo.group(1)), (line, head)
    tag = git("describe", "--tags", "--abbrev=0", "--match", "v[0-9]*")
    assert (f"tag {tag}" in line) if tag else ("no tag" in line), (line, tag)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hg-wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (built,) = out.glob("hearthgate-*.whl")
    return built


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    out = tmp_path_factory.mktemp("hg-bundle")
    r = subprocess.run([sys.executable, str(BUILDER), "--arch", "x86_64", "--out", str(out),
                        "--wheel", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (built,) = out.glob("hearthgate-*-bundle.tar.gz")
    return built


@pytest.fixture(scope="session")
def unpacked(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hg-unpacked")
    with tarfile.open(bundle) as tar:
        tar.extractall(out, filter="data")
    (top,) = out.iterdir()
    return top


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def test_the_manifest_names_the_build_and_every_wheel_with_its_hash(
        bundle: Path, unpacked: Path, wheel: Path) -> None:
    manifest = json.loads((unpacked / "MANIFEST.json").read_text())
    version = wheel_version(wheel)
    assert bundle.name == f"hearthgate-{version}-bundle.tar.gz"
    assert manifest["version"] == version and manifest["python"] == "3.11"
    assert list(manifest["arches"]) == ["x86_64"]
    part = manifest["arches"]["x86_64"]
    names = {p["name"] for p in part["packages"]}
    # The wheel's runtime dependencies are all there (pydantic's core is the compiled one),
    # and the extra osdp-secure's: cryptography and its cffi, both compiled; the status page's
    # aiohttp with its compiled helpers.
    assert {"hearthgate", "aiomqtt", "paho-mqtt", "pyserial", "pyserial-asyncio-fast",
            "pydantic", "pydantic-core", "aiosqlite", "pymodbus", "ruamel-yaml", "gpiozero",
            "tzdata", "cryptography", "cffi", "aiohttp"} <= names
    assert set(part["compiled"]) == {"cffi", "cryptography", "pydantic-core", *WEB_COMPILED}
    assert part["extras"] == {"osdp-secure": True} and part["missing_extras"] == {}
    for p in part["packages"]:
        data = (unpacked / p["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["sha256"] and len(data) == p["size"]
        if p["platform"] != "any":
            assert p["file"].startswith("wheels/x86_64/") and "x86_64" in p["platform"]
    pinned = (unpacked / "requirements-x86_64.txt").read_text()
    assert len(re.findall(r"^\S+==\S+ --hash=sha256:[0-9a-f]{64}$", pinned, re.M)) == len(names)
    # The extra rides on hearthgate's own line, so pip checks its wheels are all pinned.
    assert re.search(rf"^hearthgate\[osdp-secure\]=={re.escape(version)} --hash=", pinned, re.M)
    assert shutil.which("sha256sum")
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=unpacked,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    # What the installer needs besides the wheels travels with them.
    for f in ("systemd/install.sh", "systemd/hearthgate.service",
              "systemd/99-hearthgate-serial.rules", "config/minimal.yaml", "docs/operations.md"):
        assert (unpacked / f).is_file(), f
    assert os.access(unpacked / "systemd/install.sh", os.X_OK)
    sidecar = bundle.with_name(bundle.name + ".sha256").read_text().split()
    assert sidecar == [hashlib.sha256(bundle.read_bytes()).hexdigest(), bundle.name]


def test_a_wheel_install_reports_its_build(wheel: Path, tmp_path: Path) -> None:
    # A plain `pip install` of the wheel (no git beside it) says which build it is. --version
    # needs none of the dependencies, so --no-deps keeps this offline and quick.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"),
                    "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300, env=offline_env())
    out = subprocess.run([str(venv / "bin/hearthgate"), "--version"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path, check=True).stdout.strip()
    check_describe(out, wheel_version(wheel))
    # The work tree's editable install reads the same build (gateway/_build.py).
    here = subprocess.run([sys.executable, "-m", "hearthgate", "--version"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert here.stdout.strip() == out


@pytest.mark.skipif(not CAN_INSTALL_FOR_REAL,
                    reason="install.sh --root needs root, useradd and systemctl")
def test_install_sh_installs_the_bundle_with_no_index(bundle: Path, wheel: Path,
                                                      tmp_path: Path) -> None:
    from tests.ops.test_installer import make_root

    root = make_root(tmp_path)
    cmd = [str(SCRIPT), "--root", str(root), "--prefix", "/opt/hg", "--python", sys.executable,
           "--bundle", str(bundle), "install"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=offline_env())
    assert r.returncode == 0, r.stdout + r.stderr
    version = wheel_version(wheel)
    assert re.search(rf"^install hearthgate {re.escape(version)} \(.*commit .*\) from the "
                     r"bundle x86_64 [0-9a-f]{16} into /opt/hg/venv$", r.stdout, re.M), r.stdout
    # The example config and the unit came from the bundle.
    assert "create /etc/hearthgate/config.yaml from config/minimal.yaml" in r.stdout
    venv = root / "opt/hg/venv"
    out = subprocess.run([str(venv / "bin/hearthgate"), "--version"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path, check=True).stdout.strip()
    check_describe(out, version)
    # The whole gateway imports from what the bundle brought (the compiled core included),
    # and the extra osdp-secure came with it: the secure channel can run.
    probe = subprocess.run([str(venv / "bin/python"), "-c",
                            "import hearthgate.service, hearthgate.config, pydantic_core, "
                            "aiomqtt, pymodbus, ruamel.yaml, gpiozero\n"
                            "from hearthgate.drivers.osdp_secure_codec import unavailable\n"
                            "print(unavailable() or 'ok')"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert probe.stdout.strip() == "ok", probe.stdout + probe.stderr
    assert "no extra" not in r.stderr  # the bundle lacks nothing for x86_64
    # Idempotent: the same bundle again changes nothing.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=offline_env())
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
    assert "up to date" in again.stderr


def test_install_sh_from_an_unpacked_bundle_and_its_refusals(unpacked: Path,
                                                             tmp_path: Path) -> None:
    from tests.ops.test_installer import make_root

    root = make_root(tmp_path)
    # The bundle's own installer takes the bundle it sits in; --dry-run changes nothing.
    own = unpacked / "systemd/install.sh"
    r = subprocess.run([str(own), "--root", str(root), "--python", sys.executable, "--dry-run",
                        "install"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^install hearthgate \S+ \(.*\) from the bundle x86_64 ", r.stdout, re.M)
    assert not (root / "opt").exists()
    # A machine the bundle has no wheels for, a wrong Python, not a bundle: refused, by name.
    r = subprocess.run([str(SCRIPT), "--root", str(root), "--python", sys.executable,
                        "--dry-run", "--bundle", str(unpacked), "--arch", "armv7l", "install"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "no wheels for armv7l (it has: x86_64)" in r.stderr and r.stdout == ""
    manifest = json.loads((unpacked / "MANIFEST.json").read_text())
    other = tmp_path / "py312-bundle"
    shutil.copytree(unpacked, other)
    (other / "MANIFEST.json").write_text(json.dumps({**manifest, "python": "3.12"}))
    r = subprocess.run([str(SCRIPT), "--root", str(root), "--python", sys.executable,
                        "--dry-run", "--bundle", str(other), "install"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "the bundle is for Python 3.12" in r.stderr
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    r = subprocess.run([str(SCRIPT), "--root", str(root), "--dry-run", "--bundle", str(junk),
                        "install"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "not a readable .tar.gz" in r.stderr


def test_an_architecture_without_every_wheel_is_refused(unpacked: Path, wheel: Path,
                                                        tmp_path: Path) -> None:
    # Offline, from the x86_64 bundle's own wheels: armv7l lacks pydantic-core and aiohttp
    # there, as it would on an index that had no armv7l build of them. The builder names the
    # first pip finds missing and stops: a core dependency, unlike an extra's, refuses the
    # architecture.
    wheels = f"{unpacked / 'wheels/any'} {unpacked / 'wheels/x86_64'}"
    env = offline_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=wheels)
    cmd = [sys.executable, str(BUILDER), "--wheel", str(wheel), "--out", str(tmp_path)]
    r = subprocess.run([*cmd, "--arch", "x86_64 armv7"], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 1
    assert re.search(r"armv7l: no wheel for (aiohttp|frozenlist|multidict|propcache|yarl"
                     r"|pydantic-core) ", r.stderr), r.stderr
    assert "does not claim armv7l" in r.stderr
    assert list(tmp_path.glob("*.tar.gz")) == []
    # The same wheelhouse rebuilds the x86_64 bundle with no index: a site can re-bundle.
    r = subprocess.run([*cmd, "--arch", "x86_64"], capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cmd, "--arch", "sparc"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown architecture 'sparc'" in r.stderr


def test_an_architecture_without_an_extras_wheels_is_bundled_without_it(
        unpacked: Path, wheel: Path, tmp_path: Path) -> None:
    # Offline, from the x86_64 bundle's wheels less cffi: x86_64 then stands where armv7l is
    # on PyPI (cryptography has a wheel, cffi has none). The core is all there, so the
    # architecture is bundled, without the extra, and the build, the manifest and the
    # installer all say so.
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for sub in ("any", "x86_64"):
        for w in (unpacked / "wheels" / sub).glob("*.whl"):
            if not w.name.startswith("cffi-"):
                shutil.copy2(w, house / w.name)
    env = offline_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(house))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(BUILDER), "--wheel", str(wheel), "--out", str(out),
                        "--arch", "x86_64"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^warning: x86_64: bundled without the extra osdp-secure: no cffi wheel "
                     r"for x86_64 ", r.stderr, re.M), r.stderr
    assert "without osdp-secure (no cffi wheel for x86_64" in r.stdout  # the summary
    (built,) = out.glob("*.tar.gz")
    with tarfile.open(built) as tar:
        tar.extractall(tmp_path / "bundle", filter="data")
    (top,) = (tmp_path / "bundle").iterdir()
    part = json.loads((top / "MANIFEST.json").read_text())["arches"]["x86_64"]
    assert part["extras"] == {"osdp-secure": False}
    assert part["missing_extras"]["osdp-secure"].startswith("no cffi wheel for x86_64")
    names = {p["name"] for p in part["packages"]}
    assert "pydantic-core" in names and not names & {"cryptography", "cffi"}
    assert set(part["compiled"]) == {"pydantic-core", *WEB_COMPILED}
    pinned = (top / "requirements-x86_64.txt").read_text()
    assert re.search(r"^hearthgate==\S+ --hash=", pinned, re.M) and "cryptography" not in pinned
    # The installer installs it plain and names what is missing.
    from tests.ops.test_installer import make_root

    root = make_root(tmp_path)
    r = subprocess.run([str(SCRIPT), "--root", str(root), "--python", sys.executable,
                        "--dry-run", "--bundle", str(top), "install"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^install hearthgate \S+ \(.*\) from the bundle x86_64 ", r.stdout, re.M)
    assert ("note: the bundle has no extra osdp-secure for x86_64 (no cffi wheel for x86_64"
            in r.stderr), r.stderr
    assert "installing without it" in r.stderr and "scbk" in r.stderr


@pytest.mark.slow
def test_the_full_bundle_has_every_architecture(wheel: Path, tmp_path: Path) -> None:
    # From PyPI (or the configured mirror): aarch64, armv7l and x86_64, each with its own
    # build of the compiled dependencies and the same pure wheels; armv7l without the extra
    # osdp-secure, as PyPI has no armv7l wheel of cffi (cryptography has one); aiohttp (the
    # status page) in all three.
    r = subprocess.run([sys.executable, str(BUILDER), "--wheel", str(wheel), "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (built,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(built) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/MANIFEST.json"))
        manifest = json.load(tar.extractfile(member))  # type: ignore[arg-type]
    assert list(manifest["arches"]) == ["aarch64", "armv7l", "x86_64"]
    for arch, part in manifest["arches"].items():
        core = next(p for p in part["packages"] if p["name"] == "pydantic-core")
        assert core["file"].startswith(f"wheels/{arch}/") and arch in core["platform"]
        # propcache is pure Python on armv7l.
        web = WEB_COMPILED - {"propcache"}
        if arch == "armv7l":
            assert set(part["compiled"]) == {"pydantic-core", *web}
            assert part["extras"] == {"osdp-secure": False}
            assert "no cffi wheel for armv7l" in part["missing_extras"]["osdp-secure"]
        else:
            assert set(part["compiled"]) == {"cffi", "cryptography", "pydantic-core",
                                             *WEB_COMPILED}
            assert part["extras"] == {"osdp-secure": True}
    assert "warning: armv7l: bundled without the extra osdp-secure" in r.stderr
