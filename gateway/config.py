"""The configuration: one YAML file, validated into frozen pydantic models
(docs/configuration.md).

Buses, devices and rules are written flat in YAML (`{id: x, type: serial, port: ...}`);
the keys beyond the common ones are validated by the option model that the bus
type, protocol or rule type registered (gateway/registry.py) and kept in `.options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
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

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


class RuleConfig(Section):
    type: str
    options: Options


class SiteConfig(Section):
    id: str = Field(pattern=ID_PATTERN)
    resident: str | None = None
    name: str | None = None
    # A named default rule set (rules/profiles.py); `rules:` entries of the same type
    # override the profile's.
    profile: str | None = None
    rules: tuple[RuleConfig, ...] = ()


class GatewayConfig(Section):
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
    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(p.format() for p in problems))
        self.problems = problems


def load_config(path: str | Path, registry: Registry = STANDARD) -> GatewayConfig:
    """Read and validate a config file; raise ConfigError with positions on any problem.

    ConfigError is the only exception this raises, whatever the file holds.
    """
    from hearthgate.config_loader import load

    return load(Path(path), registry).config


def parse_config_data(
    data: dict[str, Any], source: Path | None = None, registry: Registry = STANDARD
) -> GatewayConfig:
    """Validate already-parsed data (tests, demo); problems are reported at line 1, column 1
    with the path of the offending key in the message."""
    from hearthgate.config_loader import validate_data

    return validate_data(data, source, registry).config
