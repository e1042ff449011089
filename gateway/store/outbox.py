"""The outbox: what waits for the broker's PUBACK, in three priority classes.

Alert transitions are committed with `synchronous=FULL` (with the alert log and the rules'
state that produced them) before they are published, and deleted only after the PUBACK.
Telemetry batches are written with lighter durability and are bounded: the oldest readings
are dropped first, alerts never. SD cards wear out, so telemetry reaches the disk only when
the uplink cannot take it at once (see gateway/uplink.py).

While the disk refuses writes (writer.py), alert transitions are held here in memory,
numbered after the outbox's last row, and `pending` still returns them; telemetry is dropped
and counted.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from hearthgate.core.model import AlertTransition, Priority
from hearthgate.store import alert_log, audit_log, state
from hearthgate.store.writer import Writer, storage_failure

FRESH_MAX = 1000  # alert rows kept per class for the uplink to take without a read

log = logging.getLogger("hearthgate.store")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One waiting publish: an alert transition or a telemetry batch of `readings` readings.

    `seq` orders the items of a class and names the item for `Outbox.delivered`.
    """

    seq: int
    priority: Priority
    kind: str
    event_id: str | None
    readings: int
    payload: str


async def stored_readings(db: aiosqlite.Connection) -> int:
    """How many telemetry readings the outbox of a file holds."""
    async with db.execute("SELECT COALESCE(SUM(readings), 0) FROM outbox") as cur:
        return int((await cur.fetchone())[0])


def unpacked(payload: str | bytes) -> str:
    """An outbox row's payload as published: an alert's is packed (state.pack: about 540
    bytes of JSON in 230, so that three rows share a 1 KiB page instead of each taking a
    page of its own from the free list, and giving it back at its PUBACK, in every commit)."""
    return payload if isinstance(payload, str) else state.unpack(payload)


async def _reserve_seq(db: aiosqlite.Connection, seq: int) -> None:
    cur = await db.execute(
        "UPDATE sqlite_sequence SET seq=MAX(seq, ?) WHERE name='outbox'", (seq,)
    )
    if not cur.rowcount:
        await db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('outbox', ?)", (seq,))


class Outbox:
    """The outbox of a store: add, read in order per priority class, delete on PUBACK.

    Writes go through `writer`, reads through `reader` (a connection of their own, which
    never sees a transaction the writer has not committed). The outbox is the writer's
    `Holding`: it keeps the alert transitions the disk would not take.

    Args:
        writer: the store's one writer.
        reader: the store's read connection.
        telemetry_bound: readings of telemetry kept at most; beyond, the oldest are dropped.
        telemetry_readings: readings of telemetry already in the file (`stored_readings`).

    Raises:
        sqlite3.Error: (from `add_alerts` and `add_telemetry`) a failure other than lack of
            room; for lack of room alerts are held and telemetry dropped instead.
    """

    def __init__(
        self, writer: Writer, reader: aiosqlite.Connection, telemetry_bound: int,
        telemetry_readings: int = 0,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self.telemetry_bound = telemetry_bound
        self.telemetry_dropped = 0
        self._telemetry_readings = telemetry_readings
        # Bumped after each committed (or held) insert, per priority class: lets the uplink
        # skip re-reading an outbox class it found empty when nothing was added since.
        self.added: dict[Priority, int] = dict.fromkeys(Priority, 0)
        # The alert rows just committed, per class, with the class's `added` count that
        # took them in: the uplink publishes one that is next in line as it is, without
        # reading it back (a round trip to the reader's thread on an SOS's path). Bounded:
        # rows it cannot take so are read from the outbox as every other row is.
        self.fresh: dict[Priority, deque[tuple[int, OutboxItem]]] = {
            p: deque(maxlen=FRESH_MAX) for p in (Priority.URGENT, Priority.ALERT)}
        # Degraded mode (disk full): the alert rows the uplink must still see.
        self._held: dict[int, OutboxItem] = {}
        self._held_seq = 0
        self._gone: set[int] = set()  # delivered, but their DELETE is among the deferred

    # -- held in memory while the disk is full (the writer's Holding) -------------------

    @property
    def held_alerts(self) -> int:
        """Alert transitions accepted but not on disk (still published from memory)."""
        return len(self._held)

    async def degrading(self) -> None:
        if not self._held:
            # Held alerts take the outbox's next numbers, so that the uplink's cursors and
            # the rows written on recovery agree; nothing else enters the outbox meanwhile.
            rows = await self._reader.execute_fetchall(
                "SELECT COALESCE(MAX(seq), 0) FROM"
                " (SELECT seq FROM sqlite_sequence WHERE name='outbox'"
                "  UNION ALL SELECT MAX(seq) FROM outbox)"
            )
            row = next(iter(rows))
            self._held_seq = max(self._held_seq, int(row[0] or 0))

    def recovered(self) -> int:
        held = len(self._held)
        self._held.clear()
        self._gone.clear()
        return held

    # -- adding -------------------------------------------------------------------------

    async def add_alerts(
        self, transitions: Sequence[AlertTransition], payloads: Sequence[str],
        engine_state: state.EngineWrite | None = None,
    ) -> list[int]:
        """Commit alert transitions durably (with the engine state that produced them).

        If the disk cannot take them they are held in memory (the uplink still sends them)
        and written once it can: an alert is never refused for lack of room.
        """

        async def job(db: aiosqlite.Connection) -> list[int]:
            seqs: list[int] = []
            for t, payload in zip(transitions, payloads, strict=True):
                cur = await db.execute(
                    "INSERT INTO outbox(priority, kind, event_id, readings, payload)"
                    " VALUES (?, 'alert', ?, 0, ?)",
                    (int(t.priority), t.event_id, state.pack(payload)),
                )
                seqs.append(int(cur.lastrowid or 0))
                await alert_log.upsert(db, t, 1)
            if engine_state is not None:
                await state.put_engine(db, engine_state)
            return seqs

        seqs: list[int] | None = None
        if not self._writer.degraded:
            try:
                seqs = list(await self._writer.commit(job, durable=True))
            except Exception as exc:
                if not storage_failure(exc):
                    raise
                await self._writer.degrade(exc)
        held = seqs is None
        if seqs is None:
            seqs = self._hold_alerts(transitions, payloads, engine_state)
        for t, payload, seq in zip(transitions, payloads, seqs, strict=True):
            self.added[t.priority] += 1
            fresh = None if held else self.fresh.get(t.priority)
            if fresh is not None:  # held rows are the uplink's through `pending`
                item = OutboxItem(seq, t.priority, "alert", t.event_id, 0, payload)
                fresh.append((self.added[t.priority], item))
        return seqs

    def _hold_alerts(
        self, transitions: Sequence[AlertTransition], payloads: Sequence[str],
        engine_state: state.EngineWrite | None,
    ) -> list[int]:
        items: list[tuple[AlertTransition, OutboxItem]] = []
        for t, payload in zip(transitions, payloads, strict=True):
            self._held_seq += 1
            item = OutboxItem(self._held_seq, t.priority, "alert", t.event_id, 0, payload)
            self._held[item.seq] = item
            items.append((t, item))

        async def replay(db: aiosqlite.Connection) -> None:
            for t, item in items:
                # Delivered while held: only the local alert log needs it.
                unsent = item.seq in self._held
                if unsent:
                    await db.execute(
                        "INSERT INTO outbox(seq, priority, kind, event_id, readings, payload)"
                        " VALUES (?, ?, 'alert', ?, 0, ?)",
                        (item.seq, int(item.priority), item.event_id, state.pack(item.payload)),
                    )
                await alert_log.upsert(db, t, int(unsent))
            # Numbers handed out while held are used up even if those transitions were
            # delivered from memory: the uplink's cursor has passed them.
            await _reserve_seq(db, items[-1][1].seq)
            if engine_state is not None:
                await state.put_engine(db, engine_state)

        self._writer.defer(replay)
        log.error(
            "%d alert transitions held in memory (%d in all): the disk takes no writes",
            len(items), len(self._held),
        )
        return [item.seq for _, item in items]

    async def add_telemetry(self, payloads: Iterable[tuple[str, int]]) -> None:
        """Keep telemetry batches (payload, number of readings) until the uplink takes them."""
        items = list(payloads)
        if not items:
            return
        if self._writer.degraded:
            # Alerts are waiting for room: telemetry yields (and would take their outbox numbers).
            self._drop_telemetry(items, "the disk takes no writes")
            return

        async def job(db: aiosqlite.Connection) -> None:
            await db.executemany(
                "INSERT INTO outbox(priority, kind, readings, payload)"
                " VALUES (?, 'telemetry', ?, ?)",
                [(int(Priority.TELEMETRY), n, p) for p, n in items],
            )
            self._telemetry_readings += sum(n for _, n in items)
            await self._enforce_bound(db)

        before = self._telemetry_readings
        try:
            await self._writer.write(job, durable=False)
        except Exception as exc:
            if not storage_failure(exc):
                raise
            self._telemetry_readings = before  # the job's count was rolled back with it
            self._drop_telemetry(items, str(exc))
        else:
            self.added[Priority.TELEMETRY] += 1

    def _drop_telemetry(self, items: list[tuple[str, int]], why: str) -> None:
        n = sum(r for _, r in items)
        self.telemetry_dropped += n
        log.error("telemetry dropped: %d readings (%d so far): %s", n, self.telemetry_dropped, why)

    async def _enforce_bound(self, db: aiosqlite.Connection) -> None:
        while self._telemetry_readings > self.telemetry_bound:
            async with db.execute(
                "SELECT seq, readings FROM outbox WHERE kind='telemetry' ORDER BY seq LIMIT 100"
            ) as cur:
                rows = await cur.fetchall()
            if not rows:
                break
            drop: list[int] = []
            for seq, n in rows:
                if self._telemetry_readings <= self.telemetry_bound:
                    break
                drop.append(seq)
                self._telemetry_readings -= n
                self.telemetry_dropped += n
            await db.executemany("DELETE FROM outbox WHERE seq=?", [(s,) for s in drop])
            log.warning(
                "telemetry buffer full: dropped the %d oldest readings so far",
                self.telemetry_dropped,
            )

    # -- the access trail (issue 18) ----------------------------------------------------

    async def add_audit(self, payload: str, at_s: float, keep: int) -> bool:
        """Keep one `P/audit` record in the local trail and in the outbox, durably, in the
        telemetry class (after every alert) but never dropped with telemetry; False when the
        disk takes no writes (the caller logs the record instead)."""
        if self._writer.degraded:
            return False

        async def job(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO outbox(priority, kind, readings, payload) VALUES (?, 'audit', 0, ?)",
                (int(Priority.TELEMETRY), payload),
            )
            await audit_log.add(db, at_s, payload, keep)

        try:
            await self._writer.write(job, durable=True)
        except Exception as exc:
            if not storage_failure(exc):
                raise
            return False
        self.added[Priority.TELEMETRY] += 1
        return True

    # -- reading and deleting -----------------------------------------------------------

    async def pending(
        self, priority: Priority, after_seq: int = 0, limit: int = 100
    ) -> list[OutboxItem]:
        """Waiting items of one priority class in order, from `after_seq` on (a read; no writer)."""
        gone = self._gone
        # Executed and fetched in one call on the reader's thread, never as execute() then
        # fetchall(): a caller cancelled between the two (the uplink's sender, when the link
        # drops) left a stepped statement that aiosqlite's thread kept alive, and with it a
        # read transaction, so the next read saw the outbox as it was before (issue 12; see
        # tests/delivery/test_stale_read.py).
        rows = await self._reader.execute_fetchall(
            "SELECT seq, priority, kind, event_id, readings, payload FROM outbox"
            " WHERE priority=? AND seq>? ORDER BY seq LIMIT ?",
            (int(priority), after_seq, limit + len(gone)),
        )
        items = [OutboxItem(r[0], Priority(r[1]), r[2], r[3], r[4], unpacked(r[5])) for r in rows]
        if gone:
            items = [i for i in items if i.seq not in gone]
        if self._held:
            seen = {i.seq for i in items}
            items += [
                i for i in self._held.values()
                if i.priority == priority and i.seq > after_seq and i.seq not in seen
            ]
            items.sort(key=lambda i: i.seq)
        return items[:limit]

    async def delivered(self, items: Sequence[OutboxItem]) -> None:
        """PUBACK received: remove these from the outbox."""
        if not items:
            return
        for item in items:
            self._held.pop(item.seq, None)
        if self._writer.degraded:
            self._gone.update(i.seq for i in items)
        alerts = [i for i in items if i.kind == "alert"]
        telemetry = [i for i in items if i.kind != "alert"]

        async def job(db: aiosqlite.Connection) -> None:
            if telemetry:
                await db.executemany(
                    "DELETE FROM outbox WHERE seq=?", [(i.seq,) for i in telemetry]
                )
                self._telemetry_readings -= sum(i.readings for i in telemetry)
            for item in alerts:
                cur = await db.execute("DELETE FROM outbox WHERE seq=?", (item.seq,))
                # A transition delivered while held in memory never got a row to delete.
                if cur.rowcount:
                    await alert_log.delivered(db, json.loads(item.payload)["alert_id"])

        # Lazy: the deletions PUBACKs bring within a second share one commit (writer.py).
        await self._writer.write(job, durable=False, defer=True, lazy=True)

    async def received(self, event_ids: Sequence[str]) -> None:
        """The platform's receipt: remove the alert transitions with these event_ids. Ones
        already gone (a receipt repeated, or for a transition of another gateway) are no-ops."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return
        held = {i.event_id: i for i in self._held.values()}
        items = [held[e] for e in ids if e in held]
        for item in items:
            self._held.pop(item.seq, None)

        async def job(db: aiosqlite.Connection) -> None:
            for event_id in ids:
                rows = await db.execute_fetchall(
                    "DELETE FROM outbox WHERE kind='alert' AND event_id=? RETURNING payload",
                    (event_id,),
                )
                for (payload,) in rows:
                    await alert_log.delivered(db, json.loads(unpacked(payload))["alert_id"])

        if self._writer.degraded:
            # Their DELETE waits with the held writes; `pending` must not return them meanwhile.
            seqs = await self._reader.execute_fetchall(
                f"SELECT seq FROM outbox WHERE event_id IN ({','.join('?' * len(ids))})", ids
            )
            self._gone.update(int(r[0]) for r in seqs)
            self._gone.update(i.seq for i in items)
        # Lazy: the deletions PUBACKs bring within a second share one commit (writer.py).
        await self._writer.write(job, durable=False, defer=True, lazy=True)

    async def depth(self) -> dict[Priority, int]:
        """Items waiting on disk, per priority class."""
        rows = await self._reader.execute_fetchall(
            "SELECT priority, COUNT(*) FROM outbox GROUP BY priority"
        )
        out = dict.fromkeys(Priority, 0)
        out.update({Priority(p): n for p, n in rows})
        return out
