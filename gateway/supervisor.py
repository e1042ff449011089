"""The supervisor: one TaskGroup that owns every task of the gateway.

A task that crashes is logged and restarted with exponential backoff (with
jitter, reset after a stable run); it never takes the gateway down. A task
marked `essential` (the rules loop, the store writer) that crashes stops the
gateway instead, with exit status 1, so that systemd restarts a clean process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger("hearthgate.supervisor")

BACKOFF_MIN = 0.5
BACKOFF_MAX = 60.0
STABLE_AFTER = 60.0  # a run this long resets the backoff


class EssentialTaskFailed(RuntimeError):
    """An essential task crashed; the gateway stops so that systemd restarts it clean."""


class Supervisor:
    """Starts named tasks in a TaskGroup it is given, and restarts the ones that crash.

    Every task of the gateway is started through `start`, so each has an owner and a name
    (`driver:<bus>:<protocol>`, `uplink`, `rules`, ...); nothing is fire-and-forget. A task
    that raises is logged and started again after an exponential backoff with jitter
    (`backoff_min` doubling up to `backoff_max`, reset after a run of `STABLE_AFTER` s), and
    `restarts` counts it; a task that returns is done. Cancellation is never swallowed.

    Args:
        tg: the TaskGroup that owns the tasks; leaving it cancels them all.

    Raises:
        EssentialTaskFailed: (inside the TaskGroup, so it ends the group) when a task started
            with `essential=True` raises.
    """

    def __init__(self, tg: asyncio.TaskGroup) -> None:
        self._tg = tg
        self.restarts: Counter[str] = Counter()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.backoff_min = BACKOFF_MIN
        self.backoff_max = BACKOFF_MAX

    def start(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        *,
        essential: bool = False,
        restart: bool = True,
    ) -> asyncio.Task[None]:
        """Run `factory()` as a task named `name`; restart it when it raises."""
        task = self._tg.create_task(self._supervise(name, factory, essential, restart), name=name)
        self.tasks[name] = task
        return task

    async def _supervise(
        self, name: str, factory: Callable[[], Awaitable[None]], essential: bool, restart: bool
    ) -> None:
        delay = self.backoff_min
        while True:
            started = time.monotonic()
            try:
                await factory()
                return  # finished on its own: nothing to restart
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if essential:
                    log.critical("essential task %s failed", name, exc_info=True)
                    raise EssentialTaskFailed(name) from exc
                self.restarts[name] += 1
                if not restart:
                    log.error("task %s failed; not restarting", name, exc_info=True)
                    return
                if time.monotonic() - started > STABLE_AFTER:
                    delay = self.backoff_min
                wait = delay * random.uniform(0.5, 1.0)
                log.error(
                    "task %s failed (%s: %s); restart %d in %.1fs",
                    name, type(exc).__name__, exc, self.restarts[name], wait,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                await asyncio.sleep(wait)
                delay = min(self.backoff_max, delay * 2)

    def alive(self) -> bool:
        return all(not t.done() or not t.cancelled() for t in self.tasks.values())
