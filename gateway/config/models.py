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
from hearthgate.core.options import ID_PATTERN, BusConfig, DeviceConfig, Options, Section
from hearthgate.registry import STANDARD, Registry

GATEWAY_ID_PATTERN = r"^[a-z0-9-]{3,64}$"


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

