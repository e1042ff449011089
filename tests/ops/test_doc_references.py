"""The project's docs hold what its code cites: every path a comment, docstring or doc names is a
file of the repository, every relative link in the docs resolves, and nothing cites documents
that live outside it (the design notes the project was started from)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("gateway", "drivers", "rules", "tests", "bench", "tools", "systemd")
# A repository path as code and docs write it: `drivers/dlt645_codec.py`, docs/rules.md, ...
PATH = re.compile(
    r"(?<![\w/.-])((?:docs|gateway|drivers|rules|config|systemd|tests|bench|tools)/"
    r"[\w./-]*\.(?:py|md|yaml|json|sh|service|rules))\b"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
OUTSIDE = re.compile(r"contract §|contract\.md|targets\.md|shared/design")


def _files() -> list[Path]:
    files = [p for top in SOURCES for p in (REPO / top).rglob("*") if p.is_file()
             and p.suffix in (".py", ".sh", ".service", ".rules", ".md")]
    files += [*(REPO / "docs").glob("*.md"), REPO / "docs" / "asyncapi.yaml", REPO / "README.md",
              REPO / "pyproject.toml", REPO / "Makefile"]
    return [f for f in files if "__pycache__" not in f.parts]


def test_every_cited_path_exists() -> None:
    missing = []
    for file in _files():
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            for path in PATH.findall(line):
                if "*" in path or "<" in path:
                    continue
                if not (REPO / path).exists() and not (file.parent / path).exists():
                    missing.append(f"{file.relative_to(REPO)}:{n}: {path}")
    assert missing == []


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = []
    for doc in [*(REPO / "docs").glob("*.md"), REPO / "README.md"]:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []


def test_nothing_cites_documents_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    cited = []
    for file in _files():
        # The contract check reads the contract on purpose, where it is present.
        if file.resolve() in (this, REPO / "tests" / "ops" / "test_asyncapi.py"):
            continue
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                cited.append(f"{file.relative_to(REPO)}:{n}: {line.strip()}")
    assert cited == []
