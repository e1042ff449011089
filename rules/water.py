"""`continuous_water`: water used in every interval for `window` (a tap left open, a leak,
someone who fell in the shower).

A run starts at the reading before the first use and goes on while no `interval`
passes without use; it is judged only at readings, so a meter that stops reporting
can neither start nor prolong a run. A gap between readings longer than `interval`
(the meter was offline) ends the run: nobody can say what happened in between. The
gateway's own downtime is no such gap: a restart keeps the run, and the downtime the
engine credits counts towards `window` (docs/rules.md, "Restarts and clock jumps").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from hearthgate.core.durations import Duration
from hearthgate.core.model import Instant, Observation, Severity
from hearthgate.rules.absence import water_used
from hearthgate.rules.base import (
    Clear,
    Raise,
    Rule,
    RuleOptions,
    RuleSite,
    RuleSpec,
    Signal,
    ago,
    back,
    span_text,
)


class ContinuousWaterOptions(RuleOptions):
    window: Duration = 2 * 3600.0
    # Longest pause in use that still counts as "continuous"; at least the meter's poll.
    interval: Duration = 15 * 60.0
    min_use: float | None = Field(default=None, gt=0)


@dataclass
class _Run:
    prev_reading: float | None = None  # mono of the meter's previous reading
    start: float | None = None  # mono at which the current run began
    start_at: str | None = None
    last_use: float | None = None
    raised: bool = False


class ContinuousWaterRule(Rule):
    type_name: ClassVar[str] = "continuous_water"
    input_kinds: ClassVar[tuple[str, ...] | None] = ("water_meter",)
    default_severity = Severity.HIGH
    options: ContinuousWaterOptions

    def __init__(self, site: RuleSite, options: ContinuousWaterOptions) -> None:
        super().__init__(site, options)
        self.meters = self.watched("water_meter")
        self.anchors: dict[str, float] = {}
        self.runs: dict[str, _Run] = {}

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.device_id not in self.meters or obs.metric != "water_total_m3":
            return []
        if isinstance(obs.value, bool | str):
            return []
        run = self.runs.setdefault(obs.device_id, _Run())
        out: list[Signal] = []
        t = now.mono
        interval = self.options.interval
        gap = run.prev_reading is not None and t - run.prev_reading > interval
        reset = obs.baseline_reset
        used = water_used(self.anchors, obs, self.options.min_use)
        if gap or reset:
            used = False
            run.start = run.last_use = None
        if used:
            if run.last_use is None or t - run.last_use > interval:
                run.start = run.prev_reading if run.prev_reading is not None else t
                run.start_at = self.local(now)
            run.last_use = t
            if (
                not run.raised
                and run.start is not None
                and t - run.start >= self.options.window - 1e-6
            ):
                run.raised = True
                out.append(
                    Raise(
                        obs.device_id,
                        self.t(
                            f"持续用水超过{span_text(self, self.options.window)}",
                            f"Water running for more than {span_text(self, self.options.window)}",
                        ),
                        (obs.device_id,),
                        {
                            "window_s": int(self.options.window),
                            "since": run.start_at,
                            "total_m3": float(obs.value),
                        },
                    )
                )
        elif run.last_use is None or t - run.last_use >= interval or gap or reset:
            run.start = run.last_use = None
            if run.raised:
                run.raised = False
                out.append(Clear(obs.device_id, {"stopped_at": self.local(now)}))
        run.prev_reading = t
        return out

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            "anchors": self.anchors,
            "runs": {
                d: {
                    "prev_reading_ago": ago(r.prev_reading, now),
                    "start_ago": ago(r.start, now),
                    "start_at": r.start_at,
                    "last_use_ago": ago(r.last_use, now),
                    "raised": r.raised,
                }
                for d, r in self.runs.items()
            },
        }

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        self.anchors = {k: float(v) for k, v in state.get("anchors", {}).items()}
        for d, r in state.get("runs", {}).items():
            # Nobody read the meter while the gateway was down, which is not the meter's
            # silence nor a pause in use: gaps and pauses are measured as if the downtime
            # had not been. The run's start keeps the credited downtime, like any window.
            self.runs[d] = _Run(
                back(r.get("prev_reading_ago"), now),
                back(r.get("start_ago"), saved_at),
                r.get("start_at"),
                back(r.get("last_use_ago"), now),
                bool(r.get("raised")),
            )


RULE_SPECS = (
    RuleSpec(
        "continuous_water", ContinuousWaterOptions, ContinuousWaterRule,
        kinds=frozenset({"water_meter"}),
        description="water used without a pause of `interval` for `window`",
    ),
)
