"""One bus, device or rule, validated against the option model its registry entry names.

An entry is written flat (`{id: m1, protocol: dlt645, bus: rs485-1, address: ...}`): the
common keys go through BusConfig / DeviceConfig, the rest through the option model of
the bus type, protocol or rule type it names (hearthgate.registry), so a new driver or
rule brings its keys without a line here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hearthgate.config.models import RuleConfig
from hearthgate.config.positions import Loc
from hearthgate.config.reporting import Locate, Reporter, one_of, show, where
from hearthgate.core.options import BusConfig, DeviceConfig, Options
from hearthgate.registry import Registry

BUS_KEYS = tuple(k for k in BusConfig.model_fields if k != "options")
DEVICE_KEYS = tuple(k for k in DeviceConfig.model_fields if k != "options")
RULE_KEYS = ("type",)


class Entries:
    """Validates buses, devices and rules one at a time; problems go to `reporter`.

    Args:
        reporter: collects the problems, at their positions.
        registry: the bus types, protocols and rule types entries may name.
    """

    def __init__(self, reporter: Reporter, registry: Registry) -> None:
        self.reporter = reporter
        self.registry = registry

    def bus(self, i: int, raw: dict[str, Any]) -> BusConfig | None:
        """`buses[i]`, or None when it is not valid."""

        def locate(rel: Loc) -> Loc:
            return ("buses", i, *rel)

        name = where("bus", raw, i)
        spec = self._registered(
            raw, "type", self.registry.bus_types, locate, name, "bus types", BUS_KEYS
        )
        head, options = self._split(raw, BUS_KEYS, spec and spec.options, locate, name)
        checked = self.reporter.validate(
            BusConfig, {**head, "options": options or Options()}, locate, name, skip=("type",)
        )
        return checked if spec and options is not None else None

    def device(self, i: int, raw: dict[str, Any]) -> DeviceConfig | None:
        """`devices[i]`, or None when it is not valid (its bus and site are checked later)."""

        def locate(rel: Loc) -> Loc:
            return ("devices", i, *rel)

        report = self.reporter
        name = where("device", raw, i)
        spec = self._registered(
            raw, "protocol", self.registry.protocols, locate, name, "protocols", DEVICE_KEYS
        )
        kind = raw.get("kind")
        kind_ok = False
        if "kind" not in raw:
            if not report.typo_of(raw, ("kind",), locate, name, extra_keys=DEVICE_KEYS):
                report.error(locate(()), f"{name}: missing required key 'kind'", key=True)
        else:
            if not isinstance(kind, str) or kind not in self.registry.device_kinds:
                report.error(
                    locate(("kind",)),
                    f"{name}: unknown device kind {show(kind)}",
                    one_of(kind, spec.kinds if spec else self.registry.device_kinds, "kinds"),
                )
            elif spec is not None and kind not in spec.kinds:
                report.error(
                    locate(("kind",)),
                    f"{name}: protocol '{spec.name}' does not drive '{kind}' devices;"
                    f" it drives: {', '.join(sorted(spec.kinds))}",
                )
            else:
                kind_ok = True
        head, options = self._split(raw, DEVICE_KEYS, spec and spec.options, locate, name)
        checked = report.validate(
            DeviceConfig,
            {**head, "options": options or Options()},
            locate,
            name,
            skip=("protocol", "kind"),
        )
        if checked is not None and kind_ok and isinstance(kind, str):
            problem = checked.options.kind_problem(kind)
            if problem is not None:
                report.error(locate((problem[0],)), f"{name}: {problem[1]}")
                return None
        return checked if spec and options is not None and kind_ok else None

    def rule(
        self,
        rule: dict[str, Any],
        locate: Locate,
        site_where: str,
        site_devices: Mapping[str, DeviceConfig],
    ) -> RuleConfig | None:
        """One rule of a site (after its profile is applied), or None when it is not valid.

        The devices it names must be of the site and of kinds the rule reads.
        """
        kind = rule.get("type")
        name = f"{site_where}, rule '{kind}'" if isinstance(kind, str) else f"{site_where}, rule"
        spec = self._registered(
            rule, "type", self.registry.rules, locate, name, "rule types", RULE_KEYS
        )
        if spec is None:
            return None
        _, options = self._split(rule, RULE_KEYS, spec.options, locate, name)
        if options is None:
            return None
        wanted = getattr(options, "devices", None)
        ok = True
        for n, device_id in enumerate(wanted or ()):
            device = site_devices.get(device_id)
            if device is None:
                self.reporter.error(
                    locate(("devices", n)),
                    f"{name}: no device '{device_id}' in this site",
                    one_of(
                        device_id, site_devices, "devices of this site", "this site has no devices"
                    ),
                )
                ok = False
            elif spec.kinds and device.kind not in spec.kinds:
                self.reporter.error(
                    locate(("devices", n)),
                    f"{name}: the rule does not read '{device.kind}' devices (device"
                    f" '{device_id}'); it reads: {', '.join(sorted(spec.kinds))}",
                )
                ok = False
        return RuleConfig(type=spec.name, options=options) if ok else None

    def _split(
        self,
        raw: dict[str, Any],
        common: Iterable[str],
        spec_options: type[Options] | None,
        locate: Locate,
        name: str,
    ) -> tuple[dict[str, Any], Options | None]:
        """Common keys, and the rest validated by the registered option model."""
        common = tuple(common)
        head = {k: v for k, v in raw.items() if k in common}
        rest = {k: v for k, v in raw.items() if k not in common}
        if spec_options is None:
            return head, None
        options = self.reporter.validate(spec_options, rest, locate, name, extra_keys=common)
        return head, options

    def _registered(
        self,
        raw: dict[str, Any],
        key: str,
        table: Mapping[str, Any],
        locate: Locate,
        name: str,
        what: str,
        common: tuple[str, ...],
    ) -> Any:
        """The registry entry that `raw[key]` names, or None after reporting why not."""
        report = self.reporter
        if key not in raw:
            if report.typo_of(raw, (key,), locate, name, extra_keys=common):
                return None
            report.error(
                locate(()),
                f"{name}: missing required key '{key}'",
                one_of(None, table, what),
                key=True,
            )
            return None
        value = raw[key]
        if not isinstance(value, str) or value not in table:
            report.error(
                locate((key,)),
                f"{name}: unknown {what[:-1]} {show(value)}",
                one_of(value, table, what),
            )
            return None
        return table[value]
