"""Observations per second through the rules engine: 200 sites with the `living_alone` rules.

Next to it, in the same run, a reference loop: the same engine dispatching the same
observations to the same number of rules that do nothing, so the number says what the
rules themselves cost on this machine. Prints medians of several runs.

    python bench/rules.py            (from the repository root; < 60 s)
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from hearthgate.core.model import Instant, Observation
from hearthgate.engine_builder import build_engine
from hearthgate.registry import STANDARD
from hearthgate.rules.base import Rule, Signal
from hearthgate.rules.engine import RuleEngine
from hearthgate.rules.profiles import expand_rules

SITES = 200
HOURS = 6
RUNS = 5
KINDS = {"water": "water_meter", "power": "power_meter", "pir1": "motion_sensor",
         "pir2": "motion_sensor", "door": "door_contact", "sos": "sos_button"}


class NothingRule(Rule):
    type_name = "nothing"

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        return []


def config() -> Any:
    devices, sites = [], []
    rules = expand_rules("living_alone", [])
    for s in range(SITES):
        site = f"site-{s:03d}"
        for name, kind in KINDS.items():
            devices.append(SimpleNamespace(id=f"{name}-{s:03d}", site=site, kind=kind,
                                           protocol="bench", offline_after=None,
                                           name=None))
        sites.append(SimpleNamespace(
            id=site, resident=f"r-{s}",
            rules=[SimpleNamespace(type=r["type"], options=STANDARD.rules[r["type"]].options
                                   .model_validate({k: v for k, v in r.items() if k != "type"}))
                   for r in rules]))
    gateway = SimpleNamespace(timezone="Asia/Shanghai", tz=ZoneInfo("Asia/Shanghai"), language="zh")
    return SimpleNamespace(gateway=gateway, devices=devices, sites=sites, registry=STANDARD)


def observations(seed: int = 7) -> list[Observation]:
    """HOURS of a day for every site: meters every 5 min, motion, doors, batteries."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 22, 7, 0, tzinfo=UTC) - timedelta(hours=8)
    out: list[tuple[float, str, str, str, Any]] = []
    for s in range(SITES):
        site = f"site-{s:03d}"
        water, kwh = 100.0, 1000.0
        for step in range(HOURS * 12):
            t = step * 300.0 + rng.uniform(0, 5)
            if rng.random() < 0.3:
                water += rng.uniform(0.001, 0.02)
            kwh += rng.uniform(0.005, 0.2)
            out.append((t, site, f"water-{s:03d}", "water_total_m3", round(water, 3)))
            out.append((t, site, f"power-{s:03d}", "energy_total_kwh", round(kwh, 3)))
            out.append((t, site, f"power-{s:03d}", "power_w", round(rng.uniform(60, 1800), 1)))
            for _ in range(rng.randrange(0, 4)):
                out.append((t + rng.uniform(0, 290), site, f"pir{rng.choice((1, 2))}-{s:03d}",
                            "motion", True))
            if rng.random() < 0.02:
                out.append((t + 100, site, f"door-{s:03d}", "door_open", True))
                out.append((t + 110, site, f"door-{s:03d}", "door_open", False))
            if step % 10 == 0:
                for name in ("pir1", "pir2", "door"):
                    out.append((t + 7, site, f"{name}-{s:03d}", "battery_pct", 90))
    out.sort(key=lambda o: o[0])
    return [
        Observation(device, site, metric, value,
                    Instant(1000.0 + t, start + timedelta(seconds=t)))
        for t, site, device, metric, value in out
    ]


def run(engine: RuleEngine, obs: list[Observation]) -> float:
    """Observations per second, ticking every deadline that falls due on the way."""
    began = time.perf_counter()
    for o in obs:
        deadline = engine.next_deadline()
        while deadline is not None and deadline <= o.at.mono:
            engine.on_tick(o.at)
            after = engine.next_deadline()
            if after == deadline:
                break
            deadline = after
        engine.on_observation(o, o.at)
    return len(obs) / (time.perf_counter() - began)


def main() -> None:
    cfg = config()
    obs = observations()
    real, reference = [], []
    for _ in range(RUNS):
        engine = build_engine(cfg)
        real.append(run(engine, obs))
        nothing = {
            site: [NothingRule(rules[0].site, rules[0].options) for _ in rules]
            for site, rules in build_engine(cfg).rules_by_site.items()
        }
        reference.append(run(RuleEngine(nothing), obs))
    rules = sum(len(r) for r in build_engine(cfg).rules_by_site.values())
    print(f"{SITES} sites, {rules} rules, {len(obs)} observations ({HOURS} h), {RUNS} runs")
    real_m, ref_m = statistics.median(real), statistics.median(reference)
    print(f"rules engine, living_alone rules : {real_m:>10,.0f} observations/s")
    print(f"reference, do-nothing rules      : {ref_m:>10,.0f} observations/s")
    print(f"rules cost                       : {ref_m / real_m:>10.1f}x the bare dispatch")

if __name__ == "__main__":
    main()
