"""A scaled clock whose pace can change while things sleep on it (for `hearthgate demo`).

`ScaledClock` fixes its factor for good, and a sleeper converts its wait to real
seconds once. The demo needs to change pace: real pace while brokers, ports and
the gateway connect, then an hour a second for the day, then real pace again
for a clean stop. A driver that went to sleep for a 5-minute poll at real pace
must wake in a twelfth of a second once the day speeds up, so sleepers here
re-aim whenever the pace changes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from hearthgate.core.model import Instant


class PacedClock:
    """Simulated time running `factor` times faster than the machine's; `set_pace` changes it."""

    def __init__(self, start: datetime | None = None, factor: float = 1.0) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self._wall0 = start if start is not None else datetime.now(UTC)
        self._real_anchor = time.monotonic()
        self._mono_anchor = 0.0
        self._sleepers: set[asyncio.Future[None]] = set()

    def now(self) -> Instant:
        mono = self._mono_anchor + (time.monotonic() - self._real_anchor) * self.factor
        return Instant(mono, self._wall0 + timedelta(seconds=mono))

    def set_pace(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self._mono_anchor = self.now().mono
        self._real_anchor = time.monotonic()
        self.factor = factor
        # Wake every sleeper; each one re-computes its real wait at the new pace.
        for fut in list(self._sleepers):
            _wake(fut)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now().mono + max(0.0, seconds))

    async def sleep_until(self, mono: float) -> None:
        # A bare future and a timer rather than asyncio.wait_for: on Python 3.11 wait_for
        # can swallow a cancellation that arrives as its inner wait completes, which would
        # leave a driver sleeping through the gateway's shutdown.
        loop = asyncio.get_running_loop()
        while True:
            remaining = mono - self.now().mono
            if remaining <= 0:
                await asyncio.sleep(0)
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._sleepers.add(fut)
            timer = loop.call_later(remaining / self.factor, _wake, fut)
            try:
                await fut
            finally:
                timer.cancel()
                self._sleepers.discard(fut)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
