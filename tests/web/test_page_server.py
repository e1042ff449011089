"""The status page's HTTP side against an in-process gateway (real broker, real SQLite store,
real HTTP on loopback): the token in every form it is accepted in, every refusal, the state
the page reads, the event stream, acknowledging a test alert (and refusing a real one) with
the access trail, and a port already in use."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from hearthgate.config import load_config
from hearthgate.control import CONTROL_SOCKET, ask
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.service import Gateway
from hearthgate.web.auth import COOKIE, MAX_FAILURES
from hearthgate.web.server import MAX_STREAMS
from tests.web.webkit import TOKEN, write_page_config

GW = "gw-page-0001"


async def wait_until(predicate: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Running:
    def __init__(self, gw: Gateway, port: int, broker: MosquittoBroker, tmp: Path) -> None:
        self.gw, self.port, self.broker, self.tmp = gw, port, broker, tmp
        self.base = f"http://127.0.0.1:{port}"

    async def z2m(self, topic: str, payload: dict[str, Any]) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker.port) as client:
            await client.publish(f"zigbee2mqtt/{topic}", json.dumps(payload), qos=1)

    async def press_until_alert(self, button: str = "sos_101") -> str:
        """Press an SOS button (the bus subscribes shortly after start) until an alert is
        open; its id."""
        for _ in range(100):
            await self.z2m(button, {"action": "emergency", "battery": 80})
            for _ in range(10):
                if self.gw.engine.open:
                    return next(iter(self.gw.engine.open))
                await asyncio.sleep(0.02)
        raise AssertionError("no alert raised")

    async def control(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = await ask([self.gw.data_dir / CONTROL_SOCKET], request, timeout=5.0)
        assert answer is not None
        return answer

    async def audit(self) -> list[dict[str, Any]]:
        assert self.gw.store is not None
        return await self.gw.store.audit_trail()


@pytest.fixture
async def page(tmp_path: Path, broker: MosquittoBroker) -> AsyncIterator[Running]:
    path, port = write_page_config(tmp_path, broker, GW)
    gw = Gateway(load_config(path))
    stop = asyncio.Event()
    run = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 15)
        await wait_until(lambda: gw.page is not None and gw.page.serving)
        yield Running(gw, port, broker, tmp_path)
    finally:
        stop.set()
        await asyncio.wait_for(run, 20)


def session(**kw: Any) -> aiohttp.ClientSession:
    # The cookie is for 127.0.0.1: the default jar keeps no cookies of a bare IP address.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kw)


async def test_without_the_token_nothing_is_shown(page: Running) -> None:
    async with session() as http:
        async with http.get(page.base + "/") as r:
            assert r.status == 401
            html = await r.text()
        assert '"authed": false' in html
        assert "sos-101" not in html and GW not in html
        for path in ("/api/state", "/api/events"):
            async with http.get(page.base + path) as r:
                assert r.status == 401, path
                assert await r.json() == {"error": "token needed"}
        async with http.post(page.base + "/api/ack", json={"alert_id": "x"}) as r:
            assert r.status == 401
        # Bad credentials of every shape.
        for headers in ({"Authorization": "Bearer wrong-token-0123456"},
                        {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"},
                        {"Cookie": f"{COOKIE}={TOKEN}"}, {"Cookie": f"{COOKIE}="},
                        {"Authorization": "Bearer " + TOKEN[:-1]}):
            async with http.get(page.base + "/api/state", headers=headers) as r:
                assert r.status == 401, headers


async def test_the_token_by_link_by_form_and_by_header(page: Running) -> None:
    async with session() as http:
        async with http.get(page.base + "/", params={"token": TOKEN},
                            allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.cookies[COOKIE]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert TOKEN not in cookie.value  # an HMAC of it, never the token
        async with http.get(page.base + "/") as r:
            assert r.status == 200
            assert '"authed": true' in await r.text()
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get(page.base + "/api/state") as r:
            state = await r.json()
    assert state["gateway_id"] == GW
    assert [d["device_id"] for d in state["devices"]] == ["sos-101", "sos-102", "door-101"]
    assert state["devices"][0]["online"] is None  # not heard yet
    assert "resident" not in json.dumps(state) and "r-0001" not in json.dumps(state)

    async with session() as http:
        async with http.post(page.base + "/login", data={"token": TOKEN}) as r:
            assert r.status == 200 and '"authed": true' in await r.text()
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.get(page.base + "/api/state") as r:
            assert r.status == 200

    trail = await page.audit()
    logins = [a for a in trail if a["via"] == "page" and a["action"] == "login"]
    assert len(logins) == 2 and all(a["ok"] for a in logins)
    assert TOKEN not in json.dumps(trail)


async def test_wrong_tokens_are_recorded_and_braked(page: Running) -> None:
    async with session() as http:
        async with http.post(page.base + "/login", data={"token": "nope"}) as r:
            assert r.status == 401
            assert '"error": "login_wrong"' in await r.text()
        async with http.post(page.base + "/login", data=b"\xff\xfe garbage",
                             headers={"Content-Type": "multipart/form-data"}) as r:
            assert r.status in (400, 401)
        async with http.post(page.base + "/login", data="x" * 10_000) as r:
            assert r.status in (400, 401, 413)
        for _ in range(MAX_FAILURES):
            async with http.get(page.base + "/", params={"token": "guess"}) as r:
                pass
        # Braked: even the right token waits now, and the trail says so once.
        for _ in range(3):
            async with http.get(page.base + "/", params={"token": TOKEN},
                                allow_redirects=False) as r:
                assert r.status == 429
    trail = await page.audit()
    refused = [a for a in trail if a["action"] == "login" and not a["ok"]]
    assert [a["error"] for a in refused].count("too many wrong tokens") == 1
    assert {a["error"] for a in refused} == {"wrong token", "too many wrong tokens"}
    assert all(a["via"] == "page" and a["actor"] == "page" for a in refused)


async def test_events_follow_a_device_and_ack_clears_only_test_alerts(page: Running) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(page.base + "/api/events") as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")

            async def next_state(match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
                async with asyncio.timeout(10):
                    while True:
                        line = (await stream.content.readline()).decode()
                        if line.startswith("data: "):
                            state = json.loads(line[6:])
                            if match(state):
                                return state

            await next_state(lambda s: True)
            await page.z2m("door_101", {"contact": False, "battery": 90})
            state = await next_state(lambda s: s["devices"][2]["values"].get("door_open"))
            assert state["devices"][2]["online"] is True

            # A real SOS: shown, and refused from the page.
            real = await page.press_until_alert()
            state = await next_state(lambda s: s["alerts"])
            (shown,) = state["alerts"]
            assert shown["alert_id"] == real and shown["can_ack"] is False
            async with http.post(page.base + "/api/ack", json={"alert_id": real}) as r:
                assert r.status == 403
                assert "only a test alert" in (await r.json())["error"]
            assert real in page.gw.engine.open
            await page.gw._ack(real, "platform")  # the care centre clears it

            # A walk test: the next press is a test alert, which the page may clear.
            start = await page.control({"command": "walktest_start", "user": "installer-7"})
            state = await next_state(lambda s: s["walk"] is not None)
            assert state["walk"]["total"] == 3 and state["walk"]["user"] == "installer-7"
            test = await page.press_until_alert("sos_102")
            state = await next_state(lambda s: any(a["test"] for a in s["alerts"]))
            assert state["alerts"][0]["can_ack"] is True
            assert state["walk"]["heard"] >= 1
            async with http.post(page.base + "/api/ack", json={"alert_id": test},
                                 headers={"Origin": "http://evil.example"}) as r:
                assert r.status == 403  # another site posting with the cookie
            for bad in (b"not json", b"[]", b'{"alert_id": 5}', b'{"alert_id": ""}',
                        json.dumps({"alert_id": "x" * 200}).encode()):
                async with http.post(page.base + "/api/ack", data=bad,
                                     headers={"Content-Type": "application/json"}) as r:
                    assert r.status == 400, bad
            async with http.post(page.base + "/api/ack", json={"alert_id": "no-such"}) as r:
                assert r.status == 403 and "unknown" in (await r.json())["error"]
            async with http.post(page.base + "/api/ack", json={"alert_id": test}) as r:
                assert r.status == 200 and (await r.json())["ok"] is True
            await next_state(lambda s: not s["alerts"])
            await page.control({"command": "walktest_stop", "user": "installer-7",
                                "session": start["session"]})
            await next_state(lambda s: s["walk"] is None)

    trail = await page.audit()
    acks = [(a["via"], a["actor"], a["target"], a["ok"]) for a in trail if a["action"] == "ack"]
    assert ("page", "page", real, False) in acks
    assert ("page", "page", "no-such", False) in acks
    assert ("page", "page", test, True) in acks


async def test_a_port_in_use_is_said_and_the_gateway_carries_on(
        tmp_path: Path, broker: MosquittoBroker) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    path, _ = write_page_config(tmp_path, broker, "gw-page-0002", port=port)
    gw = Gateway(load_config(path))
    gw_stop = asyncio.Event()
    run = asyncio.create_task(gw.run(gw_stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 15)
        await wait_until(lambda: gw.page is not None and gw.page.error is not None)
        assert gw.page is not None and not gw.page.serving
        assert f"port {port} is already in use" in gw.page.error
        status = await gw.status_now()
        assert status["web"] == {"listen": f"127.0.0.1:{port}", "serving": False,
                                 "error": gw.page.error}
        assert gw.supervisor is not None
        await wait_until(lambda: gw.supervisor.restarts["web"] >= 1)  # type: ignore[union-attr]
        assert not run.done()  # the gateway carries on
        taken.close()
        # Freed: the backoff's next try takes it.
        await wait_until(lambda: gw.page.serving, timeout=10)  # type: ignore[union-attr]
        assert (await gw.status_now())["web"]["error"] is None
    finally:
        taken.close()
        gw_stop.set()
        await asyncio.wait_for(run, 20)


async def test_open_pages_are_bounded(page: Running) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        streams = [await http.get(page.base + "/api/events") for _ in range(MAX_STREAMS)]
        try:
            assert all(r.status == 200 for r in streams)
            async with http.get(page.base + "/api/events") as r:
                assert r.status == 503
        finally:
            for r in streams:
                r.close()
        await wait_until(lambda: page.gw.page is not None and page.gw.page.streams == 0)
        async with http.get(page.base + "/api/events") as r:
            assert r.status == 200
