"""The gateway against RabbitMQ 3.10 with `rabbitmq_mqtt` (Debian bookworm's package): the
clustered broker a platform reaches for when one machine is not enough (issue 12, item 6).

It speaks MQTT 3.1.1 only (MQTT 5 arrived in RabbitMQ 3.13), so the gateway runs with
`protocol: 3.1.1` and `receipts: true`. A real gateway process, a real RabbitMQ (its own
node, ports and directories), the reference platform consumer. Checked: the retained status
(and what a wildcard subscriber gets of it), alerts, receipts, an ack, the Last Will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiomqtt

from hearthgate.devkit.platform import ReceiptingPlatform
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber
from tests.faults.faultkit import (
    P,
    outbox_alert_count,
    press_sos,
    record,
    started,
    wait_until,
    write_config,
)


def states(sub: PlatformSubscriber, topic: str) -> list[str | None]:
    out = []
    for m in sub.on(topic):
        with contextlib.suppress(ValueError, AttributeError):
            out.append(json.loads(m.payload).get("state"))
    return out


async def test_gateway_on_rabbitmq(tmp_path, rabbitmq, home_broker, zigbee):
    sites = ["site-1"]
    config = write_config(tmp_path, rabbitmq, home_broker, sites)  # type: ignore[arg-type]
    config.write_text(config.read_text().replace(
        "  keepalive: 5s\n",
        "  keepalive: 5s\n  protocol: '3.1.1'\n  receipts: true\n  receipt_timeout: 2s\n",
    ))
    data_dir = tmp_path / "data"
    platform = ReceiptingPlatform(rabbitmq.host, rabbitmq.port, tmp_path / "platform.sqlite3",
                                  protocol="3.1.1", client_id="rmq-platform")
    consumer = asyncio.create_task(platform.run())
    gw = GatewayProcess(config)
    try:
        async with PlatformSubscriber(rabbitmq.host, rabbitmq.port, (f"{P}/#",),
                                      identifier="rmq-watcher") as watcher:
            await started(gw, watcher)
            # Subscribers that come after the retained status: one on the exact topic, one on
            # the fleet wildcard.
            host, port = rabbitmq.host, rabbitmq.port
            async with PlatformSubscriber(host, port, (f"{P}/status",)) as exact, \
                    PlatformSubscriber(host, port, ("hearthgate/+/status",)) as wild:
                await wait_until(lambda: "online" in states(exact, f"{P}/status"), 20,
                                 "the retained status on the exact topic")
                await asyncio.sleep(1.0)  # time for a retained message to the wildcard, if any
                wildcard_got_retained = "online" in states(wild, f"{P}/status")

            await press_sos(zigbee, sites[0])
            await wait_until(lambda: len(platform.event_ids()) == 1, 30, "the alert",
                             gw.log_text)
            [raised] = platform.stored().values()
            assert raised["state"] == "raised" and raised["site_id"] == sites[0]
            # Receipted: it leaves the outbox (a PUBACK alone would not take it out).
            await wait_until(lambda: outbox_alert_count(data_dir) == 0, 30, "the receipt")
            await watcher.publish(f"{P}/cmd/ack", {"alert_id": raised["alert_id"], "by": "w-1"})
            await wait_until(
                lambda: any(b["state"] == "cleared" for b in platform.stored().values()), 30,
                "the cleared transition after the ack", gw.log_text,
            )
            await wait_until(lambda: outbox_alert_count(data_dir) == 0, 30, "its receipt")
            assert platform.duplicates == 0 or all(
                b["event_id"] == e for e, b in platform.stored().items())

            # The Last Will: the gateway dies without a word; RabbitMQ says it for it.
            killed = time.monotonic()
            gw.kill()
            await wait_until(lambda: states(watcher, f"{P}/status")[-1:] == ["offline"], 30,
                             "the Last Will")
            will_seconds = round(time.monotonic() - killed, 2)

        mqtt5 = "refused"
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(rabbitmq.host, rabbitmq.port, identifier="v5-probe",
                                      protocol=aiomqtt.ProtocolVersion.V5, timeout=3):
                mqtt5 = "accepted"
        record("rabbitmq", version=rabbitmq.version, start_seconds=rabbitmq.start_seconds,
               mqtt5=mqtt5, retained_status_to_exact=True,
               retained_status_to_wildcard=wildcard_got_retained,
               alerts=len(platform.event_ids()), receipts="ok", ack="ok",
               last_will_seconds=will_seconds)
    finally:
        gw.close()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
