"""The platform's side of end-to-end receipts (`uplink.receipts: true`), as a reference.

A care platform that wants "the gateway deleted it" to mean "the care centre has it" does
three things with each alert transition, in this order: drop it if its `event_id` was seen
(the gateway sends again until it hears back, so duplicates are normal), store it durably,
and only then publish `{"event_ids": [...]}` on `P/cmd/receipt`. Storing before the receipt
is the whole point: a receipt for something not yet stored is a PUBACK by another name.

`ReceiptingPlatform` does exactly that over SQLite; tests use it, and so can a demo.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hearthgate.core.mqtt_socket import NO_DELAY

# Event ids per receipt: ~40 bytes each, well under the gateway's 64 KiB command limit.
RECEIPT_BATCH = 500


class ReceiptingPlatform:
    """Consume `{prefix}/+/alerts`, keep each transition once in a SQLite file, receipt it.

    `run()` connects (MQTT 5, a persistent session so that alerts published while it was away
    are not lost with it), and reconnects after 0.1 s whenever the broker goes, until cancelled.

    It works in batches, as a platform that keeps up must: whatever has arrived (up to `batch`
    messages) is stored in one transaction and receipted in one `P/cmd/receipt` per gateway.
    One commit and one receipt per alert made the first version of this consumer manage ~30
    alerts a second on a loaded test machine (each commit an fsync, each receipt a PUBACK
    waited for), slower than a gateway resends after a broker restart: its queue filled with
    duplicates and the 20-kill receipts test never caught up.

    Args:
        host, port: the platform's broker.
        db: the SQLite file the transitions are stored in (table `alerts`, one row per event_id).
        prefix: `uplink.topic_prefix` of the gateways served.
        client_id: the consumer's MQTT client id (its session).
        batch: the most messages stored in one transaction (and receipted in one message).
        receive_maximum: when set, the consumer tells the broker it takes at most this many
            unacknowledged messages (MQTT 5 Receive Maximum) and PUBACKs each only once it is
            stored; the broker holds the rest in its queue. Tests use it to be the slow
            subscriber a `max_queued_messages` limit drops messages for.
        protocol: "5", or "3.1.1" for a broker without MQTT 5 (RabbitMQ before 3.13).
    """

    def __init__(self, host: str, port: int, db: Path, *, prefix: str = "hearthgate",
                 client_id: str = "reference-platform", batch: int = RECEIPT_BATCH,
                 receive_maximum: int | None = None, protocol: str = "5") -> None:
        self.host, self.port, self.prefix, self.client_id = host, port, prefix, client_id
        self.batch = max(1, min(batch, RECEIPT_BATCH))
        self.receive_maximum = receive_maximum
        self.protocol = protocol
        self.db = sqlite3.connect(db)
        self.db.execute("CREATE TABLE IF NOT EXISTS alerts"
                        " (event_id TEXT PRIMARY KEY, gateway_id TEXT, body TEXT)")
        self.duplicates = 0  # transitions received again (same event_id), dropped
        self.bad = 0  # messages on the alerts topic that were not an alert transition
        self.taken = 0  # messages on the alerts topic, duplicates and bad ones included

    def stored(self) -> dict[str, dict[str, object]]:
        return {e: json.loads(b) for e, b in self.db.execute("SELECT event_id, body FROM alerts")}

    def event_ids(self) -> set[str]:
        """The event_ids stored: what a test polls (no JSON decoded)."""
        return {e for (e,) in self.db.execute("SELECT event_id FROM alerts")}

    async def run(self) -> None:
        while True:
            try:
                session: dict[str, Any]
                if self.protocol == "3.1.1":
                    session = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
                else:
                    props = Properties(PacketTypes.CONNECT)
                    props.SessionExpiryInterval = 86400
                    if self.receive_maximum is not None:
                        props.ReceiveMaximum = self.receive_maximum
                    session = {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False,
                               "properties": props}
                client = aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                        socket_options=NO_DELAY, **session)
                # paho PUBACKs on arrival unless told otherwise; aiomqtt has no flag for it.
                client._client.manual_ack_set(self.receive_maximum is not None)
                async with client:
                    await client.subscribe(f"{self.prefix}/+/alerts", qos=1)
                    messages = aiter(client.messages)
                    while True:
                        batch = [await anext(messages)]
                        # What is already here joins the batch; nothing is waited for.
                        while len(client.messages) and len(batch) < self.batch:
                            batch.append(await anext(messages))
                        await self._take(client, batch)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def _take(self, client: aiomqtt.Client, batch: list[aiomqtt.Message]) -> None:
        rows: list[tuple[str, str, str]] = []
        for message in batch:
            self.taken += 1
            try:
                body = json.loads(message.payload)  # type: ignore[arg-type]
                event_id, gateway_id = body["event_id"], str(message.topic).split("/")[-2]
                if not isinstance(event_id, str):
                    raise TypeError(event_id)
            except (ValueError, TypeError, KeyError):
                self.bad += 1
                continue
            rows.append((event_id, gateway_id, json.dumps(body)))
        with self.db:  # stored (committed) before the receipt goes out
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?)", rows)
        self.duplicates += len(rows) - (self.db.total_changes - before)
        if self.receive_maximum is not None:
            for message in batch:  # stored: now the broker may forget them
                client._client.ack(message.mid, message.qos)
        # A duplicate is receipted again: the gateway sent it again because it missed ours.
        by_gateway: dict[str, list[str]] = {}
        for event_id, gateway_id, _ in rows:
            by_gateway.setdefault(gateway_id, []).append(event_id)
        for gateway_id, ids in by_gateway.items():
            await client.publish(f"{self.prefix}/{gateway_id}/cmd/receipt",
                                 json.dumps({"event_ids": ids}), qos=1)
