"""The Chinese guides are kept in step with the English ones: each Chinese guide (`X.zh.md`
under docs) has the same outline as its English twin (`X.md`): the same headings, at the
same levels, in the same order, naming the same code in backticks, and the same number of
fenced code blocks. A section added to one and not the other fails here rather than reaching
an installer half-translated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The installer's guides that must exist in Chinese beside the English (issue 14).
REQUIRED = ("install", "privacy", "meters", "devices", "configuration", "rules",
            "troubleshooting")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE = re.compile(r"`([^`]+)`")
FENCE = re.compile(r"^(```|~~~)")


def outline(text: str) -> list[tuple[int, tuple[str, ...]]]:
    """Each heading outside fenced code, as (level, the code spans it names)."""
    found: list[tuple[int, tuple[str, ...]]] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            found.append((len(m.group(1)), tuple(CODE.findall(m.group(2)))))
    return found


def fences(text: str) -> int:
    return sum(1 for line in text.splitlines() if FENCE.match(line)) // 2


def _pairs() -> list[str]:
    return sorted(p.name.removesuffix(".zh.md") for p in DOCS.glob("*.zh.md"))


@pytest.mark.parametrize("name", REQUIRED)
def test_required_guide_has_a_chinese_twin(name: str) -> None:
    assert (DOCS / f"{name}.md").is_file()
    assert (DOCS / f"{name}.zh.md").is_file(), f"docs/{name}.zh.md is missing"


@pytest.mark.parametrize("name", _pairs())
def test_twin_has_the_same_outline(name: str) -> None:
    en = (DOCS / f"{name}.md").read_text(encoding="utf-8")
    zh = (DOCS / f"{name}.zh.md").read_text(encoding="utf-8")
    en_outline, zh_outline = outline(en), outline(zh)
    for i, (a, b) in enumerate(zip(en_outline, zh_outline, strict=False)):
        assert a == b, f"docs/{name}.zh.md heading {i + 1}: {b} where the English has {a}"
    assert len(zh_outline) == len(en_outline), (
        f"docs/{name}.zh.md has {len(zh_outline)} headings, docs/{name}.md {len(en_outline)}")
    assert fences(zh) == fences(en), f"docs/{name}.zh.md: code blocks differ in number"


def test_outline_reads_headings_not_code() -> None:
    text = "# A `x`\n```sh\n# not a heading\n```\n## B\n### C `y` and `z` ##\n"
    assert outline(text) == [(1, ("x",)), (2, ()), (3, ("y", "z"))]
    assert fences(text) == 1
