"""The JSON Schema of the config file, for installers' editors (autocomplete, red squiggles).

Built from the same pydantic models and registry the loader uses: each bus type,
protocol and rule type adds an `if type/protocol == X then <its keys>` branch, so the
schema grows with the drivers. `python -m hearthgate.config.schema > config/schema.json`;
a test keeps the committed file equal to a fresh one.
"""

from __future__ import annotations

import json
import sys
from copy import deepcopy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hearthgate.config.models import GatewaySection, SiteConfig, UplinkSection
from hearthgate.core.options import BusConfig, DeviceConfig
from hearthgate.registry import STANDARD, Registry
from hearthgate.rules.profiles import PROFILES

SCHEMA_ID = "https://hearthgate.example/schema/config.json"


def _names(names: list[str], description: str) -> dict[str, Any]:
    # An empty enum would reject everything; with nothing registered yet, allow any text.
    if names:
        return {"enum": names, "description": description}
    return {"type": "string", "description": description}


def _kinds_of(protocol: Any) -> dict[str, Any]:
    return {"kind": {"enum": sorted(protocol.kinds)}}


def build_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The schema of a config naming what `registry` (default: the standard tables) holds."""
    registry = registry or STANDARD
    buses = [registry.bus_types[n] for n in sorted(registry.bus_types)]
    protocols = [registry.protocols[n] for n in sorted(registry.protocols)]
    rules = [registry.rules[n] for n in sorted(registry.rules)]
    models: list[type[BaseModel]] = [GatewaySection, UplinkSection, BusConfig, DeviceConfig]
    models += [SiteConfig]
    for entry in (*buses, *protocols, *rules):
        if entry.options not in models:
            models.append(entry.options)
    refs, top = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = top.get("$defs", {})

    def body(model: type[BaseModel]) -> dict[str, Any]:
        name = refs[(model, "validation")]["$ref"].rsplit("/", 1)[-1]
        return deepcopy(defs[name])

    def common(model: type[BaseModel], drop: tuple[str, ...]) -> dict[str, Any]:
        props = body(model).get("properties", {})
        return {k: v for k, v in props.items() if k not in drop}

    def variants(key: str, entries: list[Any], head: dict[str, Any], extra=None) -> list[dict]:
        out = []
        for entry in entries:
            opts = body(entry.options)
            props = {**head, **opts.get("properties", {})}
            if extra is not None:
                props.update(extra(entry))
            then: dict[str, Any] = {"properties": props, "additionalProperties": False}
            if opts.get("required"):
                then["required"] = sorted(opts["required"])
            if entry.description:
                then["description"] = entry.description
            out.append(
                {
                    "if": {"properties": {key: {"const": entry.name}}, "required": [key]},
                    "then": then,
                }
            )
        return out

    bus_head = common(BusConfig, ("options",))
    bus_head["type"] = _names([b.name for b in buses], "the bus type")
    bus_item = {
        "type": "object",
        "required": ["id", "type"],
        "properties": bus_head,
    }

    device_head = common(DeviceConfig, ("options",))
    device_head["protocol"] = _names([p.name for p in protocols], "the protocol the device speaks")
    device_head["kind"] = _names(sorted(registry.device_kinds), "what the device is")
    device_item = {
        "type": "object",
        "required": ["id", "site", "kind", "protocol", "bus"],
        "properties": device_head,
    }

    rule_head = {"type": _names([r.name for r in rules], "the rule type")}
    rule_item = {
        "type": "object",
        "required": ["type"],
        "properties": rule_head,
    }

    # An empty allOf is not valid JSON Schema: with nothing registered, leave it out.
    for item, branches in (
        (bus_item, variants("type", buses, bus_head)),
        (device_item, variants("protocol", protocols, device_head, _kinds_of)),
        (rule_item, variants("type", rules, rule_head)),
    ):
        if branches:
            item["allOf"] = branches

    site_props = common(SiteConfig, ("rules",))
    site_props["profile"] = {
        "enum": sorted(PROFILES),
        "description": "a named default rule set; `rules:` of the same type override it",
    }
    site_props["rules"] = {"type": "array", "items": rule_item}
    site_item = {
        "type": "object",
        "required": ["id"],
        "properties": site_props,
        "additionalProperties": False,
    }

    # The option models are inlined above; keep only what they and the sections refer to.
    inlined = {
        refs[(e.options, "validation")]["$ref"].rsplit("/", 1)[-1]
        for e in (*buses, *protocols, *rules)
    }
    inlined |= {"BusConfig", "DeviceConfig", "SiteConfig", "RuleConfig", "Options"}
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "hearthgate configuration",
        "description": "Generated by `python -m hearthgate.config.schema`; do not edit by hand.",
        "type": "object",
        "required": ["gateway", "uplink"],
        "additionalProperties": False,
        "properties": {
            "gateway": refs[(GatewaySection, "validation")],
            "uplink": refs[(UplinkSection, "validation")],
            "buses": {"type": "array", "items": bus_item},
            "devices": {"type": "array", "items": device_item},
            "sites": {"type": "array", "items": site_item},
        },
    }
    text = json.dumps(schema) + json.dumps([bus_item, device_item, rule_item])
    kept = {k: v for k, v in defs.items() if k not in inlined or f'#/$defs/{k}"' in text}
    schema["$defs"] = dict(sorted(kept.items()))
    return schema


def render() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
