"""How far the engine believes the system wall clock (docs/rules.md, "Restarts and clock jumps").

Durations and deadlines run on the monotonic clock; only schedules and timestamps read
the wall. On restore the downtime credited is the wall-clock gap when it is plausible (not
shorter than what the monotonic clock proves, and at most `max_downtime_credit` longer),
else only what the monotonic clock proves (0 after a reboot). Then the wall clock is not
trusted either: schedules and timestamps run on the saved wall time plus elapsed monotonic
time until the system clock jumps (NTP synced) or `distrust_wall_for` has passed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from hearthgate.core.model import Instant, Observation

log = logging.getLogger("hearthgate.rules")

MAX_DOWNTIME_CREDIT = 3600.0
DISTRUST_WALL_FOR = 3600.0
# Wall and monotonic clocks may disagree by this much between two readings before we
# call it a jump (NTP slews small errors; steps are large).
WALL_JUMP_TOLERANCE = 60.0


class WallClockTrust:
    """The engine's belief in the system wall clock: jumps, downtime credit, distrust.

    Args:
        max_downtime_credit: How much longer than the monotonic clock proves a wall-clock
            gap across a restart may be and still be believed, in seconds.
        distrust_wall_for: How long, after a restore that did not believe the wall clock,
            the engine runs on its own estimate of the wall unless the system clock steps
            first, in seconds.
    """

    def __init__(self, max_downtime_credit: float, distrust_wall_for: float) -> None:
        self.max_downtime_credit = max_downtime_credit
        self.distrust_wall_for = distrust_wall_for
        self.last: tuple[float, datetime] | None = None  # (mono, wall) of the last reading
        # Added to the system wall clock while it is not trusted.
        self.shift = timedelta(0)
        self.distrust_until: float | None = None  # monotonic

    def observe(self, now: Instant) -> None:
        """Take a reading of both clocks: a step of the wall ends any distrust."""
        last, self.last = self.last, (now.mono, now.wall)
        if last is not None:
            drift = (now.wall - last[1]).total_seconds() - (now.mono - last[0])
            if abs(drift) > WALL_JUMP_TOLERANCE:
                log.warning("wall clock jumped by %+.0f s", drift)
                if self.distrust_until is not None:
                    self.trust("the system clock was set")
        if self.distrust_until is not None and now.mono >= self.distrust_until:
            self.trust(f"no clock step within {self.distrust_wall_for:.0f} s")

    def estimated(self, now: Instant) -> Instant:
        """`now` on the wall the engine believes."""
        if self.shift:
            return Instant(now.mono, now.wall + self.shift)
        return now

    def estimated_observation(self, obs: Observation) -> Observation:
        """`obs` with its time on the wall the engine believes."""
        if self.shift:
            return replace(obs, at=Instant(obs.at.mono, obs.at.wall + self.shift))
        return obs

    def trust(self, why: str) -> None:
        log.info("trusting the system wall clock again (%s)", why)
        self.shift = timedelta(0)
        self.distrust_until = None

    def downtime_credit(self, saved_mono: float, saved_wall: datetime, now: Instant) -> float:
        """Seconds of downtime to count since a save at (`saved_mono`, `saved_wall`).

        When the wall clock's gap is not plausible, stops trusting the wall clock until it
        steps or `distrust_wall_for` has passed.
        """
        proven = max(0.0, now.mono - saved_mono)  # the monotonic clock never overstates
        claimed = (now.wall - saved_wall).total_seconds()
        if proven - WALL_JUMP_TOLERANCE <= claimed <= proven + self.max_downtime_credit:
            return max(proven, claimed)
        log.warning(
            "wall clock moved %+.0f s while the gateway was down (monotonic proves %.0f s):"
            " counting %.0f s of downtime and not trusting the wall clock yet",
            claimed, proven, proven,
        )
        self.shift = saved_wall + timedelta(seconds=proven) - now.wall
        self.distrust_until = now.mono + self.distrust_wall_for
        return proven

    def restarted(self, saved_mono: float, saved_wall: datetime, now: Instant) -> float:
        """`downtime_credit` for a restore at `now`, which becomes the last reading."""
        self.last = None
        credit = self.downtime_credit(saved_mono, saved_wall, now)
        self.last = (now.mono, now.wall)
        return credit
