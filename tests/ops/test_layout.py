"""One installed name, imports in one direction (docs/architecture.md).

The wheel holds `hearthgate/` and its dist-info and nothing else; every folder of the work
tree that is a package lands in it; every module of hearthgate sits in a layer of the import
contract, and the contract fails the build on an upward import.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import import_contracts  # noqa: E402

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = PYPROJECT["tool"]["importlinter"]["contracts"]
OLD_NAMES = ("gateway", "drivers", "rules")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    (built,) = out.glob("hearthgate-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_only_hearthgate(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and dist_info.pop().startswith("hearthgate-")
    assert tops - {t for t in tops if t.endswith(".dist-info")} == {"hearthgate"}
    entry = wheel.read(next(n for n in wheel.namelist() if n.endswith("entry_points.txt")))
    assert b"hearthgate = hearthgate.cli:main" in entry


def test_every_package_folder_lands_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for name, folder in import_contracts.package_dirs().items():
        for init in folder.rglob("__init__.py"):
            sub = init.parent.relative_to(folder).parts
            installed = "/".join([*name.split("."), *sub, "__init__.py"])
            assert installed in names, f"{init.relative_to(REPO)} is not in the wheel"
        for module in folder.glob("*.py"):
            assert "/".join([*name.split("."), module.name]) in names, module


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


# An import in code handed to a subprocess (`python -c "..."`) is a string: read the text too.
IMPORT_TEXT = re.compile(
    r"(?:^|[;\"'\s])(?:import\s+(?:gateway|drivers|rules)\b(?!\s+[a-z])"
    r"|from\s+(?:gateway|drivers|rules)(?:\.\w+)*\s+import\b)"
)


def test_nothing_imports_the_folder_names() -> None:
    # `gateway`, `drivers` and `rules` are folders, not packages: only hearthgate.* is importable
    # once installed, so an import of them works in the work tree and fails on a Pi.
    offenders = []
    for top in ("gateway", "drivers", "rules", "tests", "bench", "tools"):
        for path in (REPO / top).rglob("*.py"):
            for name in _imports(path):
                if name.split(".")[0] in OLD_NAMES:
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if IMPORT_TEXT.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []


def _layer_modules() -> set[str]:
    layers = next(c for c in CONTRACTS if c["type"] == "layers")["layers"]
    return {m.strip() for layer in layers for m in layer.replace("\\", " ").replace(
        "|", ":").split(":") if m.strip()}


def test_every_module_of_hearthgate_is_in_a_layer() -> None:
    # A module in no layer would be unconstrained: new modules must choose their room.
    listed = _layer_modules()
    root = import_contracts.package_dirs()["hearthgate"]
    children = {f"hearthgate.{p.stem}" for p in root.glob("*.py") if p.stem != "__init__"}
    children |= {f"hearthgate.{p.parent.name}" for p in root.glob("*/__init__.py")}
    children |= {"hearthgate.drivers", "hearthgate.rules"}
    assert children - listed == set()
    assert listed - children == set()


def test_the_codec_contract_names_every_codec_and_every_driver() -> None:
    contract = next(c for c in CONTRACTS if c["type"] == "forbidden")
    drivers = import_contracts.package_dirs()["hearthgate.drivers"]
    modules = {f"hearthgate.drivers.{p.stem}" for p in drivers.glob("*.py")} - {
        "hearthgate.drivers.__init__"}
    codecs = {m for m in modules if m.endswith("_codec")} | {
        "hearthgate.drivers.meter_framing", "hearthgate.drivers.wiegand"}
    assert set(contract["source_modules"]) == codecs
    internal = {m for m in contract["forbidden_modules"] if m.startswith("hearthgate.")}
    assert internal == modules - codecs


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from importlinter.cli import lint_imports;"
        "sys.exit(lint_imports(config_filename=sys.argv[2], no_cache=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(tree), str(REPO / "pyproject.toml")],
        capture_output=True, text=True, timeout=120,
    )


def test_the_contracts_hold() -> None:
    result = _lint(import_contracts.stage(REPO / "build" / "import-contracts"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # The core reaching up into the service.
        ("core/model.py", "import hearthgate.store", "Layers"),
        # A driver reading the rules.
        ("drivers/gpio.py", "import hearthgate.rules.sos", "Layers"),
        # A rule reaching the config loader.
        ("rules/sos.py", "import hearthgate.config", "Layers"),
        # A codec doing I/O.
        ("drivers/dlt645_codec.py", "import asyncio", "Codecs"),
        # A codec on its driver.
        ("drivers/rflink_codec.py", "import hearthgate.drivers.serial_bus", "Codecs"),
    ],
)
def test_an_upward_import_breaks_the_build(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = import_contracts.stage(tmp_path / "tree")
    target = tree / "hearthgate" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", "utf-8")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    # The contract that guards this boundary is among the broken ones (a finer contract inside a
    # package may break too).
    assert any(ln.startswith(contract) for ln in broken), result.stdout
