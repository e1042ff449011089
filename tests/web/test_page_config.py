"""`gateway.web` in `hearthgate check`: the section read, a warning for plain HTTP beyond
loopback, and the page's port tried (taken, an address not here). The refusals of bad values
are tests/config/broken/web_*.yaml."""

from __future__ import annotations

import io
import socket
from pathlib import Path

from hearthgate.check import run_check
from hearthgate.config import load
from hearthgate.web.listening import probe_listen
from tests.web.webkit import TOKEN, write_page_config


class _Port:
    port = 1883


def check(path: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_check(path, out, err)
    return code, err.getvalue()


def test_the_section_is_read_and_its_token_never_shown(tmp_path: Path) -> None:
    path, port = write_page_config(tmp_path, _Port(), "gw-cfg-0001")  # type: ignore[arg-type]
    result = load(path)
    web = result.config.gateway.web
    assert web is not None and web.address == ("127.0.0.1", port)
    assert web.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(result.config) and TOKEN in result.secrets
    code, err = check(path)
    assert code == 0 and "status page" not in err  # loopback, port free: nothing to say


def test_listening_beyond_loopback_is_warned_at_its_position(tmp_path: Path) -> None:
    path, port = write_page_config(tmp_path, _Port(), "gw-cfg-0002")  # type: ignore[arg-type]
    text = path.read_text().replace(f"127.0.0.1:{port}\n", f"0.0.0.0:{port}\n", 1)
    path.write_text(text)
    (w,) = [w for w in load(path).warnings if "status page" in w.message]
    assert (w.line, w.col) == (6, 13)
    assert "plain HTTP" in w.message and w.hint is not None and "ssh -L" in w.hint
    code, err = check(path)
    assert code == 0 and f"{path}:6:13: warning: the status page listens on 0.0.0.0" in err


def test_a_taken_port_is_warned(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path, _ = write_page_config(tmp_path, _Port(), "gw-cfg-0003", port=port)  # type: ignore[arg-type]
        code, err = check(path)
    assert code == 0  # the gateway runs without the page; the installer is told
    assert f"{path}: warning: the status page (gateway.web.listen: 127.0.0.1:{port}) cannot" \
           f" listen: port {port} is already in use" in err
    assert probe_listen("127.0.0.1", port) is None  # freed


def test_addresses_that_are_not_here() -> None:
    assert "not an address of this machine" in (probe_listen("192.0.2.1", 8080) or "")
    assert "not a name or address" in (probe_listen("no-such-host.invalid", 8080) or "")
