"""Clocks. Rules and drivers take one; tests drive a simulated one.

`SystemClock` reads the machine. `SimulatedClock` moves only when told, and can
make the wall clock jump (as NTP does at a Raspberry Pi's boot) without moving
the monotonic one. `ScaledClock` runs faster than real time (the demo).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from hearthgate.core.model import Instant


class Clock(Protocol):
    def now(self) -> Instant: ...

    async def sleep(self, seconds: float) -> None: ...

    async def sleep_until(self, mono: float) -> None: ...


class SystemClock:
    def now(self) -> Instant:
        return Instant(time.monotonic(), datetime.now(UTC))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, mono: float) -> None:
        await asyncio.sleep(max(0.0, mono - time.monotonic()))


class ScaledClock:
    """Time that runs `factor` times faster than the machine's, from `start` on."""

    def __init__(self, factor: float, start: datetime | None = None) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self._mono0 = time.monotonic()
        self._wall0 = start if start is not None else datetime.now(UTC)

    def now(self) -> Instant:
        elapsed = (time.monotonic() - self._mono0) * self.factor
        return Instant(elapsed, self._wall0 + timedelta(seconds=elapsed))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)

    async def sleep_until(self, mono: float) -> None:
        await self.sleep(mono - self.now().mono)


class SimulatedClock:
    """A clock that moves only when `advance` or `jump_wall` is called.

    Sleepers are woken in deadline order as time passes, so a driver polling every
    5 minutes polls 144 times when a test advances 12 hours.
    """

    def __init__(self, start: datetime | None = None, mono: float = 1000.0) -> None:
        self._mono = mono
        self._wall = start if start is not None else datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> Instant:
        return Instant(self._mono, self._wall)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._mono + max(0.0, seconds))

    async def sleep_until(self, mono: float) -> None:
        if mono <= self._mono:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (mono, next(self._seq), fut))
        await fut

    def set(self, mono: float, wall: datetime) -> None:
        """Move both readings at once, without waking sleepers (for replaying recorded time)."""
        self._mono = mono
        self._wall = wall

    async def advance(self, seconds: float) -> None:
        """Move both clocks forward, waking each sleeper at its own deadline."""
        target = self._mono + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._wall += timedelta(seconds=deadline - self._mono)
            self._mono = deadline
            if not fut.done():
                fut.set_result(None)
            # Let the woken task run (and perhaps sleep again) before time moves on.
            for _ in range(5):
                await asyncio.sleep(0)
        self._wall += timedelta(seconds=target - self._mono)
        self._mono = target
        await asyncio.sleep(0)

    def jump_wall(self, seconds: float) -> None:
        """The wall clock jumps (NTP at boot); the monotonic clock does not move."""
        self._wall += timedelta(seconds=seconds)
