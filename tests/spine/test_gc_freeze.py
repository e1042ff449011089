"""What a gateway builds at start is frozen out of the garbage collector's full passes while
it runs (issue 17: each pass went over all of it and held the loop ~100 ms every few seconds
under load), and handed back when it stops: a config push starts another gateway in the
same process, and the old one's cycles must not stay frozen for ever."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber
from tests.faults.faultkit import ALERTS, InProcessGateway, press_sos, write_config


async def test_frozen_while_running_collectable_once_stopped(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    config = write_config(tmp_path, broker, home_broker, ["room-301", "room-302"])
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    async with PlatformSubscriber(broker.host, broker.port, (ALERTS,)) as platform, \
            PlatformSubscriber(home_broker.host, home_broker.port) as zigbee:
        gw = InProcessGateway(config)
        async with gw:
            # The config, the engine, its rules and sites: thousands of objects.
            assert gc.get_freeze_count() > 1000
            engine = weakref.ref(gw.gateway.engine)
            await press_sos(zigbee, "room-301")  # still raises and reaches the platform
            await platform.wait_for(lambda ms: [m for m in ms if m.topic == ALERTS])
        assert gc.get_freeze_count() == 0
        del gw
        gc.collect()
        assert engine() is None, "the stopped gateway's engine is still alive"
