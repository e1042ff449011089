"""What `hearthgate check` refuses in a config that is otherwise valid: a resident less
watched than the file reads (docs/configuration.md, "What check refuses").

- a rule written in the file that no device of its site can feed (a `no_water` without a
  water meter can never fire);
- two devices that one bus cannot tell apart (one meter address, one zigbee2mqtt topic, one
  RFLink match, one OSDP address): one of them is never heard, or both are mixed up.

Pure: the validated config and where its keys are written in, problems out. A rule that a
profile brings and no device feeds is only a warning (`hearthgate.config.checks`): a profile
lists more rules than every site has devices for.
"""

from __future__ import annotations

from hearthgate.config.models import ConfigProblem, GatewayConfig
from hearthgate.config.positions import SourceMap
from hearthgate.config.reporting import problem_at
from hearthgate.config.sites import RuleOrigins
from hearthgate.core.options import DeviceConfig
from hearthgate.rules.base import RuleSpec

# Kinds that report what another kind does: an access controller's door input reports
# `door_open` like a door contact, so it feeds the door rules too.
ALSO_FED_BY: dict[str, frozenset[str]] = {"door_contact": frozenset({"access_controller"})}


def feeding_kinds(spec: RuleSpec) -> frozenset[str]:
    """The device kinds whose observations can make this rule fire; empty: any kind.

    A rule type that reads any kind but says where it is expected (`expected.kinds`) is fed
    by those."""
    kinds = set(spec.kinds or (spec.expected.kinds if spec.expected is not None else ()))
    for kind in tuple(kinds):
        kinds |= ALSO_FED_BY.get(kind, frozenset())
    return frozenset(kinds)


# Kinds whose name is not what an installer calls the device.
KIND_WORDS = {"co_sensor": "carbon monoxide sensor"}


def kinds_text(kinds: frozenset[str]) -> str:
    """`water_meter` → "water meter"; several joined with "or", for messages."""
    return " or ".join(sorted(KIND_WORDS.get(k, k.replace("_", " ")) for k in kinds))


def feeding_text(spec: RuleSpec) -> str:
    """The kinds that feed a rule type, its own first: "water meter", "access controller or door
    contact"."""
    own = frozenset(spec.kinds or (spec.expected.kinds if spec.expected is not None else ()))
    rest = feeding_kinds(spec) - own
    return " or ".join(t for t in (kinds_text(own), kinds_text(rest)) if t)


def unfed(spec: RuleSpec, devices: list[DeviceConfig]) -> bool:
    """Whether no device of a site can feed a rule of this type."""
    kinds = feeding_kinds(spec)
    return bool(kinds) and not any(d.kind in kinds for d in devices)


def is_explicit(origins: RuleOrigins, si: int, k: int) -> bool:
    """Whether rule `k` of site `si` is written in the site's `rules:` (not only a profile's)."""
    loc = origins[(si, k)](())
    return len(loc) > 2 and loc[2] == "rules"


def refuse(
    config: GatewayConfig, file: str, smap: SourceMap, origins: RuleOrigins
) -> list[ConfigProblem]:
    """The errors of a config that validated entry by entry, unsorted and unredacted."""
    out: list[ConfigProblem] = []
    registry = config.registry
    for si, site in enumerate(config.sites):
        devices = [d for d in config.devices if d.site == site.id]
        for k, rule in enumerate(site.rules):
            spec = registry.rules.get(rule.type)
            if spec is None or getattr(rule.options, "devices", None) is not None:
                continue  # a rule limited to devices: entries checked their kinds
            if not is_explicit(origins, si, k) or not unfed(spec, devices):
                continue
            needs = feeding_text(spec)
            idle = spec.expected.idle if spec.expected is not None else None
            message = (
                idle.format(site=site.id) if idle else
                f"site '{site.id}' has a '{rule.type}' rule but no {needs}: it can never fire"
            )
            out.append(problem_at(
                file, smap.value(origins[(si, k)](("type",))), message,
                f"add the {needs} to 'devices:' with site: {site.id}, or remove the rule",
            ))
    seen: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for i, device in enumerate(config.devices):
        spec = registry.protocols.get(device.protocol)
        if spec is None or not spec.address:
            continue
        values = tuple(_address_part(getattr(device.options, key, None)) for key in spec.address)
        if all(v == "" for v in values):
            continue
        key = (device.bus, device.protocol, values)
        if key not in seen:
            seen[key] = i
            continue
        first = config.devices[seen[key]]
        what = " and ".join(spec.address)
        line = smap.value(("devices", seen[key], spec.address[0])).line
        out.append(problem_at(
            file, smap.value(("devices", i, spec.address[0])),
            f"device '{device.id}' has the same {what} as device '{first.id}' (line {line})"
            f" on bus '{device.bus}': the gateway cannot tell them apart",
            f"each device on one bus needs its own {what}: check the nameplate or pairing",
        ))
    return out


def _address_part(value: object) -> str:
    # Written differently, meant the same: "EV1527;ID=5A3C1" and "ev1527;id=5a3c1".
    return "" if value is None else str(value).strip().lower()
