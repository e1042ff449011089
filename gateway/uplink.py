"""The link to the central platform's MQTT broker (topics and payloads: docs/mqtt-api.md).

- `P/status` retained, with a Last Will saying `offline`; a clean stop says it itself.
- Alert transitions come from the store's outbox and leave it only on PUBACK. A
  publish that fails or times out means "outcome unknown": the connection is
  dropped and everything not PUBACKed is sent again, with the same event_id.
- Urgent alerts (sos, fall) go first, then other alerts, then telemetry. Each class
  has its own window of publishes in flight, and telemetry's is small, so an SOS
  never queues behind a telemetry backlog.
- Telemetry goes straight out while the link is up (no disk writes: SD cards wear
  out); when the link is down, or the window is full for long, batches spill to
  the store and drain after reconnecting.
- Downlink `P/cmd/<name>` commands are handed to a callback; its result (or the
  error) is published on `P/cmd/result`. No command can crash the uplink.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from hearthgate import __version__
from hearthgate.config import GatewayConfig
from hearthgate.core.model import Priority, isoformat, utc_now
from hearthgate.core.mqtt_socket import NO_DELAY
from hearthgate.store import OutboxItem, Store
from hearthgate.version import BUILD

log = logging.getLogger("hearthgate.uplink")

MAX_COMMAND_BYTES = 64 * 1024
# A config push carries a whole file (up to 256 KiB, hearthgate.config_push), JSON-escaped.
MAX_CONFIG_COMMAND_BYTES = 2 * 1024 * 1024
PUBACK_TIMEOUT = 10.0
ALERT_WINDOW = 100
TELEMETRY_WINDOW = 8
BACKLOG_WINDOW = 2  # of those, stored (backlog) batches: 1,000 readings per round trip
HOT_TELEMETRY_LIMIT = 32  # batches held in memory before they spill to the store
RECONNECT_MIN = 0.2
RECONNECT_MAX = 2.0

CommandHandler = Callable[[str, Any], Awaitable[dict[str, Any]]]
RefusedHandler = Callable[[str, str], Awaitable[None]]
# Outbox kinds and their topics; the access trail (issue 18) rides in the telemetry class.
TOPIC_OF_KIND = {"alert": "alerts", "audit": "audit", "telemetry": "telemetry"}


def connection_failure(exc: BaseException) -> BaseException | None:
    """The connection error behind `exc` (unwrapping TaskGroup groups), or None if any part
    of it is something else (a bug, which the supervisor should see)."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [connection_failure(e) for e in exc.exceptions]
        return leaves[0] if leaves and all(leaf is not None for leaf in leaves) else None
    return exc if isinstance(exc, aiomqtt.MqttError | OSError | TimeoutError) else None


def result_bytes(result: dict[str, Any]) -> bytes:
    """A command result as UTF-8 JSON. Text echoed from a command may hold lone surrogates
    (`"\\ud800"` is valid JSON); those go out as \\u escapes instead of failing."""
    try:
        return json.dumps(result, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(result).encode()


class CommandError(Exception):
    """A downlink command that cannot be carried out; its message goes back to the platform,
    with `fields` (JSON-able) beside it in the result."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = fields


@dataclass
class UplinkStats:
    connected: bool = False
    connects: int = 0
    published: dict[str, int] = field(default_factory=lambda: {"alert": 0, "telemetry": 0})
    commands: int = 0
    bad_commands: int = 0


class Uplink:
    """The gateway's one connection to the platform's broker, and the delivery loop on it.

    `run()` connects (TLS when configured, the Last Will set to `offline`), publishes the
    retained `online` status, subscribes to `P/cmd/#` and then delivers until cancelled:
    alert transitions from the store's outbox, most urgent first, each removed from the outbox
    only on its PUBACK; telemetry offered with `offer_telemetry`; the retained device snapshot
    given to `set_devices`. When the connection drops or a publish times out, it reconnects
    with backoff and jitter and sends again everything not acknowledged, with the same
    `event_id`. Connection failures, a refused password or unreadable TLS files included, are
    logged once per reason and retried; `run` does not raise them.

    Args:
        config: the gateway's config (`uplink:` and `gateway.id` make the topic prefix `P`).
        store: the store whose outbox holds what must be delivered.
        on_command: called as `await on_command(name, body)` for each downlink command; what
            it returns (or the `CommandError` it raises) is published on `P/cmd/result`.
        password: the broker password, already read from `password` or `password_file`.
        on_refused: called as `await on_refused(name, error)` for a command refused before
            `on_command` could see it (not JSON, too large, a bad `id`).

    Raises:
        Exception: from `run`, only a bug (anything that is not a connection failure), which
            the supervisor logs and restarts.
    """

    def __init__(
        self,
        config: GatewayConfig,
        store: Store,
        on_command: CommandHandler,
        *,
        password: str | None = None,
        on_refused: RefusedHandler | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.on_command = on_command
        # A command refused before `on_command` saw it (not JSON, too big): for the trail.
        self.on_refused = on_refused
        # What the `online` status carries beyond state and version: each part returns a
        # dict merged in order (fleet health, telemetry levels, coverage).
        self.status_parts: list[Callable[[], dict[str, Any]]] = []
        self.prefix = f"{config.uplink.topic_prefix}/{config.gateway.id}"
        self.tz = config.gateway.tz
        self._password = password
        self._wake = asyncio.Event()
        self._hot: deque[tuple[str, int]] = deque()
        self._hot_inflight: dict[int, tuple[str, int]] = {}
        self._devices_payload: str | None = None
        self._devices_dirty = False
        self._client: aiomqtt.Client | None = None
        self._deleting: set[asyncio.Task[None]] = set()
        self.stats = UplinkStats()
        self.connected = asyncio.Event()

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    # -- inputs from the service ------------------------------------------------

    def wake(self) -> None:
        """Something new waits in the outbox."""
        self._wake.set()

    async def offer_telemetry(self, payload: str, readings: int) -> None:
        if self.stats.connected and len(self._hot) < HOT_TELEMETRY_LIMIT:
            self._hot.append((payload, readings))
            self._wake.set()
        else:
            await self.store.add_telemetry([(payload, readings)])
            self._wake.set()

    def set_devices(self, payload: str) -> None:
        if payload != self._devices_payload:
            self._devices_payload = payload
            self._devices_dirty = True
            self._wake.set()

    # -- the connection loop ----------------------------------------------------

    def _status(self, state: str) -> str:
        status: dict[str, Any] = {"schema": "hearthgate.status/1", "state": state,
                                  "version": __version__, "build": BUILD.as_dict()}
        if state == "online":
            for part in self.status_parts:
                status.update(part())
        status["ts"] = isoformat(utc_now(), self.tz)
        return json.dumps(status, ensure_ascii=False)

    async def publish_status(self) -> bool:
        """Republish the retained `online` status with fresh health fields, if connected."""
        return await self._publish_now(self.topic("status"), self._status("online"), retain=True)

    async def publish_result(self, result: dict[str, Any]) -> bool:
        """Publish a `P/cmd/result` the platform did not just ask for (a later step of a
        command, e.g. a config push confirmed or rolled back), if connected."""
        body = {"schema": "hearthgate.cmd_result/1", **result}
        return await self._publish_now(self.topic("cmd/result"), result_bytes(body))

    async def _publish_now(self, topic: str, payload: str | bytes, retain: bool = False) -> bool:
        client = self._client
        if client is None or not self.stats.connected:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=PUBACK_TIMEOUT)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("could not publish %s: %s", topic.rsplit("/", 2)[-1], exc)
            return False
        return True

    def _make_client(self) -> aiomqtt.Client:
        up = self.config.uplink
        tls_context = None
        if up.tls is not None:
            tls_context = ssl.create_default_context(
                cafile=str(up.tls.ca_file) if up.tls.ca_file else None
            )
            if up.tls.cert_file:
                tls_context.load_cert_chain(
                    str(up.tls.cert_file), str(up.tls.key_file) if up.tls.key_file else None
                )
        return aiomqtt.Client(
            up.host,
            up.effective_port,
            identifier=self.config.gateway.id,
            username=up.username,
            password=self._password,
            will=aiomqtt.Will(self.topic("status"), self._status("offline"), qos=1, retain=True),
            # A persistent session: the broker keeps acks sent while we were away.
            clean_session=False,
            keepalive=max(5, int(up.keepalive)),
            tls_context=tls_context,
            timeout=10,
            max_inflight_messages=ALERT_WINDOW + TELEMETRY_WINDOW + 8,
            max_queued_incoming_messages=1000,
            socket_options=NO_DELAY,
        )

    async def run(self) -> None:
        """Connect, deliver, and reconnect with backoff and jitter, until cancelled."""
        delay = RECONNECT_MIN
        last_reason = ""
        while True:
            try:
                async with self._make_client() as client:
                    self._client = client
                    delay = RECONNECT_MIN
                    last_reason = ""
                    await self._connected_session(client)
            except (aiomqtt.MqttError, OSError, TimeoutError, ExceptionGroup) as caught:
                # A lost connection inside the session's TaskGroup arrives as an
                # ExceptionGroup; it is ours to handle (reconnect), not the supervisor's.
                exc = connection_failure(caught)
                if exc is None:
                    raise
                reason = str(exc) or type(exc).__name__
                if self.stats.connected:
                    log.warning("uplink lost: %s", reason)
                elif reason != last_reason:
                    # Say why once (a wrong CA, a refused password); retries stay quiet.
                    log.warning("uplink cannot connect to %s:%s: %s", self.config.uplink.host,
                                self.config.uplink.effective_port, reason)
                else:
                    log.debug("uplink connect failed again: %s", reason)
                last_reason = reason
            finally:
                self._client = None
                await self._on_disconnect()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(RECONNECT_MAX, delay * 2)

    async def _on_disconnect(self) -> None:
        was = self.stats.connected
        self.stats.connected = False
        self.connected.clear()
        # Telemetry that was in memory is not lost: it waits in the store now.
        spill = list(self._hot_inflight.values()) + list(self._hot)
        self._hot_inflight.clear()
        self._hot.clear()
        if spill:
            await asyncio.shield(self.store.add_telemetry(spill))
        if was:
            log.info("uplink disconnected; %d telemetry batches kept in the store", len(spill))

    async def _connected_session(self, client: aiomqtt.Client) -> None:
        await client.publish(
            self.topic("status"), self._status("online"), qos=1, retain=True, timeout=PUBACK_TIMEOUT
        )
        await client.subscribe(self.topic("cmd/#"), qos=1)
        self.stats.connected = True
        self.stats.connects += 1
        self.connected.set()
        self._devices_dirty = self._devices_payload is not None
        log.info("uplink connected to %s:%s", self.config.uplink.host,
                 self.config.uplink.effective_port)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._receive(client))
            tg.create_task(self._send(client, tg))

    # -- sending ----------------------------------------------------------------

    async def _send(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        cursors = dict.fromkeys(Priority, 0)
        inflight = dict.fromkeys(Priority, 0)
        window = {Priority.URGENT: ALERT_WINDOW, Priority.ALERT: ALERT_WINDOW,
                  Priority.TELEMETRY: TELEMETRY_WINDOW}
        done: list[OutboxItem] = []
        if self._deleting:
            # Deletions from the last session first: fewer items sent twice.
            await asyncio.gather(*self._deleting, return_exceptions=True)
        # store.added[prio] when a read of that class came back short: nothing more to read
        # until something is added (one SQLite round trip saved per publish completed).
        exhausted_at = dict.fromkeys(Priority, -1)
        backlog_inflight = [0]  # stored telemetry batches in flight

        async def publish(item: OutboxItem | None, hot: tuple[str, int] | None,
                          prio: Priority) -> None:
            payload = item.payload if item is not None else hot[0]  # type: ignore[index]
            kind = item.kind if item is not None else "telemetry"
            topic = self.topic(TOPIC_OF_KIND.get(kind, "telemetry"))
            qos = 1 if kind in ("alert", "audit") else self.config.uplink.telemetry_qos
            # Any failure propagates: the TaskGroup ends the session and everything not
            # PUBACKed is sent again after reconnecting.
            await client.publish(topic, payload, qos=qos, timeout=PUBACK_TIMEOUT)
            self.stats.published[kind] = self.stats.published.get(kind, 0) + 1
            inflight[prio] -= 1
            if item is not None:
                if prio is Priority.TELEMETRY:
                    backlog_inflight[0] -= 1
                done.append(item)
            else:
                self._hot_inflight.pop(id(hot), None)
            self._wake.set()

        while True:
            self._wake.clear()
            if done:
                # Not awaited here: an SOS that arrives while a backlog drains must not
                # wait for the deletion of the telemetry just PUBACKed. Kept out of the
                # session's task group so that a lost link does not cancel it half-way.
                batch, done[:] = list(done), []
                task = asyncio.ensure_future(self.store.delivered(batch))
                self._deleting.add(task)
                task.add_done_callback(self._deleted)
            for prio in (Priority.URGENT, Priority.ALERT, Priority.TELEMETRY):
                free = window[prio] - inflight[prio]
                if free <= 0:
                    continue
                if prio is Priority.TELEMETRY:
                    while free > 0 and self._hot:
                        hot = self._hot.popleft()
                        self._hot_inflight[id(hot)] = hot
                        inflight[prio] += 1
                        free -= 1
                        tg.create_task(publish(None, hot, prio))
                    if free <= 0:
                        continue
                added = self.store.added[prio]
                if added == exhausted_at[prio]:
                    continue
                if prio is Priority.TELEMETRY:
                    # A backlog drains with fewer batches in flight than live telemetry:
                    # each is large (up to 500 readings), and an SOS committed while it
                    # drains shares the link, the broker and the CPU with what is in flight.
                    free = min(free, BACKLOG_WINDOW - backlog_inflight[0])
                    if free <= 0:
                        continue
                items = await self.store.pending(prio, cursors[prio], free)
                if len(items) < free:
                    exhausted_at[prio] = added
                for item in items:
                    cursors[prio] = item.seq
                    inflight[prio] += 1
                    if prio is Priority.TELEMETRY:
                        backlog_inflight[0] += 1
                    tg.create_task(publish(item, None, prio))
            if self._devices_dirty and self._devices_payload is not None:
                self._devices_dirty = False
                tg.create_task(
                    client.publish(self.topic("devices"), self._devices_payload, qos=1,
                                   retain=True, timeout=PUBACK_TIMEOUT)
                )
            if not self._wake.is_set():
                await self._wake.wait()

    def _deleted(self, task: asyncio.Task[None]) -> None:
        self._deleting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The rows stay in the outbox and go out again: at least once, same event_id.
            log.warning("could not remove delivered items from the outbox: %s",
                        task.exception())

    # -- receiving --------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        cmd_prefix = self.topic("cmd/")
        async for message in client.messages:
            topic = str(message.topic)
            if not topic.startswith(cmd_prefix):
                continue
            name = topic[len(cmd_prefix):]
            if name == "result":
                continue  # our own answers, echoed by the cmd/# subscription
            result = await self.handle_command(name, message.payload)
            await client.publish(
                self.topic("cmd/result"), result_bytes(result), qos=1, timeout=PUBACK_TIMEOUT
            )

    async def handle_command(self, name: str, raw: Any) -> dict[str, Any]:
        """Parse and run one downlink command; always returns a `cmd_result` object."""
        self.stats.commands += 1
        command_id: Any = None
        handled = False
        try:
            if not isinstance(raw, bytes | bytearray):
                raw = b"" if raw is None else str(raw).encode()
            limit = MAX_CONFIG_COMMAND_BYTES if name == "config" else MAX_COMMAND_BYTES
            if len(raw) > limit:
                raise CommandError(f"command larger than {limit} bytes")
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CommandError(f"not JSON: {exc}") from exc
            except RecursionError:
                raise CommandError("not JSON: nested too deeply") from None
            if not isinstance(body, dict):
                raise CommandError("a command is a JSON object")
            command_id = body.get("id")
            if command_id is not None and not isinstance(command_id, str | int):
                command_id = None
                raise CommandError("'id' must be a string")
            handled = True
            extra = await self.on_command(name, body)
            result: dict[str, Any] = {"ok": True, "error": None, **extra}
        except CommandError as exc:
            self.stats.bad_commands += 1
            log.warning("bad command %s: %s", name, exc)
            result = {**exc.fields, "ok": False, "error": str(exc)}
            if not handled and self.on_refused is not None:
                await self.on_refused(name, str(exc))
        except Exception as exc:  # a bug must not take the downlink down
            self.stats.bad_commands += 1
            log.exception("command %s failed", name)
            result = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
        return {"schema": "hearthgate.cmd_result/1", "id": command_id, "command": name, **result}

    # -- stopping ---------------------------------------------------------------

    async def say_offline(self) -> None:
        """Clean stop: publish `offline` ourselves (the Last Will is only for crashes)."""
        client = self._client
        if client is None or not self.stats.connected:
            return
        try:
            await client.publish(
                self.topic("status"), self._status("offline"), qos=1, retain=True, timeout=3
            )
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("could not publish offline status: %s", exc)
