"""An uplink in-process over a real Store and a real mosquitto, with the platform's view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from hearthgate.config import parse_config_data
from hearthgate.core.model import AlertTransition
from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.store import Store
from hearthgate.uplink import Uplink
from tests.spine.test_store import transition

GW = "gw-delivery-1"
P = f"hearthgate/{GW}"


def uplink_config(tmp_path: Path, broker: MosquittoBroker, **uplink: Any) -> Any:
    return parse_config_data({
        "gateway": {"id": GW, "data_dir": str(tmp_path / "data"), "language": "en"},
        "uplink": {"host": broker.host, "port": broker.port, **uplink},
        "buses": [{"id": "zigbee", "type": "mqtt"}],
        "devices": [{"id": "sos-1", "site": "s-1", "kind": "sos_button",
                     "protocol": "zigbee2mqtt", "bus": "zigbee", "topic": "z2m/sos_1"}],
        "sites": [{"id": "s-1", "rules": [{"type": "sos"}]}],
    })


def alert_payload(t: AlertTransition) -> str:
    from datetime import UTC
    return json.dumps(t.to_payload(GW, UTC))


async def no_commands(name: str, body: Any) -> dict[str, Any]:
    return {}


@contextlib.asynccontextmanager
async def running_uplink(tmp_path: Path, broker: MosquittoBroker, **uplink: Any
                         ) -> AsyncIterator[tuple[Uplink, Store]]:
    config = uplink_config(tmp_path, broker, **uplink)
    store = await Store.open(config.gateway.data_dir)
    store.start()
    up = Uplink(config, store, no_commands)
    task = asyncio.create_task(up.run())
    try:
        await asyncio.wait_for(up.connected.wait(), 20)
        yield up, store
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


async def raise_sos(up: Uplink, store: Store, n: int = 1) -> list[AlertTransition]:
    ts = [transition("sos") for _ in range(n)]
    await store.add_alerts(ts, [alert_payload(t) for t in ts])
    up.wake()
    return ts


async def wait_until(cond: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


ALLOW_ALL = "topic readwrite hearthgate/#\n"


@contextlib.contextmanager
def acl_broker(directory: Path, acl_text: str) -> Iterator[tuple[MosquittoBroker, Path]]:
    """A mosquitto whose `acl_file` starts as `acl_text`; rewrite the file and `reload()`
    the broker to change what the gateway may publish."""
    acl = directory / "acl"
    acl.write_text(acl_text)
    broker = MosquittoBroker(directory / "acl-broker", extra=f"acl_file {acl}\n").start()
    try:
        yield broker, acl
    finally:
        broker.close()
