"""Reading a config file into a GatewayConfig, every problem reported at its line and column.

Three passes: the top-level sections go through their pydantic models; each bus, device
and site is validated on its own against the registry (hearthgate.config.entries,
hearthgate.config.sites); then what entries say about each other is cross-checked
(hearthgate.config.references). All problems are collected, and ConfigError is the only
exception that leaves `load`. A valid config is then reviewed for the warnings of
`hearthgate check` (hearthgate.config.checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from hearthgate.config.checks import review
from hearthgate.config.entries import Entries
from hearthgate.config.files import check_files
from hearthgate.config.models import (
    RAW_HINT,
    RAW_NEEDS_REASON,
    ConfigError,
    ConfigProblem,
    GatewayConfig,
    GatewaySection,
    UplinkSection,
)
from hearthgate.config.positions import START, SourceMap, read_yaml
from hearthgate.config.references import check_device_refs, check_unique
from hearthgate.config.reporting import Reporter, finish, one_of, problem_at, show, where
from hearthgate.config.safety import refuse
from hearthgate.config.secrets import SecretsFile, read_password_file
from hearthgate.config.sites import Sites
from hearthgate.registry import STANDARD, Registry

TOP_KEYS = ("gateway", "uplink", "buses", "devices", "sites")


@dataclass
class LoadResult:
    """A valid config and what `hearthgate check` warns about it (sorted, secrets redacted)."""

    config: GatewayConfig
    warnings: list[ConfigProblem] = field(default_factory=list)
    # Every secret value it read (`!secret`, password files), so the service never logs one.
    secrets: list[str] = field(default_factory=list)


def load(path: Path, registry: Registry = STANDARD) -> LoadResult:
    """Read and validate a config file, `!secret`s from the `secrets.yaml` beside it.

    Args:
        path: the YAML file.
        registry: the bus types, protocols and rule types it may name.

    Raises:
        ConfigError: the file cannot be read or is not valid, whatever it holds; no other
            exception leaves.
    """
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            [problem_at(file, START, f"cannot read the config file: {reason}")]
        ) from None
    secrets = SecretsFile(path.parent)
    data, smap, problems = read_yaml(raw, file, secrets)
    problems = secrets.problems + problems
    if problems:
        raise ConfigError(finish(problems, secrets.used))
    return _Validator(file, smap, path.parent, secrets.used, registry, review=True).run(
        data, path
    )


def validate_data(
    data: Any, source: Path | None = None, registry: Registry = STANDARD
) -> LoadResult:
    """Validate already-parsed data; problems are at line 1, column 1, with the key's path.

    Raises:
        ConfigError: the data is not a valid config.
    """
    file = str(source) if source is not None else "<config>"
    base = source.parent if source is not None else Path.cwd()
    return _Validator(file, SourceMap(file), base, [], registry).run(data, source)


def load_config(path: str | Path, registry: Registry = STANDARD) -> GatewayConfig:
    """Read and validate a config file; raise ConfigError with positions on any problem.

    ConfigError is the only exception this raises, whatever the file holds.
    """
    return load(Path(path), registry).config


def parse_config_data(
    data: dict[str, Any], source: Path | None = None, registry: Registry = STANDARD
) -> GatewayConfig:
    """Validate already-parsed data (tests, demo); problems are reported at line 1, column 1
    with the path of the offending key in the message."""
    return validate_data(data, source, registry).config


class _Validator:
    def __init__(
        self,
        file: str,
        smap: SourceMap,
        base_dir: Path,
        secrets: list[str],
        registry: Registry,
        *,
        review: bool = False,
    ) -> None:
        # review: refuse what hearthgate.config.safety and .files refuse. A file an installer
        # wrote gets it (`check`, `run`); data built by a program (tests, the demo) does not.
        self.review = review
        self.file = file
        self.registry = registry
        self.smap = smap
        self.base_dir = base_dir
        self.secrets = secrets
        self.report = Reporter(file, smap)
        self.entries = Entries(self.report, registry)
        self.sites = Sites(self.entries)

    def run(self, data: Any, source: Path | None) -> LoadResult:
        report = self.report
        try:
            config = self._run(data, source)
        except ConfigError:
            raise
        except RecursionError:
            report.error_at(START, "the config is nested too deeply")
            config = None
        if report.problems or config is None:
            raise ConfigError(finish(report.problems, self.secrets))
        if self.review:
            # Valid entry by entry, but a resident would be less watched than the file
            # reads, or the service could not start with it.
            refused = refuse(config, self.file, self.smap, self.sites.origins)
            refused += check_files(config, self.file, self.smap)
            if refused:
                raise ConfigError(finish(refused, self.secrets))
        warnings = review(config, self.file, self.smap, self.sites.origins)
        return LoadResult(config, finish(warnings, self.secrets), list(self.secrets))

    def _run(self, data: Any, source: Path | None) -> GatewayConfig | None:
        report = self.report
        if data is None:
            report.error_at(
                START, "the config is empty: it needs at least 'gateway:' and 'uplink:'"
            )
            return None
        if not isinstance(data, dict):
            report.error(
                (),
                f"the top level must be a mapping (gateway:, uplink:, buses:, devices:, sites:),"
                f" not {show(data)}",
            )
            return None
        for key in data:
            if key not in TOP_KEYS:
                report.error(
                    (key,),
                    f"unknown top-level key '{key}'",
                    one_of(key, TOP_KEYS, "sections"),
                    key=True,
                )
        gateway = self._section(data, "gateway", GatewaySection)
        if gateway is not None and gateway.telemetry == "raw" and not gateway.telemetry_reason:
            report.error(("gateway", "telemetry"), RAW_NEEDS_REASON.format(where="gateway"),
                         RAW_HINT)
        uplink = self._uplink(data)
        buses = self._entries(data, "buses", "bus", self.entries.bus)
        devices = self._entries(data, "devices", "device", self.entries.device)
        check_unique(report, data, "buses", "bus")
        check_unique(report, data, "devices", "device")
        check_unique(report, data, "sites", "site")
        check_device_refs(report, self.registry, data, buses)
        sites = self._entries(
            data, "sites", "site", lambda i, raw: self.sites.site(i, raw, devices)
        )
        if report.problems or gateway is None or uplink is None:
            return None
        config = GatewayConfig.model_validate(
            {
                "gateway": gateway,
                "uplink": uplink,
                "buses": buses,
                "devices": devices,
                "sites": sites,
                "source": source,
            }
        )
        return config.with_registry(self.registry)

    def _entries(
        self, data: dict[str, Any], key: str, what: str, build: Callable[[int, dict], Any]
    ) -> list[Any]:
        out = []
        for i, raw in self._items(data, key, what):
            before = len(self.report.problems)
            entry = build(i, raw)
            if entry is not None:
                out.append(entry)
            elif len(self.report.problems) == before:
                # Never drop an entry silently: the gateway would run without it.
                self.report.error((key, i), f"{where(what, raw, i)}: this entry is not valid")
        return out

    def _section(self, data: dict[str, Any], key: str, model: type[BaseModel]) -> Any:
        if key not in data:
            self.report.error_at(START, f"missing required section '{key}:'")
            return None
        raw = data[key]
        if not isinstance(raw, dict):
            self.report.error((key,), f"'{key}:' should be a mapping of keys, not {show(raw)}")
            return None
        return self.report.validate(model, raw, lambda rel: (key, *rel), key)

    def _uplink(self, data: dict[str, Any]) -> UplinkSection | None:
        uplink = self._section(data, "uplink", UplinkSection)
        if uplink is None or uplink.password_file is None:
            return uplink
        if uplink.password is not None:
            self.report.error(
                ("uplink", "password_file"),
                "uplink: give either 'password' or 'password_file', not both",
                key=True,
            )
            return None
        path = uplink.password_file
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            password = read_password_file(path)
        except OSError as exc:
            self.report.error(
                ("uplink", "password_file"),
                f"uplink: password_file {path} cannot be read:"
                f" {exc.strerror or type(exc).__name__}",
            )
            return None
        except ValueError as exc:
            self.report.error(("uplink", "password_file"), f"uplink: password_file {path} {exc}")
            return None
        self.secrets.append(password)
        return uplink.model_copy(update={"password": SecretStr(password)})

    def _items(self, data: dict[str, Any], key: str, what: str) -> list[tuple[int, dict]]:
        raw = data.get(key)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.report.error(
                (key,),
                f"'{key}:' should be a list (each {what} on a line starting with '- '),"
                f" not {show(raw)}",
            )
            return []
        out = []
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                out.append((i, item))
            else:
                self.report.error(
                    (key, i),
                    f"each entry of '{key}:' should be a mapping like {{id: ..., ...}},"
                    f" not {show(item)}",
                )
        return out
