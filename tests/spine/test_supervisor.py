"""The supervisor restarts what crashes, with backoff, and stops on an essential failure."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from hearthgate.supervisor import EssentialTaskFailed, Supervisor


async def test_crashing_task_is_restarted_with_growing_backoff_and_others_go_on():
    starts: list[float] = []
    loop = asyncio.get_running_loop()
    beats = 0

    async def flaky() -> None:
        starts.append(loop.time())
        raise OSError("port vanished")

    async def steady() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as tg:
        sup = Supervisor(tg)
        sup.backoff_min, sup.backoff_max = 0.02, 0.16
        sup.start("flaky", flaky)
        sup.start("steady", steady)
        await asyncio.sleep(0.8)
        for t in sup.tasks.values():
            t.cancel()
    assert sup.restarts["flaky"] >= 4
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[-1] > gaps[0]  # it backs off
    assert max(gaps) <= 0.16 + 0.05  # up to the cap
    assert beats > 20  # the healthy task never noticed


async def test_task_that_finishes_is_not_restarted():
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    async with asyncio.TaskGroup() as tg:
        Supervisor(tg).start("once", once)
    assert runs == 1


async def test_essential_task_failure_stops_everything():
    async def broken() -> None:
        raise RuntimeError("disk gone")

    async def forever() -> None:
        await asyncio.sleep(3600)

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as tg:
            sup = Supervisor(tg)
            sup.start("forever", forever)
            sup.start("store", broken, essential=True)
    assert info.group_contains(EssentialTaskFailed)
