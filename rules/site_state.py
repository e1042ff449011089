"""What the engine knows about a site as a whole: is anyone home, which devices are alive.

Both are shared by the site's rules. They are updated *after* the rules have seen an
observation, so a rule accounting time up to "now" sees the site as it was just before.

Presence is inferred from doors and motion:
- motion (after the door has settled) means someone is home;
- a door that opens and closes, followed by no motion for `away_after`, means away
  (from the moment the door closed plus `away_after`);
- a door used while away makes presence unknown until motion is seen (someone may have
  come in unseen); unknown counts like home for absence rules: doubt never hides an alert.
A site without a door contact or without a motion sensor is always unknown.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Any

from hearthgate.core.health import offline_since
from hearthgate.core.model import Instant, Observation

if TYPE_CHECKING:
    from hearthgate.rules.base import Rule

MOTION_METRICS = frozenset({"motion", "occupancy"})
# Kinds whose devices may report `motion`: a PIR, and a radar when its model reports movement
# (zigbee2mqtt's `movement` / `motion_state`). A radar's `presence` is not motion: someone
# lying still on the floor is present too.
MOTION_KINDS = ("motion_sensor", "presence_sensor", "fall_sensor")


class PresenceState(enum.StrEnum):
    HOME = "home"
    AWAY = "away"
    UNKNOWN = "unknown"


class Presence:
    def __init__(self, enabled: bool, *, away_after: float = 30 * 60.0, settle: float = 90.0):
        self.enabled = enabled
        self.away_after = away_after
        self.settle = settle  # motion right after the door closes is the person leaving
        self.state = PresenceState.UNKNOWN
        self.door_closed_at: float | None = None
        self.pending_away_at: float | None = None
        self.changed_at: float | None = None
        self.returning = False  # the door last opened while away: motion is someone back
        self.version = 0  # bumped on every change, so rules can tell cheaply
        # (mono, state) of past changes, so a rule can ask "was the site away at t?".
        self.history: deque[tuple[float, PresenceState]] = deque(maxlen=64)

    def _set(self, t: float, state: PresenceState) -> None:
        if state != self.state:
            self.version += 1
            self.state = state
            self.changed_at = t
            self.history.append((t, state))

    def settle_until(self, t: float) -> None:
        if self.pending_away_at is not None and t >= self.pending_away_at:
            self._set(self.pending_away_at, PresenceState.AWAY)
            self.pending_away_at = None

    def observe(self, obs: Observation, now: Instant) -> None:
        if not self.enabled:
            return
        t = now.mono
        self.settle_until(t)
        if obs.metric == "door_open" or obs.metric in MOTION_METRICS:
            self.version += 1  # a pending exit may have started or ended
        if obs.metric in MOTION_METRICS and obs.value is True:
            if (
                not self.returning
                and self.pending_away_at is not None
                and self.door_closed_at is not None
                and t < self.door_closed_at + self.settle
            ):
                return
            self.pending_away_at = None
            self._set(t, PresenceState.HOME)
        elif obs.metric == "door_open":
            if obs.value is True:
                self.pending_away_at = None
                self.returning = self.state == PresenceState.AWAY
                if self.returning:
                    self._set(t, PresenceState.UNKNOWN)
            elif obs.value is False and self.state != PresenceState.AWAY and not self.returning:
                # After a door used while away, stay unknown until someone is seen:
                # a person who came back unseen must not be taken for absent.
                self.door_closed_at = t
                self.pending_away_at = t + self.away_after

    def away_at(self, t: float) -> bool:
        if self.pending_away_at is not None and t >= self.pending_away_at:
            return True
        state = PresenceState.UNKNOWN
        for mono, s in self.history:
            if mono > t:
                break
            state = s
        if not self.history or t >= self.history[-1][0]:
            state = self.state
        return state == PresenceState.AWAY

    def away_between(self, a: float, b: float) -> bool:
        if self.away_at(a) or self.away_at(b):
            return True
        if self.pending_away_at is not None and a <= self.pending_away_at <= b:
            return True
        return any(a <= mono <= b and s == PresenceState.AWAY for mono, s in self.history)

    def next_change(self, after: float) -> float | None:
        p = self.pending_away_at
        return p if p is not None and p > after else None

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "returning": self.returning,
            "door_closed_ago": _ago(self.door_closed_at, now),
            "pending_away_in": (
                None if self.pending_away_at is None else self.pending_away_at - now.mono
            ),
            "history": [[now.mono - m, str(s)] for m, s in self.history],
        }

    def restore(self, data: dict[str, Any], saved_mono: float, now: Instant) -> None:
        self.state = PresenceState(data.get("state", "unknown"))
        self.returning = bool(data.get("returning", False))
        self.door_closed_at = _back(data.get("door_closed_ago"), saved_mono)
        pending_in = data.get("pending_away_in")
        self.pending_away_at = None if pending_in is None else saved_mono + float(pending_in)
        self.history.clear()
        for ago, s in data.get("history", []):
            self.history.append((saved_mono - float(ago), PresenceState(s)))
        self.settle_until(now.mono)


class DeviceHealth:
    """Last sight and reachability of each device of a site.

    A device is online while its driver has not said `alive: false` and it has been
    heard within its threshold (None: the device sends no heartbeat, e.g. a 433 MHz
    button, so only `alive` can take it offline). A device never heard counts from
    the engine's first moment, so a dead sensor becomes offline after its threshold.
    """

    def __init__(self, thresholds: dict[str, float | None]) -> None:
        self.thresholds = thresholds
        self.last_seen: dict[str, float] = {}
        self.last_seen_wall: dict[str, str] = {}
        self.alive: dict[str, bool] = {}
        # Why a driver said `alive: false` ("zigbee2mqtt bridge offline"), for coverage.
        self.why: dict[str, str] = {}

    def start(self, now: Instant) -> None:
        for device_id in self.thresholds:
            self.last_seen.setdefault(device_id, now.mono)
            self.alive.setdefault(device_id, True)

    def observe(self, obs: Observation, now: Instant) -> None:
        if obs.device_id not in self.thresholds:
            return
        self.last_seen[obs.device_id] = now.mono
        self.last_seen_wall[obs.device_id] = now.wall.isoformat()
        self.alive[obs.device_id] = bool(obs.value) if obs.metric == "alive" else True
        if self.alive[obs.device_id]:
            self.why.pop(obs.device_id, None)
        elif obs.attrs.get("reason"):
            self.why[obs.device_id] = str(obs.attrs["reason"])

    def offline_at(self, device_id: str) -> float | None:
        """Monotonic moment the device is (or will be) offline; None: not while silent."""
        if not self.alive.get(device_id, True):
            return float("-inf")
        seen = self.last_seen.get(device_id)
        return None if seen is None else offline_since(seen, self.thresholds.get(device_id))

    def online_at(self, device_id: str, t: float) -> bool:
        off = self.offline_at(device_id)
        return off is None or t < off

    def offline_text(self, device_ids: tuple[str, ...], t: float) -> str | None:
        """Why these devices cannot be read at `t`, when every one of them is offline then:
        `water-301 offline`, `pir-301 offline (zigbee2mqtt bridge offline)`; None while any
        one is online. Devices offline for one reason are named together."""
        if not device_ids:
            return "no device to read"
        if any(self.online_at(d, t) for d in device_ids):
            return None
        by_reason: dict[str | None, list[str]] = {}
        for d in device_ids:
            by_reason.setdefault(self.why.get(d), []).append(d)
        return "; ".join(
            f"{', '.join(ids)} offline" + (f" ({why})" if why else "")
            for why, ids in by_reason.items()
        )

    def next_offline(self, after: float) -> float | None:
        """The first moment after `after` at which a device goes offline by silence."""
        times = [off for d in self.thresholds
                 if (off := self.offline_at(d)) is not None and off > after]
        return min(times, default=None)

    def all_offline_at(self, device_ids: tuple[str, ...]) -> float | None:
        """When the last of these devices goes offline (None: never while silent).

        `-inf` when they all are offline already; an empty set is always offline.
        """
        if not device_ids:
            return float("-inf")
        worst = float("-inf")
        for d in device_ids:
            off = self.offline_at(d)
            if off is None:
                return None
            worst = max(worst, off)
        return worst

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            d: {
                "seen_ago": _ago(self.last_seen.get(d), now),
                "seen_wall": self.last_seen_wall.get(d),
                "alive": self.alive.get(d, True),
            }
            for d in self.thresholds
        }

    def restore(self, data: dict[str, Any], saved_mono: float, now: Instant) -> None:
        """Devices online at the save keep the silence heard before it, and the downtime
        does not count: nobody could hear them while the gateway was down, which is not
        their silence. (A fresh threshold from the restart would hide a dead device for
        as long as the gateway restarts more often than its threshold.)"""
        for d, item in data.items():
            if d not in self.thresholds or not isinstance(item, dict):
                continue
            age = item.get("seen_ago")
            if age is not None:
                seen = saved_mono - float(age)
                thr = self.thresholds[d]
                online = thr is None or saved_mono < seen + thr
                self.last_seen[d] = now.mono - float(age) if online else seen
            if item.get("seen_wall"):
                self.last_seen_wall[d] = item["seen_wall"]
            self.alive[d] = bool(item.get("alive", True))


class SiteState:
    def __init__(self, presence: Presence, health: DeviceHealth) -> None:
        self.presence = presence
        self.health = health
        self.started = False
        # The site's rules, set by the engine: a rule describing the site's coverage in its
        # alert (device_offline) asks the others whether they are blind.
        self.rules: tuple[Rule, ...] = ()

    def start(self, now: Instant) -> None:
        if not self.started:
            self.health.start(now)
            self.started = True

    def observe(self, obs: Observation, now: Instant) -> None:
        self.presence.observe(obs, now)
        self.health.observe(obs, now)

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {"presence": self.presence.snapshot(now), "health": self.health.snapshot(now)}

    def restore(self, data: dict[str, Any], saved_mono: float, now: Instant) -> None:
        self.presence.restore(data.get("presence", {}), saved_mono, now)
        self.health.restore(data.get("health", {}), saved_mono, now)
        self.started = True
        self.health.start(now)


def _ago(t: float | None, now: Instant) -> float | None:
    return None if t is None else now.mono - t


def _back(age: Any, saved_mono: float) -> float | None:
    return None if age is None else saved_mono - float(age)
