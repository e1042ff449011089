"""Issue 16's scenario suite (tests/rules/residents.py, bench/routine_suite.py): the residents
are who they say they are, an incident stops them, and the targets hold for the shipped
`living_alone` profile — a short run here, the full one behind `-m slow`."""

from __future__ import annotations

import statistics
from datetime import timedelta
from functools import cache

import pytest

from tests.rules.residents import (
    INCIDENTS,
    MISSED_AFTER_BY,
    RESIDENTS,
    SHORT,
    SuiteResult,
    incident_days,
    incident_life,
    live,
    median,
    p90,
    shortfalls,
    suite,
)

M = 60.0
# not_up as it is: minutes from when the resident would have got out of bed (the suite's
# full run, seed 1, measured a median of 93 and a p90 of 139).
NOT_UP_MEDIAN = 120.0
NOT_UP_P90 = 180.0


def test_residents_keep_their_own_routines() -> None:
    """The generator does what its routines say: the wake times it draws centre on each
    resident's own, spread by their own spread (not by anything the rules learn)."""
    for k in (0, 1, 3):
        r = RESIDENTS[k]
        lived = live(r, 30, 1000 + k)
        wakes = [(d.wake - lived.life.at(lived.start + timedelta(days=d.index), 0)) / M
                 for d in lived.days if d.kind == "plain"]
        assert abs(statistics.median(wakes) - r.wake) < 15, r.name
        assert 0.6 * r.wake_sd < statistics.stdev(wakes) < 2.5 * r.wake_sd, r.name


def test_the_same_seed_gives_the_same_days() -> None:
    a, b = live(RESIDENTS[2], 5, 7), live(RESIDENTS[2], 5, 7)
    assert a.events == b.events and len(a.events) > 5 * 1000
    assert live(RESIDENTS[2], 5, 8).events != a.events


@pytest.mark.parametrize("incident", INCIDENTS)
def test_after_an_incident_the_resident_does_nothing(incident: str) -> None:
    lived = live(RESIDENTS[0], 20, 3)
    [index] = incident_days(lived, incident, 16, 1)
    life, at, since = incident_life(lived, incident, index)
    moved = [m for m in life.motion + life.bath if m > at]
    doors = [e for e in life.extra if e[0] > at]
    assert moved == [] and doors == [] and since <= at
    stirring = [m for m in life.rooms.get("bed", []) if m > at]
    assert incident == "not_up" or stirring == []  # in bed, unwell, maybe stirring


@cache
def short_run() -> SuiteResult:
    return suite(**SHORT)  # type: ignore[arg-type]


def test_short_suite_meets_issue_16_targets_but_not_up() -> None:
    result = short_run()
    assert all(result.minutes(i) for i in INCIDENTS)
    assert [m for m in shortfalls(result) if not m.startswith("not_up: ")] == [], result.table()
    # not_up cannot meet its target without several false alarms a month (docs/rules.md,
    # "Measured"); what it does today is held here, so that it gets no worse unseen.
    assert result.missed("not_up") == 0
    assert median(result.minutes("not_up")) <= NOT_UP_MEDIAN, result.table()
    assert p90(result.minutes("not_up")) <= NOT_UP_P90, result.table()


def test_short_suite_finds_a_day_in_bed_by_the_meters() -> None:
    """Ill in bed, alive: up to the kitchen once, the bathroom every few hours; only
    `low_use` can tell (nothing cooked, no kettle) — and it does, the same day."""
    result = short_run()
    days = [f for f in result.found if f.incident == "ill_in_bed"]
    assert days and result.missed("ill_in_bed") == 0, result.table()
    assert {f.first for f in days} == {"low_use"}, result.table()
    assert max(result.minutes("ill_in_bed")) <= MISSED_AFTER_BY["ill_in_bed"] / M


@pytest.mark.xfail(strict=True, reason="not_up: with wake times spread 20-40 min and a late"
                   " morning now and then, an alert within 60 min of the usual time costs"
                   " 2-4 false alarms a resident-month (docs/rules.md, 'Measured')")
def test_short_suite_not_up_within_the_hour() -> None:
    assert [m for m in shortfalls(short_run()) if m.startswith("not_up: ")] == []


@pytest.mark.slow
def test_full_suite_meets_issue_16_targets_but_not_up() -> None:
    result = suite(most=6)
    assert [m for m in shortfalls(result) if not m.startswith("not_up: ")] == [], result.table()
    assert result.missed("not_up") == 0


def test_a_day_in_bed_is_alive_but_quiet() -> None:
    lived = live(RESIDENTS[0], 20, 3)
    [index] = incident_days(lived, "ill_in_bed", 16, 1)
    life, at, _ = incident_life(lived, "ill_in_bed", index)
    assert [f for f in life.power if f.start >= at] == []  # nothing switched on
    assert len([m for m in life.motion if m > at]) == 2  # the kitchen, once
    assert len([m for m in life.rooms["bed"] if m > at]) > 10  # stirring in bed
    flushes = [f for f in life.water if f.start > at]
    assert 3 <= len(flushes) and sum((f.end - f.start) * f.rate for f in flushes) < 0.06
