"""Coverage: which rules of a site are watching now, and which are blind and why.

A rule says it is blind through `Rule.blind_reason(now)` (its sensors offline, the resident
away, a routine still being learnt); this module only gathers the answers per site, for
`P/status` (`coverage`), `hearthgate status` and the note in a `device_offline` alert
("room-301: only SOS is watched"). Pure: rules and an instant in, plain values out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hearthgate.core.model import Instant
from hearthgate.rules.base import Rule

log = logging.getLogger("hearthgate.rules")

# How rule types read in a sentence for a care worker.
SHOWN_AS = {"sos": "SOS"}


@dataclass(frozen=True, slots=True)
class SiteCoverage:
    """One site's rules as they stand at one moment.

    Attributes:
        site_id: the site.
        watching: type names of the rules that are watching, in the config's order.
        blind: (type name, why) of the rules that are blind.
        absence_blind: the site has absence rules (`Rule.absence`) and every one is blind:
            nothing notices a resident who stops living as usual.
        watching_resident: the watching rules that watch the resident rather than the
            devices (`Rule.device_health` false).
    """

    site_id: str
    watching: tuple[str, ...]
    blind: tuple[tuple[str, str], ...]
    absence_blind: bool
    watching_resident: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The `P/status` form: `{"site_id", "watching": [...], "blind": [{"rule", "why"}]}`."""
        return {
            "site_id": self.site_id,
            "watching": list(self.watching),
            "blind": [{"rule": rule, "why": why} for rule, why in self.blind],
        }

    def note(self) -> str:
        """What is left watching the resident, in one line: `room-301: only SOS is watched`."""
        if not self.watching_resident:
            return f"{self.site_id}: nothing watches the resident"
        names = ", ".join(SHOWN_AS.get(n, n) for n in dict.fromkeys(self.watching_resident))
        return f"{self.site_id}: only {names} {'is' if ', ' not in names else 'are'} watched"


def site_coverage(site_id: str, rules: Sequence[Rule], now: Instant) -> SiteCoverage:
    """Ask each rule of one site whether it is watching at `now`."""
    watching: list[str] = []
    resident: list[str] = []
    blind: list[tuple[str, str]] = []
    absence = [False, True]  # any absence rule, all of them blind
    for rule in rules:
        try:
            why = rule.blind_reason(now)
        except Exception:
            # A broken hook must not hide the others, nor pass for watching.
            log.exception("rule %s of site %s: blind_reason failed", rule.type_name, site_id)
            why = "cannot tell (internal error)"
        if rule.absence:
            absence[0] = True
            absence[1] = absence[1] and why is not None
        if why is None:
            watching.append(rule.type_name)
            if not rule.device_health:
                resident.append(rule.type_name)
        else:
            blind.append((rule.type_name, why))
    return SiteCoverage(site_id, tuple(watching), tuple(blind), absence[0] and absence[1],
                        tuple(resident))
