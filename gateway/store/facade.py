"""`Store`: the store as the service and the uplink use it, one object over its parts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from hearthgate.core.model import AlertTransition, Priority
from hearthgate.store import (
    alert_log,
    audit_log,
    dirsync,
    erasure,
    pages,
    retention,
    schema,
    state,
    summaries,
    writer,
)
from hearthgate.store.alert_log import AlertRow
from hearthgate.store.outbox import Outbox, OutboxItem, stored_readings
from hearthgate.store.writer import Writer


class Store:
    """The gateway's SQLite store: the outbox, the local alert log, saved rule and device state.

    Made by `Store.open`. Every write goes through one writer task (`start()`, or `run()`
    under a supervisor with `adopt_writer`); without one, writes commit inline (tools,
    tests). `close()` lets every accepted write land first. Alert transitions and acks are
    committed with `synchronous=FULL`; when the disk takes no writes they are held in memory
    (and still published) and written, in order, once it does: lack of room never refuses an
    alert. Telemetry is dropped and counted meanwhile.

    Args:
        conn: the write connection, schema applied (`Store.open` makes it).
        reader: a second connection, for reads that must not see uncommitted writes.
        path: the database file.
        telemetry_bound: readings of telemetry kept at most; beyond, the oldest are dropped.
        telemetry_readings: readings of telemetry already in the file.

    Raises:
        RuntimeError: (from `open`) the file was written by a newer hearthgate.
        sqlite3.Error: a write that failed for a reason other than lack of room or a failing
            disk (a bug in a query, a corrupt file).
        ValueError: any call after `close()`.
    """

    def __init__(
        self, conn: aiosqlite.Connection, reader: aiosqlite.Connection, path: Path,
        telemetry_bound: int, telemetry_readings: int = 0,
    ) -> None:
        # Reads go through their own connection so that they never see, or slip into,
        # a transaction the writer has not committed yet.
        self._reader = reader
        self.path = path
        self._writer = Writer(conn, path)
        self._outbox = Outbox(self._writer, reader, telemetry_bound, telemetry_readings)
        self._writer.holding = self._outbox

    # -- lifecycle ------------------------------------------------------------

    @classmethod
    async def open(cls, data_dir: Path, telemetry_bound: int = 200_000) -> Store:
        """Open (or create) the store in `data_dir`; keep at most `telemetry_bound` readings."""
        await asyncio.to_thread(dirsync.make_dirs_durably, data_dir)
        path = data_dir / schema.DB_NAME
        conn = await writer.connect(path)
        await schema.apply(conn, path)
        await pages.adopt(conn, path)
        # SQLite never fsyncs the directory for the database file it creates: the file
        # could vanish in a power cut, however durable its commits (dirsync.py).
        await asyncio.to_thread(dirsync.sync_dir, data_dir)
        reader = await aiosqlite.connect(path, isolation_level=None)
        reader.row_factory = sqlite3.Row
        await reader.execute("PRAGMA busy_timeout=5000")
        return cls(conn, reader, path, telemetry_bound, await stored_readings(conn))

    async def run(self) -> None:
        """The one writer: commit queued jobs in groups until cancelled."""
        await self._writer.run()

    def start(self) -> None:
        """Run the writer as a task of the store's own."""
        self._writer.start()

    def adopt_writer(self, task: asyncio.Task[None]) -> None:
        """Write through `task`, started elsewhere on `run()` (under a supervisor)."""
        self._writer.task = task

    def forget_writer(self) -> None:
        """The adopted task has been stopped by its owner: `close()` must not wait for it."""
        self._writer.task = None

    async def close(self) -> None:
        """Let every accepted write land (or say loudly what the disk would not take), then
        close the connections."""
        await self._writer.finish()
        await self._reader.close()
        await self._writer.close()

    # -- what the metrics show ------------------------------------------------------

    @property
    def commits(self) -> int:
        """Transactions committed so far (one per group of writes)."""
        return self._writer.commits

    @property
    def degraded(self) -> bool:
        """True while some accepted writes exist only in memory."""
        return self._writer.degraded

    @property
    def degraded_since(self) -> float | None:
        """time.monotonic() of the write that started the current degraded spell."""
        return self._writer.degraded_since

    @property
    def storage_failures(self) -> int:
        """Writes (and retries) that failed for lack of room or a failing disk."""
        return self._writer.storage_failures

    @property
    def held_alerts(self) -> int:
        """Alert transitions accepted but not on disk (still published from memory)."""
        return self._outbox.held_alerts

    @property
    def deferred_writes(self) -> int:
        return self._writer.deferred_writes

    @property
    def telemetry_bound(self) -> int:
        return self._outbox.telemetry_bound

    @property
    def telemetry_dropped(self) -> int:
        """Telemetry readings dropped: over the bound, or while the disk took no writes."""
        return self._outbox.telemetry_dropped

    @property
    def fresh(self) -> dict[Priority, deque[tuple[int, OutboxItem]]]:
        """Alert rows just committed, per class, with the `added` count that took each in
        (`Outbox.fresh`): the uplink's to take without reading them back."""
        return self._outbox.fresh

    @property
    def added(self) -> dict[Priority, int]:
        """Inserts per priority class so far: an outbox class read short needs no new read
        until its count moves."""
        return self._outbox.added

    async def retry_deferred(self) -> bool:
        """Try to write everything held; True when nothing is held any more."""
        return await self._writer.retry_deferred()

    # -- outbox ---------------------------------------------------------------

    async def add_alerts(
        self, transitions: Sequence[AlertTransition], payloads: Sequence[str],
        engine_state: state.EngineWrite | None = None,
    ) -> list[int]:
        """Commit alert transitions durably (with the engine state that produced them), or
        hold them in memory while the disk takes no writes; their outbox numbers."""
        return await self._outbox.add_alerts(transitions, payloads, engine_state)

    async def add_telemetry(self, payloads: Iterable[tuple[str, int]]) -> None:
        """Keep telemetry batches (payload, number of readings) until the uplink takes them."""
        await self._outbox.add_telemetry(payloads)

    async def pending(
        self, priority: Priority, after_seq: int = 0, limit: int = 100
    ) -> list[OutboxItem]:
        """Waiting items of one priority class in order, from `after_seq` on (a read; no writer)."""
        return await self._outbox.pending(priority, after_seq, limit)

    async def delivered(self, items: Sequence[OutboxItem]) -> None:
        """PUBACK received: remove these from the outbox."""
        await self._outbox.delivered(items)

    async def received(self, event_ids: Sequence[str]) -> None:
        """The platform's receipt (`uplink.receipts`): remove these alert transitions."""
        await self._outbox.received(event_ids)

    async def depth(self) -> dict[Priority, int]:
        return await self._outbox.depth()

    # -- alert log ------------------------------------------------------------

    async def mark_acknowledged(self, alert_id: str, by: str, at: str) -> None:
        async def job(db: aiosqlite.Connection) -> None:
            await alert_log.acknowledge(db, alert_id, by, at)

        await self._writer.write(job, durable=True, defer=True)

    async def alerts(self, limit: int = 1000) -> list[AlertRow]:
        return await alert_log.newest(self._reader, limit)

    # -- summaries, the access trail, erasure and retention (docs/privacy.md) ----------

    async def add_summaries(self, items: Sequence[dict[str, Any]]) -> None:
        """Keep hourly site summaries (they are also offered to the uplink)."""
        async def job(db: aiosqlite.Connection) -> None:
            await summaries.add(db, items)

        await self._writer.write(job, durable=False, defer=True)

    async def add_audit(self, payload: str, at_s: float, keep: int) -> bool:
        """One `P/audit` record into the local trail (at most `keep`) and the outbox; False
        when the disk takes no writes."""
        return await self._outbox.add_audit(payload, at_s, keep)

    async def audit_trail(self, limit: int = 1000) -> list[dict[str, Any]]:
        return await audit_log.newest(self._reader, limit)

    async def summaries(self, site_id: str) -> list[dict[str, Any]]:
        return await summaries.of_site(self._reader, site_id)

    async def holds_site(self, site_id: str) -> bool:
        return await erasure.holds_site(self._reader, site_id)

    async def erase_site(self, site: erasure.SiteRef) -> list[tuple[str, int]]:
        """Erase everything kept of one site, in one durable transaction; what went."""
        async def job(db: aiosqlite.Connection) -> list[tuple[str, int]]:
            async with pages.scrubbing(db):
                return await erasure.erase_site(db, site)

        return list(await self._writer.commit(job, durable=True))

    async def prune(self, cutoffs: dict[str, float], limit: int = 500) -> dict[str, int]:
        """One bounded pruning pass (retention.py): rows removed per area."""
        async def job(db: aiosqlite.Connection) -> dict[str, int]:
            async with pages.scrubbing(db):
                return await retention.prune(db, cutoffs, limit)

        return dict(await self._writer.commit(job, durable=False))

    # -- key-value state ------------------------------------------------------

    async def put_state(self, key: str, value: Any, durable: bool = False,
                        lazy: bool = False) -> None:
        """Set `key` to `value` (JSON). A `lazy` write (not durable) may wait up to a second
        to share a commit with others (writer.LAZY_WINDOW)."""
        text = state.encode(value)

        async def job(db: aiosqlite.Connection) -> None:
            await state.put(db, key, text)

        await self._writer.write(job, durable=durable, defer=True, lazy=lazy)

    def hurry(self) -> None:
        """Commit the lazy writes waiting now (the uplink, before it reads the outbox anew)."""
        self._writer.hurry()

    async def get_state(self, key: str) -> Any | None:
        return await state.get(self._reader, key)

    async def put_engine_state(self, write: state.EngineWrite, durable: bool = False,
                               also: dict[str, Any] | None = None) -> None:
        """Write the rule engine's header and the parts of some sites (all, if `full`), and
        the keys of `also` (the device health) in the same commit: two commits would each
        write the WAL's pages of their own (SD-card wear)."""
        texts = {key: state.encode(value) for key, value in (also or {}).items()}

        async def job(db: aiosqlite.Connection) -> None:
            await state.put_engine(db, write)
            for key, text in texts.items():
                await state.put(db, key, text)

        await self._writer.write(job, durable=durable, defer=True)

    async def get_engine_state(self) -> dict[str, Any] | None:
        """The rule engine's saved state, ready for `RuleEngine.restore` (split rows joined;
        an older single snapshot as it was saved); None when nothing was saved."""
        return await state.get_engine(self._reader)
