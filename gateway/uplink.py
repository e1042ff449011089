"""The link to the central platform's MQTT broker (topics and payloads: docs/mqtt-api.md).

- `P/status` retained, with a Last Will saying `offline`; a clean stop says it itself.
- Alert transitions come from the store's outbox and leave it only on PUBACK. A
  publish that fails or times out means "outcome unknown": the connection is
  dropped and everything not PUBACKed is sent again, with the same event_id.
- MQTT 5 by default: a PUBACK whose reason code is 0x80 or more (an ACL's "not
  authorized") is a refusal, not a delivery (gateway/puback.py): the transition
  stays in the outbox and is sent again with backoff; the refusal is logged at
  error once per topic and reason, counted, and kept in the store's `delivery`
  state for `hearthgate alerts`.
- With `uplink.receipts`, a PUBACKed transition is only "sent": it leaves the
  outbox on the platform's `P/cmd/receipt`, and goes again (same event_id, backoff)
  when none comes within `receipt_timeout`.
- While connected nothing may wait in the outbox unsent: every few seconds the
  sender re-reads each class it believes empty; a row found there twice is logged
  at error, counted (`stuck`), and the class read again.
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
import contextlib
import json
import logging
import math
import random
import ssl
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hearthgate import __version__
from hearthgate.config import GatewayConfig
from hearthgate.core.model import Priority, isoformat, utc_now
from hearthgate.core.mqtt_socket import NO_DELAY
from hearthgate.puback import PublishRefused, ReasonedClient
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
PAHO_INFLIGHT = 2 * ALERT_WINDOW + TELEMETRY_WINDOW + 16
HOT_TELEMETRY_LIMIT = 32  # batches held in memory before they spill to the store
RECONNECT_MIN = 0.2
RECONNECT_MAX = 2.0
STUCK_CHECK = 2.0  # seconds between checks that nothing waits unsent while connected
REFUSED_RETRY_MIN = 1.0  # a refused publish is tried again after this, doubling...
REFUSED_RETRY_MAX = 60.0  # ...up to this
RECEIPT_BACKOFF_MAX = 8  # an unreceipted transition waits at most this many timeouts
SESSION_EXPIRY = 7 * 86400  # MQTT 5: the broker keeps our session (and P/cmd/#) a week
DELIVERY_STATE = "delivery"  # the store's kv key for refusals and receipts awaited
RECEIPTS_REMEMBERED = 10_000
DELIVERY_SHOW_EVERY = 0.5

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
    refused: int = 0  # PUBACKs with a reason code of 0x80 or more
    receipts: int = 0  # transitions confirmed by the platform's P/cmd/receipt
    resent: int = 0  # transitions sent again for want of a receipt
    stuck: int = 0  # outbox rows found waiting unsent while connected (a bug if ever > 0)


def _later_key(item: OutboxItem) -> str:
    """What `Uplink._later` knows a row by: its event_id (a receipt names it), else its seq
    (telemetry and audit rows have none)."""
    return item.event_id or f"seq:{item.seq}"


@dataclass
class _Later:
    """An alert transition to publish again at `due` (loop time): refused, or unreceipted."""

    item: OutboxItem
    due: float
    tries: int = 0
    refused: str | None = None  # the broker's reason, while it keeps refusing
    # Unreceipted: while the platform keeps sending receipts (for others), `due` moves on,
    # up to this (loop time); at `latest` it goes again whatever else is receipted.
    latest: float = math.inf
    since: float = -math.inf  # loop time of its PUBACK (unreceipted ones)
    # ...of its first PUBACK this session: a receipt may answer any copy, so only this one
    # tells how far the platform has read (crediting the latest copy made every transition
    # sent in between look dropped, and a resend storm of them).
    first: float = -math.inf
    # Sent again because the platform receipted one PUBACKed after it: this one was dropped
    # on the way (MQTT keeps one client's QoS 1 messages in order), not waiting in line.
    dropped: bool = False
    alert_id: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.item.kind != "alert":
            return  # an audit record may name an alert: it is not that alert's delivery
        with contextlib.suppress(ValueError, AttributeError):
            alert_id = json.loads(self.item.payload).get("alert_id")
            self.alert_id = alert_id if isinstance(alert_id, str) else None


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
        # Where those deletions run: a task group of `run`'s own, which outlives a session
        # (a lost link must not cancel a deletion half-way) and ends with the uplink.
        self._jobs: asyncio.TaskGroup | None = None
        # Alert transitions PUBACKed but awaiting a receipt, or refused and to be tried again,
        # by event_id.
        self._later: dict[str, _Later] = {}
        self._next_due = math.inf  # no later than the earliest `due` of those
        self._last_receipt = -math.inf  # loop time of the platform's last valid receipt
        self._receipted_since = -math.inf  # the latest `since` of a transition receipted
        self._delivery_dirty = False
        self._delivery_shown_at = -math.inf
        self._pending_retry: dict[str, _Later] = {}  # of those, now in flight again
        # Receipts of this session: one may come before our PUBACK is handled.
        self._receipted: OrderedDict[str, None] = OrderedDict()
        self._refusal_logged: set[tuple[str, str]] = set()
        self._delivery_shown: dict[str, Any] | None = None
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

    def _make_client(self) -> ReasonedClient:
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
        # A persistent session: the broker keeps the subscription, and the commands and
        # receipts sent to it while we were away.
        session: dict[str, Any]
        if up.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY
            session = {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False,
                       "properties": props}
        else:
            session = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        return ReasonedClient(
            up.host,
            up.effective_port,
            identifier=self.config.gateway.id,
            username=up.username,
            password=self._password,
            will=aiomqtt.Will(self.topic("status"), self._status("offline"), qos=1, retain=True),
            **session,
            keepalive=max(5, int(up.keepalive)),
            tls_context=tls_context,
            timeout=10,
            # Room for every window at once (urgent, other alerts, telemetry) and a few
            # one-off publishes (status, devices, results): beyond paho's limit a publish
            # waits in paho's own FIFO queue, and an SOS would wait there behind the other
            # classes' publishes (it was ALERT_WINDOW + TELEMETRY_WINDOW + 8: 100 other
            # alerts in flight and 16 more publishes queued the next SOS in paho).
            max_inflight_messages=PAHO_INFLIGHT,
            max_queued_incoming_messages=1000,
            socket_options=NO_DELAY,
        )

    async def run(self) -> None:
        """Connect, deliver, and reconnect with backoff and jitter, until cancelled."""
        async with asyncio.TaskGroup() as jobs:
            self._jobs = jobs
            try:
                await self._reconnecting()
            finally:
                self._jobs = None

    async def _reconnecting(self) -> None:
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
        loop = asyncio.get_running_loop()
        receipts = self.config.uplink.receipts
        cursors = dict.fromkeys(Priority, 0)
        inflight = dict.fromkeys(Priority, 0)
        window = {Priority.URGENT: ALERT_WINDOW, Priority.ALERT: ALERT_WINDOW,
                  Priority.TELEMETRY: TELEMETRY_WINDOW}
        done: list[OutboxItem] = []
        if self._deleting:
            # Deletions from the last session first: fewer items sent twice. They may be
            # waiting to share a commit (the store's lazy writes): not now.
            self.store.hurry()
            await asyncio.gather(*self._deleting, return_exceptions=True)
        # A new session reads the outbox from the start: all that waited (refused, or
        # awaiting a receipt) goes again from there.
        self._later.clear()
        self._next_due = math.inf
        self._delivery_dirty = True
        self._pending_retry.clear()
        self._receipted.clear()
        # store.added[prio] when a read of that class came back short: nothing more to read
        # until something is added (one SQLite round trip saved per publish completed).
        exhausted_at = dict.fromkeys(Priority, -1)
        backlog_inflight = [0]  # stored telemetry batches in flight
        next_check = loop.time() + STUCK_CHECK
        suspects: dict[Priority, int] = {}  # class -> seq seen waiting unsent at the last check

        async def publish(item: OutboxItem | None, hot: tuple[str, int] | None,
                          prio: Priority) -> None:
            payload = item.payload if item is not None else hot[0]  # type: ignore[index]
            kind = item.kind if item is not None else "telemetry"
            topic = self.topic(TOPIC_OF_KIND.get(kind, "telemetry"))
            qos = 1 if kind in ("alert", "audit") else self.config.uplink.telemetry_qos
            # Any other failure propagates: the TaskGroup ends the session and everything
            # not PUBACKed is sent again after reconnecting.
            try:
                await client.publish(topic, payload, qos=qos, timeout=PUBACK_TIMEOUT)
            except PublishRefused as refusal:
                inflight[prio] -= 1
                if item is None:
                    assert hot is not None
                    self._hot_inflight.pop(id(hot), None)
                    self.stats.refused += 1
                    self._say_refused("telemetry", None, refusal)
                    # Into the outbox, so that it is retried with backoff like a refused
                    # row, not lost: the store keeps it until the broker takes it.
                    await self.store.add_telemetry([hot])
                else:
                    if prio is Priority.TELEMETRY:
                        backlog_inflight[0] -= 1
                    # Kept for a retry with backoff: the row is behind the cursor, so
                    # nothing else would send it again this session.
                    self._refused(item, refusal, loop.time())
                self._wake.set()
                return
            self.stats.published[kind] = self.stats.published.get(kind, 0) + 1
            inflight[prio] -= 1
            if item is not None:
                if prio is Priority.TELEMETRY:
                    backlog_inflight[0] -= 1
                    self._accepted(item)
                    done.append(item)
                elif receipts and item.event_id:
                    self._await_receipt(item, loop.time())
                else:
                    self._accepted(item)
                    done.append(item)
            else:
                self._hot_inflight.pop(id(hot), None)
            self._wake.set()

        while True:
            self._wake.clear()
            now = loop.time()
            if done:
                # Not awaited here: an SOS that arrives while a backlog drains must not
                # wait for the deletion of the telemetry just PUBACKed. In the uplink's own
                # task group, not the session's: a lost link does not cancel it half-way.
                batch, done[:] = list(done), []
                self._delete_later(self.store.delivered(batch))
            due = self._due(now, window, inflight) if now >= self._next_due else []
            for later in due:
                # Refused, or no receipt in time: the same transition (same event_id) again.
                if later.refused is None:
                    self.stats.resent += 1
                    log.info("no receipt for event %s in time: sending it again",
                             later.item.event_id)
                inflight[later.item.priority] += 1
                if later.item.priority is Priority.TELEMETRY:
                    backlog_inflight[0] += 1
                self._pending_retry[_later_key(later.item)] = later
                tg.create_task(publish(later.item, None, later.item.priority))
            self._show_delivery(now)
            if now >= next_check:
                next_check = now + STUCK_CHECK
                await self._check_stuck(cursors, exhausted_at, suspects)
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
                else:
                    # Committed just now and next in line: published as it is, not read
                    # back from the outbox (a round trip to the reader's thread on an SOS's
                    # path, up to 4 ms at p99 under load: docs/performance.md).
                    for index, item in self._fresh_next(prio, cursors, exhausted_at, free):
                        cursors[prio] = item.seq
                        exhausted_at[prio] = index
                        inflight[prio] += 1
                        free -= 1
                        tg.create_task(publish(item, None, prio))
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
                tg.create_task(self._publish_devices(client, self._devices_payload))
            if not self._wake.is_set():
                wait = next_check - loop.time()
                if self._next_due > now:
                    # Not when transitions are due but the window is full: a PUBACK wakes us.
                    wait = min(wait, self._next_due - loop.time())
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the session's
                # cancellation when the event is set at that moment, and the sender then
                # goes on making tasks in a task group that is shutting down.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wait)):
                        await self._wake.wait()

    def _fresh_next(self, prio: Priority, cursors: dict[Priority, int],
                    exhausted_at: dict[Priority, int], free: int) -> list[tuple[int, OutboxItem]]:
        """The rows of class `prio` just committed (`Store.fresh`) that may be published
        without a read, at most `free`: only while every row before them has been read
        (their `added` count follows the one at which the class was read to the end), so
        the class keeps its order. Rows already read are dropped; the others wait for the
        read that takes them in order."""
        fresh = self.store.fresh.get(prio)
        taken: list[tuple[int, OutboxItem]] = []
        while fresh and len(taken) < free:
            index, item = fresh[0]
            if index <= exhausted_at[prio] or item.seq <= cursors[prio]:
                # Read already: before the class was read to the end, or by a read that
                # took rows committed while it ran.
                fresh.popleft()
                continue
            if exhausted_at[prio] < 0 or index != exhausted_at[prio] + 1 + len(taken):
                break  # rows before it are still to be read: a read goes first
            taken.append(fresh.popleft())
        return taken

    def _due(self, now: float, window: dict[Priority, int], inflight: dict[Priority, int]
             ) -> list[_Later]:
        """The transitions to publish again now (taken out of `_later`), oldest first, as many
        as each class's window has room for; those left over stay due, and go as PUBACKs free
        the window (resends once bypassed it: thousands of publishes queued in paho at once).

        An unreceipted one whose timeout is up goes again at once if the platform has
        receipted a transition PUBACKed after it: messages from one client arrive in order,
        so it was dropped on the way (a broker's full queue for a slow platform, a broker
        killed). Otherwise it is not yet due while receipts keep coming (one within
        `receipt_timeout`): the platform is answering and has not got to it yet. Sending it
        again would only queue a duplicate behind it; after a broker restart with thousands
        waiting, a platform slower than the resends then spent its time on duplicates while
        the gateway kept making more (the 20-kill receipts test never finished). Such a one
        goes at its `latest`, RECEIPT_BACKOFF_MAX timeouts on, or when receipts stop."""
        room = {prio: window[prio] - inflight[prio] for prio in window}
        if room[Priority.URGENT] <= 0 and room[Priority.ALERT] <= 0:
            return []  # nothing could go; a PUBACK will wake the sender
        timeout = self.config.uplink.receipt_timeout
        answering = now - self._last_receipt < timeout
        ready: list[_Later] = []
        for later in self._later.values():
            if later.due > now:
                continue
            if later.refused is None:
                later.dropped = later.since < self._receipted_since
                if not later.dropped and answering and now < later.latest:
                    later.due = min(self._last_receipt + timeout, later.latest)
                    continue
            ready.append(later)
        ready.sort(key=lambda w: w.item.seq)
        taken: list[_Later] = []
        for later in ready:
            if room[later.item.priority] > 0:
                room[later.item.priority] -= 1
                taken.append(later)
        for later in taken:
            del self._later[_later_key(later.item)]
        # Those left due for want of room stay <= now: checked again when a PUBACK wakes us.
        self._next_due = min((w.due for w in self._later.values()), default=math.inf)
        if taken:
            self._delivery_dirty = True
        return taken

    async def _check_stuck(self, cursors: dict[Priority, int], exhausted_at: dict[Priority, int],
                           suspects: dict[Priority, int]) -> None:
        """The invariant: while connected, no row of a class the sender believes read to the
        end waits past its cursor. A row seen there at two checks in a row (a few seconds) is
        stuck: said at error, counted, and the class read again from its cursor."""
        for prio in (Priority.URGENT, Priority.ALERT, Priority.TELEMETRY):
            if exhausted_at[prio] != self.store.added[prio]:
                suspects.pop(prio, None)  # a read is due anyway
                continue
            # A row waiting out a refusal's backoff (or a receipt) is kept on purpose, not
            # stuck. The cursor is past such rows today; skipping them keeps the check honest
            # should a read ever start behind one (a cursor rewound, a row re-queued ahead).
            later = {w.item.seq for w in (*self._later.values(), *self._pending_retry.values())
                     if w.item.priority is prio}
            waiting = [i for i in await self.store.pending(prio, cursors[prio], 1 + len(later))
                       if i.seq not in later]
            if not waiting:
                suspects.pop(prio, None)
                continue
            seq = waiting[0].seq
            if suspects.get(prio, seq + 1) <= seq:
                self.stats.stuck += 1
                log.error(
                    "outbox stuck: %s item %d waited unsent for over %.0f s while connected;"
                    " reading the outbox again (%d times so far)",
                    prio.name.lower(), suspects[prio], STUCK_CHECK, self.stats.stuck,
                )
                exhausted_at[prio] = -1
                suspects.pop(prio, None)
            else:
                suspects[prio] = seq

    def _delete_later(self, job: Awaitable[None]) -> None:
        """Run a store write (a deletion, the delivery view) without waiting for it, as a
        task of the uplink's group; a failure is logged (`_quietly`), never ends the group."""
        # Only sessions call this, and they run inside `run`'s task group.
        assert self._jobs is not None, "the uplink's writes run under Uplink.run"
        task = self._jobs.create_task(self._quietly(job))
        self._deleting.add(task)
        task.add_done_callback(self._deleting.discard)

    @staticmethod
    async def _quietly(job: Awaitable[None]) -> None:
        try:
            await job
        except Exception as exc:
            # The rows stay in the outbox and go out again: at least once, same event_id.
            log.warning("could not remove delivered items from the outbox: %s", exc)

    # -- refusals and receipts ----------------------------------------------------

    def _refused(self, item: OutboxItem, refusal: PublishRefused, now: float) -> None:
        self.stats.refused += 1
        before = self._pending_retry.pop(_later_key(item), None)
        tries = before.tries + 1 if before is not None else 0
        self._say_refused(item.kind, item.event_id, refusal)
        delay = min(REFUSED_RETRY_MAX, REFUSED_RETRY_MIN * 2 ** min(tries, 10))
        self._keep_for_later(_Later(item, now + delay, tries, refusal.reason))

    def _say_refused(self, kind: str, event_id: str | None, refusal: PublishRefused) -> None:
        """Log a refusal once per topic and reason: a broker that refuses keeps refusing
        every retry."""
        key = (refusal.topic, refusal.reason)
        if key in self._refusal_logged:
            return
        self._refusal_logged.add(key)
        if kind == "alert":
            log.error(
                "the broker REFUSED alert event %s on %s: %s (0x%02x); it is NOT delivered,"
                " stays in the outbox and is tried again (fix the broker's ACL for this"
                " gateway)", event_id, refusal.topic, refusal.reason, refusal.code,
            )
        else:
            log.warning(
                "%s refused by the broker on %s: %s (0x%02x); kept in the outbox and"
                " tried again", "audit record" if kind == "audit" else "telemetry batch",
                refusal.topic, refusal.reason, refusal.code,
            )

    def _await_receipt(self, item: OutboxItem, now: float) -> None:
        before = self._pending_retry.pop(_later_key(item), None)
        if item.event_id in self._receipted:
            return  # the platform's receipt overtook the broker's PUBACK
        # The wait doubles (up to RECEIPT_BACKOFF_MAX timeouts) when the platform answered
        # nothing, or was still busy with others: a platform down or behind is not flooded.
        # One that went again because a later one was receipted was dropped on the way: its
        # next wait starts again from one timeout.
        tries = (before.tries + 1 if before is not None and before.refused is None
                 and not before.dropped else 0)
        if before is not None and before.refused is not None:
            log.warning("alert event %s accepted by the broker after refusals",
                        item.event_id)
            self._refusal_logged.clear()
        timeout = self.config.uplink.receipt_timeout
        due = now + timeout * min(2 ** tries, RECEIPT_BACKOFF_MAX)
        self._keep_for_later(
            _Later(item, due, tries, latest=max(due, now + timeout * RECEIPT_BACKOFF_MAX),
                   since=now, first=before.first if before is not None else now)
        )

    def _keep_for_later(self, later: _Later) -> None:
        self._later[_later_key(later.item)] = later
        self._next_due = min(self._next_due, later.due)
        self._delivery_dirty = True

    def _accepted(self, item: OutboxItem) -> None:
        before = self._pending_retry.pop(_later_key(item), None)
        if before is not None and before.refused is not None:
            log.warning("%s %s accepted by the broker after refusals",
                        "alert event" if item.kind == "alert" else item.kind,
                        item.event_id or item.seq)
            self._refusal_logged.clear()

    async def on_receipt(self, raw: Any) -> None:
        """`P/cmd/receipt` `{"event_ids": [...]}`: the platform has these; they leave the
        outbox. Publishes no result (docs/mqtt-api.md); a malformed receipt is logged and
        counted."""
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, TypeError):
            body = None
        ids = body.get("event_ids") if isinstance(body, dict) else None
        if (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)
                or len(raw) > MAX_COMMAND_BYTES):
            self.stats.bad_commands += 1
            log.warning("bad receipt: expected {\"event_ids\": [\"...\", ...]}")
            return
        self._delivery_dirty = True
        self._last_receipt = asyncio.get_running_loop().time()
        for event_id in ids:
            later = self._later.pop(event_id, None)
            if later is not None and later.refused is None:
                self._receipted_since = max(self._receipted_since, later.first)
            self._receipted[event_id] = None
        while len(self._receipted) > RECEIPTS_REMEMBERED:
            self._receipted.popitem(last=False)
        self.stats.receipts += len(ids)
        self._delete_later(self.store.received(ids))
        self._wake.set()

    def _show_delivery(self, now: float) -> None:
        """Keep what `hearthgate alerts` shows (refused, sent awaiting a receipt) in the store,
        at most twice a second: thousands of receipts a minute are not thousands of writes."""
        if not self._delivery_dirty or now - self._delivery_shown_at < DELIVERY_SHOW_EVERY:
            return
        self._delivery_dirty = False
        self._delivery_shown_at = now
        refused: dict[str, str] = {}
        sent: list[str] = []
        for later in self._later.values():
            if later.alert_id is None:
                continue
            if later.refused is not None:
                refused[later.alert_id] = later.refused
            else:
                sent.append(later.alert_id)
        shown = {"refused": refused, "awaiting_receipt": sorted(set(sent))}
        if shown != self._delivery_shown:
            self._delivery_shown = shown
            self._delete_later(self.store.put_state(DELIVERY_STATE, shown, lazy=True))

    async def _publish_devices(self, client: aiomqtt.Client, payload: str) -> None:
        try:
            await client.publish(self.topic("devices"), payload, qos=1, retain=True,
                                 timeout=PUBACK_TIMEOUT)
        except PublishRefused as refusal:
            log.error("the broker refused the device snapshot on %s: %s", refusal.topic,
                      refusal.reason)


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
            if name == "receipt":
                await self.on_receipt(message.payload)
                continue
            result = await self.handle_command(name, message.payload)
            try:
                await client.publish(
                    self.topic("cmd/result"), result_bytes(result), qos=1,
                    timeout=PUBACK_TIMEOUT,
                )
            except PublishRefused as refusal:
                log.error("the broker refused a command result on %s: %s", refusal.topic,
                          refusal.reason)

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
        except (aiomqtt.MqttError, TimeoutError) as exc:  # PublishRefused included
            log.warning("could not publish offline status: %s", exc)
