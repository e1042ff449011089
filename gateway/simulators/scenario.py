"""Scenarios: what simulated devices do and when (press SOS at t, motion every 10 minutes,
door open at 03:00, card swipes, a sensor going silent).

One small format, shared by the device simulators, the rules tests and `hearthgate demo`:

    timezone: Asia/Shanghai           # how `at: "03:00"` is read (default UTC)
    start: "2026-11-22T06:00:00+08:00"  # optional: where a demo clock should start
    devices:                          # optional: how to reach each device (else the gateway config)
      sos-301: {protocol: rflink, match: "EV1527;ID=0x5a3c1"}
    steps:
      - {at: 10s, device: sos-301, do: press}
      - {every: 10m, from: "07:00", until: "22:00", device: pir-301, do: motion}
      - {at: "03:00", device: door-301, do: door_open}
      - {at: 2h, device: pir-301, do: silent}

or the same steps as JSON lines (one step object per line; a line without `do` is the
header holding `timezone`, `start`, `devices`).

`at`/`from`/`until` are a duration after the start (`90s`, `2h`) or a time of day (`03:00`,
the first such moment at or after the start; add `day: 1` for the day after). `every`
repeats a step (until `until`, `count` times, or the end of the run).

The model is pure; `play()` is the only part that waits, on the `Clock` it is given.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hearthgate.core.clock import Clock
from hearthgate.core.durations import parse_duration

ACTIONS = (
    "press",  # an SOS button is pressed (the radio may repeat it)
    "motion",  # a PIR sees movement
    "no_motion",  # occupancy clears (zigbee2mqtt sends occupancy: false)
    "door_open",
    "door_close",
    "card",  # a card is presented: `card: "123:4567"`, optional `bits: 26|34`
    "exit_button",  # the exit button of a door is pressed
    "tamper",  # `value: true|false`
    "battery",  # `value: 0-100`
    "silent",  # the device stops sending (dead battery, out of range)
    "offline",  # zigbee2mqtt marks the device unavailable
    "online",  # ... and available again (also ends `silent`)
)
Action = Literal[
    "press", "motion", "no_motion", "door_open", "door_close", "card", "exit_button",
    "tamper", "battery", "silent", "offline", "online",
]
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScenarioError(ValueError):
    """A scenario file or step that cannot be understood; the message says where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioDevice(_Model):
    """How a simulator reaches one device; keys as in the gateway config's device entry."""

    model_config = ConfigDict(extra="allow", frozen=True)
    protocol: str
    kind: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Step(_Model):
    device: str
    do: Action
    at: str | float | None = None
    every: str | float | None = None
    from_: str | float | None = Field(default=None, alias="from")
    until: str | float | None = None
    count: int | None = Field(default=None, ge=1)
    day: int = Field(default=0, ge=0, le=366)
    card: str | None = None
    bits: Literal[26, 34] = 26
    value: bool | float | None = None
    repeats: int | None = Field(default=None, ge=1, le=50)

    @model_validator(mode="after")
    def _check(self) -> Step:
        if (self.at is None) == (self.every is None):
            raise ValueError("a step needs exactly one of `at` or `every`")
        if self.at is not None and (self.from_ is not None or self.until is not None):
            raise ValueError("`from`/`until` go with `every`, not `at`")
        for name in ("at", "from_", "until"):
            v = getattr(self, name)
            if v is not None:
                _check_moment(v)
        if self.every is not None and parse_duration(self.every) <= 0:
            raise ValueError("`every` must be longer than zero")
        if self.do == "card":
            if self.card is None:
                raise ValueError("a `card` step needs `card: \"FACILITY:NUMBER\"`")
            parse_card(self.card)
        if self.do == "battery" and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise ValueError("a `battery` step needs `value:` (percent)")
        return self


def parse_card(text: str) -> tuple[int, int]:
    """`"123:4567"` → (facility 123, number 4567)."""
    m = re.fullmatch(r"\s*(\d{1,5})\s*:\s*(\d{1,5})\s*", text)
    if not m:
        raise ValueError(f"card '{text}' must be FACILITY:NUMBER, like 123:4567")
    return int(m.group(1)), int(m.group(2))


def _check_moment(value: str | float) -> None:
    if isinstance(value, str) and _TIME_OF_DAY.match(value.strip()):
        return
    parse_duration(value)


class Scenario(_Model):
    timezone: str = "UTC"
    start: datetime | None = None
    devices: dict[str, ScenarioDevice] = Field(default_factory=dict)
    steps: tuple[Step, ...] = ()

    @model_validator(mode="after")
    def _zone(self) -> Scenario:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone '{self.timezone}'") from exc
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_devices(self, devices: dict[str, ScenarioDevice]) -> Scenario:
        """Fill in devices (from a gateway config) that the scenario does not name itself."""
        return self.model_copy(update={"devices": {**devices, **self.devices}})

    def devices_of(self, protocol: str) -> dict[str, ScenarioDevice]:
        return {k: d for k, d in self.devices.items() if d.protocol == protocol}


def devices_from_config(config: Any) -> dict[str, ScenarioDevice]:
    """The devices of a `GatewayConfig`, as scenario devices (protocol + the device's keys)."""
    out: dict[str, ScenarioDevice] = {}
    for dev in config.devices:
        opts = dev.options.model_dump(mode="json", exclude_none=True)
        out[dev.id] = ScenarioDevice(protocol=dev.protocol, kind=dev.kind, **opts)
    return out


def parse_scenario(data: Any) -> Scenario:
    """Validate already-parsed data (a mapping, or a list of steps)."""
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a mapping with `steps:` (or a list of steps)")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_explain(exc)) from exc


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "scenario"
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def parse_jsonl(text: str) -> Scenario:
    header: dict[str, Any] = {}
    steps: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(item, dict):
            raise ScenarioError(f"line {number}: a step is a JSON object")
        if "do" in item:
            try:
                steps.append(Step.model_validate(item))
            except ValidationError as exc:
                raise ScenarioError(f"line {number}: {_explain(exc)}") from exc
        else:
            header.update(item)
    return parse_scenario({**header, "steps": steps})


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from YAML (`.yaml`/`.yml`) or JSON lines (anything else)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    try:
        if path.suffix in {".yaml", ".yml"}:
            from ruamel.yaml import YAML
            from ruamel.yaml.error import YAMLError

            try:
                data = YAML(typ="safe").load(text)
            except YAMLError as exc:
                raise ScenarioError(f"not YAML: {exc}") from exc
            return parse_scenario(data)
        return parse_jsonl(text)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


# --- timing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioAction:
    """One thing a device does, `offset` seconds after the scenario started."""

    offset: float
    device: str
    do: str
    step: Step
    index: int = 0  # which repetition of an `every` step

    @property
    def card(self) -> tuple[int, int] | None:
        return parse_card(self.step.card) if self.step.card else None


def _resolve(moment: str | float, day: int, start_local: datetime) -> float:
    """Seconds after the start for a duration or a time of day."""
    if isinstance(moment, str):
        m = _TIME_OF_DAY.match(moment.strip())
        if m:
            target = start_local.replace(
                hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0
            )
            if target < start_local:
                target += timedelta(days=1)
            target += timedelta(days=day)
            return (target - start_local).total_seconds()
    return parse_duration(moment) + day * 86400.0


def _step_times(step: Step, start_local: datetime, horizon: float) -> Iterator[float]:
    if step.at is not None:
        t = _resolve(step.at, step.day, start_local)
        if t <= horizon:
            yield t
        return
    assert step.every is not None
    every = parse_duration(step.every)
    t = _resolve(step.from_, step.day, start_local) if step.from_ is not None else 0.0
    end = horizon
    if step.until is not None:
        end = min(end, _resolve(step.until, step.day, start_local))
        if end < t:  # `from: 22:00, until: 06:00` crosses midnight
            end = min(horizon, end + 86400.0)
    n = 0
    while t <= end and (step.count is None or n < step.count):
        yield t
        n += 1
        t += every


def _numbered(
    order: int, step: Step, times: Iterator[float]
) -> Iterator[tuple[float, int, int, Step]]:
    for i, t in enumerate(times):
        yield t, order, i, step


def timeline(scenario: Scenario, start_wall: datetime, horizon: float) -> Iterator[ScenarioAction]:
    """Every action within `horizon` seconds of `start_wall`, in time order (ties: file order).

    Devices that went `silent` do nothing more until an `online` step."""
    start_local = start_wall.astimezone(scenario.tz)
    streams = [
        _numbered(order, step, _step_times(step, start_local, horizon))
        for order, step in enumerate(scenario.steps)
    ]
    silent: set[str] = set()
    for t, _, i, step in heapq.merge(*streams):
        if step.device in silent and step.do != "online":
            continue
        if step.do == "silent":
            silent.add(step.device)
        elif step.do == "online":
            silent.discard(step.device)
        yield ScenarioAction(t, step.device, step.do, step, i)


# --- playing ----------------------------------------------------------------------------


class ScenarioSink(Protocol):
    """A simulator that can act out scenario actions for the devices it knows."""

    def handles(self, device: str) -> bool: ...

    async def perform(self, action: ScenarioAction) -> None: ...


@dataclass
class PlayReport:
    performed: list[ScenarioAction] = field(default_factory=list)
    unhandled: list[ScenarioAction] = field(default_factory=list)


async def play(
    scenario: Scenario,
    clock: Clock,
    sinks: Sequence[ScenarioSink] | ScenarioSink,
    *,
    duration: float = 86400.0,
) -> PlayReport:
    """Act out the scenario's first `duration` seconds, waiting on `clock` between actions."""
    sink_list: Iterable[ScenarioSink] = (
        sinks if isinstance(sinks, Sequence) else [sinks]
    )
    start = clock.now()
    report = PlayReport()
    for action in timeline(scenario, start.wall, duration):
        await clock.sleep_until(start.mono + action.offset)
        targets = [s for s in sink_list if s.handles(action.device)]
        if not targets:
            report.unhandled.append(action)
        for sink in targets:
            await sink.perform(action)
        report.performed.append(action)
    return report
