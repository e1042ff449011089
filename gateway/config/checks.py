"""Legal but probably wrong: the warnings `hearthgate check` prints (docs/configuration.md).

A warning never makes a config invalid. Which rules a site is expected to have is data
of the rule types (`RuleSpec.expected`), so a new rule type brings its own warnings
without a line here.
"""

from __future__ import annotations

import ipaddress

from hearthgate.config.models import ConfigProblem, GatewayConfig, SiteConfig
from hearthgate.config.positions import Loc, SourceMap
from hearthgate.config.reporting import problem_at
from hearthgate.config.sites import RuleOrigins
from hearthgate.core.durations import format_duration
from hearthgate.core.options import DeviceConfig
from hearthgate.rules.base import RuleSpec


def review(
    config: GatewayConfig, file: str, smap: SourceMap, origins: RuleOrigins
) -> list[ConfigProblem]:
    """The warnings about a valid config, unsorted and unredacted.

    Args:
        config: the config, validated against `config.registry`.
        file, smap: the file it was read from and where its keys and values sit.
        origins: where each rule of each site is written (profiles put rules elsewhere).
    """
    return _Review(config, file, smap, origins).collect()


class _Review:
    def __init__(
        self, config: GatewayConfig, file: str, smap: SourceMap, origins: RuleOrigins
    ) -> None:
        self.config = config
        self.file = file
        self.smap = smap
        self.origins = origins
        self.out: list[ConfigProblem] = []

    def warn(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.out.append(problem_at(self.file, self.smap.value(loc), message, hint, warning=True))

    def collect(self) -> list[ConfigProblem]:
        cfg = self.config
        used_buses = {d.bus for d in cfg.devices}
        for i, bus in enumerate(cfg.buses):
            if bus.id not in used_buses:
                self.warn(("buses", i, "id"), f"bus '{bus.id}' has no devices")
        for si, site in enumerate(cfg.sites):
            devices = [(i, d) for i, d in enumerate(cfg.devices) if d.site == site.id]
            for spec in cfg.registry.rules.values():
                self._expected(si, site, devices, spec)
            self._poll_vs_window(si, site, devices)
        self._uplink()
        return self.out

    def _expected(
        self, si: int, site: SiteConfig, devices: list[tuple[int, DeviceConfig]], spec: RuleSpec
    ) -> None:
        expected = spec.expected
        if expected is None:
            return
        present = [(i, d) for i, d in devices if d.kind in expected.kinds]
        has_rule = any(r.type == spec.name for r in site.rules)
        if present and not has_rule:
            for i, d in present if expected.each_device else present[:1]:
                self.warn(
                    ("devices", i, "kind"),
                    expected.unwatched.format(site=site.id, device=d.id),
                    expected.hint,
                )
        elif not present and has_rule and expected.idle is not None:
            k = next(k for k, r in enumerate(site.rules) if r.type == spec.name)
            self.warn(self.origins[(si, k)](("type",)), expected.idle.format(site=site.id))
        elif not present and not has_rule and expected.absent is not None:
            self.warn(("sites", si, "id"), expected.absent.format(site=site.id))

    def _poll_vs_window(
        self, si: int, site: SiteConfig, devices: list[tuple[int, DeviceConfig]]
    ) -> None:
        for rule in site.rules:
            window = getattr(rule.options, "window", None)
            if not isinstance(window, int | float) or isinstance(window, bool):
                continue
            spec = self.config.registry.rules.get(rule.type)
            chosen = getattr(rule.options, "devices", None)
            for i, d in devices:
                poll = getattr(d.options, "poll", None)
                if not isinstance(poll, int | float) or isinstance(poll, bool):
                    continue
                if spec is not None and spec.kinds and d.kind not in spec.kinds:
                    continue
                if chosen is not None and d.id not in chosen:
                    continue
                if poll > window:
                    self.warn(
                        ("devices", i, "poll"),
                        f"device '{d.id}' is polled every {format_duration(poll)}, longer than"
                        f" the {format_duration(window)} window of rule '{rule.type}' in site"
                        f" '{site.id}'",
                    )

    def _uplink(self) -> None:
        uplink = self.config.uplink
        if uplink.tls is None and not _is_loopback(uplink.host):
            self.warn(
                ("uplink", "host"),
                f"the uplink to '{uplink.host}' has no 'tls:': alerts and the password travel"
                " unencrypted",
                "add tls: {ca_file: /etc/hearthgate/ca.pem}",
            )
        if uplink.protocol == "3.1.1" and not uplink.receipts:
            self.warn(
                ("uplink", "protocol"),
                "under MQTT 3.1.1 a broker that refuses an alert (an ACL, a quota) still"
                " acknowledges it: the gateway cannot see the refusal and the alert is lost",
                "use protocol: 5, or turn on receipts: true (the platform confirms each alert)",
            )


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
