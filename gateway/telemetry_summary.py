"""Hourly site summaries: what leaves the home at the default `summary` telemetry level.

A care worker's trend view needs, per site and per hour, how much water and electricity
were used, in how many of the hour's four quarter-hours someone moved, and how often a door
was opened; nothing finer (docs/privacy.md). `HourlySummariser` is a pure state machine:
observations in (`add`), closed hours out (`close(now)`), on a clock the caller passes, so a
day of summaries is tested in simulated time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hearthgate.core.model import Instant, Observation, isoformat

SUMMARY_SCHEMA = "hearthgate.telemetry_summary/1"
# Meter readings taken just before the hour ended may still be in the rules loop's queue.
CLOSE_GRACE = timedelta(minutes=2)
MOVEMENT_METRICS = frozenset({"motion", "presence"})
_TOTALS = {"water_total_m3": ("water_l", 1000.0), "energy_total_kwh": ("energy_kwh", 1.0)}


@dataclass
class _Hour:
    """One site's hour so far."""

    partial: bool
    water_l: float | None = None
    energy_kwh: float | None = None
    quarters: set[int] = field(default_factory=set)
    door_openings: int = 0


class HourlySummariser:
    """Per site and hour: litres of water, kWh, quarter-hours with movement, door openings.

    Feed it the observations of the sites at the `summary` level (`add`); call `close(now)`
    now and then for the hours that have ended. An hour is summarised for a site that was
    heard from at all in it (a jump of the wall clock at boot makes no empty hours); a
    quantity the site has no device for is `null`, as is water or energy in an hour no meter
    reading arrived (unknown, not zero). Meter totals become usage by difference; a total
    that goes down (a meter replaced or reset) starts a new baseline and counts nothing.

    Args:
        tz: the gateway's time zone: hours are its wall-clock hours.
        capable: per site, the summary fields it has devices for (`movement_quarters`,
            `door_openings`, `water_l`, `energy_kwh`).
        started: when the summariser began (its first hour is marked `partial`).
    """

    def __init__(self, tz: ZoneInfo, capable: dict[str, set[str]], started: Instant) -> None:
        self.tz = tz
        self.capable = capable
        self._started = self._hour_of(started.wall)
        self._hours: dict[tuple[str, datetime], _Hour] = {}
        self._closed_until: datetime | None = None  # hours before this one were emitted
        self._totals: dict[tuple[str, str], float] = {}
        self._door_open: dict[str, bool] = {}

    def _hour_of(self, wall: datetime) -> datetime:
        local = wall.astimezone(self.tz)
        return local.replace(minute=0, second=0, microsecond=0)

    def add(self, obs: Observation) -> None:
        """Count one observation of a site at the `summary` level."""
        hour = self._hour_of(obs.at.wall)
        if self._closed_until is not None and hour < self._closed_until:
            hour = self._closed_until  # late, or the wall clock went back: the open hour
        key = (obs.site_id, hour)
        bucket = self._hours.get(key)
        if bucket is None:
            bucket = self._hours[key] = _Hour(partial=hour == self._started)
        value = obs.value
        if obs.metric in _TOTALS and isinstance(value, int | float) and not isinstance(
            value, bool
        ):
            name, scale = _TOTALS[obs.metric]
            before = self._totals.get((obs.device_id, obs.metric))
            self._totals[(obs.device_id, obs.metric)] = float(value)
            used = 0.0 if before is None or value < before else (value - before) * scale
            setattr(bucket, name, (getattr(bucket, name) or 0.0) + used)
        elif obs.metric in MOVEMENT_METRICS and value is True:
            local = obs.at.wall.astimezone(self.tz)
            quarter = local.minute // 15 if self._hour_of(obs.at.wall) == hour else 0
            bucket.quarters.add(quarter)
        elif obs.metric == "door_open" and isinstance(value, bool):
            # A contact repeats its state with every battery report: count openings only.
            if value and not self._door_open.get(obs.device_id, False):
                bucket.door_openings += 1
            self._door_open[obs.device_id] = value

    def close(self, now: Instant) -> list[dict[str, Any]]:
        """The summaries of every hour that ended (by `now`'s wall clock), oldest first;
        each is returned once."""
        limit = self._hour_of(now.wall - CLOSE_GRACE)
        done = sorted((k for k in self._hours if k[1] < limit), key=lambda k: (k[1], k[0]))
        out = [self._summary(site, hour, self._hours.pop((site, hour))) for site, hour in done]
        if self._closed_until is None or limit > self._closed_until:
            self._closed_until = limit
        return out

    def forget_site(self, site_id: str) -> None:
        """Drop what is gathered of one site (its resident's data was erased)."""
        self._hours = {k: v for k, v in self._hours.items() if k[0] != site_id}

    def _summary(self, site_id: str, hour: datetime, h: _Hour) -> dict[str, Any]:
        can = self.capable.get(site_id, set())
        out: dict[str, Any] = {
            "site_id": site_id,
            "hour": isoformat(hour, self.tz),
            "water_l": round(h.water_l, 1) if h.water_l is not None else None,
            "energy_kwh": round(h.energy_kwh, 3) if h.energy_kwh is not None else None,
            "movement_quarters": len(h.quarters) if "movement_quarters" in can else None,
            "door_openings": h.door_openings if "door_openings" in can else None,
        }
        if h.partial:
            out["partial"] = True  # the gateway started during this hour
        return out


def summary_payload(summaries: list[dict[str, Any]]) -> str:
    """A `P/telemetry` message of hourly summaries (docs/mqtt-api.md)."""
    return json.dumps(
        {"schema": SUMMARY_SCHEMA, "summaries": summaries},
        ensure_ascii=False, separators=(",", ":"),
    )


# Which device kinds can tell each summary field.
FIELD_KINDS = {
    "movement_quarters": {"motion_sensor", "presence_sensor"},
    "door_openings": {"door_contact"},
    "water_l": {"water_meter"},
    "energy_kwh": {"power_meter"},
}


def capabilities(devices: list[tuple[str, str]]) -> dict[str, set[str]]:
    """Per site, the summary fields its devices (pairs of site id and kind) can tell."""
    out: dict[str, set[str]] = {}
    for site, kind in devices:
        out.setdefault(site, set()).update(f for f, kinds in FIELD_KINDS.items() if kind in kinds)
    return out
