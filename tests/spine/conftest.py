"""Fixtures for black-box tests of the spine: two brokers, a gateway process, a platform."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber, config_head, wait_started

GW = "gw-test-0001"
P = f"hearthgate/{GW}"
SITES = ("room-301", "room-302", "room-303")


def write_config(tmp: Path, platform: MosquittoBroker, local: MosquittoBroker,
                 device_extra: str = "") -> Path:
    devices = "\n".join(
        f"  - {{id: sos-{s[-3:]}, site: {s}, kind: sos_button, protocol: zigbee2mqtt,"
        f" bus: zigbee, topic: zigbee2mqtt/sos_{s[-3:]}, model: TS0215A_sos{device_extra}}}"
        for s in SITES
    )
    sites = "\n".join(
        f"  - {{id: {s}, resident: r-{s[-3:]}, rules: [{{type: sos}}]}}" for s in SITES
    )
    path = tmp / "config.yaml"
    path.write_text(
        config_head(GW, tmp / "data", platform.port, local.port, devices_interval="1s",
                    raw_reason="tests of raw readings")
        + f"""devices:
{devices}
sites:
{sites}
"""
    )
    return path


@pytest.fixture
def config(tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker) -> Path:
    return write_config(tmp_path, broker, home_broker)


@pytest.fixture
async def platform(broker: MosquittoBroker) -> AsyncIterator[PlatformSubscriber]:
    async with PlatformSubscriber(
        broker.host, broker.port, (f"{P}/#",), identifier="platform-test"
    ) as sub:
        yield sub


@pytest.fixture
async def zigbee(home_broker: MosquittoBroker) -> AsyncIterator[PlatformSubscriber]:
    """A zigbee2mqtt stand-in publishing on the home's broker."""
    async with PlatformSubscriber(home_broker.host, home_broker.port, ("none/#",)) as pub:
        yield pub


@pytest.fixture
def gateway(config: Path) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(config)
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture
def started(platform: PlatformSubscriber) -> Callable[[GatewayProcess], Awaitable[None]]:
    """Start a gateway; return once it is online and listening to its zigbee bus."""

    async def start(gw: GatewayProcess) -> None:
        await wait_started(gw, platform, P, ("zigbee",))

    return start


@pytest.fixture
def press_sos(zigbee: PlatformSubscriber) -> Callable[..., Awaitable[None]]:
    async def press(site: str = "room-301", **extra: object) -> None:
        await zigbee.publish(
            f"zigbee2mqtt/sos_{site[-3:]}",
            {"action": "emergency", "battery": 80, "voltage": 2900, "linkquality": 102, **extra},
        )

    return press


@pytest.fixture
def make_config(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker
) -> Callable[[str], Path]:
    """Write the test config with extra keys on every device (e.g. `, offline_after: 2s`)."""

    def make(device_extra: str = "") -> Path:
        return write_config(tmp_path, broker, home_broker, device_extra)

    return make
