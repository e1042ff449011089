"""Profiles: named default rule sets for kinds of site (`profile: living_alone`).

A site's explicit `rules:` override the profile's rule of the same type (keys are
merged, the site's win); rule types the profile lacks are added.
"""

from __future__ import annotations

from typing import Any

# Rules whose devices a site lacks simply never fire (no water meter: no `no_water`),
# so a profile may list more than every site has.
PROFILES: dict[str, list[dict[str, Any]]] = {
    # A person living alone at home: the full set, tuned for an ordinary day.
    "living_alone": [
        {"type": "sos"},
        {"type": "fall"},
        {"type": "smoke"},
        {"type": "gas_leak"},
        {"type": "carbon_monoxide"},
        {"type": "water_leak"},
        {"type": "no_water", "window": "12h"},
        {"type": "continuous_water", "window": "2h"},
        {"type": "inactivity", "window": "4h", "active_hours": "07:00-22:00"},
        {"type": "no_exit", "window": "3d"},
        {"type": "door_night", "quiet_hours": "22:00-06:00"},
        {"type": "door_held_open", "after": "10m"},
        {"type": "no_power_use", "window": "24h", "min_kwh": 0.1},
        {"type": "power_high", "above": 2000, "window": "2h"},
        {"type": "device_offline"},
        {"type": "battery_low", "below": 15},
        {"type": "tamper"},
        # Learned from the resident's own routine (rules/routine.py); fixed windows until
        # they have learned.
        {"type": "not_up"},
        {"type": "stillness"},
        {"type": "night_bathroom"},
        {"type": "low_use"},
    ],
    # A room in a care facility: staff are near, doors open at night for rounds, and
    # residents rarely go out alone, so no `door_night` or `no_exit`; tighter windows.
    "facility_room": [
        {"type": "sos"},
        {"type": "fall"},
        {"type": "smoke"},
        {"type": "gas_leak"},
        {"type": "carbon_monoxide"},
        {"type": "water_leak"},
        {"type": "no_water", "window": "10h"},
        {"type": "continuous_water", "window": "1h"},
        {"type": "inactivity", "window": "3h", "active_hours": "07:00-21:00"},
        {"type": "door_held_open", "after": "15m"},
        {"type": "power_high", "above": 1500, "window": "1h"},
        {"type": "device_offline"},
        {"type": "battery_low", "below": 20},
        {"type": "tamper"},
        {"type": "not_up"},
        {"type": "stillness", "window": "3h", "active_hours": "07:00-21:00"},
        {"type": "night_bathroom"},
        {"type": "low_use"},
    ],
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
