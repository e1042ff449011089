"""Driving a gateway from the outside, as the platform and an operator would.

Used by the black-box tests, the benchmarks and the demo: a platform-side MQTT
subscriber that records what arrives, and a gateway run as a real process
(`python -m hearthgate run`) that can be stopped cleanly or SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on receipt

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class PlatformSubscriber:
    """Subscribes to topics on a broker and keeps everything it receives."""

    host: str
    port: int
    topics: tuple[str, ...] = ("#",)
    # A persistent session: what is published while the broker restarts still arrives.
    identifier: str | None = None
    messages: list[Received] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _client: aiomqtt.Client | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> PlatformSubscriber:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task

    async def _run(self) -> None:
        # Reconnects, so that a test may stop and start the broker under it.
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, timeout=5, identifier=self.identifier,
                    clean_session=False if self.identifier else None,
                ) as client:
                    self._client = client
                    for t in self.topics:
                        await client.subscribe(t, qos=1)
                    self._ready.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else str(
                            m.payload).encode()
                        self.messages.append(
                            Received(str(m.topic), payload, bool(m.retain), time.monotonic())
                        )
                        self._changed.set()
            except aiomqtt.MqttError:
                self._client = None
                await asyncio.sleep(0.1)

    async def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, str | bytes):
            payload = json.dumps(payload)
        deadline = time.monotonic() + 10
        while self._client is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert self._client is not None, "subscriber not connected"
        await self._client.publish(topic, payload, qos=qos, retain=retain)

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    async def wait_for(
        self, predicate: Callable[[list[Received]], Any], timeout: float = 10.0
    ) -> Any:
        """Wait until predicate(messages) is truthy and return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.messages)
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                topics = [m.topic for m in self.messages[-20:]]
                raise TimeoutError(f"condition not met in {timeout}s; last topics: {topics}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def wait_json(
        self, topic: str, match: Callable[[dict[str, Any]], bool] = lambda _: True,
        timeout: float = 10.0, count: int = 1,
    ) -> list[dict[str, Any]]:
        def found(messages: list[Received]) -> list[dict[str, Any]] | None:
            hits = []
            for m in messages:
                if m.topic != topic:
                    continue
                try:
                    body = m.json()
                except ValueError:
                    continue
                if isinstance(body, dict) and match(body):
                    hits.append(body)
            return hits if len(hits) >= count else None

        return await self.wait_for(found, timeout)


class GatewayProcess:
    """`python -m hearthgate run -c CONFIG` as a child process."""

    def __init__(self, config: Path, *, log_file: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_file = log_file or config.with_suffix(".log")
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        env = dict(os.environ)
        env.update(self.env)
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hearthgate", "run", "-c", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
        )
        log.close()
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: the clean stop."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


async def wait_started(
    gw: GatewayProcess, platform: PlatformSubscriber, prefix: str, buses: tuple[str, ...] = (),
    timeout: float = 20.0,
) -> None:
    """Start `gw` and wait until `prefix/status` says online and each named bus connected."""
    gw.start()
    await platform.wait_json(f"{prefix}/status", lambda b: b.get("state") == "online",
                             timeout=timeout)
    deadline = time.monotonic() + timeout
    while not all(f"bus {b} connected" in gw.log_text() for b in buses):
        if gw.proc is None or gw.proc.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{gw.log_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"buses {buses} not connected:\n{gw.log_text()}")
        await asyncio.sleep(0.05)


async def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m hearthgate ARGS` (the `hearthgate` command), without blocking the loop."""
    env = dict(os.environ)
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hearthgate", *args], capture_output=True,
        text=True, env=env, timeout=timeout, cwd=str(REPO),
    )


def config_head(
    gateway_id: str, data_dir: Path, platform_port: int, home_port: int, *,
    log_level: str | None = None, telemetry_interval: str = "1s",
    devices_interval: str | None = None, raw_reason: str | None = None,
    metrics_listen: str | None = None,
) -> str:
    """The `gateway:`, `uplink:` and `buses:` sections of a test gateway's YAML config: the
    platform's broker and the home's zigbee2mqtt broker (bus `zigbee`), both on loopback.
    Callers add further buses, then `devices:` and `sites:`. With `raw_reason`, every site
    sends every reading (`telemetry: raw`), for tests about raw readings."""
    lines = [
        "gateway:", f"  id: {gateway_id}", "  timezone: Asia/Shanghai", f"  data_dir: {data_dir}",
        "  language: en",
    ]
    if log_level is not None:
        lines.append(f"  log_level: {log_level}")
    if metrics_listen is not None:
        lines.append(f"  metrics_listen: {metrics_listen}")
    if raw_reason is not None:
        lines += ["  telemetry: raw", f"  telemetry_reason: {json.dumps(raw_reason)}"]
    lines += [
        "uplink:", "  host: 127.0.0.1", f"  port: {platform_port}", "  topic_prefix: hearthgate",
        "  keepalive: 5s", f"  telemetry_interval: {telemetry_interval}",
    ]
    if devices_interval is not None:
        lines.append(f"  devices_interval: {devices_interval}")
    lines += ["buses:", f"  - {{id: zigbee, type: mqtt, host: 127.0.0.1, port: {home_port}}}"]
    return "\n".join(lines) + "\n"
