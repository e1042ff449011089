"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, with the
gateway's own web library (aiohttp's WebSocket client): no browser download, no driver
package. Just what the page's tests need: open a page, evaluate script, wait for a promise."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
DEVTOOLS = re.compile(rb"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """One headless browser process and one page (a target attached in flat mode)."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile
        self.proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.session: str | None = None

    async def __aenter__(self) -> Chromium:
        self.proc = await asyncio.create_subprocess_exec(
            self.executable, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LANG": "C.UTF-8"})
        assert self.proc.stderr is not None
        url = None
        async with asyncio.timeout(30):
            while url is None:
                line = await self.proc.stderr.readline()
                if not line:
                    raise DevToolsError("chromium exited before it listened")
                if m := DEVTOOLS.search(line):
                    url = m.group(1).decode()
        self._drain = asyncio.create_task(self._drain_stderr())
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True})
        self.session = attached["sessionId"]
        await self.send("Page.enable", session=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close"), 5)
        for task in (self._reader, getattr(self, "_drain", None)):
            if task is not None:
                task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass  # a full pipe would stall the browser

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            future = self._waiting.pop(data.get("id"), None) if "id" in data else None
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self._events.put_nowait(data)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(DevToolsError("the browser closed the connection"))

    async def request(self, method: str, params: dict[str, Any] | None = None, *,
                      session: bool = False) -> asyncio.Future[dict[str, Any]]:
        """Send a command; the future of its answer (so that a test can act meanwhile)."""
        assert self._ws is not None
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._ws.send_str(json.dumps(message))
        return future

    async def send(self, method: str, params: dict[str, Any] | None = None, *,
                   session: bool = False) -> dict[str, Any]:
        answer = await (await self.request(method, params, session=session))
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def open(self, url: str, timeout: float = 10.0) -> None:
        """Navigate and wait for the load event."""
        while not self._events.empty():
            self._events.get_nowait()
        await self.send("Page.navigate", {"url": url}, session=True)
        async with asyncio.timeout(timeout):
            while (await self._events.get()).get("method") != "Page.loadEventFired":
                pass

    @staticmethod
    def _value(result: dict[str, Any], expression: str) -> Any:
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def evaluate_later(self, expression: str) -> asyncio.Future[dict[str, Any]]:
        """Start evaluating (a promise is awaited in the page); the future of the answer."""
        return await self.request("Runtime.evaluate", {"expression": expression,
                                                 "awaitPromise": True,
                                                 "returnByValue": True}, session=True)

    async def evaluate(self, expression: str) -> Any:
        answer = await (await self.evaluate_later(expression))
        if "error" in answer:
            raise DevToolsError(f"{expression!r}: {answer['error']}")
        return self._value(answer["result"], expression)

    async def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll `expression` until it is truthy; its value. An error while it is not (a page
        half loaded, a context replaced by a navigation) is another try; the last one is
        raised at the timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except DevToolsError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                value = None
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{expression!r} stayed {value!r} for {timeout} s")
            await asyncio.sleep(0.05)

    def result_of(self, answer: dict[str, Any]) -> Any:
        if "error" in answer:
            raise DevToolsError(str(answer["error"]))
        return self._value(answer["result"], "")

