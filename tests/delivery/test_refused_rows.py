"""A refused telemetry or audit row is re-queued and sent again with backoff, like a refused
alert, and the stuck-outbox invariant does not mistake it for a bug while it waits out the
backoff (issue 12). Peer: mosquitto 2 (Debian's) with an `acl_file`, reloaded with SIGHUP."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from hearthgate import uplink
from hearthgate.core.model import Priority
from hearthgate.devkit.testkit import PlatformSubscriber
from tests.delivery import harness
from tests.delivery.harness import ALLOW_ALL, P, raise_sos, running_uplink, wait_until

DENY_AUDIT_AND_TELEMETRY = (
    f"topic readwrite {P}/status\ntopic readwrite {P}/cmd/#\ntopic readwrite {P}/devices\n"
    f"topic readwrite {P}/alerts\ntopic read hearthgate/#\n"
)


@pytest.fixture
def acl_broker(tmp_path: Path):
    with harness.acl_broker(tmp_path, DENY_AUDIT_AND_TELEMETRY) as broker_and_acl:
        yield broker_and_acl


async def test_refused_audit_and_telemetry_rows_are_retried_and_never_called_stuck(
        tmp_path, acl_broker, caplog, monkeypatch):
    broker, acl = acl_broker
    # Short periods, so that many stuck checks run while the rows wait out their backoff.
    monkeypatch.setattr(uplink, "STUCK_CHECK", 0.1)
    monkeypatch.setattr(uplink, "REFUSED_RETRY_MIN", 0.3)
    monkeypatch.setattr(uplink, "REFUSED_RETRY_MAX", 1.2)
    caplog.set_level(logging.INFO, "hearthgate.uplink")
    audit = json.dumps({"schema": "hearthgate.audit/1", "action": "test", "n": 1})
    telemetry = json.dumps({"schema": "hearthgate.telemetry/1", "readings": [], "n": 2})
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform, \
            running_uplink(tmp_path, broker) as (up, store):
        assert await store.add_audit(audit, time.time(), keep=100)
        await store.add_telemetry([(telemetry, 1)])
        up.wake()
        # Refused, tried again (at least twice each), never called stuck meanwhile.
        await wait_until(lambda: up.stats.refused >= 6, 20, "refusals and retries")
        depth = await store.depth()
        assert sum(depth.values()) == 2, depth  # both still in the outbox
        assert up.stats.stuck == 0
        assert not [r for r in caplog.records if "outbox stuck" in r.getMessage()]
        # Said once per topic and reason, not per retry.
        said = [r.getMessage() for r in caplog.records if "refused by the broker" in r.getMessage()]
        assert len(said) == 2, said
        assert any(f"{P}/audit" in s for s in said) and any(f"{P}/telemetry" in s for s in said)
        # Alerts are not held up by the refused rows behind them.
        [sos] = await raise_sos(up, store)
        got = await platform.wait_json(f"{P}/alerts", timeout=10)
        assert got[0]["event_id"] == sos.event_id

        acl.write_text(ALLOW_ALL)
        broker.reload()
        await wait_until(lambda: platform.on(f"{P}/audit") and platform.on(f"{P}/telemetry"),
                         20, "the refused rows after the ACL was fixed")
        assert platform.on(f"{P}/audit")[0].payload.decode() == audit
        assert platform.on(f"{P}/telemetry")[0].payload.decode() == telemetry
        # PUBACKed now: both leave the outbox.
        deadline = time.monotonic() + 10
        while sum((await store.depth()).values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sum((await store.depth()).values()) == 0
        assert up.stats.stuck == 0


async def test_a_refused_live_telemetry_batch_is_kept_in_the_outbox(tmp_path, acl_broker, caplog):
    """A batch offered while connected goes from memory, not the outbox: refused, it is put
    into the outbox (counted, said once) and arrives once the broker takes it."""
    broker, acl = acl_broker
    caplog.set_level(logging.INFO, "hearthgate.uplink")
    telemetry = json.dumps({"schema": "hearthgate.telemetry/1", "readings": [], "n": 3})
    async with PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform, \
            running_uplink(tmp_path, broker) as (up, store):
        await wait_until(lambda: up.stats.connected, 10, "the uplink to connect")
        await up.offer_telemetry(telemetry, 1)
        await wait_until(lambda: up.stats.refused >= 2, 20, "the refusal and a retry")
        assert (await store.depth())[Priority.TELEMETRY] == 1
        said = [r.getMessage() for r in caplog.records if "refused by the broker" in r.getMessage()]
        assert len(said) == 1 and f"{P}/telemetry" in said[0], said

        acl.write_text(ALLOW_ALL)
        broker.reload()
        await wait_until(lambda: platform.on(f"{P}/telemetry"), 20, "the batch after the fix")
        assert [m.payload.decode() for m in platform.on(f"{P}/telemetry")] == [telemetry]
