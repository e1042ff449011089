"""Building the rule engine from a loaded config: sites, their devices and their rules.

It lives above `hearthgate.rules` because it reads the config and the registry, which the
rules must not know: the engine and the rule types take plain values (`RuleSite`,
`SiteDevice`, validated options) and never a `GatewayConfig`.
"""

from __future__ import annotations

from typing import Any

from hearthgate.config import GatewayConfig
from hearthgate.rules.base import Rule, RuleSite, SiteDevice
from hearthgate.rules.engine import RuleEngine
from hearthgate.rules.site_state import DeviceHealth, Presence, SiteState


def build_engine(config: GatewayConfig, **kwargs: Any) -> RuleEngine:
    """Build every site's rules from a loaded `GatewayConfig`, with the rule types of the
    registry it was validated against; `kwargs` go to `RuleEngine`."""
    rule_types = config.registry.rules
    tz = config.gateway.tz
    rules_by_site: dict[str, list[Rule]] = {}
    for site in config.sites:
        configured = [d for d in config.devices if d.site == site.id]
        devices = tuple(SiteDevice(d.id, d.kind, d.protocol, d.name, d.room) for d in configured)
        # Presence inference waits for motion after the door: only a PIR is sure to send
        # it. A radar that reports only presence would make every still resident "away",
        # pausing the absence rules, so a site of radars alone stays unknown (= home).
        state = SiteState(
            Presence(
                any(d.kind == "door_contact" for d in devices)
                and any(d.kind == "motion_sensor" for d in devices)
            ),
            DeviceHealth({d.id: config.silence_limit(d) for d in configured}),
        )
        rsite = RuleSite(site.id, site.resident, tz, config.gateway.language, devices, state)
        rules = [rule_types[rc.type].cls(rsite, rc.options) for rc in site.rules]
        for rule in rules:
            rule.alongside(tuple(r for r in rules if r is not rule))
        rules_by_site[site.id] = rules
    return RuleEngine(rules_by_site, **kwargs)
