"""Check the import contracts of pyproject.toml ([tool.importlinter]) on the package as it
installs: `python tools/import_contracts.py` (run by `make lint` and `make test`).

The design card's folders map onto one name (`gateway/` is `hearthgate`, `drivers/` is
`hearthgate.drivers`, `rules/` is `hearthgate.rules`), which import-linter cannot see from
the work tree: it finds subpackages by walking the top package's folder. So the mapped
folders are copied, as setuptools would install them, into build/import-contracts/, and
import-linter reads that copy. Exit status: import-linter's (0 kept, 1 broken).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGE = REPO / "build" / "import-contracts"


def package_dirs(pyproject: Path = REPO / "pyproject.toml") -> dict[str, Path]:
    """The `[tool.setuptools] package-dir` mapping, as folders of the work tree."""
    setup = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]
    return {name: REPO / folder for name, folder in setup["package-dir"].items()}


def stage(target: Path = STAGE) -> Path:
    """Lay the mapped folders out as the installed package tree under `target`."""
    if target.exists():
        shutil.rmtree(target)
    # Parents first, so a subpackage's folder lands inside its parent's copy.
    for name, folder in sorted(package_dirs().items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(
            folder,
            target.joinpath(*name.split(".")),
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    return target


def main() -> int:
    root = stage()
    sys.path.insert(0, str(root))
    from importlinter.cli import lint_imports

    return lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)


if __name__ == "__main__":
    sys.exit(main())
