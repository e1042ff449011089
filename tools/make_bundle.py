"""Build an offline install bundle: `python tools/make_bundle.py [--arch ARCH ...]` (`make bundle`).

One file, `dist/hearthgate-<version>-bundle.tar.gz`, for sites whose gateways cannot reach
PyPI. It holds:

    hearthgate-<version>-bundle/
      MANIFEST.json            version, build (tag, commit), Python, per architecture every
                               wheel with its version, size and sha256, and which of the
                               project's extras it carries (and why not)
      SHA256SUMS               the same hashes, for `sha256sum -c`
      requirements-<arch>.txt  every package pinned with its hash (pip --require-hashes)
      wheels/any/              pure-Python wheels (hearthgate's own among them), shared
      wheels/<arch>/           compiled wheels for one architecture
      systemd/ config/ docs/   the installer and what it installs besides the program

The hearthgate wheel is built here, in the git checkout, so setuptools-scm bakes the version
and the commit into it (hearthgate/_build.py): an install from the bundle reports its build
without git. The dependencies are resolved from the wheel's own metadata by `pip download
--only-binary=:all:` once per architecture, for CPython 3.11 (Debian 12 / Raspberry Pi OS
bookworm) and glibc up to 2.36. Pip's usual configuration applies, so a mirror
(PIP_INDEX_URL) or a wheelhouse (PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR) works as well as PyPI.

An architecture for which some dependency has no wheel is refused, never filled with an
sdist: building one at the site needs a compiler, headers and the build requirements from an
index, which is what the site lacks. The build stops naming the package; `--arch` without
that architecture builds the rest (docs/operations.md, "Installing without PyPI").

The project's extras (`osdp-secure`; not `test`, which is for developers) are optional, and
are bundled per architecture where every wheel they need exists: resolved together with the
core (`hearthgate[osdp-secure]`), pinned in requirements-<arch>.txt, so the installer gets
them by installing that file. An architecture that lacks a wheel for an extra (armv7l: PyPI
has no cffi wheel for it, which cryptography needs) is bundled without that extra, with a
warning here and the reason in MANIFEST.json (`extras`, `missing_extras`), which the
installer prints; a missing wheel of a core dependency still refuses the architecture.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"  # Debian 12 and Raspberry Pi OS bookworm
GLIBC_MAX = 36  # Debian 12's glibc is 2.36: manylinux wheels up to manylinux_2_36
ARCHES = ("aarch64", "armv7l", "x86_64")
ALIASES = {"armv7": "armv7l", "armhf": "armv7l", "arm64": "aarch64", "amd64": "x86_64"}
# Extras for developers, not for a gateway: never bundled.
NOT_BUNDLED = frozenset({"test"})
# What the installer needs besides the wheels (systemd/install.sh reads them from beside it).
KIT = ("systemd/install.sh", "systemd/hearthgate.service", "systemd/99-hearthgate-serial.rules",
       "config/*.yaml", "config/schema.json", "docs/*.md", "docs/*.yaml", "README.md")


class BundleError(Exception):
    pass


class NoWheel(BundleError):
    """`pip download` found no wheel for these packages (normalized names) for `arch`."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


def platforms(arch: str) -> list[str]:
    """The platform tags pip may take for `arch`, newest glibc first.

    pip expands only the legacy manylinux2014/2010 names by itself, so the PEP 600 names are
    listed. linux_<arch> is for mirrors such as piwheels (PyPI accepts no such wheels)."""
    oldest = 5 if arch == "x86_64" else 17
    tags = [f"manylinux_2_{m}_{arch}" for m in range(GLIBC_MAX, oldest - 1, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return [*tags, f"linux_{arch}"]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def build_wheel(out: Path) -> Path:
    """The hearthgate wheel, built from this checkout (setuptools-scm reads its git)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)]
    try:
        import setuptools_scm  # noqa: F401
    except ImportError:
        pass  # an isolated build: pip fetches setuptools and setuptools-scm from the index
    else:
        cmd.insert(4, "--no-build-isolation")  # the venv has them (the `test` extra): no index
    result = run(cmd)
    if result.returncode != 0:
        raise BundleError(f"building the hearthgate wheel failed:\n{result.stderr}")
    (wheel,) = out.glob("hearthgate-*.whl")
    return wheel


def build_info(wheel: Path) -> dict[str, object]:
    """The fields setuptools-scm wrote into the wheel's hearthgate/_build.py."""
    with zipfile.ZipFile(wheel) as z:
        source = z.read("hearthgate/_build.py").decode()
    fields: dict[str, object] = {}
    exec(compile(source, "_build.py", "exec"), {}, fields)  # our own generated file
    commit = fields.get("commit")
    tag = str(fields.get("tag") or "")
    return {
        "version": fields["version"],
        "tag": None if tag in ("", "0.0.0") else f"v{tag}",
        "distance": fields.get("distance"),
        "commit": commit.removeprefix("g")[:12] if isinstance(commit, str) else None,
        "dirty": bool(fields.get("dirty")),
    }


WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-"
                        r"(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def bundled_extras(wheel: Path) -> list[str]:
    """The extras the wheel declares (`Provides-Extra`) that a gateway may want."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    names = re.findall(r"^Provides-Extra:\s*(\S+)\s*$", text, re.M)
    return [n for n in names if normalize(n) not in NOT_BUNDLED]


def missing_names(stderr: str) -> list[str]:
    """The packages pip found no wheel for, from its error output.

    Either pip says so ("No matching distribution found for cffi>=2"), or, when every
    version of a package that has wheels needs one that has none (cryptography, cffi on
    armv7l), it reports ResolutionImpossible with "X 1.0 depends on Y..." lines: then the
    packages named only on the right of "depends on" are the ones without a wheel."""
    found = re.findall(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)",
                       stderr)
    if found:
        return sorted({normalize(n) for n in found})
    conflict = stderr.partition("The conflict is caused by:")[2]
    pairs = re.findall(r"^\s+([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])? \S+ depends on "
                       r"([A-Za-z0-9][A-Za-z0-9._-]*)", conflict, re.M)
    have = {normalize(a) for a, _ in pairs}
    return sorted({normalize(b) for _, b in pairs} - have)


def parse_wheel(path: Path) -> dict[str, str]:
    mo = WHEEL_NAME.match(path.name)
    if not mo:
        raise BundleError(f"not a wheel file name: {path.name}")
    return {"name": normalize(mo["name"]), "version": mo["version"],
            "platform": mo["plat"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(wheel: Path, arch: str, dest: Path, extras: list[str] | None = None) -> list[Path]:
    """Every dependency of `wheel` (with `extras`) as wheels for `arch`, resolved together;
    NoWheel naming what has none, BundleError for any other failure."""
    # Not -q: pip explains a ResolutionImpossible (which package depends on which) only at
    # its normal verbosity, and that is where a missing wheel is named (missing_names).
    cmd = [sys.executable, "-m", "pip", "download", "--progress-bar", "off",
           "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
           "--abi", "cp" + PYTHON_VERSION.replace(".", ""), "-d", str(dest)]
    for tag in platforms(arch):
        cmd += ["--platform", tag]
    target = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    result = run([*cmd, target])
    if result.returncode != 0:
        missing = missing_names(result.stdout + result.stderr)
        if missing:
            raise NoWheel(
                f"{arch}: no wheel for {', '.join(missing)} (CPython {PYTHON_VERSION}, "
                f"glibc <= 2.{GLIBC_MAX}); the bundle does not claim {arch}. Build without it "
                f"(ARCHES=...) or pin the dependency to a release that has a wheel for it.",
                missing)
        raise BundleError(f"{arch}: pip download failed:\n{result.stderr}")
    return sorted(p for p in dest.glob("*.whl") if p.name != wheel.name)


def resolve(wheel: Path, arch: str, work: Path) -> tuple[list[Path], dict[str, str | None]]:
    """The wheels for `arch`: the core's (or BundleError), with every extra whose wheels all
    exist; and per extra None (bundled) or why it is not."""
    paths = download(wheel, arch, work / arch)
    taken: list[str] = []
    state: dict[str, str | None] = {}
    for extra in bundled_extras(wheel):
        # Each extra is resolved with the core and the extras taken so far: one consistent
        # set of versions, whatever the extras share.
        trial = [*taken, extra]
        try:
            paths = download(wheel, arch, work / f"{arch}+{'+'.join(trial)}", trial)
        except NoWheel as exc:
            why = (f"no {', '.join(exc.missing)} wheel for {arch} (CPython {PYTHON_VERSION},"
                   f" glibc <= 2.{GLIBC_MAX}) on the index pip used")
            print(f"warning: {arch}: bundled without the extra {extra}: {why}",
                  file=sys.stderr)
            state[extra] = why
        else:
            taken.append(extra)
            state[extra] = None
    return paths, state


def collect(wheel: Path, arches: list[str], stage: Path, work: Path) -> dict[str, object]:
    """Lay the wheels out under `stage`; the manifest's per-architecture part."""
    (stage / "wheels" / "any").mkdir(parents=True)
    shutil.copy2(wheel, stage / "wheels" / "any" / wheel.name)
    result: dict[str, object] = {}
    for arch in arches:
        entries = []
        paths, extras = resolve(wheel, arch, work)
        taken = [e for e, why in extras.items() if why is None]
        for path in [wheel, *paths]:
            info = parse_wheel(path)
            sub = "any" if info["platform"] == "any" else arch
            target = stage / "wheels" / sub / path.name
            if not target.exists():
                (stage / "wheels" / sub).mkdir(exist_ok=True)
                shutil.copy2(path, target)
            entries.append({**info, "file": f"wheels/{sub}/{path.name}",
                            "size": target.stat().st_size, "sha256": sha256(target)})
        entries.sort(key=lambda e: e["name"])
        # The extras go on hearthgate's own line: pip then checks that their wheels are here.
        with_extras = f"[{','.join(taken)}]" if taken else ""
        lines = [f"{e['name']}{with_extras if e['name'] == 'hearthgate' else ''}=="
                 f"{e['version']} --hash=sha256:{e['sha256']}" for e in entries]
        (stage / f"requirements-{arch}.txt").write_text(
            f"# hearthgate bundle, {arch}: pip install --no-index --require-hashes\n"
            + "\n".join(lines) + "\n")
        result[arch] = {
            "platforms": platforms(arch),
            "requirements": f"requirements-{arch}.txt",
            "compiled": [e["name"] for e in entries if e["platform"] != "any"],
            "size": sum(int(e["size"]) for e in entries),
            "packages": entries,
            # Which extras this architecture's wheels carry; why not, for the others.
            "extras": {e: why is None for e, why in extras.items()},
            "missing_extras": {e: why for e, why in extras.items() if why is not None},
        }
    return result


def copy_kit(stage: Path) -> None:
    for pattern in KIT:
        for src in sorted(REPO.glob(pattern)):
            dst = stage / src.relative_to(REPO)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def source_date() -> int:
    """The commit's time, so two builds of one commit give the same tar (SOURCE_DATE_EPOCH)."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    out = run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"])
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else 0


def write_tar(stage: Path, out: Path, mtime: int) -> None:
    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = mtime
        if info.isfile():
            info.mode = 0o755 if info.mode & 0o100 else 0o644
        else:
            info.mode = 0o755
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(stage.rglob("*"))
        tar.add(stage, arcname=stage.name, recursive=False, filter=normalize)
        for p in paths:
            tar.add(p, arcname=f"{stage.name}/{p.relative_to(stage)}", recursive=False,
                    filter=normalize)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=mtime,
                                             filename="") as gz:
        gz.write(buf.getvalue())
    tmp.replace(out)


def make_bundle(arches: list[str], out_dir: Path, wheel: Path | None = None) -> Path:
    with tempfile.TemporaryDirectory(prefix="hearthgate-bundle-") as tmp:
        work = Path(tmp)
        if wheel is None:
            wheel = build_wheel(work / "wheel")
        build = build_info(wheel)
        version = str(build["version"])
        if build["commit"] is None:
            print("warning: built without git: the bundle names no commit", file=sys.stderr)
        if build["dirty"]:
            print("warning: the checkout has uncommitted changes (the build says so)",
                  file=sys.stderr)
        stage = work / f"hearthgate-{version}-bundle"
        per_arch = collect(wheel, arches, stage, work)
        copy_kit(stage)
        manifest = {
            "format": 1,
            "name": "hearthgate",
            "version": version,
            "build": {k: build[k] for k in ("tag", "commit", "distance", "dirty")},
            "python": PYTHON_VERSION,
            "abi": "cp" + PYTHON_VERSION.replace(".", ""),
            "glibc_max": f"2.{GLIBC_MAX}",
            "arches": per_arch,
        }
        (stage / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
        sums = sorted(p for p in stage.rglob("*") if p.is_file())
        (stage / "SHA256SUMS").write_text("".join(
            f"{sha256(p)}  {p.relative_to(stage)}\n" for p in sums))
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{stage.name}.tar.gz"
        write_tar(stage, out, source_date())
        (out_dir / f"{out.name}.sha256").write_text(f"{sha256(out)}  {out.name}\n")
        return out


def summary(bundle: Path) -> str:
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/MANIFEST.json"))
        manifest = json.load(tar.extractfile(member))  # type: ignore[arg-type]
    build = manifest["build"]
    lines = [f"{bundle} ({bundle.stat().st_size / 1e6:.1f} MB): hearthgate {manifest['version']}"
             f" ({'tag ' + build['tag'] if build['tag'] else 'no tag'},"
             f" commit {build['commit'] or 'unknown'})"]
    for arch, part in manifest["arches"].items():
        extras = [e for e, has in part.get("extras", {}).items() if has]
        without = "".join(f"; without {e} ({why})"
                          for e, why in part.get("missing_extras", {}).items())
        lines.append(f"  {arch}: {len(part['packages'])} wheels, {part['size'] / 1e6:.1f} MB,"
                     f" compiled: {', '.join(part['compiled']) or 'none'}"
                     f"{'; extras: ' + ', '.join(extras) if extras else ''}{without}")
    return "\n".join(lines)


def parse_arches(values: list[str]) -> list[str]:
    arches = []
    for value in values:
        for word in value.replace(",", " ").split():
            arch = ALIASES.get(word, word)
            if arch not in ARCHES:
                raise BundleError(f"unknown architecture {word!r} (use {', '.join(ARCHES)})")
            if arch not in arches:
                arches.append(arch)
    return arches or list(ARCHES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", action="append", default=[],
                        help=f"architectures, space- or comma-separated (default: "
                             f"{' '.join(ARCHES)}; armv7 means armv7l)")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="default: dist/")
    parser.add_argument("--wheel", type=Path,
                        help="an already built hearthgate wheel instead of building one")
    args = parser.parse_args(argv)
    try:
        bundle = make_bundle(parse_arches(args.arch), args.out, args.wheel)
    except BundleError as exc:
        print(f"make_bundle: error: {exc}", file=sys.stderr)
        return 1
    print(summary(bundle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
