"""Model, clocks and durations: the small values everything else leans on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearthgate.core.clock import ScaledClock, SimulatedClock, SystemClock
from hearthgate.core.durations import TimeRange, format_duration, parse_duration
from hearthgate.core.model import (
    AlertState,
    AlertTransition,
    Instant,
    Observation,
    Severity,
    new_id,
)


def test_new_ids_are_uuid7_and_sort_in_creation_order():
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)


def test_observation_gets_its_metric_unit():
    at = Instant(1.0, datetime(2026, 1, 1, tzinfo=UTC))
    assert Observation("w", "s", "water_total_m3", 1.5, at).unit == "m3"
    assert Observation("w", "s", "motion", True, at).unit is None
    with pytest.raises(ValueError):
        Instant(1.0, datetime(2026, 1, 1))


def test_alert_payload_renders_times_in_the_gateway_zone():
    t = AlertTransition(
        event_id="e", alert_id="a", state=AlertState.RAISED, type="sos",
        severity=Severity.CRITICAL, site_id="s", resident_id=None, device_ids=("d",),
        raised_at=datetime(2026, 11, 22, 0, 0, tzinfo=UTC),
        ts=datetime(2026, 11, 22, 0, 0, 5, tzinfo=UTC), message="m",
    )
    body = t.to_payload("gw-1", ZoneInfo("Asia/Shanghai"))
    assert body["raised_at"] == "2026-11-22T08:00:00+08:00"
    assert body["ts"] == "2026-11-22T08:00:05+08:00"
    assert body["state"] == "raised" and body["severity"] == "critical"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("10m", 600), ("12h", 43200), ("3d", 259200), (45, 45),
     ("1.5h", 5400), (" 2s ", 2)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "12x", "h", "-5s", True, None, [1], "400d", "1e3s"])
def test_bad_durations_say_what_a_duration_is(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=365 * 86400))
@settings(max_examples=200)
def test_duration_format_roundtrip(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_time_range_across_midnight():
    night = TimeRange.parse("22:00-06:00")
    assert night.crosses_midnight
    assert night.contains(time(23, 30)) and night.contains(time(0, 0)) and night.contains(
        time(5, 59))
    assert not night.contains(time(6, 0)) and not night.contains(time(12, 0))
    day = TimeRange.parse("07:00-22:00")
    assert day.contains(time(7, 0)) and not day.contains(time(22, 0))
    assert str(night) == "22:00-06:00"


@pytest.mark.parametrize("bad", ["22:00", "25:00-06:00", "07:00-07:00", "7-8", 5, "a-b"])
def test_bad_time_ranges(bad):
    with pytest.raises(ValueError):
        TimeRange.parse(bad)


async def test_simulated_clock_wakes_sleepers_in_deadline_order():
    clock = SimulatedClock()
    woke: list[tuple[str, float]] = []

    async def poller(name: str, every: float) -> None:
        while True:
            await clock.sleep(every)
            woke.append((name, clock.now().mono - 1000.0))

    tasks = [asyncio.create_task(poller("a", 300)), asyncio.create_task(poller("b", 450))]
    await asyncio.sleep(0)
    await clock.advance(900)
    for t in tasks:
        t.cancel()
    # Equal deadlines wake in the order the sleeps began (b slept at 450, a at 600).
    assert woke == [("a", 300), ("b", 450), ("a", 600), ("b", 900), ("a", 900)]


def test_simulated_clock_wall_jump_leaves_monotonic_alone():
    clock = SimulatedClock()
    before = clock.now()
    clock.jump_wall(-12 * 3600)
    after = clock.now()
    assert after.mono == before.mono
    assert (before.wall - after.wall).total_seconds() == 12 * 3600


async def test_real_and_scaled_clocks_move_forward():
    real = SystemClock()
    a = real.now()
    fast = ScaledClock(3600)
    f0 = fast.now()
    await asyncio.sleep(0.05)
    assert real.now().mono > a.mono
    assert fast.now().mono - f0.mono >= 0.05 * 3600 * 0.9
    with pytest.raises(ValueError):
        ScaledClock(0)
