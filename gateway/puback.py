"""An aiomqtt client that reads the PUBACK's reason code (MQTT 5), so a refusal is not a delivery.

aiomqtt 2.5 wraps paho's `publish` and, in `Client._on_publish`, sets the waiting event for the
message id whatever the reason code says: under MQTT 5 a broker that refuses a publish (its
ACL: `0x87 Not authorized`; a quota: `0x97`) answers with a PUBACK carrying a code of 0x80 or
more, and `await client.publish(...)` returns as if it had been delivered. paho itself hands the
code to `on_publish`. `ReasonedClient` keeps the code of each refused message id from that
callback and has `publish` raise `PublishRefused` for it. The message id is learnt by wrapping
paho's `publish` for the duration of one aiomqtt `publish` call (a context variable, so calls
running side by side in other tasks do not mix their ids).

This leans on two private names of aiomqtt, `Client._on_publish` and `Client._client` (the paho
client): pyproject pins aiomqtt below 3, and tests/delivery/test_refusals.py fails if either
changes meaning. Under MQTT 3.1.1 a PUBACK has no code: nothing can be refused there, which is
why `hearthgate check` warns about 3.1.1 without receipts.
"""

from __future__ import annotations

import contextvars
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

# The paho MessageInfo of the publish made by the current task's `ReasonedClient.publish`.
_SENT: contextvars.ContextVar[list[paho.MQTTMessageInfo] | None] = contextvars.ContextVar(
    "hearthgate_puback_sent", default=None
)


class PublishRefused(aiomqtt.MqttError):
    """The broker answered a publish with a PUBACK whose reason code is 0x80 or more: it was
    not delivered (and will not be). `code` is the numeric reason code, `reason` its name."""

    def __init__(self, topic: str, code: int, reason: str) -> None:
        super().__init__(f"broker refused the publish on {topic}: {reason} (0x{code:02x})")
        self.topic = topic
        self.code = code
        self.reason = reason


class ReasonedClient(aiomqtt.Client):
    """`aiomqtt.Client` whose `publish` raises `PublishRefused` when the PUBACK says no.

    Takes exactly aiomqtt's arguments. Everything else (subscriptions, messages, the Last Will,
    timeouts) is aiomqtt's own. A publish that is refused is not retried here: the caller
    decides (the uplink keeps the alert in its outbox and sends it again later).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused: dict[int, ReasonCode] = {}
        paho_publish = self._client.publish

        def publish_noting_mid(*a: Any, **kw: Any) -> paho.MQTTMessageInfo:
            info = paho_publish(*a, **kw)
            sent = _SENT.get()
            if sent is not None:
                sent.append(info)
            return info

        self._client.publish = publish_noting_mid  # type: ignore[method-assign]

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        # Kept before aiomqtt wakes the waiting publish, which then looks here.
        if reason_code.is_failure:
            self._refused[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish(  # type: ignore[override]
        self, /, topic: str, payload: aiomqtt.client.PayloadType = None, qos: int = 0,
        retain: bool = False, properties: Any = None, *args: Any, timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        sent: list[paho.MQTTMessageInfo] = []
        token = _SENT.set(sent)
        try:
            await super().publish(topic, payload, qos, retain, properties, *args,
                                  timeout=timeout, **kwargs)
        finally:
            _SENT.reset(token)
            code = self._refused.pop(sent[0].mid, None) if sent else None
        if code is not None:
            raise PublishRefused(topic, int(code.value), str(code))
