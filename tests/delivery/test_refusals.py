"""MQTT 5 refusals: a broker whose ACL forbids `P/alerts` PUBACKs with 0x87, and that is not
a delivery (issue 12). Peer: mosquitto 2 (Debian's), its `acl_file`, reloaded with SIGHUP."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hearthgate.devkit.testkit import PlatformSubscriber
from hearthgate.store import read_alerts, read_only
from tests.delivery import harness
from tests.delivery.harness import ALLOW_ALL, P, raise_sos, running_uplink, wait_until

DENY_ALERTS = (
    f"topic readwrite {P}/status\ntopic readwrite {P}/cmd/#\ntopic readwrite {P}/devices\n"
    "topic read hearthgate/#\n"
)


@pytest.fixture
def acl_broker(tmp_path: Path):
    with harness.acl_broker(tmp_path, DENY_ALERTS) as broker_and_acl:
        yield broker_and_acl


async def test_a_refused_sos_is_never_delivered_and_arrives_once_the_acl_is_fixed(
        tmp_path, acl_broker, caplog):
    broker, acl = acl_broker
    caplog.set_level(logging.INFO, "hearthgate.uplink")
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/alerts",)) as platform, \
            running_uplink(tmp_path, broker) as (up, store):
        [sos] = await raise_sos(up, store)
        await wait_until(lambda: up.stats.refused >= 2, 20, "the refusal and one retry")
        # Never delivered: still in the outbox, and `hearthgate alerts` says so.
        assert (await store.depth())[sos.priority] == 1
        conn = read_only(store.path.parent)
        assert conn is not None
        await wait_until(lambda: read_alerts(conn)[0].status == "refused", 10,
                         "`hearthgate alerts` to show the refusal")
        assert read_alerts(conn)[0].refused_reason == "Not authorized"
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not per retry
        assert "REFUSED" in errors[0].getMessage() and "Not authorized" in errors[0].getMessage()
        assert f"{P}/alerts" in errors[0].getMessage()
        assert platform.on(f"{P}/alerts") == []

        acl.write_text(ALLOW_ALL)
        broker.reload()
        await wait_until(lambda: platform.on(f"{P}/alerts"), 90, "the SOS after the fix")
        got = platform.on(f"{P}/alerts")[0].json()
        assert got["event_id"] == sos.event_id  # the same transition, not a new one
        await wait_until(lambda: read_alerts(conn)[0].status == "delivered", 10, "delivered")
        assert (await store.depth())[sos.priority] == 0
        conn.close()


async def test_under_mqtt_3_1_1_the_same_refusal_cannot_be_seen(tmp_path, acl_broker):
    """The reason `check` warns about 3.1.1: mosquitto PUBACKs the refused publish."""
    broker, _ = acl_broker
    async with running_uplink(tmp_path, broker, protocol="3.1.1") as (up, store):
        await raise_sos(up, store)
        await wait_until(lambda: up.stats.published["alert"] >= 1, 20, "the PUBACK")
        assert up.stats.refused == 0
