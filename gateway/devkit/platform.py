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

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hearthgate.core.mqtt_socket import NO_DELAY


class ReceiptingPlatform:
    """Consume `{prefix}/+/alerts`, keep each transition once in a SQLite file, receipt it.

    `run()` connects (MQTT 5, a persistent session so that alerts published while it was away
    are not lost with it), and reconnects after 0.1 s whenever the broker goes, until cancelled.

    Args:
        host, port: the platform's broker.
        db: the SQLite file the transitions are stored in (table `alerts`, one row per event_id).
        prefix: `uplink.topic_prefix` of the gateways served.
        client_id: the consumer's MQTT client id (its session).
    """

    def __init__(self, host: str, port: int, db: Path, *, prefix: str = "hearthgate",
                 client_id: str = "reference-platform") -> None:
        self.host, self.port, self.prefix, self.client_id = host, port, prefix, client_id
        self.db = sqlite3.connect(db)
        self.db.execute("CREATE TABLE IF NOT EXISTS alerts"
                        " (event_id TEXT PRIMARY KEY, gateway_id TEXT, body TEXT)")
        self.duplicates = 0  # transitions received again (same event_id), dropped
        self.bad = 0  # messages on the alerts topic that were not an alert transition

    def stored(self) -> dict[str, dict[str, object]]:
        return {e: json.loads(b) for e, b in self.db.execute("SELECT event_id, body FROM alerts")}

    async def run(self) -> None:
        while True:
            try:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = 86400
                async with aiomqtt.Client(
                    self.host, self.port, identifier=self.client_id,
                    protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
                    socket_options=NO_DELAY,
                ) as client:
                    await client.subscribe(f"{self.prefix}/+/alerts", qos=1)
                    async for message in client.messages:
                        await self._take(client, message)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def _take(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        try:
            body = json.loads(message.payload)  # type: ignore[arg-type]
            event_id, gateway_id = body["event_id"], str(message.topic).split("/")[-2]
        except (ValueError, TypeError, KeyError):
            self.bad += 1
            return
        with self.db:  # stored (committed) before the receipt goes out
            cur = self.db.execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?)",
                                  (event_id, gateway_id, json.dumps(body)))
        if not cur.rowcount:
            self.duplicates += 1
        # A duplicate is receipted again: the gateway sent it again because it missed ours.
        await client.publish(f"{self.prefix}/{gateway_id}/cmd/receipt",
                             json.dumps({"event_ids": [event_id]}), qos=1)
