"""The SQLite store: the outbox, the local alert log, device health and rule state.

One connection, one writer: every write goes through the writer task (writer.py), which
commits whatever is waiting in one transaction (group commit). Alert transitions are
committed with `synchronous=FULL` before they are published and deleted only after the
broker's PUBACK; telemetry batches are written with lighter durability and are bounded
(oldest dropped first, alerts never) (outbox.py). SD cards wear out, so telemetry reaches the
disk only when the uplink cannot take it at once (see gateway/uplink.py), and state snapshots
are written in batches (state.py).

When the disk is full (or failing), alerting must not stop: alert transitions that cannot be
written are held in memory, where the uplink still finds them, and every write that failed
for lack of room is kept and replayed, in order, as soon as the disk takes writes again.
Telemetry yields: it is dropped (and counted) meanwhile.

The parts: `schema` (the file, its tables and version), `writer`, `outbox`, `alert_log`,
`state` (the key-value area), `readers` (read-only access for the CLI views) and `Store`
(facade.py), which the service and the uplink use.
"""

from hearthgate.store.alert_log import AlertRow
from hearthgate.store.erasure import SiteRef, register_eraser, register_site_table
from hearthgate.store.facade import Store
from hearthgate.store.outbox import OutboxItem
from hearthgate.store.readers import read_alerts, read_only, read_state
from hearthgate.store.schema import DB_NAME, SCHEMA_VERSION
from hearthgate.store.state import EngineWrite
from hearthgate.store.writer import storage_failure

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "AlertRow",
    "EngineWrite",
    "OutboxItem",
    "SiteRef",
    "Store",
    "read_alerts",
    "read_only",
    "read_state",
    "register_eraser",
    "register_site_table",
    "storage_failure",
]
