"""Carrying the rule engine's state across a config change: unchanged rules keep going.

The engine's snapshot names each rule by site, position and type (`room-301/1/no_water`)
and each open alert by site, position and signal. A pushed config may add, remove or
reorder rules and devices; this maps every rule of the old config to the rule of the new
config with the same site, type and options, and renames its saved state accordingly. A
rule whose options changed, or that is new, finds nothing and starts afresh; an open alert
whose rule is gone is left pointing at no rule, and the engine closes it ("rules changed")
rather than leave the platform waiting. Site state (presence, device health) is kept by
site id: devices that are new simply have no history.
"""

from __future__ import annotations

import json
from typing import Any

from hearthgate.config import GatewayConfig

NO_RULE = 1_000_000  # a position no site has: what an alert of a removed rule points at


def _fingerprints(config: GatewayConfig) -> dict[tuple[str, int], str]:
    return {
        (site.id, i): json.dumps(
            [site.id, rule.type, rule.options.model_dump(mode="json")], sort_keys=True
        )
        for site in config.sites
        for i, rule in enumerate(site.rules)
    }


def rule_positions(old: GatewayConfig, new: GatewayConfig) -> dict[tuple[str, int], int]:
    """Old (site, index) -> new index, for every rule present unchanged in both."""
    free: dict[str, list[tuple[str, int]]] = {}
    for pos, fp in _fingerprints(new).items():
        free.setdefault(fp, []).append(pos)
    out: dict[tuple[str, int], int] = {}
    for pos, fp in _fingerprints(old).items():
        if free.get(fp):
            out[pos] = free[fp].pop(0)[1]
    return out


def carry_state(state: dict[str, Any], old: GatewayConfig, new: GatewayConfig) -> dict[str, Any]:
    """The engine snapshot `state` (taken under `old`) renamed for an engine built from
    `new`; the input is not changed."""
    moved = rule_positions(old, new)

    def rename(key: str) -> str | None:
        site_id, index, rest = key.split("/", 2)
        try:
            j = moved.get((site_id, int(index)))
        except ValueError:
            return None
        return None if j is None else f"{site_id}/{j}/{rest}"

    out = dict(state)
    out["rules"] = {
        new_key: saved
        for key, saved in state.get("rules", {}).items()
        if (new_key := rename(key)) is not None
    }
    out["alerts"] = []
    for alert in state.get("alerts", []):
        site_id, _, rest = alert["rule_key"].split("/", 2)
        new_key = rename(alert["rule_key"]) or f"{site_id}/{NO_RULE}/{rest}"
        out["alerts"].append({**alert, "rule_key": new_key})
    out["quiet_in"] = {
        new_key: q for key, q in state.get("quiet_in", {}).items()
        if (new_key := rename(key)) is not None
    }
    out["pending"] = {
        new_key: p for key, p in state.get("pending", {}).items()
        if (new_key := rename(key)) is not None
    }
    return out
