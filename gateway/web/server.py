"""The status page's HTTP server: aiohttp, started by the service only when `gateway.web` is set.

Why aiohttp: a well-kept asyncio server that runs inside our own event loop and TaskGroup
(`AppRunner`/`TCPSite`: no signal handlers of its own, no `sys.exit` on a busy port, unlike
uvicorn), with streamed responses for Server-Sent Events. It is a core dependency, not an
extra: PyPI has CPython 3.11 wheels of it and of everything it needs (multidict, yarl,
frozenlist, propcache, ...) for aarch64, armv7l and x86_64, so the offline bundle carries it
for every Pi. It is imported here alone, and this module only when the page is configured:
a gateway without `web:` never loads it (tests/web/test_footprint.py).

Routes (docs/operations.md, "The status page"):

    GET  /               the page; without the token only the login form
    GET  /?token=T       sets the cookie and redirects to / (a link an installer can scan)
    POST /login          the login form (field `token`)
    GET  /api/state      the state as JSON (`hearthgate.web.view.page_state`)
    GET  /api/events     Server-Sent Events: `state` with the whole state on every change
    POST /api/ack        {"alert_id": ...}: acknowledge a *test* alert (a real one: 403)
    GET  /static/...     the page's script and style

Every API route answers 401 without the cookie or an `Authorization: Bearer` header. Logins
(right and wrong) and acknowledgements are recorded in the access trail with `via="page"`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from hearthgate.config.models import WebSection
from hearthgate.web.auth import COOKIE, PageAuth
from hearthgate.web.listening import why_not_listening
from hearthgate.web.strings import page_strings
from hearthgate.web.view import PageSource, page_state

log = logging.getLogger("hearthgate.web")

STATIC = Path(__file__).parent / "static"
ACTOR = "page"  # the access trail's actor: the page has one token, not named users
COOKIE_MAX_AGE = 12 * 3600  # s: a commissioning day
KEEPALIVE = 10.0  # s: a fresh state at least this often ("3s ago" and offline devices move on)
GONE_CHECK = 0.5  # s: how soon a stream whose browser left is noticed while nothing changes
MIN_GAP = 0.1  # s between two states sent to one browser (a burst of readings is one update)
MAX_STREAMS = 8  # browsers watching at once; more get 503 (memory on a Pi is bounded)
MAX_BODY = 4096  # bytes of a request body (a token or an alert id)
SHUTDOWN = 1.0  # s the server waits for open requests when it stops
HEADERS = {
    # The page's own files only: nothing from elsewhere, no inline script.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class PageUnavailable(RuntimeError):
    """The page could not listen; the supervisor tries again with backoff."""


class StatusPage:
    """The local status page: an aiohttp application on `gateway.web.listen`.

    `run()` is a supervised task: it listens until cancelled, and raises `PageUnavailable`
    when it cannot (the supervisor restarts it with backoff; the gateway carries on).
    `changed()` tells the open pages that the state moved; `status()` is the `web` field of
    `P/status`.

    Args:
        config: the `gateway.web` section.
        lang: `gateway.language` (the page's words).
        tz: the gateway's time zone (alert times).
        source: the running service (`PageSource`).
        on_status: called when `status()` changes (the service republishes `P/status`).
        monotonic: the clock the login brake reads.
    """

    def __init__(self, config: WebSection, lang: str, tz: Any, source: PageSource, *,
                 on_status: Callable[[], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.host, self.port = config.address
        self.lang = lang
        self.tz = tz
        self.source = source
        self.auth = PageAuth(config.token.get_secret_value(), monotonic)
        self.on_status = on_status
        self.serving = False
        self.error: str | None = None
        self.bound_port: int | None = None
        self.streams = 0
        self._version = 0
        self._pulse = asyncio.Event()
        self._closing = False
        self._brake_recorded = False
        boot = {"lang": lang, "strings": page_strings(lang)}
        # `<` escaped: the JSON sits in a <script type="application/json"> block.
        self._boot = json.dumps(boot, ensure_ascii=False).replace("<", "\\u003c")
        self._html = (STATIC / "index.html").read_text(encoding="utf-8")

    # -- what the service calls ------------------------------------------------------

    def changed(self) -> None:
        self._version += 1
        self._pulse.set()
        self._pulse = asyncio.Event()

    def status(self) -> dict[str, Any]:
        return {"web": {"listen": self.config.listen, "serving": self.serving,
                        "error": self.error}}

    async def run(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                why = why_not_listening(exc, self.host, self.port)
                log.error("the status page cannot listen on %s: %s", self.config.listen, why)
                self._set_status(False, why)
                raise PageUnavailable(why) from None
            self.bound_port = runner.addresses[0][1] if runner.addresses else self.port
            self._closing = False
            self._set_status(True, None)
            log.info("status page on http://%s:%d/", self.host, self.bound_port)
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._closing = True
            self.changed()  # wakes the event streams so that they end
            if self.serving:
                self._set_status(False, None)
            await runner.cleanup()

    def _set_status(self, serving: bool, error: str | None) -> None:
        if (serving, error) != (self.serving, self.error):
            self.serving, self.error = serving, error
            if self.on_status is not None:
                self.on_status()

    # -- the application ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._headers])
        app.router.add_get("/", self._index)
        app.router.add_post("/login", self._login)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/ack", self._ack)
        app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if not response.prepared:
            for key, value in HEADERS.items():
                response.headers.setdefault(key, value)
        return response

    def _authed(self, request: web.Request) -> bool:
        return (self.auth.cookie_ok(request.cookies.get(COOKIE))
                or self.auth.bearer_ok(request.headers.get("Authorization")))

    def _page(self, authed: bool, error: str | None = None, status: int = 200) -> web.Response:
        boot = self._boot[:-1] + f', "authed": {json.dumps(authed)}, "error": {json.dumps(error)}}}'
        html = self._html.replace("__BOOT__", boot).replace("__LANG__", self.lang)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            status=status)

    def _signed_in(self, response: web.StreamResponse) -> web.StreamResponse:
        response.set_cookie(COOKIE, self.auth.cookie_value, max_age=COOKIE_MAX_AGE,
                            httponly=True, samesite="Strict", path="/")
        return response

    async def _try_token(self, offered: str | None) -> str | None:
        """None when `offered` is the token; else what the login form says."""
        if self.auth.braked():
            # Once per brake: a script hammering the page must not flood the trail (and the
            # SD card) with a record per request.
            if not self._brake_recorded:
                self._brake_recorded = True
                await self.source.page_audit(ACTOR, "login", ok=False,
                                             error="too many wrong tokens")
            return "login_braked"
        self._brake_recorded = False
        if not self.auth.token_ok(offered):
            self.auth.failed()
            await self.source.page_audit(ACTOR, "login", ok=False, error="wrong token")
            return "login_wrong"
        await self.source.page_audit(ACTOR, "login")
        return None

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if "token" in request.query:
            error = await self._try_token(request.query.get("token"))
            if error is not None:
                return self._page(False, error, 429 if error == "login_braked" else 401)
            # Redirected so that the token leaves the address bar and the history.
            return self._signed_in(_see_other())
        if not self._authed(request):
            return self._page(False, status=401)
        return self._page(True)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        try:
            form = await request.post()
        except (ValueError, web.HTTPException):
            return self._page(False, "login_wrong", 400)
        token = form.get("token")
        error = await self._try_token(token if isinstance(token, str) else None)
        if error is not None:
            return self._page(False, error, 429 if error == "login_braked" else 401)
        return self._signed_in(_see_other())

    def _state_now(self) -> dict[str, Any]:
        return page_state(self.source.page_facts(), self.tz)

    async def _state(self, request: web.Request) -> web.StreamResponse:
        if not self._authed(request):
            return web.json_response({"error": "token needed"}, status=401)
        return web.json_response(self._state_now(), dumps=_dumps)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not self._authed(request):
            return web.json_response({"error": "token needed"}, status=401)
        if self.streams >= MAX_STREAMS:
            return web.json_response({"error": "too many pages open"}, status=503)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store",
                                               "X-Content-Type-Options": "nosniff"})
        self.streams += 1
        try:
            await response.prepare(request)
            sent, quiet = -1, 0.0
            while not self._closing:
                if sent != self._version:
                    sent, quiet = self._version, 0.0
                    data = _dumps(self._state_now())
                    await response.write(f"event: state\ndata: {data}\n\n".encode())
                    await asyncio.sleep(MIN_GAP)
                    continue
                if request.transport is None or request.transport.is_closing():
                    break  # the browser went away: its slot is free again
                pulse = self._pulse
                try:
                    async with asyncio.timeout(GONE_CHECK):
                        await pulse.wait()
                except TimeoutError:
                    quiet += GONE_CHECK
                    if quiet >= KEEPALIVE:
                        sent = -1  # time moved on: send a fresh state anyway
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self.streams -= 1
        return response

    async def _ack(self, request: web.Request) -> web.StreamResponse:
        if not self._authed(request):
            return web.json_response({"ok": False, "error": "token needed"}, status=401)
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            # A page elsewhere posting with this browser's cookie (SameSite aside).
            return web.json_response({"ok": False, "error": "cross-origin request"},
                                     status=403)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError, web.HTTPException):
            return web.json_response({"ok": False, "error": "the body must be JSON"}, status=400)
        alert_id = body.get("alert_id") if isinstance(body, dict) else None
        if not isinstance(alert_id, str) or not alert_id or len(alert_id) > 100:
            return web.json_response({"ok": False, "error": "'alert_id' must be a string"},
                                     status=400)
        error = await self.source.ack_test_alert(alert_id, ACTOR)
        if error is not None:
            return web.json_response({"ok": False, "error": error}, status=403)
        return web.json_response({"ok": True, "alert_id": alert_id})


def _see_other() -> web.Response:
    return web.Response(status=303, headers={"Location": "/"})


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
