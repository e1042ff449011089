"""Shared parts of the benchmarks: brokers, a gateway process, probes, load, /proc figures.

Not a benchmark itself (the leading underscore keeps `make bench` from running it).
Everything talks to 127.0.0.1 only, and every load loop is bounded in count and time.
Probes use plain paho-mqtt clients with their own network threads, so that what a
probe measures is the system under test, not the benchmark's own event loop.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hearthgate.devkit.local_broker import MosquittoBroker, free_port, mosquitto_binary  # noqa: E402,F401
from hearthgate.devkit.testkit import GatewayProcess, config_head  # noqa: E402

GW = "gw-bench-0001"
P = f"hearthgate/{GW}"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- figures ------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(values: list[float]) -> str:
    """p50 / p99 / max of latencies given in seconds, as milliseconds."""
    if not values:
        return "no samples"
    return (f"p50 {pct(values, 50) * 1e3:7.2f} ms  p99 {pct(values, 99) * 1e3:7.2f} ms  "
            f"max {max(values) * 1e3:7.2f} ms  (n={len(values)})")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def header(title: str) -> None:
    print(f"\n## {title}")
    print(f"machine: {machine()}")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosq = "mosquitto ?"
    binary = mosquitto_binary()
    if binary:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout
        m = re.search(r"mosquitto version (\S+)", out)
        mosq = f"mosquitto {m.group(1)}" if m else mosq
    return (f"{os.cpu_count()} cpu ({cpu}), Python {platform.python_version()}, {mosq}, "
            f"paho-mqtt {mqtt.__version__ if hasattr(mqtt, '__version__') else _paho_version()}")


def _paho_version() -> str:
    from importlib.metadata import version

    return version("paho-mqtt")


# -- /proc --------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM ... in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Vm"):
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])
    return out


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_delay_seconds(pid: int) -> float:
    """Seconds the process's main thread (its event loop) spent runnable but waiting for a
    CPU (`/proc/PID/task/PID/schedstat`, second field): what a loaded machine takes from it."""
    fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
    return int(fields[1]) / 1e9


def proc_io(pid: int) -> dict[str, int]:
    """`/proc/PID/io`: rchar, wchar, ..., write_bytes (what reached the block device)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = int(value)
    return out


def proc_write_bytes(pid: int) -> int:
    return proc_io(pid)["write_bytes"]


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (the peer gateway may spawn children)."""
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in children:
        out += tree_pids(int(child))
    return out


# -- probes -------------------------------------------------------------------


@dataclass
class Probe:
    """A paho client on its own network thread that records what arrives, with times."""

    port: int
    topics: tuple[str, ...] = ()
    name: str = "probe"
    keep: Callable[[str, bytes], bool] = lambda _t, _p: True
    messages: list[tuple[str, bytes, float]] = field(default_factory=list)
    received: int = 0
    on_receive: Callable[[str, bytes, float], None] | None = None
    acked: int = 0

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{self.name}-{os.getpid()}-{id(self)}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        with self._cond:
            self.received += 1
            if self.on_receive is not None:
                self.on_receive(m.topic, m.payload, at)
            if self.keep(m.topic, m.payload):
                self.messages.append((m.topic, m.payload, at))
            self._cond.notify_all()

    def _on_publish(self, *_a: Any) -> None:
        with self._cond:
            self.acked += 1
            self._cond.notify_all()

    def __enter__(self) -> Probe:
        self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        if self.topics:
            self.client.subscribe([(t, 1) for t in self.topics])
            if not self._subscribed.wait(10):
                raise TimeoutError(f"{self.name}: no SUBACK")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: str | bytes, qos: int = 1) -> float:
        """Publish and return the time just before handing the message to paho."""
        at = time.monotonic()
        self.client.publish(topic, payload, qos=qos)
        return at

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def on(self, topic: str) -> list[tuple[str, bytes, float]]:
        with self._cond:
            return [m for m in self.messages if m[0] == topic]


def round_trip_reference(port: int, n: int = 200, gap: float = 0.01) -> list[float]:
    """Plain publish → subscribe through one broker: the floor any relay stands on."""
    topic = f"bench/ref/{os.getpid()}"
    with Probe(port, (topic,), name="ref-sub") as sub, Probe(port, name="ref-pub") as pub:
        sent: dict[int, float] = {}
        for i in range(n):
            sent[i] = pub.publish(topic, str(i).encode())
            time.sleep(gap)
        sub.wait(lambda: len(sub.messages) >= n, 10)
        return [at - sent[int(p)] for _t, p, at in sub.messages if int(p) in sent]


# -- brokers, config, gateway -------------------------------------------------


@contextmanager
def brokers() -> Iterator[tuple[MosquittoBroker, MosquittoBroker, Path]]:
    """(local zigbee2mqtt broker, platform broker, scratch dir)."""
    tmp = Path(tempfile.mkdtemp(prefix="hearthgate-bench-"))
    local = MosquittoBroker(tmp / "local-broker").start()
    plat = MosquittoBroker(tmp / "platform-broker").start()
    try:
        yield local, plat, tmp
    finally:
        local.close()
        plat.close()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Button:
    id: str
    site: str

    @property
    def topic(self) -> str:
        return f"zigbee2mqtt/{self.id}"


def buttons(prefix: str, n: int) -> list[Button]:
    return [Button(f"{prefix}-{i:03d}", f"{prefix}-site-{i:03d}") for i in range(n)]


def write_config(
    tmp: Path, plat: MosquittoBroker, local: MosquittoBroker, devices: list[Button], *,
    telemetry_interval: str = "1s", log_level: str = "warning", data_dir: Path | None = None,
    metrics_port: int | None = None,
) -> Path:
    """A gateway config: every device a zigbee2mqtt sos_button at its own site with `sos`."""
    dev_lines = "\n".join(
        f"  - {{id: {d.id}, site: {d.site}, kind: sos_button, protocol: zigbee2mqtt,"
        f" bus: zigbee, topic: {d.topic}, model: TS0215A_sos}}" for d in devices
    )
    sites = sorted({d.site for d in devices})
    site_lines = "\n".join(
        f"  - {{id: {s}, resident: r-{i}, rules: [{{type: sos}}]}}" for i, s in enumerate(sites)
    )
    path = tmp / "config.yaml"
    path.write_text(
        # Since issue 18 a site sends no raw readings unless told to: the benchmarks
        # count raw readings at the platform.
        config_head(GW, data_dir or tmp / "data", plat.port, local.port, log_level=log_level,
                    telemetry_interval=telemetry_interval,
                    raw_reason="benchmarks count raw readings end to end",
                    metrics_listen=f"{HOST}:{metrics_port}" if metrics_port else None)
        + f"""devices:
{dev_lines}
sites:
{site_lines}
"""
    )
    return path


def start_gateway(config: Path, status: Probe, timeout: float = 30.0,
                  env: dict[str, str] | None = None) -> tuple[GatewayProcess, float]:
    """Start `python -m hearthgate run` and wait until it is online and its bus subscribed.

    Returns the process and the seconds from spawn to ready.
    """
    gw = GatewayProcess(config, env=env)
    t0 = time.monotonic()
    gw.start()
    deadline = time.monotonic() + timeout
    while not said_online(status, since=t0):
        if gw.proc is None or gw.proc.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{gw.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway not online:\n{gw.log_text()[-3000:]}")
        time.sleep(0.02)
    return gw, time.monotonic() - t0


def bus_ready(local: Probe, dev: Button, plat: Probe, timeout: float = 20.0,
              counter: TelemetryCounter | None = None) -> float:
    """Publish a reading until its telemetry arrives: proves the bus is subscribed.

    Returns the time of the first publish that went through (start → first reading).
    """
    deadline = time.monotonic() + timeout
    tele = f"{P}/telemetry"
    while time.monotonic() < deadline:
        local.publish(dev.topic, json.dumps({"linkquality": 77}))
        if counter is not None:
            counter.reset()
            if plat.wait(lambda: counter.readings > 0, 0.5):
                return time.monotonic()
        elif plat.wait(lambda: any(dev.id.encode() in p for t, p, _ in plat.on(tele)), 0.5):
            return time.monotonic()
    raise TimeoutError("the gateway never forwarded a reading")


def outbox_readings(tmp: Path) -> tuple[int, int]:
    """(telemetry readings, alert rows) in the gateway's outbox, read-only."""
    db = tmp / "data" / "hearthgate.sqlite3"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute(
                "SELECT COALESCE(SUM(readings),0), SUM(kind='alert') FROM outbox").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0, 0
    return int(row[0] or 0), int(row[1] or 0)


# -- load -----------------------------------------------------------------------


def reading_payload(i: int) -> bytes:
    """A zigbee2mqtt state message without an action: two readings (battery, linkquality)."""
    return b'{"battery":%d,"linkquality":%d,"voltage":2900}' % (50 + i % 50, 40 + i % 200)


READINGS_PER_MESSAGE = 2


def load_worker(port: int, topics: list[str], rate: float, count: int, max_seconds: float,
                qos: int, result: Any) -> None:
    """Publish `count` reading messages round-robin over `topics`, at `rate` msg/s
    (0 = as fast as paho can with 1,000 QoS 1 messages in flight). Runs in its own
    process. Puts (sent, acked, seconds) on `result`."""
    done = threading.Event()
    acked = 0

    def on_publish(*_a: Any) -> None:
        nonlocal acked
        acked += 1
        if acked >= count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"load-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(HOST, port, keepalive=30)
    client.loop_start()
    t0 = time.monotonic()
    deadline = t0 + max_seconds
    sent = 0
    tick = 0.01
    while sent < count and time.monotonic() < deadline:
        if rate > 0:
            due = min(count, int((time.monotonic() - t0) * rate) + 1)
        else:
            # Unpaced: keep paho's queue short so the window, not the queue, sets the pace.
            due = min(count, acked + 2000)
        while sent < due:
            client.publish(topics[sent % len(topics)], reading_payload(sent), qos=qos)
            sent += 1
        time.sleep(tick if rate > 0 else 0.001)
    if qos == 0:
        done.set()
    done.wait(max(0.0, deadline - time.monotonic()) + 5)
    seconds = time.monotonic() - t0
    client.disconnect()
    client.loop_stop()
    result.put((sent, acked, seconds))


class Load:
    """load_worker in a separate process, so its CPU is not the probes' CPU."""

    def __init__(self, port: int, topics: list[str], *, rate: float, count: int,
                 max_seconds: float, qos: int = 1) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.result = ctx.Queue()
        self.proc = ctx.Process(
            target=load_worker, args=(port, topics, rate, count, max_seconds, qos, self.result),
            daemon=True,
        )

    def start(self) -> Load:
        self.proc.start()
        return self

    def join(self, timeout: float) -> tuple[int, int, float]:
        sent, acked, seconds = self.result.get(timeout=timeout)
        self.proc.join(5)
        return sent, acked, seconds

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def raw_paho_rate(port: int, count: int = 30_000, max_seconds: float = 30.0) -> float:
    """Reference: raw paho QoS 1 publishing with 1,000 in flight, messages PUBACKed per s."""
    load = Load(port, ["bench/raw"], rate=0, count=count, max_seconds=max_seconds).start()
    _sent, acked, seconds = load.join(max_seconds + 20)
    return acked / seconds


def count_readings(payload: bytes) -> int:
    """Readings in a P/telemetry payload. Counted by their key, not by parsing: parsing
    megabytes of a draining backlog in the probe's thread would hold the GIL and delay
    the very alert receipts being timed."""
    return payload.count(b'"device_id":')


def fill_backlog(local_port: int, topics: list[str], tmp: Path, readings: int,
                 timeout: float = 60.0) -> tuple[int, float]:
    """With the platform broker stopped, publish readings until the gateway's outbox
    holds `readings` of them. Returns (readings in the outbox, seconds it took)."""
    t0 = time.monotonic()
    load = Load(local_port, topics, rate=0, count=readings // READINGS_PER_MESSAGE,
                max_seconds=timeout).start()
    try:
        deadline = t0 + timeout
        stored = 0
        while time.monotonic() < deadline:
            stored, _ = outbox_readings(tmp)
            if stored >= readings:
                break
            time.sleep(0.2)
        load.join(timeout)
    finally:
        load.kill()
    return stored, time.monotonic() - t0


class TelemetryCounter:
    """Counts readings arriving on P/telemetry, with the time of the first and last."""

    def __init__(self) -> None:
        self.readings = 0
        self.first: float | None = None
        self.last: float | None = None
        self.since = 0.0

    def reset(self) -> None:
        self.readings, self.first, self.last = 0, None, None
        self.since = time.monotonic()

    def __call__(self, topic: str, payload: bytes, at: float) -> None:
        if not topic.endswith("/telemetry") or at < self.since:
            return
        self.readings += count_readings(payload)
        if self.first is None:
            self.first = at
        self.last = at


def said_online(probe: Probe, since: float = float("-inf")) -> bool:
    """Whether the gateway's `online` status reached `probe` at `since` or later (a
    retained `offline` from before an outage does not count, nor an earlier run's)."""
    for _t, payload, at in probe.on(f"{P}/status"):
        try:
            if at >= since and json.loads(payload).get("state") == "online":
                return True
        except (ValueError, AttributeError):
            continue
    return False


def warm_up(z2m: Probe, devices: list[Button], plat: Probe, counter: TelemetryCounter | None
            = None, timeout: float = 15.0) -> None:
    """One ordinary report from every device, so that all are online (as in a lived-in
    home) before anything is measured: a device's first word costs a health update."""
    for i, d in enumerate(devices):
        z2m.publish(d.topic, reading_payload(i), qos=0)
    # The gateway answers a change of who is online with a retained P/devices.
    deadline = time.monotonic() + timeout
    topic = f"{P}/devices"
    while time.monotonic() < deadline:
        msgs = plat.on(topic)
        if msgs:
            body = json.loads(msgs[-1][1])
            if sum(1 for d in body.get("devices", []) if d.get("online")) >= len(devices):
                return
        time.sleep(0.1)


def outage_with_backlog(plat: MosquittoBroker, platform: Probe, local_port: int,
                        topics: list[str], tmp: Path, readings: int,
                        counter: TelemetryCounter) -> tuple[int, float, float]:
    """Stop the platform broker, publish until `readings` wait in the outbox, close the
    platform's probe (its socket died with the broker), start the broker again.

    Returns (readings stored, seconds the filling took, time the broker was started)."""
    plat.stop()
    stored, fill_s = fill_backlog(local_port, topics, tmp, readings)
    platform.__exit__()
    counter.reset()
    started = time.monotonic()
    plat.start()
    return stored, fill_s, started


# -- same-run references and instruments -------------------------------------------


def durable_commit_once(conn: sqlite3.Connection, i: int) -> float:
    """One bare durable SQLite commit (WAL, synchronous=FULL, one small row): seconds."""
    t0 = time.monotonic()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t(v) VALUES (?)", (f"reference commit {i}",))
    conn.execute("COMMIT")
    return time.monotonic() - t0


def durable_connection(directory: Path) -> sqlite3.Connection:
    """A scratch database on the gateway's disk, set up as the gateway's store is (WAL,
    synchronous=FULL): the floor of an alert's durable commit."""
    directory.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(directory / "reference.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
    return conn


class References:
    """The SOS bound's references, sampled on threads of their own while a phase runs:
    a bare durable commit on the gateway's disk and a publish → subscribe round trip through
    the home's broker, every `gap` seconds, until `stop()`. Same load, same seconds."""

    def __init__(self, port: int, directory: Path, gap: float = 0.03) -> None:
        self.port, self.directory, self.gap = port, directory, gap
        self.commits: list[float] = []
        self.hops: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._commit_loop, daemon=True),
                         threading.Thread(target=self._hop_loop, daemon=True)]

    def start(self) -> References:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> References:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        return self

    def _commit_loop(self) -> None:
        conn = durable_connection(self.directory)
        try:
            i = 0
            while not self._stop.wait(self.gap):
                self.commits.append(durable_commit_once(conn, i))
                i += 1
        finally:
            conn.close()

    def _hop_loop(self) -> None:
        topic = f"bench/ref/{os.getpid()}/{id(self)}"
        with Probe(self.port, (topic,), name="ref-sub") as sub, \
                Probe(self.port, name="ref-pub") as pub:
            sent: dict[int, float] = {}
            i = 0
            while not self._stop.wait(self.gap):
                sent[i] = pub.publish(topic, str(i).encode())
                i += 1
            sub.wait(lambda: len(sub.messages) >= i, 5)
            self.hops = [at - sent[int(p)] for _t, p, at in sub.messages if int(p) in sent]

    def bound(self) -> float:
        """durable-commit p99 + one-hop p99 + 5 ms, in seconds."""
        return pct(self.commits, 99) + pct(self.hops, 99) + 0.005


def gateway_metric(port: int, name: str) -> float:
    """One unlabelled sample from the gateway's /metrics endpoint (NaN if absent)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


class Spy:
    """py-spy recording a process until `stop()` (when py-spy is installed and `out` given):
    a flame graph (`.svg`), a timed trace (`.json`, `--format chrometrace`) or collapsed
    stacks (any other name, `--format raw`)."""

    def __init__(self, pid: int, out: str | None, rate: int = 100) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if out is None or not Path(spy).exists():
            return
        # .json: Chrome's trace format, each sample with its time (to find one long stall
        # among many short turns, which collapsed stacks sum away)
        fmt = ("flamegraph" if out.endswith(".svg") else
               "chrometrace" if out.endswith(".json") else "raw")
        self.proc = subprocess.Popen(
            # --nonblocking: sampling must not stop the gateway (it would add to its latency).
            [spy, "record", "-p", str(pid), "-o", out, "-r", str(rate), "-f", fmt,
             "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> str:
        """Stop recording (py-spy writes its file on SIGINT); its stderr, for errors."""
        if self.proc is None:
            return ""
        import signal

        self.proc.send_signal(signal.SIGINT)
        try:
            _out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        return err.decode(errors="replace")


def top_frames(raw: Path, n: int = 15, ours: str = "hearthgate") -> list[tuple[float, str]]:
    """From py-spy's collapsed stacks: the share of samples in which each function is on
    the stack (inclusive), the n largest; `ours` keeps frames from that package and the
    libraries on its I/O paths."""
    totals: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples += int(count)
        for frame in set(stack.split(";")):
            totals[frame] = totals.get(frame, 0) + int(count)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    out = [(c / samples, f) for f, c in ranked if ours in f or "aiosqlite" in f
           or "paho" in f or "aiomqtt" in f or "json" in f or "sqlite3" in f]
    return out[:n]


def telemetry_payloads(devices: list[Button], readings: int, per_batch: int = 500
                       ) -> list[tuple[str, int]]:
    """`readings` readings as the gateway's own `P/telemetry` batches (payload, count)."""
    out = []
    for start in range(0, readings, per_batch):
        n = min(per_batch, readings - start)
        batch = [{"device_id": devices[(start + j) % len(devices)].id,
                  "site_id": devices[(start + j) % len(devices)].site,
                  "metric": "battery_pct", "value": 50 + j % 50, "unit": "%",
                  "ts": "2026-12-01T12:00:00+08:00"} for j in range(n)]
        out.append((json.dumps({"schema": "hearthgate.telemetry/1", "readings": batch},
                               separators=(",", ":")), n))
    return out


def seed_outbox(tmp: Path, payloads: list[tuple[str, int]]) -> None:
    """Put telemetry batches into a stopped gateway's outbox through its own store: what an
    outage leaves there, without waiting for the gateway to ingest it at this machine's
    pace (the drain is what is measured)."""
    import asyncio

    from hearthgate.store import Store

    async def seed() -> None:
        store = await Store.open(tmp / "data")
        try:
            await store.add_telemetry(payloads)
        finally:
            await store.close()

    asyncio.run(seed())


def restart_with_backlog(gw: GatewayProcess, config: Path, plat: MosquittoBroker,
                         platform: Probe, z2m: Probe, devices: list[Button], tmp: Path,
                         readings: int, counter: TelemetryCounter
                         ) -> tuple[GatewayProcess, int, float, float]:
    """An outage with a backlog, quickly: stop the gateway and the platform broker, seed
    `readings` into the outbox, start the gateway (the uplink down) and, once its bus
    takes readings again, the broker. Returns (the new gateway, readings in the outbox,
    seconds it took, the time the broker was started)."""
    t0 = time.monotonic()
    gw.stop()
    plat.stop()
    platform.__exit__()
    seed_outbox(tmp, telemetry_payloads(devices, readings))
    gw = GatewayProcess(config, env=gw.env)
    gw.start()
    seeded, _ = outbox_readings(tmp)
    deadline = time.monotonic() + 30
    # Ready when a reading published on the home broker reaches the outbox.
    while outbox_readings(tmp)[0] <= seeded:
        if gw.proc is None or gw.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gateway not taking readings:\n{gw.log_text()[-3000:]}")
        z2m.publish(devices[0].topic, reading_payload(0))
        time.sleep(0.3)
    stored, _ = outbox_readings(tmp)
    counter.reset()
    started = time.monotonic()
    plat.start()
    return gw, stored, started - t0, started
