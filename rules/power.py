"""Power rules: `no_power_use` (nothing used for a day), `power_high` (a stove left on)."""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from pydantic import Field

from hearthgate.core.durations import Duration
from hearthgate.core.model import Instant, Observation, Severity
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


class NoPowerUseOptions(RuleOptions):
    window: Duration = 24 * 3600.0
    min_kwh: float = Field(default=0.1, gt=0)
    pause_when_away: bool = True


class NoPowerUseRule(Rule):
    """Energy used over the last `window` (from the cumulative meter total) below `min_kwh`.

    Judged at readings; the meter's total spans any gap, so an offline meter cannot fake
    a quiet day. Samples are kept at most `window`/96 apart, so the sum may cover up to
    1 % more than the window (in the resident's favour).
    """

    type_name: ClassVar[str] = "no_power_use"
    input_kinds: ClassVar[tuple[str, ...] | None] = ("power_meter",)
    absence: ClassVar[bool] = True
    default_severity = Severity.MEDIUM
    options: NoPowerUseOptions

    def __init__(self, site: RuleSite, options: NoPowerUseOptions) -> None:
        super().__init__(site, options)
        self.meters = self.watched("power_meter")
        self.samples: dict[str, deque[tuple[float, float]]] = {}
        self.raised: set[str] = set()

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.device_id not in self.meters or obs.metric != "energy_total_kwh":
            return []
        if isinstance(obs.value, bool | str):
            return []
        meter, t, value = obs.device_id, now.mono, float(obs.value)
        window = self.options.window
        samples = self.samples.setdefault(meter, deque())
        if samples and (value < samples[-1][1] or obs.baseline_reset):
            samples.clear()
        if not samples or t - samples[-1][0] >= window / 96:
            samples.append((t, value))
        while len(samples) > 1 and samples[1][0] <= t - window:
            samples.popleft()
        if samples[0][0] > t - window:
            return []  # not a whole window of history yet
        used = value - samples[0][1]
        away = self.options.pause_when_away and self.site.state.presence.away_between(
            t - window, t
        )
        if used < self.options.min_kwh and meter not in self.raised and not away:
            self.raised.add(meter)
            return [
                Raise(
                    meter,
                    self.t(
                        f"{span_text(self, window)}用电少于 {self.options.min_kwh:g} 千瓦时",
                        f"Less than {self.options.min_kwh:g} kWh used in {span_text(self, window)}",
                    ),
                    (meter,),
                    {"window_s": int(window), "used_kwh": round(used, 3),
                     "min_kwh": self.options.min_kwh},
                )
            ]
        if used >= self.options.min_kwh and meter in self.raised:
            self.raised.discard(meter)
            return [Clear(meter, {"used_kwh": round(used, 3)})]
        return []

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            "samples": {m: [[now.mono - t, v] for t, v in s] for m, s in self.samples.items()},
            "raised": sorted(self.raised),
        }

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        for m, items in state.get("samples", {}).items():
            self.samples[m] = deque((saved_at.mono - float(a), float(v)) for a, v in items)
        self.raised = set(state.get("raised", []))


class PowerHighOptions(RuleOptions):
    above: float = Field(default=2000.0, gt=0)  # watts
    window: Duration = 2 * 3600.0
    # The alert clears only below `above - hysteresis` W (default 10 % of `above`).
    hysteresis: float | None = Field(default=None, ge=0)


class PowerHighRule(Rule):
    type_name: ClassVar[str] = "power_high"
    input_kinds: ClassVar[tuple[str, ...] | None] = ("power_meter",)
    default_severity = Severity.HIGH
    default_cooldown = 10 * 60.0
    options: PowerHighOptions

    def __init__(self, site: RuleSite, options: PowerHighOptions) -> None:
        super().__init__(site, options)
        self.meters = self.watched("power_meter")
        self.high_since: dict[str, tuple[float, str]] = {}
        self.last_w: dict[str, float] = {}
        self.raised: set[str] = set()

    @property
    def clear_below(self) -> float:
        h = self.options.hysteresis
        return self.options.above - (0.1 * self.options.above if h is None else h)

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.device_id not in self.meters:
            return []
        meter = obs.device_id
        if obs.metric == "alive" and obs.value is False:
            self.high_since.pop(meter, None)
            return []
        if obs.metric != "power_w" or isinstance(obs.value, bool | str):
            return []
        watts = float(obs.value)
        self.last_w[meter] = watts
        if watts > self.options.above:
            self.high_since.setdefault(meter, (now.mono, self.local(now)))
            return []
        if meter in self.raised:
            if watts < self.clear_below:
                self.raised.discard(meter)
                self.high_since.pop(meter, None)
                return [Clear(meter, {"power_w": watts})]
            return []
        self.high_since.pop(meter, None)
        return []

    def on_tick(self, now: Instant) -> list[Signal]:
        out: list[Signal] = []
        health = self.site.state.health
        for meter, (since, since_at) in list(self.high_since.items()):
            if meter in self.raised or now.mono < since + self.options.window:
                continue
            if not health.online_at(meter, now.mono):
                # The meter went quiet while high: we cannot say the stove is still on.
                del self.high_since[meter]
                continue
            self.raised.add(meter)
            out.append(
                Raise(
                    meter,
                    self.t(
                        f"功率超过 {self.options.above:g} 瓦已达"
                        f"{span_text(self, self.options.window)}",
                        f"Power above {self.options.above:g} W for "
                        f"{span_text(self, self.options.window)}",
                    ),
                    (meter,),
                    {"above_w": self.options.above, "power_w": self.last_w.get(meter),
                     "since": since_at, "window_s": int(self.options.window)},
                )
            )
        return out

    def next_deadline(self) -> float | None:
        return min(
            (t + self.options.window for m, (t, _) in self.high_since.items()
             if m not in self.raised),
            default=None,
        )

    def snapshot(self, now: Instant) -> dict[str, Any]:
        return {
            "high_since": {m: [ago(t, now), iso] for m, (t, iso) in self.high_since.items()},
            "last_w": self.last_w,
            "raised": sorted(self.raised),
        }

    def restore(self, state: dict[str, Any], saved_at: Instant, now: Instant) -> None:
        for m, (age, iso) in state.get("high_since", {}).items():
            t = back(age, saved_at)
            if t is not None:
                self.high_since[m] = (t, iso)
        self.last_w = {m: float(w) for m, w in state.get("last_w", {}).items()}
        self.raised = set(state.get("raised", []))


RULE_SPECS = (
    RuleSpec(
        "no_power_use", NoPowerUseOptions, NoPowerUseRule, kinds=frozenset({"power_meter"}),
        description="less than `min_kwh` used in `window`",
    ),
    RuleSpec(
        "power_high", PowerHighOptions, PowerHighRule, kinds=frozenset({"power_meter"}),
        description="power above `above` W for `window` (a stove left on)",
    ),
)

