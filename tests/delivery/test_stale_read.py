"""A `pending()` read cancelled after its SELECT ran must not leave the reader on an old snapshot.

The uplink's sender is cancelled whenever the link drops, often while it awaits a read. If
aiosqlite's thread has already run the SELECT (the statement stepped, its read transaction
open) and the awaiting task is cancelled before it takes the cursor, nobody ever finishes
that statement: the reader stays inside that transaction, and later reads miss every row
committed since (issue 12: 19 and 39 SOS transitions stuck `pending` with the link up).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from hearthgate.core.model import Priority
from hearthgate.store import Store
from tests.spine.test_store import payload, transition


class SelectWatch:
    """Tells, from the reader's own thread, when a SELECT has run on it."""

    def __init__(self) -> None:
        self.ran = threading.Event()

    def __call__(self, sql: str) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            self.ran.set()

    @classmethod
    async def on(cls, store: Store) -> SelectWatch:
        watch = cls()
        # Installed once and left on: anything run on the reader's thread after a cancelled
        # read (even removing this callback) would let go of that read's cursor and hide
        # the bug from the read that follows.
        await store._reader.set_trace_callback(watch)
        return watch

    async def cancel_after_select(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro`, and cancel it after the reader's thread has run its SELECT but before
        the event loop has handed the result back (the loop is held until the thread ran it)."""
        self.ran.clear()
        task = asyncio.ensure_future(coro)
        await asyncio.sleep(0)  # the task queues its read on the reader's thread
        # No await from here to the cancel: the thread's result cannot reach the task first.
        assert self.ran.wait(10), "the read never ran"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_read_cancelled_after_its_select_does_not_hide_later_rows(tmp_path):
    store = await Store.open(tmp_path)
    store.start()
    try:
        first = transition("sos")
        await store.add_alerts([first], [payload(first)])
        watch = await SelectWatch.on(store)
        for _ in range(3):  # a few times over: each cancel must leave the reader clean
            await watch.cancel_after_select(store.pending(Priority.URGENT, 0, 100))
        later = [transition("sos") for _ in range(3)]
        await store.add_alerts(later, [payload(t) for t in later])
        seen = [i.event_id for i in await store.pending(Priority.URGENT, 0, 100)]
        assert seen == [first.event_id] + [t.event_id for t in later]
        assert (await store.depth())[Priority.URGENT] == 4
    finally:
        await store.close()


async def test_other_reads_cancelled_after_their_select_do_not_hide_later_rows(tmp_path):
    store = await Store.open(tmp_path)
    store.start()
    try:
        watch = await SelectWatch.on(store)
        await store.put_state("k", {"v": 1}, durable=True)
        await watch.cancel_after_select(store.depth())
        await watch.cancel_after_select(store.alerts())
        await watch.cancel_after_select(store.get_state("k"))
        t = transition("no_water")
        await store.add_alerts([t], [payload(t)])
        await store.put_state("k", {"v": 2}, durable=True)
        assert [i.event_id for i in await store.pending(Priority.ALERT)] == [t.event_id]
        assert await store.get_state("k") == {"v": 2}
        assert [a.alert_id for a in await store.alerts()] == [t.alert_id]
    finally:
        await store.close()
