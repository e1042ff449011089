"""The systemd notify protocol (sd_notify(3)) spoken over `$NOTIFY_SOCKET`.

A few lines of our own rather than a dependency: the protocol is one AF_UNIX datagram of
newline-separated `KEY=VALUE` assignments. Everything here is a no-op when the process does
not run under a `Type=notify` unit, so the same code path runs in tests and on a laptop.

The watchdog matters most: systemd kills and restarts the service when `WATCHDOG=1` stops
arriving within `WatchdogSec=`. The pings come from a task on the event loop and only while
the supervisor's health check passes, so a hung loop or a dead store writer stops them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)


def _socket_address(raw: str) -> str | None:
    """Map `$NOTIFY_SOCKET` to an address for socket.sendto, or None if unusable."""
    if raw.startswith("@"):
        # Linux abstract namespace: systemd writes the leading NUL as '@'.
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # vsock:... and relative paths are not used by systemd for services; ignore them.
    return None


class SystemdNotifier:
    """Readiness, status and watchdog notifications to systemd.

    `environ` defaults to os.environ and is read once, at construction.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._pid = os.getpid() if pid is None else pid
        self._watchdog_interval = self._read_watchdog(env)
        self._sleep = sleep
        self._sock: socket.socket | None = None
        self._warned_send = False

    def _read_watchdog(self, env: Mapping[str, str]) -> float | None:
        usec_text = env.get("WATCHDOG_USEC", "")
        if not usec_text:
            return None
        # systemd sets WATCHDOG_PID so a forked child does not ping in the parent's name.
        pid_text = env.get("WATCHDOG_PID", "")
        if pid_text:
            try:
                if int(pid_text) != self._pid:
                    return None
            except ValueError:
                return None
        try:
            usec = int(usec_text)
        except ValueError:
            return None
        if usec <= 0:
            return None
        # Half the timeout, as sd_watchdog_enabled(3) recommends.
        return usec / 2 / 1_000_000

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send one datagram with the given `KEY=VALUE` lines; True if it was sent."""
        if self._address is None or not assignments:
            return False
        # A newline inside a value would start a new assignment.
        message = "\n".join(a.replace("\n", " ") for a in assignments)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            # A missing socket is not a reason to stop the gateway; systemd will notice
            # the missing READY/WATCHDOG on its own.
            if not self._warned_send:
                log.warning("sd_notify to %r failed: %s", self._address, exc)
                self._warned_send = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify("STOPPING=1")
        return self.notify("STOPPING=1", f"STATUS={status}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time (e.g. a long SQLite recovery at boot)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WatchdogSec), or None when no watchdog is armed."""
        if self._address is None:
            return None
        return self._watchdog_interval

    async def watchdog_loop(self, healthy: Callable[[], bool]) -> None:
        """Ping every watchdog_interval() while healthy() is true; returns at once if disarmed.

        An unhealthy check skips the ping (and is logged once per episode) but keeps the loop
        alive, so a transient stall that recovers before the timeout costs nothing.
        """
        interval = self.watchdog_interval()
        if interval is None:
            return
        failing = False
        while True:
            try:
                ok = healthy()
            except Exception:
                log.exception("watchdog health check raised")
                ok = False
            if ok:
                if failing:
                    log.warning("health check passes again; watchdog pings resumed")
                    failing = False
                self.watchdog()
            elif not failing:
                log.error("health check failed; withholding watchdog pings (systemd restarts "
                          "the service if this lasts)")
                failing = True
            await self._sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
