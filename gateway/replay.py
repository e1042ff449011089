"""`hearthgate replay -c FILE EVENTS.jsonl`: the config's rules over recorded observations.

Time is simulated: an event's `at` is both its wall time and (offset from the first
event) its monotonic time; deadlines due between two events are ticked at their own
moment, so the output is what the gateway would have published, as fast as the CPU
allows. Every event line is checked before anything runs: a bad line prints its
number and what is wrong, and nothing else is printed (exit 2).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from hearthgate.core.model import AlertTransition, Instant, Observation, ObservationValue
from hearthgate.engine_builder import build_engine
from hearthgate.registry import STANDARD, Registry
from hearthgate.rules.engine import RuleEngine

MAX_LINE_BYTES = 64 * 1024
MAX_STRING = 1024
SIMULATED_MONO_START = 1000.0
_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KEYS = {"at", "ts", "device_id", "site_id", "metric", "value", "unit", "attrs"}


@dataclass(frozen=True, slots=True)
class Event:
    line: int
    at: datetime
    device_id: str
    site_id: str
    metric: str
    value: ObservationValue
    attrs: dict[str, Any] = field(default_factory=dict)

    def observation(self, now: Instant) -> Observation:
        return Observation(self.device_id, self.site_id, self.metric, self.value, now,
                           attrs=self.attrs)


class EventError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def parse_event(raw: str, line: int, site_of: dict[str, str]) -> Event:
    """One JSON line into an Event, or EventError saying what is wrong."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EventError(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise EventError(line, "an event is a JSON object like "
                         '{"at": ..., "device_id": ..., "metric": ..., "value": ...}')
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise EventError(line, f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_KEYS))})")
    at_raw = data.get("at", data.get("ts"))
    if not isinstance(at_raw, str):
        raise EventError(line, "'at' must be an ISO 8601 time with offset, like "
                         "2026-11-22T07:02:11+08:00")
    try:
        at = datetime.fromisoformat(at_raw)
    except ValueError:
        raise EventError(line, f"'at' is not an ISO 8601 time: {at_raw[:60]!r}") from None
    if at.tzinfo is None:
        raise EventError(line, f"'at' needs a UTC offset (like +08:00): {at_raw[:60]!r}")
    device_id = data.get("device_id")
    if not isinstance(device_id, str):
        raise EventError(line, "'device_id' must be a string")
    if device_id not in site_of:
        raise EventError(line, f"unknown device '{device_id[:80]}' (not in the config)")
    site_id = site_of[device_id]
    if "site_id" in data and data["site_id"] != site_id:
        raise EventError(line, f"device '{device_id}' belongs to site '{site_id}' in the config,"
                         f" not {data['site_id']!r}")
    metric = data.get("metric")
    if not isinstance(metric, str) or not _METRIC_RE.match(metric):
        raise EventError(line, "'metric' must be a name like water_total_m3 or motion")
    value = data.get("value")
    if isinstance(value, float) and not math.isfinite(value):
        raise EventError(line, "'value' must be a finite number")
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise EventError(line, f"'value' is a string longer than {MAX_STRING} characters")
    if not isinstance(value, bool | int | float | str):
        raise EventError(line, "'value' must be a number, true/false or a string, "
                         f"not {type(value).__name__ if value is not None else 'null'}")
    attrs = data.get("attrs", {})
    if not isinstance(attrs, dict):
        raise EventError(line, "'attrs' must be an object")
    return Event(line, at, device_id, site_id, metric, value, attrs)


def read_events(lines: Iterable[bytes], site_of: dict[str, str]) -> list[Event]:
    """Every event of a JSONL stream, checked: types, devices, time order, line length."""
    events: list[Event] = []
    previous: datetime | None = None
    for number, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise EventError(number, f"line longer than {MAX_LINE_BYTES} bytes")
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise EventError(number, "not UTF-8 text") from None
        if not text:
            continue
        event = parse_event(text, number, site_of)
        if previous is not None and event.at < previous:
            raise EventError(number, f"out of order: {event.at.isoformat()} is earlier than the "
                             f"line before ({previous.isoformat()})")
        previous = event.at
        events.append(event)
    return events


def _bounded_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines, each read at most one byte past the limit (a huge line is not loaded whole)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            yield line
            while True:  # skip the rest of the huge line
                rest = stream.readline(MAX_LINE_BYTES + 1)
                if not rest or rest.endswith(b"\n"):
                    break
            continue
        yield line


class Replayer:
    """Drives an engine through events, ticking every deadline at its own moment."""

    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine

    def advance_to(self, now: Instant) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        last = -math.inf
        stuck = 0
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > now.mono:
                break
            # -inf: the engine has not started; start it now.
            t = now.mono if deadline == -math.inf else max(deadline, last)
            stuck = stuck + 1 if t <= last else 0
            if stuck > 100:
                break  # a rule that keeps asking for the past: do not spin
            last = t
            out += self.engine.on_tick(
                Instant(t, now.wall - timedelta(seconds=now.mono - t))
            )
        return out

    def feed(self, event: Event, now: Instant) -> list[AlertTransition]:
        out = self.advance_to(now)
        out += self.engine.on_observation(event.observation(now), now)
        return out


def simulated_instant(at: datetime, start: datetime) -> Instant:
    return Instant(SIMULATED_MONO_START + (at - start).total_seconds(), at)


def replay_events(engine: RuleEngine, events: list[Event]) -> list[AlertTransition]:
    """Every transition the engine publishes over `events`, in simulated time."""
    if not events:
        return []
    replayer = Replayer(engine)
    start = events[0].at
    out: list[AlertTransition] = []
    for event in events:
        out += replayer.feed(event, simulated_instant(event.at, start))
    return out


def run_replay(
    config_path: Path,
    events_path: Path,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
    registry: Registry = STANDARD,
) -> int:
    from hearthgate.config import ConfigError, load_config

    try:
        config = load_config(config_path, registry)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(), file=err)
        return 2
    site_of = {d.id: d.site for d in config.devices}
    try:
        with open(events_path, "rb") as stream:
            events = read_events(_bounded_lines(stream), site_of)
    except OSError as exc:
        print(f"{events_path}: error: {exc.strerror or exc}", file=err)
        return 2
    except EventError as exc:
        print(f"{events_path}:{exc.line}: error: {exc.message}", file=err)
        return 2
    engine = build_engine(config)
    tz = config.gateway.tz
    for transition in replay_events(engine, events):
        payload = transition.to_payload(config.gateway.id, tz)
        out.write(json.dumps(payload, ensure_ascii=False) + "\n")
    out.flush()
    return 0
