"""The health fields of `P/status`: what a fleet dashboard needs to see of each gateway.

`FleetHealth.fields()` is the dict merged into the retained `online` status (docs/mqtt-api.md):
`uptime_s`, `config_hash`, `outbox` (transitions and batches waiting, per class),
`disk_free_mb` (where the store lives), `clock_synced` (NTP, None when it cannot be
told) and `store_degraded`. `run()` refreshes them every few seconds and republishes the
status when something that matters changed (the store degraded or recovered, the clock
synced or lost sync, the config changed, an alert waits or stops waiting, or another part
of the status says so with `changed()`) and every `uplink.status_interval` otherwise. The
service adds `coverage` beside them (`Gateway._coverage_status`) and calls `changed()` when
a rule goes blind or watches again, so the retained status tells at once.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from hearthgate.core.model import Priority
from hearthgate.store import Store
from hearthgate.uplink import Uplink

log = logging.getLogger("hearthgate.fleet_health")

CHECK_EVERY = 5.0  # s between looks at what matters (cheap: one query, one statvfs)
CLOCK_EVERY = 60.0  # s between asks whether the clock is synchronised
TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
PROCESS_STARTED = time.monotonic()
CLASS_NAMES = {Priority.URGENT: "urgent", Priority.ALERT: "alert",
               Priority.TELEMETRY: "telemetry"}


def kernel_clock_synced() -> bool | None:
    """The kernel's NTP state from adjtimex(2) in read-only mode (any NTP daemon sets it);
    None when the call is refused (systemd's @clock filter refuses it in our unit)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: only read
        state = libc.adjtimex(timex)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


async def timedatectl_synced() -> bool | None:
    """`timedatectl show -p NTPSynchronized --value` (systemd-timedated over D-Bus)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "timedatectl", "show", "-p", "NTPSynchronized", "--value",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(3):
            out, _ = await proc.communicate()
    except (OSError, TimeoutError):
        return None
    value = out.decode(errors="replace").strip()
    return {"yes": True, "no": False}.get(value)


async def clock_synced() -> bool | None:
    synced = kernel_clock_synced()
    return synced if synced is not None else await timedatectl_synced()


def disk_free_mb(path: Path) -> int | None:
    try:
        return int(shutil.disk_usage(path).free // (1024 * 1024))
    except OSError:
        return None


class FleetHealth:
    """The gateway's health as `P/status` carries it, kept fresh.

    Args:
        store: the store whose outbox depth and degraded mode are reported.
        data_dir: where the store lives (for `disk_free_mb`).
        config_hash: the running config file's hash (`hearthgate.config_files.config_hash`).
        status_interval: seconds between republishes when nothing changed.
        started: monotonic time the process started (uptime survives config reloads).
    """

    def __init__(self, store: Store, data_dir: Path, config_hash: str,
                 status_interval: float, started: float = PROCESS_STARTED) -> None:
        self.store = store
        self.data_dir = data_dir
        self.config_hash = config_hash
        self.status_interval = status_interval
        self.started = started
        self.outbox: dict[str, int] = dict.fromkeys(CLASS_NAMES.values(), 0)
        self.disk_free_mb: int | None = disk_free_mb(data_dir)
        self.clock_synced: bool | None = None
        self._clock_checked = float("-inf")
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """Another part of the status changed in a way that matters: republish now."""
        self._changed.set()

    def fields(self) -> dict[str, Any]:
        """The health fields for the `online` status, as of the last refresh."""
        return {
            "uptime_s": int(time.monotonic() - self.started),
            "config_hash": self.config_hash,
            "outbox": dict(self.outbox),
            "disk_free_mb": self.disk_free_mb,
            "clock_synced": self.clock_synced,
            "store_degraded": self.store.degraded,
        }

    def what_matters(self) -> tuple[Any, ...]:
        """What, when it changes, is worth a status at once (not the counts themselves)."""
        waiting = self.outbox["urgent"] > 0 or self.outbox["alert"] > 0
        low = self.disk_free_mb is not None and self.disk_free_mb < 100
        return (self.store.degraded, self.clock_synced, self.config_hash, waiting, low)

    async def refresh(self) -> None:
        depth = await self.store.depth()
        self.outbox = {CLASS_NAMES[p]: int(depth.get(p, 0)) for p in CLASS_NAMES}
        self.disk_free_mb = await asyncio.to_thread(disk_free_mb, self.data_dir)
        if time.monotonic() - self._clock_checked >= CLOCK_EVERY:
            self._clock_checked = time.monotonic()
            self.clock_synced = await clock_synced()

    async def run(self, uplink: Uplink) -> None:
        """Refresh and republish `P/status` until cancelled (a supervised task)."""
        await self.refresh()
        published: tuple[Any, ...] | None = None
        last = float("-inf")
        was_connected = False
        pending = False  # a change() not yet published
        while True:
            connected = uplink.stats.connected
            # Taken before publishing: a change during the publish is published next.
            pending = pending or self._changed.is_set()
            self._changed.clear()
            if connected:
                matters = self.what_matters()
                # The session itself published a fresh status on connecting (a change()
                # since may have come after it: that one is still published).
                if not was_connected:
                    published, last = matters, time.monotonic()
                if pending or (was_connected and (
                        matters != published or time.monotonic() - last >= self.status_interval)):
                    if await uplink.publish_status():
                        published, last, pending = matters, time.monotonic(), False
            was_connected = connected
            try:
                async with asyncio.timeout(CHECK_EVERY):
                    await self._changed.wait()
            except TimeoutError:
                pass
            await self.refresh()
