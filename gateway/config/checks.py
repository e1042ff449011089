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
from hearthgate.config.safety import feeding_kinds, feeding_text, is_explicit, unfed
from hearthgate.config.sites import RuleOrigins
from hearthgate.core.durations import format_duration
from hearthgate.core.options import DeviceConfig
from hearthgate.rules.base import RuleSpec
from hearthgate.rules.site_state import MOTION_KINDS

# What meters and 433 MHz receivers are set to; anything else is most likely a typo.
STANDARD_BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITY_NAMES = {"N": "none", "E": "even", "O": "odd"}
# Device kinds a resident can call for help with.
HELP_RULES = ("sos", "fall")


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
        for i, bus in enumerate(cfg.buses):
            self._serial_line(i, bus.id, bus.options)
        for si, site in enumerate(cfg.sites):
            devices = [(i, d) for i, d in enumerate(cfg.devices) if d.site == site.id]
            unwatchable = self._unwatchable(si, site, [d for _, d in devices])
            for spec in cfg.registry.expecting():
                self._expected(si, site, devices, spec, unwatchable)
            self._profile_off(si, site, [d for _, d in devices])
            self._poll_vs_window(si, site, devices)
            self._radar_motion(site, devices)
        self._uplink()
        self._web()
        return self.out

    def _serial_line(self, i: int, bus_id: str, options: object) -> None:
        baud = getattr(options, "baudrate", None)
        if isinstance(baud, int) and baud not in STANDARD_BAUD_RATES:
            near = min(STANDARD_BAUD_RATES, key=lambda r: abs(r - baud))
            self.warn(
                ("buses", i, "baudrate"),
                f"bus '{bus_id}': baudrate {baud} is not a rate meters or receivers use",
                f"did you mean {near}? (standard rates: "
                f"{', '.join(map(str, STANDARD_BAUD_RATES))})",
            )
        parity = getattr(options, "parity", None)
        if not isinstance(parity, str):
            return
        for d in self.config.devices:
            spec = self.config.registry.protocols.get(d.protocol)
            if d.bus != bus_id or spec is None or not spec.parities or parity in spec.parities:
                continue
            usual = " or ".join(PARITY_NAMES.get(p, p) for p in sorted(spec.parities))
            written = self.smap.values.get(("buses", i, "parity")) is not None
            self.warn(
                ("buses", i, "parity" if written else "id"),
                f"bus '{bus_id}': parity {PARITY_NAMES.get(parity, parity)}"
                f"{'' if written else ' (the default)'} is unusual for {d.protocol}"
                f" devices (device '{d.id}'), which use {usual}",
                f"set parity: {sorted(spec.parities)[0]} unless the device's manual says"
                " otherwise",
            )
            return

    def _unwatchable(self, si: int, site: SiteConfig, devices: list[DeviceConfig]) -> bool:
        """Warn when nothing can raise an alert about the site's resident (a shared area,
        with no `resident:`, has none to watch)."""
        if site.resident is None:
            return False
        rules = self.config.registry.rules
        help_kinds: frozenset[str] = frozenset().union(
            *(feeding_kinds(rules[n]) for n in HELP_RULES if n in rules)
        )
        if any(d.kind in help_kinds for d in devices):
            return False
        for rule in site.rules:
            spec = rules.get(rule.type)
            if spec is not None and spec.cls.absence and not unfed(spec, devices):
                return False
        self.warn(
            ("sites", si, "id"),
            f"site '{site.id}' has no SOS device and no absence rule: nothing can raise an"
            " alert about its resident",
            "add an sos_button to the site, or a rule such as {type: inactivity, window: 4h}"
            " with a motion sensor",
        )
        return True

    def _profile_off(self, si: int, site: SiteConfig, devices: list[DeviceConfig]) -> None:
        """One line per site: the profile's rules that no device of the site can feed."""
        if site.profile is None:
            return
        off = []
        for k, rule in enumerate(site.rules):
            spec = self.config.registry.rules.get(rule.type)
            if spec is None or is_explicit(self.origins, si, k) or not unfed(spec, devices):
                continue
            off.append(f"{rule.type} off (no {feeding_text(spec)})")
        if off:
            self.warn(("sites", si, "profile"), f"{site.id}: {site.profile}: {', '.join(off)}")

    def _expected(
        self,
        si: int,
        site: SiteConfig,
        devices: list[tuple[int, DeviceConfig]],
        spec: RuleSpec,
        unwatchable: bool,
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
        # A rule no device feeds is refused when written (hearthgate.config.safety) and
        # listed by _profile_off when a profile brings it; `idle` is the refusal's text.
        elif not present and not has_rule and expected.absent is not None and not unwatchable:
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

    def _radar_motion(self, site: SiteConfig, devices: list[tuple[int, DeviceConfig]]) -> None:
        """`inactivity` fed by radars alone: only their movement counts, and not every model
        reports movement; presence alone never resets the rule."""
        rule = next((r for r in site.rules if r.type == "inactivity"), None)
        if rule is None:
            return
        chosen = getattr(rule.options, "devices", None)
        read = [(i, d) for i, d in devices
                if d.kind in MOTION_KINDS and (chosen is None or d.id in chosen)]
        if not read or any(d.kind == "motion_sensor" for _, d in read):
            return
        i, first = read[0]
        self.warn(
            ("devices", i, "kind"),
            f"rule 'inactivity' of site '{site.id}' reads only radars"
            f" ({', '.join(d.id for _, d in read)}): a radar counts as movement only if its"
            " model reports movement (zigbee2mqtt `movement` or `motion_state`), never by"
            " presence alone; one that reports only presence leaves 'inactivity' to be raised"
            " while someone is there",
            f"check the exposes of {first.id}'s model (docs/devices.md), or add a motion sensor",
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

    def _web(self) -> None:
        web = self.config.gateway.web
        if web is None:
            return
        host, port = web.address
        if not _is_loopback(host):
            # Plain HTTP: the token crosses the home's Wi-Fi in the clear, and `0.0.0.0`
            # also answers on a 4G modem's address. Legal (a phone needs it), worth a word.
            self.warn(
                ("gateway", "web", "listen"),
                f"the status page listens on {host}:{port} over plain HTTP: anyone on that"
                " network who sees the token can read the page and acknowledge test alerts",
                f"remove 'web:' once the flat is handed over, or listen on 127.0.0.1:{port}"
                f" and reach it with: ssh -L {port}:127.0.0.1:{port} pi@<gateway>",
            )

def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
