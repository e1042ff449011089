"""The `mqtt` bus type: a local broker that devices (zigbee2mqtt, ...) publish to.

One aiomqtt connection per bus, owned by `MqttBus.run()`. Drivers register topic
handlers before the bus runs; the bus subscribes to all of them on every
(re)connect and hands each message to the handlers whose filter matches. A
handler is a plain function: it parses and emits, it never blocks.

The broker is usually on the same box (zigbee2mqtt's mosquitto), so when it goes the
bus asks again every 0.1 s, doubling to at most 0.4 s (a refused loopback connect costs
nothing): it listens again well within 0.5 s of the broker's return. A remote broker
gets the gentler 0.2-5 s. The session is persistent (a stable client id,
clean_session off) and the subscriptions QoS 1, so the broker keeps for the bus what
QoS 1 publishers send while it is away (zigbee2mqtt publishes QoS 0 unless its
`mqtt.qos` is set: those messages are not kept by any broker).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import Callable

import aiomqtt
from pydantic import Field, SecretStr

from hearthgate.core.durations import Duration
from hearthgate.core.mqtt_socket import NO_DELAY, read_in_bursts
from hearthgate.core.options import BusConfig, Options
from hearthgate.drivers.base import BusType, DriverContext

log = logging.getLogger("hearthgate.drivers.mqtt")

Handler = Callable[[str, bytes], None]
MAX_PAYLOAD = 256 * 1024
# Messages taken from the incoming queue per wake-up at most, so that a flood cannot keep
# the loop from the rules and the uplink (an SOS's commit and publish) for long.
DRAIN_MAX = 64
LOCAL_RECONNECT = (0.1, 0.4)  # seconds: first retry, and the cap, for a loopback broker
REMOTE_RECONNECT = (0.2, 5.0)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MqttBusOptions(Options):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    keepalive: Duration = 30.0
    # The broker session's id; default hearthgate-<gateway id>-<bus id>. It must be stable
    # (a random one would get a new, empty session on every connect) and this gateway's own.
    client_id: str | None = None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT wildcard matching (`+` one level, `#` the rest)."""
    fparts = topic_filter.split("/")
    tparts = topic.split("/")
    for i, f in enumerate(fparts):
        if f == "#":
            return True
        if i >= len(tparts) or (f != "+" and f != tparts[i]):
            return False
    return len(fparts) == len(tparts)


class MqttBus:
    def __init__(self, config: BusConfig, ctx: DriverContext) -> None:
        self.config = config
        self.options: MqttBusOptions = config.options  # type: ignore[assignment]
        self.ctx = ctx
        self.handlers: list[tuple[str, Handler]] = []
        # Larger limits for the few topics that need them (zigbee2mqtt's bridge/devices).
        self._limits: dict[str, int] = {}
        # Most filters are exact device topics: a dict finds their handlers in one step
        # instead of matching every filter of every device against every message.
        self._exact: dict[str, list[tuple[str, Handler]]] = {}
        self._wildcard: list[tuple[str, Handler]] = []
        self.connected = asyncio.Event()
        self.messages = 0
        self.client_id = self.options.client_id or (
            f"hearthgate-{ctx.gateway_id or socket.gethostname()}-{config.id}"
        )

    def subscribe(self, topic_filter: str, handler: Handler, *, max_payload: int = MAX_PAYLOAD
                  ) -> None:
        self.handlers.append((topic_filter, handler))
        if max_payload != MAX_PAYLOAD:
            self._limits[topic_filter] = max(max_payload, self._limits.get(topic_filter, 0))
        if "+" in topic_filter or "#" in topic_filter:
            self._wildcard.append((topic_filter, handler))
        else:
            self._exact.setdefault(topic_filter, []).append((topic_filter, handler))

    def _handlers_for(self, topic: str) -> list[tuple[str, Handler]]:
        if any(topic_matches(f, topic) for f, _ in self._wildcard):
            # Rare: keep registration order across exact and wildcard filters.
            return [(f, h) for f, h in self.handlers if topic_matches(f, topic)]
        return self._exact.get(topic, [])

    def _take(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = b"" if payload is None else str(payload).encode()
        self.dispatch(str(message.topic), bytes(payload))

    def dispatch(self, topic: str, payload: bytes) -> None:
        self.messages += 1
        if len(payload) > self._limits.get(topic, MAX_PAYLOAD):
            self.ctx.frame_error(None, "payload_too_large", payload[:64], topic)
            return
        for topic_filter, handler in self._handlers_for(topic):
            try:
                handler(topic, payload)
            except Exception:
                # A driver bug on one message must not cut the bus off for every device.
                log.exception("handler for %s failed on %s", topic_filter, topic)
                self.ctx.frame_error(None, "handler_error", payload[:64], topic)

    async def run(self) -> None:
        first, cap = LOCAL_RECONNECT if is_loopback(self.options.host) else REMOTE_RECONNECT
        delay = first
        while True:
            incoming = _Incoming()
            try:
                async with aiomqtt.Client(
                    self.options.host,
                    self.options.port,
                    username=self.options.username,
                    password=(self.options.password.get_secret_value()
                              if self.options.password else None),
                    identifier=self.client_id,
                    # 3.1.1, which every broker a zigbee2mqtt install uses speaks; a session
                    # kept until we come back (mosquitto: `persistent_client_expiration`).
                    protocol=aiomqtt.ProtocolVersion.V311,
                    clean_session=False,
                    keepalive=max(5, int(self.options.keepalive)),
                    timeout=10,
                    socket_options=NO_DELAY,
                    queue_type=incoming.queue_type,
                ) as client:
                    read_in_bursts(client)
                    for topic_filter in sorted({f for f, _ in self.handlers}):
                        await client.subscribe(topic_filter, qos=1)
                    self.connected.set()
                    delay = first
                    log.info("bus %s connected to %s:%s", self.config.id, self.options.host,
                             self.options.port)
                    async for message in client.messages:
                        self._take(message)
                        # The messages a burst read queued behind it, without a task and a
                        # wait each (aiomqtt's iterator makes both per message: a fifth of
                        # the bus's cost at 4,000 messages/s).
                        for _ in range(DRAIN_MAX):
                            queued = incoming.take()
                            if queued is None:
                                break
                            self._take(queued)
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    log.warning("bus %s lost its broker: %s", self.config.id, exc)
                else:
                    log.debug("bus %s cannot reach its broker: %s", self.config.id, exc)
            finally:
                self.connected.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(cap, delay * 2)


BUS_TYPE = BusType(
    "mqtt",
    MqttBusOptions,
    MqttBus,
    description="a local MQTT broker that devices publish to (zigbee2mqtt)",
)


class _Incoming:
    """The queue aiomqtt keeps a client's incoming messages in, made through its public
    `queue_type` argument so that the bus can take what is already queued directly."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[aiomqtt.Message] | None = None

    def queue_type(self, maxsize: int = 0) -> asyncio.Queue[aiomqtt.Message]:
        self.queue = asyncio.Queue(maxsize=maxsize)
        return self.queue

    def take(self) -> aiomqtt.Message | None:
        """A message already queued, or None."""
        if self.queue is None:
            return None
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
