"""Every file in tests/config/broken/ fails `check` with exit 2 at the expected positions.

Each broken file states what it expects in comments:
`# expect: LINE:COL message fragment` (one per error; the count must match exactly),
`# hint: fragment` (a hint some problem must carry), and `# setup: no-secrets` (the
file is checked without a secrets.yaml beside it).
"""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from hearthgate.check import run_check
from hearthgate.config import ConfigError
from tests.config.conftest import TEST_REGISTRY, load_config

BROKEN = Path(__file__).parent / "broken"
SECRET_VALUE = "pa55-w0rd-never-shown"
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$")
_HINT = re.compile(r"^# hint: (.+)$")


@dataclass
class Expectation:
    line: int
    col: int
    fragment: str


def _expectations(path: Path) -> tuple[list[Expectation], list[str], bool]:
    expects, hints, secrets = [], [], True
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if m := _EXPECT.match(text):
            expects.append(Expectation(int(m.group(1)), int(m.group(2)), m.group(3).strip()))
        elif m := _HINT.match(text):
            hints.append(m.group(1).strip())
        elif text.strip() == "# setup: no-secrets":
            secrets = False
    return expects, hints, secrets


def _place(src: Path, tmp_path: Path, with_secrets: bool) -> Path:
    target = tmp_path / src.name
    shutil.copyfile(src, target)
    if with_secrets:
        (tmp_path / "secrets.yaml").write_text(f"uplink_password: {SECRET_VALUE}\n")
        (tmp_path / "uplink.pass").write_text(f"{SECRET_VALUE}\n")
    return target


BROKEN_FILES = sorted(BROKEN.glob("*.yaml"))


def test_there_are_enough_broken_files() -> None:
    assert len(BROKEN_FILES) >= 15
    for path in BROKEN_FILES:
        assert _expectations(path)[0], f"{path.name} states no '# expect:'"


@pytest.mark.parametrize("src", BROKEN_FILES, ids=lambda p: p.stem)
def test_broken_file(src: Path, tmp_path: Path) -> None:
    expects, hints, with_secrets = _expectations(src)
    path = _place(src, tmp_path, with_secrets)

    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [p for p in caught.value.problems if p.severity == "error"]
    found = [(p.line, p.col, p.message) for p in problems]
    assert len(problems) == len(expects), found
    for want in expects:
        assert any(
            (line, col) == (want.line, want.col) and want.fragment in message
            for line, col, message in found
        ), f"expected {want} in {found}"
    for hint in hints:
        assert any(p.hint and hint in p.hint for p in problems), (hint, problems)

    out, err = io.StringIO(), io.StringIO()
    assert run_check(path, out, err, TEST_REGISTRY) == 2
    assert out.getvalue() == ""
    text = err.getvalue()
    assert "Traceback" not in text
    assert SECRET_VALUE not in text
    for want in expects:
        assert re.search(
            rf"^{re.escape(str(path))}:{want.line}:{want.col}: error: .*{re.escape(want.fragment)}",
            text,
            re.M,
        ), text


def test_check_stderr_is_only_error_and_hint_lines(tmp_path: Path) -> None:
    path = _place(BROKEN / "rule_device_kind.yaml", tmp_path, True)
    out, err = io.StringIO(), io.StringIO()
    assert run_check(path, out, err, TEST_REGISTRY) == 2
    for line in err.getvalue().splitlines():
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: error: |^  hint: ", line), line
