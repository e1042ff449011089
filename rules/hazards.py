"""The hazards: `smoke`, `gas_leak`, `carbon_monoxide`, `water_leak`.

Raised the moment a sensor says so (smoke, gas and CO critical, a leak high) and cleared
when the same sensor says the hazard is gone. Each sensor is its own alert (keyed by
device): smoke in the kitchen and smoke in the bedroom are two places to send someone.
The driver reports a hazard level when it changes, so zigbee2mqtt's cached repeats of
`smoke: true` are not new alarms.
"""

from __future__ import annotations

from typing import ClassVar

from hearthgate.core.model import Instant, Observation, Severity
from hearthgate.rules.base import Clear, Raise, Rule, RuleOptions, RuleSpec, Signal


class HazardRule(Rule):
    """One hazard metric of one kind of sensor: raise on true, clear on false."""

    metric: ClassVar[str]
    sensor_kind: ClassVar[str]
    zh: ClassVar[str]
    en: ClassVar[str]
    default_severity = Severity.CRITICAL

    def inputs(self) -> tuple[str, ...] | None:
        return self.watched(self.sensor_kind)

    def on_observation(self, obs: Observation, now: Instant) -> list[Signal]:
        if obs.metric != self.metric or not isinstance(obs.value, bool):
            return []
        if not self.watches(obs.device_id):
            return []
        if not obs.value:
            return [Clear(key=obs.device_id, details={"cleared_by": obs.device_id})]
        where = self.site.label(obs.device_id)
        return [
            Raise(
                key=obs.device_id,
                message=self.t(f"{self.zh}：{where}", f"{self.en}: {where}"),
                device_ids=(obs.device_id,),
                details={"detected_at": self.local(now), "metric": self.metric},
            )
        ]


class SmokeRule(HazardRule):
    type_name: ClassVar[str] = "smoke"
    metric = "smoke"
    sensor_kind = "smoke_sensor"
    zh = "检测到烟雾"
    en = "Smoke detected"


class GasLeakRule(HazardRule):
    type_name: ClassVar[str] = "gas_leak"
    metric = "gas"
    sensor_kind = "gas_sensor"
    zh = "检测到燃气泄漏"
    en = "Gas leak detected"


class CarbonMonoxideRule(HazardRule):
    type_name: ClassVar[str] = "carbon_monoxide"
    metric = "carbon_monoxide"
    sensor_kind = "co_sensor"
    zh = "检测到一氧化碳"
    en = "Carbon monoxide detected"


class WaterLeakRule(HazardRule):
    type_name: ClassVar[str] = "water_leak"
    metric = "water_leak"
    sensor_kind = "leak_sensor"
    zh = "检测到漏水"
    en = "Water leak detected"
    default_severity = Severity.HIGH


RULE_SPECS = tuple(
    RuleSpec(
        cls.type_name,
        RuleOptions,
        cls,
        kinds=frozenset({cls.sensor_kind}),
        description=f"{cls.en.lower()} by a {cls.sensor_kind}: raised at once, cleared when "
        "the sensor reports it gone",
    )
    for cls in (SmokeRule, GasLeakRule, CarbonMonoxideRule, WaterLeakRule)
)
