"""Legal but probably wrong: the warnings `hearthgate check` prints (docs/configuration.md).

A warning never makes a config invalid.
"""

from __future__ import annotations

import ipaddress

from hearthgate.config.models import ConfigProblem, GatewayConfig, SiteConfig
from hearthgate.config.positions import Loc, SourceMap
from hearthgate.config.reporting import problem_at
from hearthgate.config.sites import RuleOrigins
from hearthgate.core.durations import format_duration
from hearthgate.core.options import DeviceConfig

_SOS_KIND = "sos_button"


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
            self._site(si, site)
        self._uplink()
        return self.out

    def _site(self, si: int, site: SiteConfig) -> None:
        devices = [(i, d) for i, d in enumerate(self.config.devices) if d.site == site.id]
        kinds = {d.kind for _, d in devices}
        types = {r.type for r in site.rules}
        site_loc: Loc = ("sites", si, "id")
        for i, d in devices:
            if d.kind == "water_meter" and "no_water" not in types:
                self.warn(
                    ("devices", i, "kind"),
                    f"device '{d.id}' is a water meter but site '{site.id}' has no"
                    " 'no_water' rule: nobody hears if the water stops",
                    "add {type: no_water, window: 12h} to the site's rules",
                )
        if _SOS_KIND in kinds and "sos" not in types:
            i, d = next((i, d) for i, d in devices if d.kind == _SOS_KIND)
            self.warn(
                ("devices", i, "kind"),
                f"site '{site.id}' has an SOS button ('{d.id}') but no 'sos' rule:"
                " a press raises no alert",
                "add {type: sos} to the site's rules",
            )
        if _SOS_KIND not in kinds:
            if "sos" in types:
                k = next(k for k, r in enumerate(site.rules) if r.type == "sos")
                self.warn(
                    self.origins[(si, k)](("type",)),
                    f"site '{site.id}' has an 'sos' rule but no sos_button device: it can never"
                    " fire",
                )
            else:
                self.warn(site_loc, f"site '{site.id}' has no SOS device (sos_button)")
        self._poll_vs_window(si, site, devices)

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


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
