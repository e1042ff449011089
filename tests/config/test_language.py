"""The installer's language: `hearthgate check` in Chinese at the same positions, and a
catalogue where every English template has its Chinese one."""

from __future__ import annotations

import re
import string
from io import StringIO
from pathlib import Path

import pytest

from hearthgate.check import run_check
from hearthgate.messages import MESSAGES, PATTERNS, language_of_file, text, translate

BROKEN = Path(__file__).parent / "broken"
POSITION = re.compile(r"^(\S+:\d+:\d+): ")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("msg_id", sorted(MESSAGES))
def test_every_message_has_chinese_with_the_same_placeholders(msg_id: str) -> None:
    en, zh = MESSAGES[msg_id]
    assert en and zh
    assert _fields(en) == _fields(zh)


@pytest.mark.parametrize(("en", "zh"), PATTERNS)
def test_every_pattern_has_chinese_with_the_same_placeholders(en: str, zh: str) -> None:
    assert zh != en and _fields(en) == _fields(zh)


def _check(path: Path, lang: str | None) -> tuple[int, list[str]]:
    out, err = StringIO(), StringIO()
    code = run_check(path, out=out, err=err, lang=lang)
    return code, (err.getvalue() + out.getvalue()).splitlines()


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_files_in_chinese_keep_their_positions(path: Path) -> None:
    code_en, en = _check(path, "en")
    code_zh, zh = _check(path, "zh")
    assert code_en == code_zh == 2
    assert len(en) == len(zh)
    for line_en, line_zh in zip(en, zh, strict=True):
        pos = POSITION.match(line_en)
        if pos:
            assert line_zh.startswith(pos.group(1) + ": 错误："), line_zh
        else:
            assert line_zh.startswith("  提示："), line_zh
        # Every message of the corpus is in the catalogue: nothing stays all English but
        # what a third party wrote (the YAML parser's own words).
        body = line_zh.split("：", 1)[1]
        assert re.search(r"[\u4e00-\u9fff]", body) or "YAML" in line_zh, line_zh


def test_check_follows_gateway_language_of_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("gateway:\n  id: gw-1\n  language: zh\n  timezon: Asia/Shanghai\n"
                   "uplink: {host: 127.0.0.1}\n")
    code, lines = _check(bad, None)
    assert code == 2
    assert lines[0] == f"{bad}:4:3: 错误：gateway：未知的键 'timezon'", lines
    assert lines[1] == "  提示：您是不是想写 'timezone'？"
    code, lines = _check(bad, "en")
    assert lines[0] == f"{bad}:4:3: error: gateway: unknown key 'timezon'"


def test_the_cli_takes_lang(capfd: pytest.CaptureFixture[str]) -> None:
    from hearthgate.cli import main

    good = Path(__file__).parents[2] / "config" / "minimal.yaml"
    assert main(["check", "-c", str(good), "--lang", "zh"]) == 0
    assert "正常：" in capfd.readouterr().out


def test_unknown_ids_and_languages_fall_back() -> None:
    assert text("said.sos", "fr") == "SOS pressed"
    assert text("no.such.id", "zh") == "no.such.id"
    assert text("said.water_read", "zh") == "水表读数 {total} 立方米"  # a missing parameter
    assert translate("something nobody wrote a template for", "zh").startswith("something")
    assert language_of_file("gateway:\n  language: 'en'\n") == "en"
    assert language_of_file(": : :\n\t") is None
