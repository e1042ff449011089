"""Meter sense: what a cumulative register may plausibly do, and unit conversion. Pure.

A meter's total (m³ of water, kWh) only goes up, and only as fast as the pipe or the fuse
allows. When a reading breaks that — it went backwards (meter replaced or reset) or jumped
by more than `max_rate` × elapsed time (a misread, a new meter with a higher count) — it is
not passed on as consumption:

- the odd reading is *held* (not emitted) and logged;
- if the next reading confirms the new level (it continues plausibly from the held one),
  the baseline is re-anchored: that reading is emitted with attrs
  ``{"baseline": "reset", "previous_total": <last good total>}`` so rules and the platform
  know not to count the difference as use;
- if the next reading continues from the old level instead, the held reading was a misread
  and is dropped (counted as an `implausible_total` frame error).

The first reading after start is a baseline too (no attr: there is nothing to compare).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("hearthgate.meters")

# How much a total may grow per hour, by metric, unless the device says otherwise:
# a household water meter (DN15) passes at most ~3 m³/h; a home's supply ~10-20 kW.
DEFAULT_MAX_RATE_PER_HOUR: dict[str, float] = {
    "water_total_m3": 5.0,
    "energy_total_kwh": 50.0,
    "energy_export_kwh": 50.0,
}

# Conversions into the unit each metric is published in (gateway/core/model.py METRIC_UNITS).
_FACTORS: dict[tuple[str, str], float] = {
    ("L", "m3"): 0.001,
    ("m3", "m3"): 1.0,
    ("Wh", "kWh"): 0.001,
    ("kWh", "kWh"): 1.0,
    ("MWh", "kWh"): 1000.0,
    ("kW", "W"): 1000.0,
    ("W", "W"): 1.0,
    ("L/h", "m3/h"): 0.001,
    ("m3/h", "m3/h"): 1.0,
    ("mV", "V"): 0.001,
    ("V", "V"): 1.0,
    ("mA", "A"): 0.001,
    ("A", "A"): 1.0,
}


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """`convert(1500, "L", "m3") == 1.5`; raises ValueError for units that do not convert."""
    try:
        return value * _FACTORS[(from_unit, to_unit)]
    except KeyError:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}") from None


def convertible_units(to_unit: str) -> list[str]:
    return sorted(src for src, dst in _FACTORS if dst == to_unit)


Verdict = Literal["ok", "baseline", "held", "reset"]


@dataclass(frozen=True, slots=True)
class SenseResult:
    verdict: Verdict
    value: float
    previous: float | None = None  # the last good total, for "reset" and "held"
    dropped: float | None = None  # a held reading that turned out to be a misread

    @property
    def emit(self) -> bool:
        return self.verdict in ("ok", "baseline", "reset")

    @property
    def attrs(self) -> dict[str, object]:
        if self.verdict == "reset":
            return {"baseline": "reset", "previous_total": self.previous}
        return {}


class CumulativeSense:
    """The plausibility check for one cumulative register of one device."""

    def __init__(self, name: str, max_rate_per_hour: float, slack: float = 0.0) -> None:
        self.name = name
        self.max_rate = max_rate_per_hour
        # Readings are rounded by the meter: allow one least digit of jitter either way.
        self.slack = slack
        self._last: tuple[float, float] | None = None  # (value, mono)
        self._held: tuple[float, float] | None = None

    @property
    def last(self) -> float | None:
        return self._last[0] if self._last else None

    def _plausible(self, before: tuple[float, float], value: float, mono: float) -> bool:
        delta = value - before[0]
        hours = max(0.0, mono - before[1]) / 3600.0
        # A minute's worth of headroom covers polls that bunch up after an outage.
        allowed = self.max_rate * (hours + 1 / 60) + self.slack
        tolerance = 1e-9  # float noise in the subtraction
        return -self.slack - tolerance <= delta <= allowed + tolerance

    def accept(self, value: float, mono: float) -> SenseResult:
        last = self._last
        if last is None:
            self._last = (value, mono)
            return SenseResult("baseline", value)
        if self._plausible(last, value, mono):
            held, self._held = self._held, None
            self._last = (max(value, last[0]), mono)
            if held is not None:
                log.info("%s: %.3f was a misread (total continues from %.3f)",
                         self.name, held[0], last[0])
                return SenseResult("ok", self._last[0], dropped=held[0])
            return SenseResult("ok", self._last[0])
        held = self._held
        if held is not None and self._plausible(held, value, mono):
            self._held = None
            self._last = (value, mono)
            log.warning(
                "%s: total re-anchored from %.3f to %.3f (meter replaced or reset?)",
                self.name, last[0], value,
            )
            return SenseResult("reset", value, previous=last[0])
        self._held = (value, mono)
        log.info(
            "%s: total went from %.3f to %.3f, implausible; waiting for the next reading",
            self.name, last[0], value,
        )
        return SenseResult("held", value, previous=last[0])
