"""The key-value area: the rules engine's state and the device health snapshot
("devices"), as JSON, so that both survive a restart.

The engine's state is kept split by site (`rules.engine.snapshot.split_snapshot`): a header
row "engine" and one row "engine/<site id>" per site, so that an alert commit rewrites the
header (a hundred bytes) and its own site's row, not the state of every site (118 KB with
200 alerts open, all of it on the SOS's fsync). An "engine" row of the older single-snapshot
form is read as it is; the service then writes the split form in full (`EngineWrite.full`),
which removes it.

A value longer than PACK_OVER characters is stored zlib-compressed (a BLOB; shorter ones
and older rows stay TEXT, and `decode` reads both): a site's part with one SOS open is
about 1 KB of JSON (300 bytes packed), which in the store's 1 KiB pages (pages.py) spilled
into an overflow page, and with it the free list and the file's first page joined every
alert commit; the device snapshot of 200 devices, written at every state save, shrinks
from 36 KB to about 1 KB.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from hearthgate.rules.engine.snapshot import SPLIT_VERSION, join_snapshot

GET = "SELECT value FROM kv WHERE key=?"
ENGINE = "engine"
PART = "engine/"  # + site id
# The rows of the parts, as a key range ('0' follows '/'): a LIKE would treat the
# '_' and '%' a site id may hold as wildcards.
PARTS_WHERE = "key >= 'engine/' AND key < 'engine0'"
PACK_OVER = 256  # characters; below, compression saves too little to be worth a BLOB


@dataclass(frozen=True, slots=True)
class EngineWrite:
    """The engine's state to write, encoded: the header and the parts of some sites.

    `full` replaces every part (the parts of sites not in `parts` are removed); otherwise
    only the parts given are rewritten and the others stay as they were saved. Without a
    `header` (an alert commit's) the stored one stays: a part saved after it by the same
    engine run carries the newer clocks (`join_snapshot`), and one page less is written.
    """

    header: str | None
    parts: dict[str, str] = field(default_factory=dict)
    full: bool = False


def encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# A preset dictionary for zlib: the keys and words of the engine's parts and the device
# snapshot. A part with one SOS open packs to about 300 bytes with it (540 without), so
# three share a 1 KiB page and a checkpoint after many alerts copies a third as many pages.
# NEVER change a dictionary once released: rows packed with it must stay readable. A new
# one is added to PACK_DICTS (zlib names the one it used by its Adler-32) and PACK_DICT
# then points at it.
PACK_DICT_1 = (
    b'{"saved_mono":"saved_wall":"run":"version":"alerts":[{"rule_key":"escalations":0,'
    b'"escalate_in":"acked_by":null,"acked_at":"presses":"transition":{"event_id":'
    b'"alert_id":"state":"raised","escalated","cleared","type":"sos","fall","inactivity",'
    b'"no_water","severity":"critical","warning","info","site_id":"resident_id":'
    b'"device_ids":["raised_at":"ts":"message":"details":{"pressed_at":"action":'
    b'"emergency","reason":"pressed_again","test":true,"quiet_in":{},"pending":{},'
    b'"rules":{"press_ages":{"site":{"presence":{"state":"unknown","home","away",'
    b'"returning":false,"door_closed_ago":null,"pending_away_in":null,"history":[]},'
    b'"health":{"seen_ago":"seen_wall":"alive":true}},"devices":[{"device_id":"kind":'
    b'"sos_button","motion_sensor","door_contact","water_meter","power_meter",'
    b'"protocol":"zigbee2mqtt","rflink","cjt188","dlt645","online":null,"why":null,'
    b'"last_seen":null,"battery":null,"linkquality":null,"values":{}}]+08:00"+00:00"'
    # The outbox's alert payloads (outbox.unpacked), as the service writes them.
    b'{"schema": "hearthgate.alert/1", "event_id": "alert_id": "state": "type": '
    b'"severity": "gateway_id": "site_id": "resident_id": "device_ids": ["raised_at": '
    b'"ts": "message": "details": {"pressed_at": "action": "emergency", "reason": '
    b'"pressed_again", "presses": "Emergency call (SOS)"'
)
PACK_DICTS = {zlib.adler32(PACK_DICT_1): PACK_DICT_1}
PACK_DICT = PACK_DICT_1
PACK_LEVEL = 6


def pack(text: str) -> str | bytes:
    """`text` as the kv row keeps it: compressed if long (see the module's docstring)."""
    if len(text) <= PACK_OVER:
        return text
    co = zlib.compressobj(PACK_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                          zdict=PACK_DICT)
    return co.compress(text.encode("utf-8")) + co.flush()


def unpack(blob: bytes) -> str:
    """The text `pack` compressed.

    Raises:
        ValueError: not zlib data, truncated, or packed with a dictionary unknown here.
    """
    try:
        if len(blob) >= 6 and blob[1] & 0x20:  # FDICT: the dictionary's Adler-32 follows
            zdict = PACK_DICTS.get(int.from_bytes(blob[2:6], "big"))
            if zdict is None:
                raise ValueError("a packed state value with an unknown dictionary")
            do = zlib.decompressobj(zdict=zdict)
        else:
            do = zlib.decompressobj()
        out = do.decompress(blob) + do.flush()
    except zlib.error as exc:
        raise ValueError(f"a packed state value that is not zlib data: {exc}") from exc
    if not do.eof:
        raise ValueError("a packed state value that is cut short")
    return out.decode("utf-8")


def decode(value: str | bytes | None) -> Any | None:
    """A kv row's value (TEXT, or a BLOB from `pack`), decoded; None for None.

    Raises:
        ValueError: not JSON (json.JSONDecodeError), or a BLOB `unpack` cannot read
            (UnicodeDecodeError, too, is a ValueError).
    """
    if value is None:
        return None
    return json.loads(unpack(value) if isinstance(value, bytes) else value)


async def put(db: aiosqlite.Connection, key: str, text: str) -> None:
    """Set `key` to `text` (JSON, from `encode` or the engine's own snapshot)."""
    await db.execute(
        "INSERT INTO kv(key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (key, pack(text)),
    )


async def get(db: aiosqlite.Connection, key: str) -> Any | None:
    """The value of `key`, decoded; None when it was never set."""
    # One call on the connection's thread (execute and fetch together): see Outbox.pending.
    rows = list(await db.execute_fetchall(GET, (key,)))
    row = rows[0] if rows else None
    return decode(row[0] if row else None)


async def put_engine(db: aiosqlite.Connection, write: EngineWrite) -> None:
    """Write the engine's header and parts (in the caller's transaction)."""
    if write.full:
        if write.header is None:
            raise ValueError("a full engine write needs its header")
        await db.execute(f"DELETE FROM kv WHERE {PARTS_WHERE}")
    if write.header is not None:
        await put(db, ENGINE, write.header)
    for site_id, text in write.parts.items():
        await put(db, PART + site_id, text)


async def get_engine(db: aiosqlite.Connection) -> dict[str, Any] | None:
    """The engine's saved state as `RuleEngine.restore` reads it: the split rows joined, or
    an older single snapshot as it is; None when nothing was saved."""
    rows = list(await db.execute_fetchall(
        f"SELECT key, value FROM kv WHERE key='engine' OR ({PARTS_WHERE})"))
    values = {str(k): decode(v) for k, v in rows}
    header = values.pop(ENGINE, None)
    if not isinstance(header, dict):
        return None
    if header.get("version") != SPLIT_VERSION:
        return header  # the single snapshot of an older hearthgate: migrated on next save
    parts = {k[len(PART):]: v for k, v in values.items() if isinstance(v, dict)}
    return join_snapshot(header, parts)
