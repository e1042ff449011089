"""Metrics: the text exposition parsed back, the HTTP endpoint over a real socket, textfiles."""

from __future__ import annotations

import asyncio
import math
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hearthgate import metrics as m
from hearthgate.metrics import (
    CONTENT_TYPE,
    GatewayMetrics,
    MetricsRegistry,
    parse_listen,
    start_metrics_server,
    write_textfile,
)

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda mo: {"n": "\n"}.get(mo.group(1), mo.group(1)), v)


def parse_exposition(text: str) -> dict[str, dict]:
    """A strict reader of format 0.0.4: every line must be HELP, TYPE or a sample of a
    metric whose TYPE came first."""
    out: dict[str, dict] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            out.setdefault(name, {"samples": {}})["help"] = help_
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge")
            out[name]["type"] = kind
        else:
            mo = _SAMPLE.match(line)
            assert mo, f"not a sample line: {line!r}"
            name, body, value = mo.groups()
            assert "type" in out[name]
            labels: tuple = ()
            if body:
                pairs = _LABEL.findall(body)
                assert ",".join(f'{k}="{v}"' for k, v in pairs) == body
                labels = tuple((k, _unescape(v)) for k, v in pairs)
            out[name]["samples"][labels] = float(value)
    return out


def test_gateway_metrics_exposition_round_trip() -> None:
    gm = GatewayMetrics(version="9.9.9")
    gm.observations.inc(metric="water_total_m3")
    gm.observations.inc(3, metric="motion")
    gm.frame_errors.inc(device_id="water-301", kind="checksum")
    gm.frame_errors.mirror({("power-301", "truncated"): 4})
    gm.alerts.inc(type="sos", state="raised")
    gm.outbox_depth.set(12, priority="telemetry")
    gm.uplink_connected.set(1)
    gm.uplink_published.inc(kind="alert")
    gm.telemetry_dropped.inc(5)
    gm.driver_restarts.inc(task="bus:rs485-1")
    gm.devices_online.set(6)
    parsed = parse_exposition(gm.registry.render())
    expected_names = {
        "hearthgate_observations_total", "hearthgate_frame_errors_total",
        "hearthgate_alerts_total", "hearthgate_outbox_depth", "hearthgate_uplink_connected",
        "hearthgate_uplink_published_total", "hearthgate_uplink_delivery_total",
        "hearthgate_telemetry_dropped_total",
        "hearthgate_driver_restarts_total", "hearthgate_devices_online",
        "hearthgate_store_degraded", "hearthgate_alerts_held",
        "hearthgate_loop_lag_seconds", "hearthgate_loop_lag_max_seconds",
        "hearthgate_build_info", "process_resident_memory_bytes", "process_start_time_seconds",
    }
    assert set(parsed) == expected_names
    assert parsed["hearthgate_observations_total"]["type"] == "counter"
    assert parsed["hearthgate_observations_total"]["samples"] == {
        (("metric", "motion"),): 3.0, (("metric", "water_total_m3"),): 1.0}
    assert parsed["hearthgate_frame_errors_total"]["samples"] == {
        (("device_id", "power-301"), ("kind", "truncated")): 4.0,
        (("device_id", "water-301"), ("kind", "checksum")): 1.0}
    assert parsed["hearthgate_outbox_depth"]["type"] == "gauge"
    assert parsed["hearthgate_outbox_depth"]["samples"] == {
        (("priority", "alert"),): 0.0, (("priority", "telemetry"),): 12.0,
        (("priority", "urgent"),): 0.0}
    assert parsed["hearthgate_uplink_connected"]["samples"] == {(): 1.0}
    assert parsed["hearthgate_telemetry_dropped_total"]["samples"] == {(): 5.0}
    assert parsed["hearthgate_build_info"]["samples"] == {(("version", "9.9.9"),): 1.0}
    assert parsed["process_resident_memory_bytes"]["samples"][()] > 1_000_000
    # A mirrored tally never makes a counter go down.
    gm.frame_errors.mirror({("power-301", "truncated"): 2})
    assert gm.frame_errors.value(device_id="power-301", kind="truncated") == 4


def test_escaping_and_special_values() -> None:
    r = MetricsRegistry()
    c = r.counter("x_total", 'help with \\ and\nnewline', ["lbl"])
    c.inc(lbl='quote " back \\ nl \n 中文')
    g = r.gauge("g", "gauge", ["k"])
    g.set(math.inf, k="a")
    g.set(-math.inf, k="b")
    g.set(math.nan, k="c")
    g.set(0.25, k="d")
    g.set(-2, k="e")
    text = r.render()
    assert "# HELP x_total help with \\\\ and\\nnewline\n" in text
    parsed = parse_exposition(text)
    assert parsed["x_total"]["samples"] == {(("lbl", 'quote " back \\ nl \n 中文'),): 1.0}
    s = parsed["g"]["samples"]
    assert s[(("k", "a"),)] == math.inf and s[(("k", "b"),)] == -math.inf
    assert math.isnan(s[(("k", "c"),)])
    assert s[(("k", "d"),)] == 0.25 and s[(("k", "e"),)] == -2


def test_misuse_is_refused() -> None:
    r = MetricsRegistry()
    c = r.counter("a_total", "a", ["x"])
    with pytest.raises(ValueError):
        c.inc(-1, x="1")
    with pytest.raises(ValueError):
        c.inc(y="1")
    with pytest.raises(ValueError):
        c.inc()
    with pytest.raises(ValueError):
        r.counter("a_total", "dup")
    with pytest.raises(ValueError):
        r.gauge("bad-name", "x")
    with pytest.raises(ValueError):
        r.gauge("ok", "x", ["__reserved"])


def test_failing_hook_does_not_break_scrape() -> None:
    r = MetricsRegistry()
    g = r.gauge("depth", "d")

    def broken() -> None:
        raise RuntimeError("store closed")

    r.add_collect_hook(broken)
    r.add_collect_hook(lambda: g.set(7))
    assert parse_exposition(r.render())["depth"]["samples"] == {(): 7.0}


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    assert parse_listen(":9108") == ("0.0.0.0", 9108)
    for bad in ("9108", "host:", "host:99999", "host:abc"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_write_textfile_atomic(tmp_path: Path) -> None:
    gm = GatewayMetrics(version="1.0")
    target = tmp_path / "hearthgate.prom"
    target.write_text("old content that is not valid\n")
    gm.devices_online.set(3)
    write_textfile(gm.registry, target)
    parsed = parse_exposition(target.read_text())
    assert parsed["hearthgate_devices_online"]["samples"] == {(): 3.0}
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["hearthgate.prom"]  # no temp file left
    with pytest.raises(OSError):
        write_textfile(gm.registry, tmp_path / "missing-dir" / "x.prom")


# --- the HTTP endpoint, over a real TCP socket ----------------------------------------------

@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[GatewayMetrics, int]]:
    gm = GatewayMetrics(version="0.1.0")
    server = await start_metrics_server(gm.registry, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield gm, port
    finally:
        server.close()
        await server.wait_closed()


async def _exchange(port: int, data: bytes, *, eof: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if eof:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def _assert_serves(port: int) -> None:
    status, _, _ = _split(await _exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n"))
    assert status.endswith("200 OK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _get_when_up(port: int) -> bytes:
    """GET /metrics from a server that is still starting."""
    for _ in range(100):
        try:
            return await _exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        except OSError:
            await asyncio.sleep(0.01)
    raise AssertionError(f"nothing listens on port {port}")


def _split(resp: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


async def test_get_metrics(endpoint: tuple[GatewayMetrics, int]) -> None:
    gm, port = endpoint
    gm.alerts.inc(type="no_water", state="raised")
    status, headers, body = _split(
        await _exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", eof=False))
    assert status == "HTTP/1.1 200 OK"
    assert headers["Content-Type"] == CONTENT_TYPE
    assert int(headers["Content-Length"]) == len(body)
    parsed = parse_exposition(body.decode())
    assert parsed["hearthgate_alerts_total"]["samples"] == {
        (("type", "no_water"), ("state", "raised")): 1.0}
    status, headers, body = _split(await _exchange(port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"))
    assert status.endswith("200 OK") and body
    status, headers, body = _split(await _exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n"))
    assert status.endswith("200 OK") and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 404"),
    (b"GET /metricsx HTTP/1.1\r\n\r\n", b"HTTP/1.1 404"),
    (b"POST /metrics HTTP/1.1\r\n\r\n", b"HTTP/1.1 405"),
    (b"GARBAGE\r\n\r\n", b"HTTP/1.1 400"),
    (b"\x00\xff\xfe\x16\x03\x01 junk \r\n\r\n", b"HTTP/1.1 400"),
    (b"GET /metrics SPDY/3\r\n\r\n", b"HTTP/1.1 400"),
    (b"GET /metrics HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n", b"HTTP/1.1 431"),
    (b"GET /metrics HTTP/1.1\r\n", b""),  # truncated, then EOF: just closed
    (b"", b""),
])
async def test_garbage_requests(endpoint: tuple[GatewayMetrics, int], request_bytes: bytes,
                                expected: bytes) -> None:
    _, port = endpoint
    resp = await _exchange(port, request_bytes)
    assert resp.startswith(expected)
    if not expected:
        assert resp == b""
    await _assert_serves(port)  # the server is still fine afterwards


async def test_slow_client_is_dropped(endpoint: tuple[GatewayMetrics, int],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _, port = endpoint
    monkeypatch.setattr(m, "REQUEST_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /met")  # and then nothing
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 3)
    assert data == b""
    writer.close()
    await _assert_serves(port)  # other clients are served meanwhile and afterwards


async def test_connection_storm_is_bounded(endpoint: tuple[GatewayMetrics, int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _, port = endpoint
    monkeypatch.setattr(m, "REQUEST_TIMEOUT", 1.0)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(m.MAX_CONNECTIONS + 4)]
    await asyncio.sleep(0.1)
    # Those beyond the bound were closed at once.
    closed = 0
    for reader, _ in idle:
        try:
            if await asyncio.wait_for(reader.read(), 0.05) == b"":
                closed += 1
        except TimeoutError:
            pass
    assert closed >= 4
    for _, writer in idle:
        writer.close()
    await asyncio.sleep(1.2)  # the idle ones time out and free their slots
    await _assert_serves(port)


async def test_serve_metrics_runs_until_cancelled() -> None:
    port = _free_port()
    gm = GatewayMetrics(version="x")
    task = asyncio.create_task(m.serve_metrics(gm.registry, "127.0.0.1", port))
    assert (await _get_when_up(port)).startswith(b"HTTP/1.1 200")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task



async def test_loop_lag_shows_a_loop_held_by_blocking_work() -> None:
    """The probe sees the loop held: blocking it for 0.3 s makes a 0.1 s sleep wake at least
    0.2 s late (a lower bound that holds however loaded the machine is)."""
    import asyncio
    import time

    from hearthgate.metrics import GatewayMetrics

    m = GatewayMetrics(version="test")
    probe = asyncio.create_task(m.watch_loop_lag())
    try:
        await asyncio.sleep(0)  # the probe starts its first sleep
        time.sleep(0.3)  # noqa: ASYNC251 -- holding the loop is the point, as a large encode would
        while m.loop_lag_max.value() == 0:
            await asyncio.sleep(0.05)
    finally:
        probe.cancel()
    assert m.loop_lag_max.value() >= 0.2
    assert m.loop_lag.value() >= 0.2
    assert "hearthgate_loop_lag_seconds" in m.registry.render()
