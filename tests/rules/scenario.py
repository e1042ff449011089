"""A simulated resident living alone: days of ordinary life as recorded observations.

Seeded and irregular: wake and bed times, outings, naps, showers, a washing machine,
night-time toilet trips, sensor heartbeats with jitter. Incidents can be injected on a
given day. The output is a list of `gateway.replay.Event`, exactly what
`hearthgate replay` reads from a JSONL file.
"""

from __future__ import annotations

import bisect
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hearthgate.replay import Event

SITE = "home-1"
DEVICES: list[dict[str, Any]] = [
    {"id": "water-1", "kind": "water_meter"},
    {"id": "power-1", "kind": "power_meter"},
    {"id": "pir-living", "kind": "motion_sensor"},
    {"id": "pir-bath", "kind": "motion_sensor"},
    {"id": "door-1", "kind": "door_contact"},
    {"id": "sos-1", "kind": "sos_button", "protocol": "rulestest_rf"},
]
POLL = 300.0  # meters are read every 5 minutes
INCIDENTS = ("fall", "no_water_day", "door_night", "sos", "tap", "meter_silent", "weekend_away")


@dataclass
class Flow:
    start: float  # epoch seconds
    end: float
    rate: float  # m³/s or W


@dataclass
class Life:
    tz: ZoneInfo
    rng: random.Random
    motion: list[float] = field(default_factory=list)
    bath: list[float] = field(default_factory=list)
    doors: list[tuple[float, bool]] = field(default_factory=list)
    water: list[Flow] = field(default_factory=list)
    power: list[Flow] = field(default_factory=list)
    extra: list[tuple[float, str, str, Any, dict[str, Any]]] = field(default_factory=list)
    away: list[tuple[float, float]] = field(default_factory=list)  # (leave, back)
    no_water: list[tuple[float, float]] = field(default_factory=list)  # supply cut
    silent: dict[str, float] = field(default_factory=dict)  # device -> silent from
    # Motion seen by further PIRs, `pir-<room>` (tests/rules/residents.py: the bedroom).
    rooms: dict[str, list[float]] = field(default_factory=dict)
    end: float = 0.0

    def at(self, day: date, hh: int, mm: float = 0.0) -> float:
        base = datetime.combine(day, time(0), tzinfo=self.tz)
        return (base + timedelta(hours=hh, minutes=mm)).timestamp()

    def moves(self, start: float, end: float, mean_gap: float, room: str = "living",
              longest: float = 40 * 60) -> None:
        t = start
        times = self.seen_in(room)
        while t < end:
            times.append(t)
            t += min(self.rng.expovariate(1 / mean_gap), longest)

    def seen_in(self, room: str) -> list[float]:
        """The motion times of the PIR in `room` (living, bath, or one of `rooms`)."""
        if room == "living":
            return self.motion
        if room == "bath":
            return self.bath
        return self.rooms.setdefault(room, [])

    def tap(self, start: float, litres: float, minutes: float) -> None:
        self.water.append(Flow(start, start + minutes * 60, litres / 1000 / (minutes * 60)))
        self.bath.append(start)

    def appliance(self, start: float, watts: float, minutes: float) -> None:
        self.power.append(Flow(start, start + minutes * 60, watts))

    def leave(self, t: float, back: float) -> None:
        self.motion.append(t - self.rng.uniform(5, 60))
        doors = [(t, True), (t + self.rng.uniform(4, 15), False)]
        doors += [(back, True), (back + self.rng.uniform(4, 15), False)]
        self.extra += [(at, "door-1", "door_open", value, {}) for at, value in doors]
        self.motion.append(back + self.rng.uniform(20, 50))
        self.away.append((t, back))

    def home(self, t: float) -> bool:
        return not any(a <= t < b for a, b in self.away)


def _ordinary_day(life: Life, day: date, *, out_today: bool, incident: str | None) -> None:
    rng = life.rng
    sleepy = rng.random() < 0.12
    wake = life.at(day, 8 if sleepy else 6, rng.uniform(0, 45) if sleepy else rng.uniform(30, 110))
    bed = life.at(day, 21, rng.uniform(0, 70))
    # Night: 0-2 toilet trips.
    for _ in range(rng.choice((0, 1, 1, 2))):
        t = life.at(day, 0, rng.uniform(40, 290))
        life.moves(t, t + 240, 60, "bath")
        life.tap(t + 60, 6, 2)
    if incident == "door_night":
        t = life.at(day, 3, 0)
        life.motion += [t - 40, t + 60]
        life.doors += [(t, True), (t + 25, False)]
    # Morning routine.
    life.moves(wake, wake + 25 * 60, 90, "bath")
    life.tap(wake + 120, 6, 2)
    life.tap(wake + 300, 3, 3)
    shower_morning = rng.random() < 0.4
    if shower_morning:
        life.tap(wake + 600, rng.uniform(60, 100), rng.uniform(8, 12))
    breakfast = wake + 30 * 60 + rng.uniform(0, 20 * 60)
    life.appliance(breakfast, 1800, 4)
    life.tap(breakfast, 1, 1)
    busy_until = breakfast + 30 * 60
    life.moves(wake + 25 * 60, busy_until, 150)

    if incident == "fall":
        fall = life.at(day, 10, 0)
        life.moves(busy_until, fall, 240)
        life.motion.append(fall - 30)
        life.end = min(life.end, fall + 24 * 3600)
        return
    if incident == "tap":
        t = life.at(day, 10, 30)
        life.water.append(Flow(t, t + 4 * 3600, 6 / 1000 / 60))

    # Late morning: maybe out shopping, else at home; a washing machine now and then.
    t = busy_until
    lunch = life.at(day, 11, rng.uniform(30, 80))
    if out_today and incident != "tap":
        leave = max(t + 600, life.at(day, 8, rng.uniform(30, 120)))
        back = min(leave + rng.uniform(45, 150) * 60, lunch - 600)
        if back > leave + 600:
            life.moves(t, leave, 200)
            life.leave(leave, back)
            t = back + 60
    if rng.random() < 0.2 and life.home(t):
        for offset, minutes in ((0, 3), (22, 2), (48, 2), (75, 3)):
            life.tap(t + offset * 60, 12, minutes)
    life.moves(t, lunch, 300)
    # Lunch, then a nap.
    life.appliance(lunch, 1500, rng.uniform(20, 40))
    life.tap(lunch + 35 * 60, rng.uniform(6, 12), rng.uniform(4, 8))
    nap = life.at(day, 13, rng.uniform(0, 45))
    life.moves(lunch, nap, 180)
    life.tap(nap - 300, 6, 2)
    wake2 = nap + rng.uniform(30, 110) * 60
    # Afternoon: maybe out for a walk.
    dinner = life.at(day, 17, rng.uniform(30, 80))
    t = wake2
    if rng.random() < 0.4:
        leave = wake2 + rng.uniform(10, 60) * 60
        back = min(leave + rng.uniform(30, 120) * 60, dinner - 600)
        if back > leave + 600:
            life.moves(t, leave, 240)
            life.tap(leave - 900, 6, 2)
            life.leave(leave, back)
            t = back + 60
            life.tap(t + 300, 2, 1)
    life.moves(t, dinner, 300)
    life.tap(t + 900, 6, 2)
    # Dinner, evening, shower, bed.
    life.appliance(dinner, 1500, rng.uniform(25, 45))
    life.tap(dinner + 50 * 60, rng.uniform(8, 15), rng.uniform(5, 10))
    life.moves(dinner, bed, 480)
    life.appliance(dinner + 3600, 120, (bed - dinner - 3600) / 60)  # TV
    if not shower_morning:
        life.tap(bed - rng.uniform(60, 90) * 60, rng.uniform(60, 100), rng.uniform(8, 12))
    life.tap(bed - 600, 6, 2)
    life.moves(bed - 900, bed, 120, "bath")


class _Sweep:
    """The integral and the rate of flows at increasing times, each flow summed once after it
    ended: a month of readings would otherwise sum every flow at every read."""

    def __init__(self, flows: list[Flow]) -> None:
        self.pending = sorted(flows, key=lambda f: f.start)
        self.next = 0
        self.ended = 0.0
        self.active: list[Flow] = []

    def at(self, t: float) -> tuple[float, float]:
        """(the integral up to t, the rate at t)."""
        while self.next < len(self.pending) and self.pending[self.next].start < t:
            self.active.append(self.pending[self.next])
            self.next += 1
        for f in [f for f in self.active if f.end <= t]:
            self.ended += (f.end - f.start) * f.rate
            self.active.remove(f)
        running = sum((t - f.start) * f.rate for f in self.active)
        rate = sum(f.rate for f in self.active if f.start <= t)
        return self.ended + running, rate


def simulate(
    days: int = 30,
    seed: int = 1,
    *,
    start: date = date(2026, 11, 2),  # a Monday
    timezone: str = "Asia/Shanghai",
    incident: str | None = None,
    incident_day: int = 3,
) -> tuple[list[Event], dict[str, Any]]:
    """Events of `days` days and facts about the incident (times as epoch seconds)."""
    tz = ZoneInfo(timezone)
    life = Life(tz, random.Random(seed))
    life.end = life.at(start + timedelta(days=days), 0)
    facts: dict[str, Any] = {}
    last_out = -1
    weekend: tuple[float, float] | None = None
    for i in range(days):
        day = start + timedelta(days=i)
        kind = incident if i == incident_day else None
        if incident == "weekend_away" and day.weekday() == 4 and i >= incident_day and not weekend:
            weekend = (life.at(day, 10, 0), life.at(day + timedelta(days=2), 18, 0))
            life.leave(*weekend)
            facts["away"] = weekend
        if weekend and life.at(day, 0) < weekend[1] and life.at(day, 24) > weekend[0]:
            # Friday morning and Sunday evening at home; what falls in between is dropped.
            if life.at(day, 0) <= weekend[0] or life.at(day, 24) >= weekend[1]:
                _ordinary_day(life, day, out_today=False, incident=None)
            continue
        out_today = life.rng.random() < 0.6 or i - last_out >= 2
        if out_today:
            last_out = i
        _ordinary_day(life, day, out_today=out_today, incident=kind)
        if kind == "fall":
            facts["fall"] = life.at(day, 10, 0)
            break
        if kind == "no_water_day":
            cut = (life.at(day, 0, 0), life.at(day + timedelta(days=1), 0, 0))
            life.no_water.append(cut)
            facts["no_water_from"] = cut[0]
        if kind == "door_night":
            facts["door_at"] = life.at(day, 3, 0)
        if kind == "sos":
            t = life.at(day, 15, 0)
            for k in range(3):  # the radio repeats the press
                life.extra.append((t + k * 0.3, "sos-1", "sos", True, {}))
            facts["sos_at"] = t
        if kind == "tap":
            facts["tap_from"] = life.at(day, 10, 30)
        if kind == "meter_silent":
            life.silent["water-1"] = life.at(day, 11, 0)
            facts["silent_from"] = life.silent["water-1"]
    if incident == "fall":
        life.end = facts["fall"] + 20 * 3600
        _cut(life, facts["fall"] + 1)
    return _render(life, start), facts


def _cut(life: Life, t: float) -> None:
    """Nothing the resident does happens after t (but meters and heartbeats go on)."""
    life.motion = [m for m in life.motion if m < t]
    life.bath = [m for m in life.bath if m < t]
    life.doors = [d for d in life.doors if d[0] < t]
    life.water = [f for f in life.water if f.start < t]
    life.power = [f for f in life.power if f.start < t]
    life.rooms = {room: [m for m in times if m < t] for room, times in life.rooms.items()}


def _render(life: Life, start: date, since: float | None = None) -> list[Event]:
    """The events of `life` from `start` (or from `since`, epoch seconds) to `life.end`."""
    rng = life.rng
    t0 = life.at(start, 0)
    end = life.end
    raw: list[tuple[float, str, str, Any, dict[str, Any]]] = []
    # Water flows stop while the supply is cut, and nobody uses water while away.
    water = [
        f for f in life.water
        if life.home(f.start) and not any(a <= f.start < b for a, b in life.no_water)
    ]
    motion = sorted(m for m in life.motion if life.home(m) or m < t0)
    bath = sorted(m for m in life.bath if life.home(m))
    fridge = [Flow(t0, end, 70.0)]
    power = [f for f in life.power if life.home(f.start)] + fridge
    rooms = [(f"pir-{room}", sorted(m for m in times if life.home(m)))
             for room, times in life.rooms.items()]
    for name, times in (("pir-living", motion), ("pir-bath", bath), *rooms):
        for i, m in enumerate(times):
            raw.append((m, name, "motion", True, {}))
            if i + 1 == len(times) or times[i + 1] > m + 90:
                raw.append((m + 90, name, "motion", False, {}))
    for t, is_open in sorted(d for d in life.doors if life.home(d[0])):
        raw.append((t, "door-1", "door_open", is_open, {}))
    # Meters: read every 5 minutes with a little jitter.
    first = t0 if since is None else max(t0, since)
    t = t0 + 60 + POLL * ((first - t0) // POLL)
    base_water, base_kwh = 123.456, 4567.8
    water_sweep, power_sweep = _Sweep(water), _Sweep(power)
    while t < end:
        tt = t + rng.uniform(-5, 5)
        volume = water_sweep.at(tt)[0]
        if tt < life.silent.get("water-1", float("inf")):
            total = base_water + volume
            raw.append((tt, "water-1", "water_total_m3", round(total, 3), {}))
        joules, watts = power_sweep.at(tt)
        kwh = base_kwh + joules / 3600 / 1000
        raw.append((tt + 1, "power-1", "energy_total_kwh", round(kwh, 3), {}))
        raw.append((tt + 1, "power-1", "power_w", round(watts + rng.uniform(-5, 5), 1), {}))
        t += POLL
    # Zigbee sensors report battery every 50 +- 10 minutes.
    batteries = [("pir-living", 96.0), ("pir-bath", 91.0), ("door-1", 88.0)]
    batteries += [(name, 93.0) for name, _ in rooms]
    for device, pct in batteries:
        t = first + rng.uniform(0, 600)
        while t < end:
            pct -= 0.003
            raw.append((t, device, "battery_pct", round(pct), {}))
            t += rng.uniform(40, 60) * 60
    raw += life.extra
    raw = [r for r in raw if first <= r[0] < end]
    raw.sort(key=lambda r: r[0])
    events = []
    for i, (t, device, metric, value, attrs) in enumerate(raw, start=1):
        at = datetime.fromtimestamp(round(t, 3), UTC).astimezone(life.tz)
        events.append(Event(i, at, device, SITE, metric, value, attrs))
    return events


def to_jsonl(events: list[Event]) -> str:
    return "".join(
        json.dumps({"at": e.at.isoformat(), "device_id": e.device_id, "metric": e.metric,
                    "value": e.value, **({"attrs": e.attrs} if e.attrs else {})}) + "\n"
        for e in events
    )


__all__ = ["DEVICES", "INCIDENTS", "POLL", "SITE", "bisect", "simulate", "to_jsonl"]
