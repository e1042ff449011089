"""The page's token check on its own: every shape of credential, and the brake on guessing
released once its window has passed (the clock injected)."""

from __future__ import annotations

from hearthgate.web.auth import FAILURE_WINDOW, MAX_FAILURES, PageAuth

TOKEN = "tok-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_credentials() -> None:
    auth = PageAuth(TOKEN, Clock())
    assert auth.token_ok(TOKEN)
    for bad in (None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "é" * 20):
        assert not auth.token_ok(bad), bad
    assert auth.cookie_ok(auth.cookie_value) and TOKEN not in auth.cookie_value
    for bad in (None, "", TOKEN, auth.cookie_value[:-1]):
        assert not auth.cookie_ok(bad), bad
    assert auth.bearer_ok(f"Bearer {TOKEN}") and auth.bearer_ok(f"bearer  {TOKEN}")
    for bad in (None, "", "Bearer", f"Basic {TOKEN}", f"Bearer{TOKEN}", TOKEN):
        assert not auth.bearer_ok(bad), bad
    # Another token, another cookie: changing the token logs every browser out.
    assert PageAuth(TOKEN + "2", Clock()).cookie_value != auth.cookie_value


def test_the_brake_holds_for_its_window_then_lets_go() -> None:
    clock = Clock()
    auth = PageAuth(TOKEN, clock)
    for _ in range(MAX_FAILURES - 1):
        auth.failed()
    assert not auth.braked()
    auth.failed()
    assert auth.braked()
    clock.now += FAILURE_WINDOW / 2
    assert auth.braked()
    clock.now += FAILURE_WINDOW / 2 + 0.1
    assert not auth.braked()
