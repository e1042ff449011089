"""Prometheus metrics without a dependency: counters and gauges, the text format, a tiny HTTP
endpoint and node_exporter textfiles.

Why not prometheus_client: importing it costs about 5 MB of RSS on CPython 3.11 (measured:
19.7 MB -> 24.9 MB max RSS), a tenth of the gateway's 45 MB idle target, for features we do
not use (histograms, multiprocess mode, OpenMetrics). The text exposition format 0.0.4 is a
few lines.

All gateway metric names are defined once, in `GatewayMetrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

# Re-exported: the metrics listener's option was read here first.
from hearthgate.core.listen import parse_listen as parse_listen

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL_RE.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        if not self.labelnames:
            self._values[()] = 0.0

    def _key(self, labels: Mapping[str, object]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {list(self.labelnames)}, got {sorted(labels)}"
            )
        return tuple(str(labels[n]) for n in self.labelnames)

    def _add(self, amount: float, labels: Mapping[str, object]) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: object) -> float:
        """The current value of one series (0 if it was never touched)."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[tuple[dict[str, str], float]]:
        with self._lock:
            items = sorted(self._values.items())
        return [(dict(zip(self.labelnames, key, strict=True)), v) for key, v in items]

    def render(self) -> str:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples():
            if labels:
                body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
                lines.append(f"{self.name}{{{body}}} {_format_value(value)}")
            else:
                lines.append(f"{self.name} {_format_value(value)}")
        return "\n".join(lines) + "\n"


class Counter(_Metric):
    """A value that only goes up (restarts at 0 with the process, as Prometheus expects)."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        if amount < 0:
            raise ValueError("a counter cannot decrease")
        self._add(amount, labels)

    def mirror(self, tally: Mapping[tuple[str, ...], int | float]) -> None:
        """Copy an existing monotonic tally kept elsewhere (e.g. DriverContext.errors), keyed
        by label values in labelnames order. Values never go down here."""
        with self._lock:
            for key, value in tally.items():
                k = tuple(str(part) for part in key)
                if len(k) != len(self.labelnames):
                    raise ValueError(f"{self.name}: key {key!r} does not match labels")
                self._values[k] = max(self._values.get(k, 0.0), float(value))


class Gauge(_Metric):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, value: float, **labels: object) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, **labels: object) -> None:
        self._add(-amount, labels)


class MetricsRegistry:
    """A set of metrics plus hooks that refresh gauges just before each scrape."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._hooks: list[Callable[[], None]] = []

    def register(self, metric: _Metric) -> None:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} already registered")
        self._metrics[metric.name] = metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        m = Counter(name, help, labelnames)
        self.register(m)
        return m

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        m = Gauge(name, help, labelnames)
        self.register(m)
        return m

    def add_collect_hook(self, hook: Callable[[], None]) -> None:
        """`hook()` runs before every exposition; a failing hook is logged, not fatal."""
        self._hooks.append(hook)

    def metrics(self) -> Iterable[_Metric]:
        return self._metrics.values()

    def get(self, name: str) -> _Metric:
        return self._metrics[name]

    def render(self) -> str:
        for hook in self._hooks:
            try:
                hook()
            except Exception:
                log.exception("metrics collect hook failed")
        return "".join(m.render() for m in self._metrics.values())


# --- the gateway's metrics, all in one place ------------------------------------------------

OUTBOX_PRIORITIES = ("urgent", "alert", "telemetry")


LOOP_LAG_EVERY = 0.1  # s between wake-ups of the loop-lag probe
LOOP_LAG_WINDOW = 15.0  # s over which `hearthgate_loop_lag_seconds` keeps the worst


class GatewayMetrics:
    """Every metric the gateway exports. Create one, pass it to the parts that count."""

    def __init__(self, version: str | None = None, registry: MetricsRegistry | None = None) -> None:
        if version is None:
            from hearthgate import __version__ as version
        r = self.registry = registry if registry is not None else MetricsRegistry()
        self.observations = r.counter(
            "hearthgate_observations_total", "Observations received from devices, by metric.",
            ["metric"])
        self.frame_errors = r.counter(
            "hearthgate_frame_errors_total",
            "Bad frames or payloads from devices (checksum, truncated, garbage...).",
            ["device_id", "kind"])
        self.alerts = r.counter(
            "hearthgate_alerts_total", "Alert transitions, by alert type and state.",
            ["type", "state"])
        self.outbox_depth = r.gauge(
            "hearthgate_outbox_depth", "Messages waiting in the store for the uplink, by priority.",
            ["priority"])
        for priority in OUTBOX_PRIORITIES:
            self.outbox_depth.set(0, priority=priority)
        self.uplink_connected = r.gauge(
            "hearthgate_uplink_connected", "1 while connected to the platform's broker, else 0.")
        self.uplink_published = r.counter(
            "hearthgate_uplink_published_total",
            "Messages acknowledged by the platform's broker, by kind (alert, telemetry, ...).",
            ["kind"])
        self.uplink_delivery = r.counter(
            "hearthgate_uplink_delivery_total",
            "Delivery events of the uplink: refused (a PUBACK reason code of 0x80 or more: not "
            "delivered), receipts (transitions the platform confirmed), resent (sent again for "
            "want of a receipt), stuck (found waiting unsent while connected; a bug if ever > 0).",
            ["event"])
        self.telemetry_dropped = r.counter(
            "hearthgate_telemetry_dropped_total",
            "Telemetry readings dropped because the buffer was full (alerts are never dropped).")
        self.store_degraded = r.gauge(
            "hearthgate_store_degraded",
            "1 while the disk takes no writes (alerts held in memory, telemetry dropped).")
        self.alerts_held = r.gauge(
            "hearthgate_alerts_held",
            "Alert transitions accepted while the disk was full and not yet written to it.")
        self.driver_restarts = r.counter(
            "hearthgate_driver_restarts_total",
            "Supervised tasks (buses, drivers) restarted after a crash.", ["task"])
        self.devices_online = r.gauge(
            "hearthgate_devices_online", "Configured devices currently considered online.")
        self.build_info = r.gauge(
            "hearthgate_build_info", "Always 1; the label carries the version.", ["version"])
        self.build_info.set(1, version=version)
        self.resident_memory = r.gauge(
            "process_resident_memory_bytes", "Resident memory size in bytes.")
        self.start_time = r.gauge(
            "process_start_time_seconds", "Start time of the process since the epoch, seconds.")
        self.start_time.set(time.time())
        self.loop_lag = r.gauge(
            "hearthgate_loop_lag_seconds",
            "The longest the event loop was late to wake a timer in the last window"
            f" ({LOOP_LAG_WINDOW:.0f} s, measured every {LOOP_LAG_EVERY} s): how long"
            " anything ready, an SOS included, may have waited for the loop.")
        self.loop_lag.set(0)
        self.loop_lag_max = r.gauge(
            "hearthgate_loop_lag_max_seconds",
            "The longest the event loop was late to wake a timer since the start.")
        self.loop_lag_max.set(0)
        r.add_collect_hook(self._read_rss)

    async def watch_loop_lag(self) -> None:
        """Measure the event loop's scheduling delay until cancelled (a supervised task).

        Sleeps `LOOP_LAG_EVERY` at a time and counts how late it wakes: whatever holds the
        loop (a large JSON encode, a read on the loop's thread) delays every ready task by
        as much, the SOS path's among them. The gauge keeps the worst of the window just
        passed, so a scrape every 15 s misses no stall.
        """
        loop = asyncio.get_running_loop()
        window_start = loop.time()
        worst = current = 0.0
        while True:
            before = loop.time()
            await asyncio.sleep(LOOP_LAG_EVERY)
            now = loop.time()
            lag = max(0.0, now - before - LOOP_LAG_EVERY)
            current = max(current, lag)
            if lag > worst:
                worst = lag
                self.loop_lag_max.set(worst)
            if now - window_start >= LOOP_LAG_WINDOW:
                self.loop_lag.set(current)
                window_start, current = now, 0.0
            elif current > self.loop_lag.value():
                self.loop_lag.set(current)  # a stall shows at once, not a window later

    def _read_rss(self) -> None:
        try:
            with open("/proc/self/statm", "rb") as f:
                pages = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            return
        self.resident_memory.set(pages * os.sysconf("SC_PAGE_SIZE"))


# --- exposition: HTTP and textfile ----------------------------------------------------------

MAX_REQUEST_HEAD = 8192
REQUEST_TIMEOUT = 5.0
MAX_CONNECTIONS = 16


def _response(status: str, body: bytes, content_type: str, head_only: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    return head if head_only else head + body


async def _handle(registry: MetricsRegistry, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    text = "text/plain; charset=utf-8"
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except asyncio.LimitOverrunError:
            writer.write(_response("431 Request Header Fields Too Large", b"too large\n", text))
            return
        except (asyncio.IncompleteReadError, TimeoutError):
            return  # the client went away or dawdled; nothing useful to answer
        request_line = head.split(b"\r\n", 1)[0]
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            writer.write(_response("400 Bad Request", b"bad request\n", text))
            return
        method, target = parts[0], parts[1]
        path = target.split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            writer.write(_response("405 Method Not Allowed", b"method not allowed\n", text))
            return
        if path != b"/metrics":
            writer.write(_response("404 Not Found", b"not found; try /metrics\n", text,
                                   method == b"HEAD"))
            return
        body = registry.render().encode("utf-8")
        writer.write(_response("200 OK", body, CONTENT_TYPE, method == b"HEAD"))
    finally:
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def start_metrics_server(registry: MetricsRegistry, host: str, port: int) -> asyncio.Server:
    """Start answering GET /metrics; the caller closes the returned server."""
    slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.close()  # a scraper storm must not cost unbounded memory
            return
        async with slots:
            try:
                await _handle(registry, reader, writer)
            except Exception:
                log.exception("metrics request failed")

    return await asyncio.start_server(on_connect, host, port, limit=MAX_REQUEST_HEAD)


async def serve_metrics(registry: MetricsRegistry, host: str, port: int) -> None:
    """Serve /metrics until cancelled (a supervised task)."""
    server = await start_metrics_server(registry, host, port)
    log.info("metrics on http://%s:%d/metrics", host, port)
    async with server:
        await server.serve_forever()


def write_textfile(registry: MetricsRegistry, path: Path | str) -> None:
    """Write the exposition for node_exporter's textfile collector, atomically.

    The collector may read at any moment, so the file is written beside the target and
    renamed over it; its name must end in `.prom`.
    """
    target = Path(path)
    data = registry.render().encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # node_exporter runs as another user
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

