"""Durations (`500ms`, `30s`, `10m`, `12h`, `3d`) and times of day (`22:00-06:00`).

Pure parsing, plus pydantic-ready annotated types so every option model in
drivers/ and rules/ reads them the same way (docs/configuration.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time as dtime
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_MAX_SECONDS = 366 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds from `12h`, `500ms`, `3d`, or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, like 30s, 10m, 12h or 3d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(
                f"'{value}' is not a duration: use a number with a unit, like 500ms, 30s, 10m,"
                " 12h or 3d"
            )
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError("a duration is a number with a unit, like 30s, 10m, 12h or 3d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > _MAX_SECONDS:
        raise ValueError("a duration longer than a year is surely a mistake")
    return seconds


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "a duration: 500ms, 30s, 10m, 12h, 3d (a bare number is seconds)",
}

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]

_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _parse_time(text: str) -> dtime:
    m = _TIME_RE.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a time of day: use HH:MM, like 07:00 or 22:30")
    return dtime(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A daily range of local time, `start` inclusive, `end` exclusive; may cross midnight."""

    start: dtime
    end: dtime

    @classmethod
    def parse(cls, value: Any) -> TimeRange:
        if isinstance(value, TimeRange):
            return value
        if not isinstance(value, str) or value.count("-") != 1:
            raise ValueError(
                f"'{value}' is not a time range: use HH:MM-HH:MM, like 22:00-06:00"
            )
        a, b = value.split("-")
        start, end = _parse_time(a), _parse_time(b)
        if start == end:
            raise ValueError(f"'{value}' is an empty time range: start and end are equal")
        return cls(start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, local: dtime) -> bool:
        t = local.replace(tzinfo=None)
        if self.crosses_midnight:
            return t >= self.start or t < self.end
        return self.start <= t < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


TimeRangeField = Annotated[
    TimeRange,
    BeforeValidator(TimeRange.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01]?\d|2[0-3]):[0-5]\d-([01]?\d|2[0-3]):[0-5]\d$",
            "description": "a daily range of local time HH:MM-HH:MM; may cross midnight",
        }
    ),
]
