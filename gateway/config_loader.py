"""Reading YAML into GatewayConfig. (Minimal first version: positions and hints to come.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gateway.config import (
    BusConfig,
    ConfigError,
    ConfigProblem,
    DeviceConfig,
    GatewayConfig,
    RuleConfig,
)
from gateway.registry import BUS_TYPES, PROTOCOLS, RULES, load_plugins

_COMMON = {
    "buses": {"id", "type"},
    "devices": {"id", "site", "kind", "protocol", "bus", "name", "offline_after"},
    "rules": {"type"},
}


def load(path: Path) -> GatewayConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(file=str(path), line=1, col=1, message=str(exc))]) from exc
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(file=str(path), line=1, col=1, message=str(exc))]) from exc
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file=str(path), line=1, col=1, message="not a mapping")])
    return validate_data(data, path)


def _split(item: dict[str, Any], common: set[str]) -> dict[str, Any]:
    head = {k: v for k, v in item.items() if k in common}
    head["options"] = {k: v for k, v in item.items() if k not in common}
    return head


def validate_data(data: dict[str, Any], source: Path | None = None) -> GatewayConfig:
    load_plugins()
    file = str(source or "<config>")
    problems: list[ConfigProblem] = []
    out = dict(data)
    try:
        buses = []
        for raw in data.get("buses") or []:
            item = _split(raw, _COMMON["buses"])
            item["options"] = BUS_TYPES[item["type"]].options.model_validate(item["options"])
            buses.append(BusConfig.model_validate(item))
        devices = []
        for raw in data.get("devices") or []:
            item = _split(raw, _COMMON["devices"])
            item["options"] = PROTOCOLS[item["protocol"]].options.model_validate(item["options"])
            devices.append(DeviceConfig.model_validate(item))
        sites = []
        for raw in data.get("sites") or []:
            site = dict(raw)
            rules = []
            for rraw in raw.get("rules") or []:
                item = _split(rraw, _COMMON["rules"])
                item["options"] = RULES[item["type"]].options.model_validate(item["options"])
                rules.append(RuleConfig.model_validate(item))
            site["rules"] = rules
            sites.append(site)
        out.update(buses=buses, devices=devices, sites=sites, source=source)
        return GatewayConfig.model_validate(out)
    except (ValidationError, KeyError, TypeError, AttributeError) as exc:
        problems.append(ConfigProblem(file=file, line=1, col=1, message=str(exc)))
        raise ConfigError(problems) from exc
