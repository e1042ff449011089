"""Fixtures of the fault-injection suite.

The long profile (`@pytest.mark.slow`) runs only when asked for (`pytest -m slow
tests/faults`, or FAULTS_SLOW=1), so that a plain `pytest` stays within the CI budget.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber
from tests.faults.faultkit import P
from tests.faults.powerfs import PowerFS, unusable_reason

# The home's zigbee2mqtt broker and a zigbee2mqtt stand-in on it, as the spine tests have them.
from tests.spine.conftest import zigbee  # noqa: F401

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("markexpr", "") or ""
    if "slow" in markexpr or os.environ.get("FAULTS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long profile: run with `pytest -m slow tests/faults`")
    for item in items:
        if "slow" in item.keywords and HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture
async def platform(broker: MosquittoBroker) -> AsyncIterator[PlatformSubscriber]:
    async with PlatformSubscriber(
        broker.host, broker.port, (f"{P}/#",), identifier="platform-faults"
    ) as sub:
        yield sub


@pytest.fixture
def powerfs(tmp_path: Path) -> Iterator[PowerFS]:
    """The power-cut filesystem (powerfs.py) mounted on `tmp_path/disk`, unmounted after."""
    reason = unusable_reason()
    if reason is not None:
        pytest.skip(f"power-cut filesystem unavailable: {reason}")
    fs = PowerFS(tmp_path / "disk").mount()
    try:
        yield fs
    finally:
        fs.unmount()
