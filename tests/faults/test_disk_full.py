"""Fault: the disk under the gateway's store fills up, and later has room again.

Injected two ways: a size-limited tmpfs the test mounts (when it may: root) and filled with a
file, and SQLite's own `PRAGMA max_page_count` (anywhere).

Outcome: the gateway keeps alerting (alert transitions it cannot write are held in memory and
still published, even across an uplink outage); it says so loudly (a CRITICAL log line and the
store's `degraded` flag); when room returns the held writes are committed in order, the
outbox drains, and a restart finds the alert log and the rules' state as if nothing happened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearthgate.store import Store
from tests.faults.faultkit import (
    ALERTS,
    InProcessGateway,
    P,
    db_rows,
    press_sos,
    record,
    site_ids,
    wait_until,
    write_config,
)


class Disk:
    """Somewhere to put the data directory, and a way to fill it and to make room."""

    data_dir: Path

    async def fill(self, store: Store) -> None:
        raise NotImplementedError

    async def free(self, store: Store) -> None:
        raise NotImplementedError


class SmallTmpfs(Disk):
    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        self.data_dir = mountpoint / "data"
        self.filler = mountpoint / "filler"

    async def fill(self, store: Store) -> None:
        fill_to_the_last_byte(self.filler)

    async def free(self, store: Store) -> None:
        self.filler.unlink()


def fill_to_the_last_byte(path: Path) -> None:
    for size in (65536, 1):  # ENOSPC ends each loop; then not one byte is left
        with contextlib.suppress(OSError), open(path, "ab") as f:
            while True:
                f.write(b"\0" * size)
                f.flush()


class PageLimit(Disk):
    def __init__(self, tmp: Path) -> None:
        self.data_dir = tmp / "data"

    async def fill(self, store: Store) -> None:
        # Lower than the file's size means "exactly its size": not one page more.
        await store._writer.db.execute("PRAGMA max_page_count=1")

    async def free(self, store: Store) -> None:
        await store._writer.db.execute("PRAGMA max_page_count=1073741823")


@pytest.fixture(params=["tmpfs", "page_limit"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    if request.param == "page_limit":
        yield PageLimit(tmp_path)
        return
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None or subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mountpoint)],
        capture_output=True,
    ).returncode != 0:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root)")
    try:
        yield SmallTmpfs(mountpoint)
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


async def test_disk_full_keeps_alerting_and_recovers(
    tmp_path, broker, home_broker, platform, zigbee, disk, caplog
):
    caplog.set_level(logging.INFO)
    sites = site_ids(40)
    config = write_config(tmp_path, broker, home_broker, sites, data_dir=disk.data_dir)

    def raised_at(site: str) -> list[dict]:
        return [m.json() for m in platform.on(ALERTS)
                if m.json()["site_id"] == site and m.json()["state"] == "raised"]

    async with InProcessGateway(config) as gw:
        store = gw.gateway.store
        assert store is not None
        await wait_until(lambda: gw.gateway.uplink is not None
                         and gw.gateway.uplink.stats.connected, 20, "the uplink")
        await press_sos(zigbee, sites[0])
        await platform.wait_json(ALERTS, lambda b: b["site_id"] == sites[0], timeout=20)

        await disk.fill(store)
        t_full = time.monotonic()
        # Press until a write fails: the first ones may still fit in pages SQLite already has.
        pressed = 1
        while not store.degraded:
            assert pressed < len(sites) - 2, "the store never noticed the full disk"
            await press_sos(zigbee, sites[pressed])
            await platform.wait_json(ALERTS, lambda b, s=sites[pressed]: b["site_id"] == s,
                                     timeout=20)
            pressed += 1
        # Loudly.
        assert any(r.levelno >= logging.CRITICAL and "STORAGE FAILURE" in r.getMessage()
                   for r in caplog.records)
        assert store.degraded and store.deferred_writes >= 1
        assert "hearthgate_store_degraded 1" in gw.gateway.metrics.registry.render()

        # Still alerting, from memory: an SOS raised now is delivered...
        held_site = sites[pressed]
        await press_sos(zigbee, held_site)
        [held] = await platform.wait_json(ALERTS, lambda b: b["site_id"] == held_site,
                                          timeout=20)
        # ...even when the uplink is down meanwhile: held in memory until it is back.
        outage_site = sites[pressed + 1]
        broker.stop()
        await wait_until(lambda: not gw.gateway.uplink.stats.connected, 20, "the outage")
        await press_sos(zigbee, outage_site)
        await wait_until(lambda: store.held_alerts >= 1, 20, "the alert to be held")
        held_during_outage = store.held_alerts
        broker.start()
        [during] = await platform.wait_json(ALERTS, lambda b: b["site_id"] == outage_site,
                                            timeout=30)
        # An ack while the disk is full: the alert is cleared and the clear is delivered.
        await platform.publish(f"{P}/cmd/ack", {"alert_id": held["alert_id"], "by": "w-9"})
        await platform.wait_json(
            ALERTS, lambda b: b["alert_id"] == held["alert_id"] and b["state"] == "cleared",
            timeout=20,
        )
        assert store.degraded, "nothing could have been written yet"
        deferred = store.deferred_writes

        # Room again: the held writes land, in order.
        await disk.free(store)
        t_free = time.monotonic()
        await wait_until(lambda: not store.degraded, 30, "the store to recover")
        recovered_after = time.monotonic() - t_free
        assert any("storage writable again" in r.getMessage() for r in caplog.records)
        assert "hearthgate_store_degraded 0" in gw.gateway.metrics.registry.render()
        await wait_until(
            lambda: not db_rows(disk.data_dir, "SELECT 1 FROM outbox WHERE kind='alert'"),
            20, "the outbox to drain",
        )
        states = dict(db_rows(disk.data_dir, "SELECT alert_id, state FROM alerts"))
        assert states[held["alert_id"]] == "cleared"
        assert states[during["alert_id"]] == "raised"
        acked = dict(db_rows(disk.data_dir, "SELECT alert_id, acked_by FROM alerts"))
        assert acked[held["alert_id"]] == "w-9"
        # A new alert after recovery, in the same uplink session, is numbered after the ones
        # that were held (the uplink's cursor has passed those) and arrives.
        after_site = sites[pressed + 2]
        await press_sos(zigbee, after_site)
        await platform.wait_json(ALERTS, lambda b: b["site_id"] == after_site, timeout=20)
        assert gw.running
        telemetry_dropped = store.telemetry_dropped

    # A restart reads the rules' state written on recovery: the alert raised while the disk
    # was full is still open, and an ack clears it.
    async with InProcessGateway(config):
        await platform.publish(f"{P}/cmd/ack", {"alert_id": during["alert_id"], "by": "w-9"})
        await platform.wait_json(
            ALERTS, lambda b: b["alert_id"] == during["alert_id"] and b["state"] == "cleared",
            timeout=20,
        )
    assert len(raised_at(outage_site)) >= 1
    record(
        f"disk_full_{type(disk).__name__}", presses_before_failure=pressed - 1,
        held_during_outage=held_during_outage, deferred_writes=deferred,
        full_for_s=round(t_free - t_full, 1), recovered_after_s=round(recovered_after, 1),
        telemetry_readings_dropped=telemetry_dropped,
    )
