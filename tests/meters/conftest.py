"""Fixtures for the meter tests: pseudo-terminals behind a udev-style symlink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hearthgate.simulators.links import PtyLink


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition on real time (the line is real); fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def pty(tmp_path: Path) -> AsyncIterator[PtyLink]:
    link = PtyLink(tmp_path / "ttyMETER")
    yield link
    link.unplug()
