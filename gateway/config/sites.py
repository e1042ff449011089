"""A site and its rules: the profile expanded, each rule traced back to where it is written.

A rule that came from `profile: living_alone` has no lines of its own; a rule that
overrides a profile's has some keys in the file and others from the profile. Problems
(and `check`'s warnings) about a key are put where that key is written, or at the
`profile:` value when it is written nowhere.
"""

from __future__ import annotations

from typing import Any

from hearthgate.config.entries import Entries
from hearthgate.config.models import RAW_HINT, RAW_NEEDS_REASON, RuleConfig, SiteConfig
from hearthgate.config.positions import Loc
from hearthgate.config.reporting import Locate, one_of, show, where
from hearthgate.core.options import DeviceConfig
from hearthgate.rules.profiles import PROFILES, expand_rules

# Where each rule of each site is written, by (site index, rule index after expansion).
RuleOrigins = dict[tuple[int, int], Locate]


class Sites:
    """Validates sites one at a time, their rules through `entries`.

    Args:
        entries: validates each rule against its registered option model and reports
            problems.

    `origins` records where every rule of every valid site is written, for the warnings.
    """

    def __init__(self, entries: Entries) -> None:
        self.entries = entries
        self.reporter = entries.reporter
        self.origins: RuleOrigins = {}

    def site(self, i: int, raw: dict[str, Any], devices: list[DeviceConfig]) -> SiteConfig | None:
        """`sites[i]` with its rules expanded, or None when it or a rule is not valid."""

        def locate(rel: Loc) -> Loc:
            return ("sites", i, *rel)

        report = self.reporter
        name = where("site", raw, i)
        head = {k: v for k, v in raw.items() if k != "rules"}
        checked = report.validate(SiteConfig, head, locate, name)
        if checked is not None and checked.telemetry == "raw" and not checked.telemetry_reason:
            report.error(locate(("telemetry",)), RAW_NEEDS_REASON.format(where=name), RAW_HINT)
        explicit: list[tuple[int, dict[str, Any]]] = []
        rules_raw = raw.get("rules")
        if rules_raw is not None and not isinstance(rules_raw, list):
            report.error(
                locate(("rules",)),
                f"{name}: 'rules:' should be a list of rules, not {show(rules_raw)}",
            )
        elif rules_raw:
            for j, rule in enumerate(rules_raw):
                if isinstance(rule, dict):
                    explicit.append((j, rule))
                else:
                    report.error(
                        locate(("rules", j)),
                        f"{name}: each rule should be a mapping like {{type: sos}},"
                        f" not {show(rule)}",
                    )
        profile = raw.get("profile")
        if profile is not None and (not isinstance(profile, str) or profile not in PROFILES):
            if isinstance(profile, str):  # a non-text profile was reported by SiteConfig
                report.error(
                    locate(("profile",)),
                    f"{name}: unknown profile '{profile}'",
                    one_of(profile, PROFILES, "profiles"),
                )
            profile = None
        try:
            expanded = expand_rules(profile, [dict(r) for _, r in explicit])
        except (KeyError, TypeError, ValueError) as exc:
            report.error(locate(("profile",)), f"{name}: the profile cannot be applied ({exc})")
            return None
        site_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        site_devices = {d.id: d for d in devices if d.site == site_id}
        rules: list[RuleConfig] = []
        origins = _rule_origins(i, expanded, explicit, profile)
        for k, rule in enumerate(expanded):
            rule_locate = origins[k]
            self.origins[(i, k)] = rule_locate
            checked_rule = self.entries.rule(rule, rule_locate, name, site_devices)
            if checked_rule is not None:
                rules.append(checked_rule)
        if checked is None or len(rules) != len(expanded):
            return None
        return checked.model_copy(update={"rules": tuple(rules)})


def _rule_origins(
    site_i: int,
    expanded: list[dict[str, Any]],
    explicit: list[tuple[int, dict]],
    profile: str | None,
) -> list[Locate]:
    """Where each rule of the expanded list came from: an explicit entry, or the profile
    (whose rules have no place in the file but the `profile:` value)."""

    def at(loc: Loc) -> Locate:
        return lambda rel: (*loc, *rel)

    if profile is None:
        # Without a profile the expanded list is the explicit one, in order.
        return [at(("sites", site_i, "rules", j)) for j, _ in explicit][: len(expanded)]
    profile_loc: Loc = ("sites", site_i, "profile")
    profile_types = {r.get("type") for r in PROFILES[profile]}
    extra = iter([(j, r) for j, r in explicit if r.get("type") not in profile_types])
    out: list[Locate] = []
    for rule in expanded:
        kind = rule.get("type")
        if kind not in profile_types:
            j = next(extra, (None, None))[0]
            out.append(at(("sites", site_i, "rules", j)) if j is not None else at(profile_loc))
            continue
        same = [(j, r) for j, r in explicit if r.get("type") == kind]
        key_from: dict[str, Loc] = {}
        for j, r in same:
            for key, value in r.items():
                if rule.get(key) == value:
                    key_from[key] = ("sites", site_i, "rules", j, key)
        rule_loc: Loc = ("sites", site_i, "rules", same[-1][0]) if same else profile_loc
        out.append(_profiled_locate(rule_loc, profile_loc, key_from))
    while len(out) < len(expanded):
        out.append(at(profile_loc))
    return out


def _profiled_locate(rule_loc: Loc, profile_loc: Loc, key_from: dict[str, Loc]) -> Locate:
    def locate(rel: Loc) -> Loc:
        if not rel:
            return rule_loc
        head = key_from.get(str(rel[0]))
        return (*head, *rel[1:]) if head else profile_loc

    return locate
