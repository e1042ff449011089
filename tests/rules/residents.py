"""Simulated residents with their own routines, and the scenario suite of issue 16.

A resident is a `Routine`: when they usually get up and go to bed and how much that varies
from day to day, how often they visit the bathroom at night, whether they nap and where,
how often they go out, have visitors, stay away for a few nights or fall ill. `live` turns a
routine into days of observations (seeded), on the devices of `DEVICES`: a PIR in the
bedroom, the bathroom and the living room (with the kitchen), the entrance door, water and
electricity meters read every 5 minutes, an SOS button. The rendering (meters, PIR
occupancy timeouts, battery heartbeats) is tests/rules/scenario.py's.

What the generator models, and what it assumes (chosen before any rule was measured
against it, from how people live, not from the rules' windows):

- Getting up: a time drawn each day around the resident's usual one (normal, their own
  spread), earlier on weekdays with an appointment; now and then a late morning after a bad
  night (30-75 min later). Then the bathroom (8-20 min, taps, a shower some mornings), then
  breakfast in the kitchen (kettle, tap).
- PIRs see a person walking into or through their room every time; someone sitting (TV,
  reading) is seen at irregular moments (exponential gaps, their own mean) and at least
  every 45 minutes (shifting, reaching, standing up). A nap is no motion at all.
- Night: 0 or more bathroom visits (Poisson, their own rate; 3-10 min, a flush), and the
  PIR in the bedroom now and then seeing someone turn over.
- The day: bathroom visits every few hours, lunch and dinner cooked (1.5 kW), TV in the
  evening, a fridge always; outings (door open and close, nobody home), visitors (the door,
  more movement while they stay), a few nights away, a spell of illness (up later, more
  night visits, naps in bed, dozing in the armchair, no outings).

Incidents are injected on a copy of an ordinary day, from the moment they happen: nothing
the resident does after it happens (meters, the fridge and heartbeats go on). `suite` runs
everything through the real rule engine (`build_engine`, the replay path, simulated time)
and measures the minutes from each incident to the first alert about the resident, and
the alerts raised on days without an incident (false alarms).
"""

from __future__ import annotations

import copy
import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hearthgate.config import GatewayConfig
from hearthgate.engine_builder import build_engine
from hearthgate.replay import Event, Replayer, simulated_instant
from hearthgate.rules.engine import RuleEngine
from hearthgate.rules.profiles import expand_rules
from tests.rules.scenario import Flow, Life, _cut, _render
from tests.rules.support import make_config

SITE = "home-1"
TIMEZONE = "Asia/Shanghai"
START = date(2026, 11, 2)  # a Monday
DEVICES: list[dict[str, Any]] = [
    {"id": "water-1", "kind": "water_meter"},
    {"id": "power-1", "kind": "power_meter"},
    {"id": "pir-living", "kind": "motion_sensor", "room": "living"},
    {"id": "pir-bath", "kind": "motion_sensor", "room": "bathroom"},
    {"id": "pir-bed", "kind": "motion_sensor", "room": "bedroom"},
    {"id": "door-1", "kind": "door_contact", "room": "hall"},
    {"id": "sos-1", "kind": "sos_button", "protocol": "rulestest_rf"},
]
M = 60.0
H = 3600.0
# Alerts about a device, not the resident: they do not count as finding an incident.
DEVICE_ALERTS = frozenset({"device_offline", "battery_low", "tamper"})
INCIDENTS = ("bathroom_fall_0230", "not_up", "living_fall_1600")
# Incidents beyond issue 16's three, measured and printed but not held to its hour: a day
# in bed unwell (up, to the kitchen for a glass of water, back to bed; the bathroom every
# few hours; nothing cooked, no kettle, no shower): only the meters tell that day apart.
EXTRA_INCIDENTS = ("ill_in_bed",)
ALL_INCIDENTS = INCIDENTS + EXTRA_INCIDENTS
# Issue 16's targets: minutes to the first alert, per incident; false alarms a month.
TARGET_MEDIAN = 60.0
TARGET_P90 = 90.0
TARGET_FALSE_PER_MONTH = 1.0
# An incident nobody is alerted to within this long is counted as missed.
MISSED_AFTER = 12 * H
# A day in bed is a day's story: missed if nothing is said by the end of the evening.
MISSED_AFTER_BY = {"ill_in_bed": 16 * H}


@dataclass(frozen=True)
class Routine:
    name: str
    wake: float  # usual time out of bed, minutes after midnight
    wake_sd: float  # its day-to-day spread (standard deviation, minutes)
    bed: float  # usual bedtime, minutes after midnight
    bed_sd: float = 25.0
    night_visits: float = 1.0  # bathroom visits a night (mean)
    visit_min: tuple[float, float] = (3.0, 8.0)
    sit_gap: float = 8.0  # mean minutes between motions seen while sitting
    nap_p: float = 0.2  # an afternoon nap
    nap_room: str = "living"  # where: the armchair (living) or the bed
    nap_min: tuple[float, float] = (20.0, 45.0)
    out_p: float = 0.5  # going out (shopping in the morning, a walk in the afternoon)
    visitor_p: float = 0.1  # a visitor in the afternoon
    away_every: int = 0  # two nights away every this many days (0: never)
    ill_days: int = 0  # a spell of illness this long, once
    late_p: float = 0.06  # a late morning after a bad night
    early_weekdays: frozenset[int] = frozenset()  # an appointment: up 45 min earlier


RESIDENTS: tuple[Routine, ...] = (
    Routine("early riser", wake=5 * 60 + 50, wake_sd=20, bed=21 * 60, nap_p=0.3),
    Routine("late riser", wake=8 * 60 + 40, wake_sd=30, bed=23 * 60 + 30, night_visits=0.5),
    Routine("napper", wake=7 * 60, wake_sd=25, bed=21 * 60 + 30, nap_p=0.9,
            nap_min=(60, 120), out_p=0.35),
    Routine("night visits", wake=7 * 60 + 15, wake_sd=30, bed=21 * 60 + 30, night_visits=2.5,
            visit_min=(4, 12)),
    Routine("visitors", wake=7 * 60 + 30, wake_sd=25, bed=22 * 60, visitor_p=0.5),
    Routine("days away", wake=7 * 60, wake_sd=30, bed=22 * 60, away_every=10, out_p=0.6),
    Routine("illness", wake=7 * 60 + 20, wake_sd=25, bed=22 * 60, ill_days=4),
    Routine("day centre", wake=7 * 60 + 20, wake_sd=25, bed=21 * 60 + 45,
            early_weekdays=frozenset({1, 4}), out_p=0.4),
    Routine("still sitter", wake=6 * 60 + 45, wake_sd=35, bed=22 * 60, sit_gap=14,
            nap_p=0.5, nap_room="bed", nap_min=(40, 90)),
    Routine("irregular", wake=7 * 60 + 30, wake_sd=40, bed=22 * 60 + 30, bed_sd=45,
            night_visits=1.5, late_p=0.1, ill_days=3),
)


@dataclass
class Day:
    """What happened on one day, for choosing incident days and sorting alerts."""

    index: int
    kind: str = "plain"  # plain, ill, away
    wake: float = 0.0  # epoch seconds out of bed
    home_0230: bool = False  # in bed, at home, not in the bathroom
    alone_1600: bool = False  # at home, alone, awake in the living room at 16:00


@dataclass
class Lived:
    life: Life
    days: list[Day]
    start: date
    events: list[Event] = field(default_factory=list)


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _bathroom(life: Life, t: float, minutes: float) -> float:
    """A visit to the bathroom from t: movement there, a flush and a wash; returns its end."""
    end = t + minutes * M
    life.moves(t, end, 1.5 * M, "bath", longest=4 * M)
    life.tap(end - 90, 6, 1)
    return end


def _sitting(life: Life, start: float, end: float, gap: float, longest: float) -> None:
    """At home in the living room, with a visit to the bathroom every few hours."""
    t = start
    while t < end:
        visit = t + life.rng.expovariate(1 / (150 * M))
        stop = min(visit, end)
        life.moves(t, stop, gap * M, "living", longest=longest)
        if visit >= end:
            return
        life.motion.append(visit - 20)
        t = _bathroom(life, visit, life.rng.uniform(3, 6)) + 20
        if t >= end:  # back in the living room, whatever comes next
            life.motion.append(t)


def _morning(life: Life, r: Routine, day: date, d: Day, bed_before: float, ill: bool
             ) -> tuple[float, bool]:
    """The night before and getting up: (end of breakfast, showered)."""
    rng = life.rng
    at = life.at
    shift = -45.0 if day.weekday() in r.early_weekdays else 0.0
    late = rng.uniform(30, 75) if rng.random() < r.late_p else 0.0
    wake_min = r.wake + shift + rng.gauss(0, r.wake_sd) + late
    if ill:
        wake_min += rng.uniform(20, 90)
    wake = at(day, 0, min(max(wake_min, 4 * 60 + 45), 10 * 60 + 30))
    d.wake = wake
    # The night: turning over in bed, visits to the bathroom.
    for _ in range(_poisson(rng, 1.5)):
        life.seen_in("bed").append(rng.uniform(bed_before + 20 * M, wake - 10 * M))
    visits = sorted(rng.uniform(bed_before + 40 * M, wake - 20 * M)
                    for _ in range(_poisson(rng, r.night_visits + (1.0 if ill else 0.0))))
    free = bed_before
    d.home_0230 = True
    for v in visits:
        if v < free:
            continue
        life.seen_in("bed").append(v)
        end = _bathroom(life, v + 30, rng.uniform(*r.visit_min))
        life.seen_in("bed").extend([end + 25, end + 25 + rng.uniform(30, 120)])
        free = end + 5 * M
        if v - 10 * M <= at(day, 2, 30) <= end + 5 * M:
            d.home_0230 = False
    # Up: bedroom, bathroom, breakfast in the kitchen.
    life.seen_in("bed").extend([wake, wake + 40])
    t = _bathroom(life, wake + 60, rng.uniform(8, 20))
    shower_morning = rng.random() < 0.4
    if shower_morning:
        life.tap(t - 11 * M, rng.uniform(60, 100), rng.uniform(8, 11))
    life.appliance(t + 60, 1800, 4)
    life.tap(t + 120, 1, 1)
    breakfast_end = t + rng.uniform(30, 50) * M
    life.moves(t + 30, breakfast_end, 2 * M)
    life.tap(breakfast_end - 5 * M, 4, 3)
    return breakfast_end, shower_morning


def _day(life: Life, r: Routine, day: date, d: Day, bed_before: float, ill: bool) -> float:
    """One day at home, from the night before to bedtime; returns the bedtime."""
    rng = life.rng
    at = life.at
    breakfast_end, shower_morning = _morning(life, r, day, d, bed_before, ill)
    gap, longest = (r.sit_gap * 1.5, 60 * M) if ill else (r.sit_gap, 45 * M)
    # The morning: out shopping, or at home.
    lunch = at(day, 11, rng.uniform(30, 90))
    t = breakfast_end
    if not ill and rng.random() < r.out_p:
        leave = max(t + 10 * M, at(day, 9, rng.uniform(0, 90)))
        back = min(leave + rng.uniform(45, 150) * M, lunch - 10 * M)
        if back > leave + 20 * M:
            _sitting(life, t, leave, gap, longest)
            life.leave(leave, back)
            t = back + 60
    elif rng.random() < 0.5:
        # The door opened for a moment without going out: the post, the rubbish, a
        # neighbour at the door (tests/rules/scenario.py's resident has none of these).
        chore = t + rng.uniform(10, 120) * M
        if chore < lunch - 10 * M:
            _sitting(life, t, chore, gap, longest)
            shut = chore + rng.uniform(20, 90)
            life.extra += [(chore, "door-1", "door_open", True, {}),
                           (shut, "door-1", "door_open", False, {})]
            life.motion.append(shut + rng.uniform(5, 40))
            t = shut + 60
    _sitting(life, t, lunch, gap, longest)
    life.appliance(lunch, 1500, rng.uniform(20, 40))
    lunch_end = lunch + rng.uniform(35, 55) * M
    life.moves(lunch, lunch_end, 2 * M)
    life.tap(lunch_end - 8 * M, rng.uniform(6, 12), rng.uniform(4, 8))
    t = lunch_end
    # A nap: in the armchair (no motion at all) or in bed.
    nap_p, nap_room, nap_min = (0.9, "bed", (60, 150)) if ill else (r.nap_p, r.nap_room,
                                                                     r.nap_min)
    if rng.random() < nap_p:
        nap = t + rng.uniform(10, 45) * M
        _sitting(life, t, nap, gap, longest)
        woke = nap + rng.uniform(*nap_min) * M
        if nap_room == "bed":
            life.seen_in("bed").extend([nap, nap + 60, woke, woke + 30])
        else:
            life.motion.append(nap)
        life.motion.append(woke + 40)
        t = woke + 60
    # The afternoon: a walk, or a visitor, or at home.
    dinner = at(day, 17, rng.uniform(30, 90))
    roll = rng.random()
    alone = True
    if not ill and roll < r.out_p * 0.6:
        leave = max(t + 15 * M, at(day, 14, rng.uniform(30, 150)))
        back = min(leave + rng.uniform(30, 120) * M, dinner - 10 * M)
        if back > leave + 20 * M:
            _sitting(life, t, leave, gap, longest)
            life.leave(leave, back)
            alone = not leave - 30 * M <= at(day, 16) <= back + 30 * M
            t = back + 60
    elif roll > 1 - r.visitor_p:
        arrive = max(t + 10 * M, at(day, 15, rng.uniform(0, 150)))
        leave = min(arrive + rng.uniform(60, 120) * M, dinner - 5 * M)
        if leave > arrive + 20 * M:
            _sitting(life, t, arrive, gap, longest)
            for door_t in (arrive, leave):
                life.extra += [(door_t, "door-1", "door_open", True, {}),
                               (door_t + rng.uniform(5, 20), "door-1", "door_open", False, {})]
            life.moves(arrive + 20, leave, 1.5 * M)  # the visitor and the resident
            alone = not arrive - 30 * M <= at(day, 16) <= leave + 30 * M
            t = leave + rng.uniform(1, 10) * M
    d.alone_1600 = alone and t < at(day, 15, 40)
    _sitting(life, t, dinner, gap, longest)
    return _evening(life, r, day, dinner, gap, longest, shower_morning)


def _evening(life: Life, r: Routine, day: date, dinner: float, gap: float, longest: float,
             shower_morning: bool) -> float:
    """Dinner, the evening in front of the TV, a shower some evenings, bed; returns bedtime."""
    rng = life.rng
    at = life.at
    life.appliance(dinner, 1500, rng.uniform(25, 45))
    dinner_end = dinner + rng.uniform(45, 70) * M
    life.moves(dinner, dinner_end, 2 * M)
    life.tap(dinner_end - 10 * M, rng.uniform(8, 15), rng.uniform(5, 10))
    bed = at(day, 0, min(r.bed + rng.gauss(0, r.bed_sd), 23 * 60 + 50))
    bed = max(bed, dinner_end + 60 * M)
    life.appliance(dinner_end, 120, (bed - dinner_end) / M)
    if not shower_morning and rng.random() < 0.6:
        _sitting(life, dinner_end, bed - 55 * M, gap, longest)
        life.motion.append(bed - 53 * M)
        life.tap(bed - 50 * M, rng.uniform(60, 100), rng.uniform(8, 11))
        life.moves(bed - 52 * M, bed - 38 * M, 2 * M, "bath")
        t = bed - 37 * M
    else:
        t = dinner_end
    _sitting(life, t, bed - 20 * M, gap, longest)
    life.motion.append(bed - 19 * M)
    _bathroom(life, bed - 18 * M, rng.uniform(8, 12))
    life.seen_in("bed").extend([bed, bed + 60, bed + rng.uniform(2, 6) * M])
    return bed


def live(r: Routine, days: int, seed: int, *, start: date = START,
         timezone: str = TIMEZONE) -> Lived:
    """`days` ordinary days of `r`, seeded; `.events` rendered."""
    tz = ZoneInfo(timezone)
    life = Life(tz, random.Random(seed))
    life.end = life.at(start + timedelta(days=days), 0)
    out: list[Day] = []
    bed = life.at(start, 0) - 2 * H
    ill_from = life.rng.randrange(16, max(17, days - r.ill_days)) if r.ill_days else -1
    away_from = -1
    for i in range(days):
        day = start + timedelta(days=i)
        d = Day(i)
        out.append(d)
        if r.away_every and i >= 3 and (i - 3) % r.away_every == 0 and i + 2 < days:
            away_from = i  # leaves late morning, back two days later in the afternoon
            breakfast_end, _ = _morning(life, r, day, d, bed, False)
            leave = max(breakfast_end + 20 * M, life.at(day, 10, life.rng.uniform(0, 60)))
            back = life.at(day + timedelta(days=2), 16, life.rng.uniform(0, 90))
            life.moves(breakfast_end, leave - 5 * M, 5 * M)
            life.leave(leave, back)
        if 0 <= away_from and i - away_from <= 2:
            d.kind = "away"
            if i - away_from == 2:
                # Home again: the bathroom first, then an ordinary evening.
                back = max(a for _, a in life.away)
                t = _bathroom(life, back + 3 * M, life.rng.uniform(3, 6)) + 20
                dinner = max(t + 30 * M, life.at(day, 17, life.rng.uniform(30, 90)))
                _sitting(life, t, dinner, r.sit_gap, 45 * M)
                bed = _evening(life, r, day, dinner, r.sit_gap, 45 * M, False)
            continue
        ill = ill_from <= i < ill_from + r.ill_days
        if ill:
            d.kind = "ill"
        bed = _day(life, r, day, d, bed, ill)
    return Lived(life, out, start, _render(life, start))


# -- incidents -------------------------------------------------------------------------


def incident_life(lived: Lived, incident: str, index: int) -> tuple[Life, float, float]:
    """A copy of the life with `incident` on day `index`: (life, incident at, render from)."""
    life = copy.deepcopy(lived.life)
    rng = random.Random(index * 7919 + ALL_INCIDENTS.index(incident))
    life.rng = rng
    day = lived.start + timedelta(days=index)
    midnight = life.at(day, 0)
    if incident == "bathroom_fall_0230":
        at = life.at(day, 2, 30)
        _stop(life, at - 2 * M)
        life.seen_in("bed").append(at - 100)
        life.bath += [at - 60, at]  # in, and the last movement: the fall
    elif incident == "not_up":
        at = lived.days[index].wake
        _stop(life, at)
        if rng.random() < 0.5:  # ill in bed: the bedroom PIR sees them stir now and then
            life.moves(at + 10 * M, at + MISSED_AFTER, 30 * M, "bed", longest=60 * M)
    elif incident == "living_fall_1600":
        at = life.at(day, 16)
        _stop(life, at - 2 * M)
        life.motion += [at - 90, at]
    elif incident == "ill_in_bed":
        at = lived.days[index].wake
        _stop(life, at)
        _in_bed_all_day(life, at, at + MISSED_AFTER_BY[incident])
    else:
        raise ValueError(incident)
    life.end = at + MISSED_AFTER_BY.get(incident, MISSED_AFTER)
    return life, at, midnight


def _in_bed_all_day(life: Life, t: float, end: float) -> None:
    """Unwell, alive, in bed: the bathroom, a glass of water in the kitchen, back to bed;
    then the bathroom every 2-4 hours and the bedroom PIR seeing them stir."""
    rng = life.rng
    life.seen_in("bed").extend([t, t + 40])
    t = _bathroom(life, t + 60, rng.uniform(5, 10))
    life.motion += [t + 30, t + 90]  # the kitchen
    life.tap(t + 60, 0.3, 0.2)
    t += 4 * M
    while t < end:
        up = min(end, t + rng.uniform(2, 4) * H)
        life.moves(t, up, 30 * M, "bed", longest=60 * M)
        t = up
        if t < end:
            t = _bathroom(life, t, rng.uniform(3, 6)) + 30


def _stop(life: Life, t: float) -> None:
    """Nothing the resident does happens from t on: their movements, doors, taps."""
    _cut(life, t)
    life.extra = [e for e in life.extra if e[0] < t]
    life.away = [(a, b) for a, b in life.away if a < t]
    life.water = [replace(f, end=min(f.end, t)) for f in life.water]


# -- the suite -------------------------------------------------------------------------


def suite_config(timezone: str = TIMEZONE, **overrides: dict[str, Any]) -> GatewayConfig:
    rules = expand_rules("living_alone", [{"type": k, **v} for k, v in overrides.items()])
    return make_config(rules, devices=DEVICES, site=SITE, timezone=timezone)


@dataclass
class Alert:
    resident: str
    day: int
    day_kind: str
    type: str
    at: datetime


@dataclass
class Found:
    resident: str
    incident: str
    day: int
    minutes: float | None  # None: missed
    first: str | None  # the type of the first alert


@dataclass
class SuiteResult:
    residents: int
    days: int
    found: list[Found] = field(default_factory=list)
    false_alarms: list[Alert] = field(default_factory=list)
    events: int = 0  # replayed, ordinary days and incident copies

    def minutes(self, incident: str) -> list[float]:
        return [f.minutes for f in self.found if f.incident == incident and f.minutes is not None]

    def missed(self, incident: str) -> int:
        return sum(1 for f in self.found if f.incident == incident and f.minutes is None)

    def per_resident_month(self) -> float:
        return len(self.false_alarms) / (self.residents * self.days / 30)

    def table(self) -> str:
        lines = [f"{self.residents} residents x {self.days} days, living_alone as shipped",
                 "", "| incident | n | median min | p90 min | max min | missed | first alert |",
                 "|---|---|---|---|---|---|---|"]
        for incident in ALL_INCIDENTS:
            got = self.minutes(incident)
            firsts = Counter(f.first for f in self.found if f.incident == incident and f.first)
            kinds = ", ".join(f"{k} {n}" for k, n in firsts.most_common())
            lines.append(f"| {incident} | {len(got) + self.missed(incident)} | {median(got):.0f}"
                         f" | {p90(got):.0f} | {max(got, default=math.nan):.0f}"
                         f" | {self.missed(incident)} | {kinds} |")
        by = Counter((a.type, a.day_kind) for a in self.false_alarms)
        lines += ["", f"false alarms: {len(self.false_alarms)} in {self.residents * self.days}"
                  f" resident-days = {self.per_resident_month():.2f} per resident-month"
                  + (" (" + ", ".join(f"{t} on {k} days {n}" for (t, k), n in sorted(by.items()))
                     + ")" if by else "")]
        for a in self.false_alarms:
            lines.append(f"  {a.resident}: day {a.day} ({a.day_kind}) {a.type} at"
                         f" {a.at:%Y-%m-%d %H:%M}")
        return "\n".join(lines)


def shortfalls(result: SuiteResult) -> list[str]:
    """Each of issue 16's targets the result misses, said with the figure; [] when all met."""
    out = []
    for incident in INCIDENTS:
        got = result.minutes(incident)
        if not got or median(got) > TARGET_MEDIAN:
            out.append(f"{incident}: median {median(got):.0f} min > {TARGET_MEDIAN:.0f}")
        if not got or p90(got) > TARGET_P90:
            out.append(f"{incident}: p90 {p90(got):.0f} min > {TARGET_P90:.0f}")
        if result.missed(incident):
            out.append(f"{incident}: {result.missed(incident)} missed")
    if result.per_resident_month() >= TARGET_FALSE_PER_MONTH:
        out.append(f"false alarms: {result.per_resident_month():.2f} per resident-month"
                   f" >= {TARGET_FALSE_PER_MONTH:.0f}")
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def p90(values: list[float]) -> float:
    """The 90th percentile (inclusive method: between the two nearest ranks)."""
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def incident_days(lived: Lived, incident: str, first: int, most: int | None) -> list[int]:
    """The plain days from `first` on where the incident can happen as described."""
    ok = {
        "bathroom_fall_0230": lambda d: d.home_0230,
        "not_up": lambda d: True,
        "living_fall_1600": lambda d: d.alone_1600,
        "ill_in_bed": lambda d: True,
    }[incident]
    days = [d.index for d in lived.days if d.index >= first and d.kind == "plain" and ok(d)
            and (d.index == 0 or lived.days[d.index - 1].kind != "away")]
    if most is not None and len(days) > most:
        step = len(days) / most
        days = [days[int(i * step)] for i in range(most)]
    return days


def run_resident(config: GatewayConfig, r: Routine, days: int, seed: int, result: SuiteResult,
                 *, first_incident_day: int = 16, most: int | None = None) -> None:
    """Replay `days` ordinary days of `r`; fork the engine at midnight of each incident day."""
    lived = live(r, days, seed)
    events = lived.events
    result.events += len(events)
    start = events[0].at
    plans = {inc: incident_days(lived, inc, first_incident_day, most) for inc in ALL_INCIDENTS}
    fork_days = {i for ds in plans.values() for i in ds}
    engine = build_engine(config)
    replayer = Replayer(engine)
    forks: dict[int, RuleEngine] = {}
    tz = config.gateway.tz
    for event in events:
        local = event.at.astimezone(tz).date()
        index = (local - lived.start).days
        if index in fork_days and index not in forks:
            forks[index] = copy.deepcopy(engine)
        for t in replayer.feed(event, simulated_instant(event.at, start)):
            if str(t.state) == "raised":
                i = (t.raised_at.astimezone(tz).date() - lived.start).days
                kind = lived.days[i].kind if 0 <= i < len(lived.days) else "?"
                result.false_alarms.append(Alert(r.name, i, kind, t.type, t.raised_at))
    for incident, indices in plans.items():
        for index in indices:
            life, at, since = incident_life(lived, incident, index)
            fork = copy.deepcopy(forks[index])
            found, fed = _measure(fork, _render(life, lived.start, since), start, at,
                                  r.name, incident, index)
            result.found.append(found)
            result.events += fed


def _measure(engine: RuleEngine, events: list[Event], start: datetime, at: float,
             resident: str, incident: str, index: int) -> tuple[Found, int]:
    """The first alert about the resident from `at` on; and how many events that took."""
    replayer = Replayer(engine)
    for fed, event in enumerate(events, start=1):
        for t in replayer.feed(event, simulated_instant(event.at, start)):
            when = t.raised_at.timestamp()
            if str(t.state) == "raised" and t.type not in DEVICE_ALERTS and when >= at:
                minutes = (when - at) / M
                if minutes <= MISSED_AFTER_BY.get(incident, MISSED_AFTER) / M:
                    return Found(resident, incident, index, minutes, t.type), fed
    return Found(resident, incident, index, None, None), len(events)


def suite(residents: tuple[Routine, ...] = RESIDENTS, days: int = 42, seed: int = 1,
          most: int | None = None, config: GatewayConfig | None = None) -> SuiteResult:
    config = config or suite_config()
    result = SuiteResult(len(residents), days)
    for k, r in enumerate(residents):
        run_resident(config, r, days, seed * 1000 + k, result, most=most)
    return result


# The run in the normal test suite (tests/rules/test_routine_suite.py): a few residents, the
# shortest run that still judges with learned figures; the full run is `suite()`'s defaults.
SHORT = {"residents": (RESIDENTS[1], RESIDENTS[2], RESIDENTS[3]), "days": 20, "most": 2}

__all__ = ["ALL_INCIDENTS", "DEVICES", "EXTRA_INCIDENTS", "INCIDENTS", "RESIDENTS", "SHORT",
           "Flow", "Routine", "live", "shortfalls", "suite"]
