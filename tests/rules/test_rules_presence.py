"""Presence inference on its own: home, away, unknown from doors and motion."""

from __future__ import annotations

from datetime import UTC, datetime

from hearthgate.core.model import Instant, Observation
from hearthgate.rules.site_state import Presence, PresenceState

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def feed(p: Presence, t: float, metric: str, value: bool) -> None:
    from datetime import timedelta

    now = Instant(t, T0 + timedelta(seconds=t))
    p.observe(Observation("d", "s", metric, value, now), now)


def test_leaving_and_coming_back() -> None:
    p = Presence(True, away_after=1800, settle=90)
    feed(p, 0, "motion", True)
    assert p.state == PresenceState.HOME
    feed(p, 100, "door_open", True)
    feed(p, 110, "door_open", False)
    feed(p, 150, "motion", True)  # the person on the way out, inside the settle time
    assert not p.away_at(1000) and p.next_change(1000) == 1910
    assert p.away_at(1910) and p.away_between(0, 5000)
    feed(p, 9000, "door_open", True)  # back (or someone else): unknown until seen
    assert p.state == PresenceState.UNKNOWN and not p.away_at(9001)
    feed(p, 9010, "door_open", False)
    assert p.next_change(9010) is None  # unseen after a return is never taken for absent
    feed(p, 9030, "motion", True)  # motion right after coming back is the resident
    assert p.state == PresenceState.HOME
    assert p.away_at(5000) and not p.away_at(9030)


def test_motion_after_the_door_means_still_home() -> None:
    p = Presence(True, away_after=1800, settle=90)
    feed(p, 0, "door_open", True)
    feed(p, 10, "door_open", False)
    feed(p, 600, "motion", True)  # a visitor left; the resident is in
    assert p.state == PresenceState.HOME and p.next_change(600) is None
    assert not p.away_between(0, 10_000)


def test_disabled_presence_is_always_unknown() -> None:
    p = Presence(False)
    feed(p, 0, "door_open", True)
    feed(p, 10, "door_open", False)
    assert p.state == PresenceState.UNKNOWN and not p.away_at(100_000)


def test_snapshot_restore_shifts_times_to_the_new_clock() -> None:
    p = Presence(True, away_after=1800, settle=90)
    feed(p, 1000, "motion", True)
    feed(p, 1100, "door_open", True)
    feed(p, 1110, "door_open", False)
    now = Instant(1200, T0)
    state = p.snapshot(now)
    q = Presence(True, away_after=1800, settle=90)
    q.restore(state, 20.0, Instant(20.0, T0))  # after a reboot the clock reads 20
    assert q.next_change(20) == 20 + (1110 + 1800 - 1200)
    assert not q.away_at(20) and q.away_at(20 + 1710)
