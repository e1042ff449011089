"""Who may see the status page: the token from the config, a cookie derived from it, and a
brake on guessing. No I/O; the clock is injected.

The cookie holds an HMAC of the token, not the token: a cookie read off a browser does not
give away the config's secret, and changing the token logs every browser out. Every
comparison is `hmac.compare_digest`, so timing tells nothing about how much of a guess was
right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from collections.abc import Callable

COOKIE = "hearthgate_page"
COOKIE_CONTEXT = b"hearthgate status page cookie v1"
MAX_FAILURES = 10  # wrong tokens per FAILURE_WINDOW before logins are refused for a while
FAILURE_WINDOW = 60.0  # s


class PageAuth:
    """Checks the page's token, in a login form, `?token=`, a header or the cookie.

    Args:
        token: the configured token (`gateway.web.token`).
        monotonic: the clock the guessing brake reads.
    """

    def __init__(self, token: str, monotonic: Callable[[], float]) -> None:
        self._token = token.encode()
        self._cookie = hmac.new(self._token, COOKIE_CONTEXT, hashlib.sha256).hexdigest()
        self._monotonic = monotonic
        self._failures: deque[float] = deque()

    @property
    def cookie_value(self) -> str:
        return self._cookie

    def token_ok(self, offered: str | None) -> bool:
        if not offered:
            return False
        return hmac.compare_digest(offered.encode(), self._token)

    def cookie_ok(self, offered: str | None) -> bool:
        if not offered:
            return False
        return hmac.compare_digest(offered.encode(), self._cookie.encode())

    def bearer_ok(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def braked(self) -> bool:
        """Too many wrong tokens lately: refuse logins (even right ones) for a while."""
        now = self._monotonic()
        while self._failures and now - self._failures[0] > FAILURE_WINDOW:
            self._failures.popleft()
        return len(self._failures) >= MAX_FAILURES

    def failed(self) -> None:
        self._failures.append(self._monotonic())
