"""What a config file means: frozen pydantic models of its sections (docs/configuration.md).

Buses, devices and rules are written flat in YAML (`{id: x, type: serial, port: ...}`);
the keys beyond the common ones are validated by the option model that the bus
type, protocol or rule type registered (gateway/registry.py) and kept in `.options`.
These models hold no reading and no cross-checking: `hearthgate.config.loading` builds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator

from hearthgate.core.durations import Duration
from hearthgate.core.health import silence_limit
from hearthgate.core.listen import parse_listen
from hearthgate.core.options import ID_PATTERN, BusConfig, DeviceConfig, Options, Section
from hearthgate.registry import STANDARD, Registry

GATEWAY_ID_PATTERN = r"^[a-z0-9-]{3,64}$"

# What leaves the home on P/telemetry (docs/privacy.md): device health only, hourly site
# summaries (the default), or every reading (only with a `telemetry_reason`).
TelemetryLevel = Literal["health", "summary", "raw"]
TELEMETRY_LEVELS: tuple[str, ...] = ("health", "summary", "raw")
DAY = 86400.0
RAW_NEEDS_REASON = (
    "{where}: 'telemetry: raw' sends every reading of the home to the platform and needs"
    " 'telemetry_reason:' beside it, saying why"
)
RAW_HINT = (
    "add e.g. telemetry_reason: \"commissioning until 2026-12-01\", or use"
    " 'telemetry: summary' (hourly totals only)"
)


class RetentionSection(Section):
    """How long the local store keeps what it keeps (`gateway.retention:`, docs/privacy.md).

    Args:
        observations: raw observations kept for the rules that read history back (never
            shorter than the longest `RuleSpec.history` of the config's rules).
        summaries: the hourly site summaries.
        alerts: delivered alerts in the local alert log (undelivered ones are never pruned).
        audit: the local access trail; `audit_records` bounds it by count as well.
    """

    observations: Duration = 28 * DAY
    summaries: Duration = 90 * DAY
    alerts: Duration = 90 * DAY
    audit: Duration = 365 * DAY
    audit_records: int = Field(default=10_000, ge=100, le=1_000_000)


WEB_TOKEN_MIN = 16  # characters: the page is reachable from the home's network


class WebSection(Section):
    """The local status page for installers (`gateway.web:`, docs/operations.md).

    Args:
        listen: `HOST:PORT` as for `metrics_listen`; `0.0.0.0:8080` reaches it from a phone
            on the home's network, `127.0.0.1:8080` only from the gateway (an SSH tunnel).
        token: what the page asks for before it shows anything; `!secret web_token`.
    """

    listen: str
    token: SecretStr

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _host, port = parse_listen(value)
        if port == 0:
            raise ValueError(f"port 0 in {value!r}: the page needs a port a browser can name")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        # Never echo the value: it is a secret.
        if len(text.strip()) < WEB_TOKEN_MIN:
            raise ValueError(
                f"the page's token must be at least {WEB_TOKEN_MIN} characters"
                " (e.g. from: openssl rand -hex 16)"
            )
        if text != text.strip() or any(c.isspace() for c in text):
            raise ValueError("the page's token must not contain spaces or line breaks")
        return value

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


class GatewaySection(Section):
    id: str = Field(pattern=GATEWAY_ID_PATTERN)
    timezone: str = "Asia/Shanghai"
    data_dir: Path = Path("/var/lib/hearthgate")
    language: Literal["zh", "en"] = "zh"
    # Telemetry rows kept while the uplink is down; the oldest go first past this.
    telemetry_buffer: int = Field(default=200_000, ge=1000, le=10_000_000)
    # Prometheus metrics: an HTTP listener ("127.0.0.1:9108") and/or a textfile for
    # node_exporter's textfile collector. Both off by default.
    metrics_listen: str | None = None
    metrics_textfile: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    telemetry: TelemetryLevel = "summary"
    # Why every reading must leave the home (a trial, commissioning); `raw` needs it.
    telemetry_reason: str | None = Field(default=None, min_length=3, max_length=500)
    retention: RetentionSection = RetentionSection()
    # The local status page; off unless set.
    web: WebSection | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone '{value}' (use an IANA name like Asia/Shanghai)"
            ) from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class TlsSection(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class UplinkSection(Section):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    topic_prefix: str = "hearthgate"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TlsSection | None = None
    keepalive: Duration = 30.0
    telemetry_qos: Literal[0, 1] = 1
    telemetry_interval: Duration = 10.0  # how long readings are gathered into one message
    devices_interval: Duration = 60.0  # how often P/devices is refreshed at the least
    # HMAC-SHA256 key for config pushes on P/cmd/config (docs/operations.md); without it
    # every push is refused. Write it as `!secret config_key`.
    config_key: SecretStr | None = None
    # After a pushed config is applied, how long the uplink has to come back on it before
    # the gateway goes back to the previous config by itself.
    config_rollback_after: Duration = Field(default=120.0, gt=0, le=3600)
    # P/status with the health fields is republished at least this often while online.
    status_interval: Duration = Field(default=300.0, gt=0, le=86400)
    # MQTT 5 by default: only its PUBACK can say "not delivered" (0x87 not authorized...).
    protocol: Literal["5", "3.1.1"] = "5"
    # End-to-end receipts: an alert transition leaves the outbox on the platform's
    # P/cmd/receipt, not the broker's PUBACK; unconfirmed ones go again after the timeout.
    receipts: bool = False
    receipt_timeout: Duration = Field(default=60.0, ge=1.0, le=86_400.0)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
        # YAML reads `protocol: 5` as a number and `3.1.1` as text; both name a version.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


class RuleConfig(Section):
    """One rule of a site: its registered type and the options its RuleSpec validated."""

    type: str
    options: Options


class SiteConfig(Section):
    """One site (a home, a room) and its rules, a profile's merged with its own `rules:`.

    Args:
        id: the site's id; devices name it in `site:`.
        resident, name: who lives there and what installers call it.
        profile: the named default rule set the rules were expanded from, if any.
        rules: the site's rules after expansion.
    """

    id: str = Field(pattern=ID_PATTERN)
    resident: str | None = None
    name: str | None = None
    # A named default rule set (rules/profiles.py); `rules:` entries of the same type
    # override the profile's.
    profile: str | None = None
    # None: the gateway's `telemetry` level; `raw` needs its own `telemetry_reason`.
    telemetry: TelemetryLevel | None = None
    telemetry_reason: str | None = Field(default=None, min_length=3, max_length=500)
    rules: tuple[RuleConfig, ...] = ()


class GatewayConfig(Section):
    """A whole config file, valid and cross-checked; frozen.

    `load_config` and `parse_config_data` build it after checking what the models alone
    cannot (registered types and their options, unique ids, references).

    Args:
        gateway, uplink: the two required sections.
        buses, devices, sites: the entries, in file order.
        source: the file it was read from, if any.
    """

    gateway: GatewaySection
    uplink: UplinkSection
    buses: tuple[BusConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    sites: tuple[SiteConfig, ...] = ()
    source: Path | None = None
    # The tables this config was validated against; its buses, protocols and rules are
    # built from the same ones (tests validate against extended tables).
    _registry: Registry = PrivateAttr(default=STANDARD)

    @property
    def registry(self) -> Registry:
        return self._registry

    def with_registry(self, registry: Registry) -> GatewayConfig:
        self._registry = registry
        return self

    def bus(self, bus_id: str) -> BusConfig:
        return next(b for b in self.buses if b.id == bus_id)

    def site(self, site_id: str) -> SiteConfig:
        return next(s for s in self.sites if s.id == site_id)

    def telemetry_level(self, site_id: str) -> str:
        """What `site_id` sends on P/telemetry: its own level, else the gateway's."""
        site = next((s for s in self.sites if s.id == site_id), None)
        if site is not None and site.telemetry is not None:
            return site.telemetry
        return self.gateway.telemetry

    def raw_reasons(self) -> dict[str, str]:
        """Per site at the `raw` level, the reason the config gives (logged, and published
        with the status)."""
        out: dict[str, str] = {}
        for site in self.sites:
            if self.telemetry_level(site.id) == "raw":
                reason = site.telemetry_reason if site.telemetry else None
                out[site.id] = reason or self.gateway.telemetry_reason or ""
        return out

    def observation_retention(self) -> float:
        """Seconds raw observations are kept: the setting, or longer when a rule of this
        config declares that it reads back more history (`RuleSpec.history`)."""
        needed = [
            self._registry.rules[r.type].history
            for s in self.sites for r in s.rules if r.type in self._registry.rules
        ]
        return max([float(self.gateway.retention.observations), *needed])

    def silence_limit(self, device: DeviceConfig) -> float | None:
        """Seconds of silence after which `device` counts as offline (None: only `alive:
        false` makes it offline), by the one policy of `hearthgate.core.health`."""
        site = next((s for s in self.sites if s.id == device.site), None)
        site_after = next(
            (getattr(r.options, "after", None) for r in (site.rules if site else ())
             if r.type == "device_offline"),
            None,
        )
        poll = getattr(device.options, "poll", None)
        return silence_limit(
            kind=device.kind,
            protocol=device.protocol,
            offline_after=device.offline_after,
            poll=float(poll) if isinstance(poll, int | float) and poll > 0 else None,
            site_after=site_after,
        )

    def summary(self) -> str:
        rules = sum(len(s.rules) for s in self.sites)
        return (
            f"{len(self.devices)} devices, {len(self.buses)} buses, "
            f"{len(self.sites)} sites, {rules} rules"
        )


class ConfigProblem(BaseModel):
    """One finding in a config file, at the 1-based line and column of the key or value."""

    file: str
    line: int
    col: int
    message: str
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"

    def format(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


class ConfigError(Exception):
    """A config that cannot be used; its text is every problem, one `FILE:LINE:COL:` each.

    Args:
        problems: what is wrong, sorted by position.
    """

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(p.format() for p in problems))
        self.problems = problems

