"""Profiles: named default rule sets for kinds of site (`profile: living_alone`).

A site's explicit `rules:` override the profile's rule of the same type (keys are
merged, the site's win); rule types the profile lacks are added.
"""

from __future__ import annotations

from typing import Any

# Filled in by the rules work (issue 5) as rule types land.
PROFILES: dict[str, list[dict[str, Any]]] = {
    "sos_only": [{"type": "sos"}],
}


def expand_rules(profile: str | None, explicit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The site's effective raw rule list. Raises KeyError for an unknown profile."""
    if profile is None:
        return list(explicit)
    base = [dict(r) for r in PROFILES[profile]]
    by_type = {r["type"]: r for r in base}
    out = list(base)
    for rule in explicit:
        kind = rule.get("type")
        if kind in by_type:
            by_type[kind].update(rule)
        else:
            out.append(dict(rule))
    return out
