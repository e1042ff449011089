"""Reading YAML into GatewayConfig, every problem reported at its line and column.

Two phases: the top-level sections go through their pydantic models; then each bus,
device and rule is split into its common keys and the keys of the option model its
bus type / protocol / rule type registered (gateway/registry.py), and validated
against that. pydantic error locations are mapped back to YAML positions through
the SourceMap. Cross-references (ids, buses, sites, kinds) come last. All problems
are collected; ConfigError is the only exception that leaves `load`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from hearthgate.config import (
    GATEWAY_ID_PATTERN,
    ID_PATTERN,
    BusConfig,
    ConfigError,
    ConfigProblem,
    DeviceConfig,
    GatewayConfig,
    GatewaySection,
    RuleConfig,
    SiteConfig,
    UplinkSection,
)
from hearthgate.core.options import Options
from hearthgate.registry import STANDARD, Registry
from hearthgate.secrets import SecretsFile, read_password_file, redact
from hearthgate.yaml_positions import START, Loc, Mark, SourceMap, read_yaml

TOP_KEYS = ("gateway", "uplink", "buses", "devices", "sites")
BUS_KEYS = tuple(k for k in BusConfig.model_fields if k != "options")
DEVICE_KEYS = tuple(k for k in DeviceConfig.model_fields if k != "options")
SITE_KEYS = tuple(SiteConfig.model_fields)
RULE_KEYS = ("type",)

# Where a relative YAML path points in the file (profiles move rules around).
Locate = Callable[[Loc], Loc]


@dataclass
class LoadResult:
    config: GatewayConfig
    warnings: list[ConfigProblem] = field(default_factory=list)


def load(path: Path, registry: Registry = STANDARD) -> LoadResult:
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([_at(file, START, f"cannot read the config file: {reason}")]) from None
    secrets = SecretsFile(path.parent)
    data, smap, problems = read_yaml(raw, file, secrets)
    problems = secrets.problems + problems
    if problems:
        raise ConfigError(_finish(problems, secrets.used))
    return _Validator(file, smap, path.parent, secrets.used, registry).run(data, path)


def validate_data(
    data: Any, source: Path | None = None, registry: Registry = STANDARD
) -> LoadResult:
    file = str(source) if source is not None else "<config>"
    base = source.parent if source is not None else Path.cwd()
    return _Validator(file, SourceMap(file), base, [], registry).run(data, source)


def _at(file: str, mark: Mark, message: str, hint: str | None = None, *, warning: bool = False):
    return ConfigProblem(
        file=file,
        line=mark.line,
        col=mark.col,
        message=message,
        hint=hint,
        severity="warning" if warning else "error",
    )


def _finish(problems: list[ConfigProblem], secrets: list[str]) -> list[ConfigProblem]:
    out = []
    seen: set[tuple[str, int, int, str]] = set()
    for p in problems:
        # One typo can be found by two checks (the common keys and the option model).
        if (p.file, p.line, p.col, p.message) in seen:
            continue
        seen.add((p.file, p.line, p.col, p.message))
        message = redact(p.message, secrets)
        hint = redact(p.hint, secrets) if p.hint else None
        out.append(p.model_copy(update={"message": message, "hint": hint}))
    return sorted(out, key=lambda p: (p.file, p.line, p.col))


def did_you_mean(word: Any, choices: Iterable[str]) -> str | None:
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _one_of(word: Any, choices: Iterable[str], what: str, empty: str | None = None) -> str:
    names = sorted(set(choices))
    return did_you_mean(word, names) or (
        f"known {what}: {', '.join(names)}" if names else (empty or f"no {what} are registered")
    )


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(model: type[BaseModel] | None, loc: Loc) -> type[BaseModel] | None:
    """The nested model that `loc` (field names, list indexes) leads into, if any."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _inner_model(info.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (Union, UnionType, tuple, list):
        for arg in get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _existing(data: Any, loc: tuple[Any, ...]) -> Loc:
    """The longest prefix of a pydantic loc that names something in the data."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list | tuple) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            break
        out.append(part)
    return tuple(out)


_TYPE_TEXT = {
    "int_type": "should be a whole number",
    "int_parsing": "should be a whole number",
    "int_from_float": "should be a whole number",
    "float_type": "should be a number",
    "float_parsing": "should be a number",
    "bool_type": "should be true or false",
    "bool_parsing": "should be true or false",
    "string_type": "should be text",
    "dict_type": "should be a mapping (key: value)",
    "model_type": "should be a mapping (key: value)",
    "model_attributes_type": "should be a mapping (key: value)",
    "list_type": "should be a list",
    "tuple_type": "should be a list",
    "path_type": "should be a file path",
}


def _friendly(err: dict[str, Any], secret: bool) -> tuple[str, str | None]:
    kind = err["type"]
    value = err.get("input")
    shown = "" if secret else f", got {_show(value)}"
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        return ("the value is not valid" if secret else msg), None
    if kind == "string_pattern_mismatch":
        what = "" if secret else f"{_show(value)} "
        if ctx.get("pattern") == GATEWAY_ID_PATTERN:
            return (
                f"{what}is not a valid gateway id: use 3 to 64 characters of a-z, 0-9 and '-'",
                None,
            )
        if ctx.get("pattern") == ID_PATTERN:
            return (
                f"{what}is not a valid id: use up to 64 lowercase letters, digits, '-' and '_',"
                " starting with a letter or digit",
                None,
            )
        return f"{what}does not match the pattern {ctx.get('pattern')}", None
    if kind in ("literal_error", "enum"):
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        text = str(err["msg"]).replace("Input should be", "should be")
        return text + shown, did_you_mean(value, expected)
    if kind in _TYPE_TEXT:
        return _TYPE_TEXT[kind] + shown, None
    text = str(err["msg"]).replace("Input should", "should").replace("Value should", "should")
    return text + shown, None


class _Validator:
    def __init__(
        self, file: str, smap: SourceMap, base_dir: Path, secrets: list[str], registry: Registry
    ) -> None:
        self.file = file
        self.registry = registry
        self.smap = smap
        self.base_dir = base_dir
        self.secrets = secrets
        self.problems: list[ConfigProblem] = []
        # For warnings: where each expanded rule's keys come from, per (site index, rule index).
        self.rule_locate: dict[tuple[int, int], Locate] = {}

    # -- reporting ----------------------------------------------------------------------------
    def error_at(self, mark: Mark, message: str, hint: str | None = None) -> None:
        self.problems.append(_at(self.file, mark, message, hint))

    def error(self, loc: Loc, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self.error_at(self.smap.key(loc) if key else self.smap.value(loc), message, hint)

    def report(
        self,
        exc: ValidationError,
        data: Any,
        locate: Locate,
        where: str,
        model: type[BaseModel] | None,
        extra_keys: Iterable[str] = (),
        skip: Iterable[str] = (),
    ) -> None:
        """Turn pydantic's errors into positioned problems with friendly messages."""
        skip = set(skip)
        errors = exc.errors(include_url=False)
        # A misspelt required key shows up twice (unknown 'adress', missing 'address'):
        # the did-you-mean on the first says it all.
        typos: set[tuple[Any, ...]] = set()
        for err in errors:
            if err["type"] == "extra_forbidden":
                loc = tuple(err["loc"])
                parent = _model_at(model, loc[:-1])
                if parent is not None:
                    for close in difflib.get_close_matches(str(loc[-1]), _fields(parent), n=1):
                        typos.add((*loc[:-1], close))
        for err in errors:
            loc = tuple(err["loc"])
            if loc and loc[0] in skip:
                continue
            kind = err["type"]
            if kind == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                allowed = _fields(parent) if parent else []
                if len(loc) == 1:
                    allowed += list(extra_keys)
                inside = ".".join(str(p) for p in loc[:-1])
                self.error(
                    locate(loc),
                    f"{where}: {inside + ': ' if inside else ''}unknown key '{loc[-1]}'",
                    did_you_mean(str(loc[-1]), allowed)
                    or (f"allowed keys: {', '.join(sorted(allowed))}" if allowed else None),
                    key=True,
                )
                continue
            if kind == "missing" and loc in typos:
                continue
            if kind == "missing" and self._typo_of(data, loc, locate, where, model, extra_keys):
                continue
            if kind == "missing":
                self.error(
                    locate(_existing(data, loc[:-1])),
                    f"{where}: missing required key '{loc[-1]}'",
                    key=True,
                )
                continue
            path = _existing(data, loc)
            target = locate(path)
            secret = self.smap.is_secret(target)
            message, hint = _friendly(err, secret)
            name = ".".join(str(p) for p in path)
            text = f"{where}: {name}: {message}" if name else f"{where}: {message}"
            self.error(target, text, hint)

    def _typo_of(
        self,
        data: Any,
        loc: tuple[Any, ...],
        locate: Locate,
        where: str,
        model: type[BaseModel] | None = None,
        extra_keys: Iterable[str] = (),
    ) -> bool:
        """A required key is missing and a sibling key looks like it misspelt: say that."""
        parent = _existing(data, loc[:-1])
        if parent != tuple(loc[:-1]):
            return False
        siblings = data
        for part in parent:
            siblings = siblings[part]
        if not isinstance(siblings, dict):
            return False
        inner = _model_at(model, parent) if model is not None else None
        allowed = set(_fields(inner) if inner else []) | (set(extra_keys) if not parent else set())
        allowed.add(str(loc[-1]))
        strays = [k for k in siblings if k not in allowed]
        close = difflib.get_close_matches(str(loc[-1]), strays, n=1, cutoff=0.6)
        if not close:
            return False
        inside = ".".join(str(p) for p in parent)
        self.error(
            locate((*parent, close[0])),
            f"{where}: {inside + ': ' if inside else ''}unknown key '{close[0]}'",
            did_you_mean(close[0], allowed),
            key=True,
        )
        return True

    def validate(
        self,
        model: type[BaseModel],
        data: dict[str, Any],
        locate: Locate,
        where: str,
        extra_keys: Iterable[str] = (),
        skip: Iterable[str] = (),
    ) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.report(exc, data, locate, where, model, extra_keys, skip)
            return None

    # -- the whole file -----------------------------------------------------------------------
    def run(self, data: Any, source: Path | None) -> LoadResult:
        try:
            config = self._run(data, source)
        except ConfigError:
            raise
        except RecursionError:
            self.error_at(START, "the config is nested too deeply")
            config = None
        if self.problems or config is None:
            raise ConfigError(_finish(self.problems, self.secrets))
        warnings = _Warnings(self, config).collect()
        return LoadResult(config, _finish(warnings, self.secrets))

    def _run(self, data: Any, source: Path | None) -> GatewayConfig | None:
        if data is None:
            self.error_at(START, "the config is empty: it needs at least 'gateway:' and 'uplink:'")
            return None
        if not isinstance(data, dict):
            self.error(
                (),
                f"the top level must be a mapping (gateway:, uplink:, buses:, devices:, sites:),"
                f" not {_show(data)}",
            )
            return None
        for key in data:
            if key not in TOP_KEYS:
                self.error(
                    (key,),
                    f"unknown top-level key '{key}'",
                    _one_of(key, TOP_KEYS, "sections"),
                    key=True,
                )
        gateway = self._section(data, "gateway", GatewaySection)
        uplink = self._uplink(data)
        buses = self._entries(data, "buses", "bus", self._bus)
        devices = self._entries(data, "devices", "device", self._device)
        self._unique(data, "buses", "bus")
        self._unique(data, "devices", "device")
        self._unique(data, "sites", "site")
        self._device_refs(data, buses)
        sites = self._entries(data, "sites", "site", lambda i, raw: self._site(i, raw, devices))
        if self.problems or gateway is None or uplink is None:
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
            before = len(self.problems)
            entry = build(i, raw)
            if entry is not None:
                out.append(entry)
            elif len(self.problems) == before:
                # Never drop an entry silently: the gateway would run without it.
                self.error((key, i), f"{self._where(what, raw, i)}: this entry is not valid")
        return out

    def _section(self, data: dict[str, Any], key: str, model: type[BaseModel]) -> Any:
        if key not in data:
            self.error_at(START, f"missing required section '{key}:'")
            return None
        raw = data[key]
        if not isinstance(raw, dict):
            self.error((key,), f"'{key}:' should be a mapping of keys, not {_show(raw)}")
            return None
        return self.validate(model, raw, lambda rel: (key, *rel), key)

    def _uplink(self, data: dict[str, Any]) -> UplinkSection | None:
        uplink = self._section(data, "uplink", UplinkSection)
        if uplink is None or uplink.password_file is None:
            return uplink
        if uplink.password is not None:
            self.error(
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
            self.error(
                ("uplink", "password_file"),
                f"uplink: password_file {path} cannot be read:"
                f" {exc.strerror or type(exc).__name__}",
            )
            return None
        except ValueError as exc:
            self.error(("uplink", "password_file"), f"uplink: password_file {path} {exc}")
            return None
        self.secrets.append(password)
        return uplink.model_copy(update={"password": SecretStr(password)})

    def _items(self, data: dict[str, Any], key: str, what: str) -> list[tuple[int, dict]]:
        raw = data.get(key)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(
                (key,),
                f"'{key}:' should be a list (each {what} on a line starting with '- '),"
                f" not {_show(raw)}",
            )
            return []
        out = []
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                out.append((i, item))
            else:
                self.error(
                    (key, i),
                    f"each entry of '{key}:' should be a mapping like {{id: ..., ...}},"
                    f" not {_show(item)}",
                )
        return out

    def _where(self, what: str, raw: dict[str, Any], index: int) -> str:
        ident = raw.get("id")
        return f"{what} '{ident}'" if isinstance(ident, str) and ident else f"{what} #{index + 1}"

    def _split(
        self,
        raw: dict[str, Any],
        common: Iterable[str],
        spec_options: type[Options] | None,
        locate: Locate,
        where: str,
    ) -> tuple[dict[str, Any], Options | None]:
        """Common keys, and the rest validated by the registered option model."""
        common = tuple(common)
        head = {k: v for k, v in raw.items() if k in common}
        rest = {k: v for k, v in raw.items() if k not in common}
        if spec_options is None:
            return head, None
        options = self.validate(spec_options, rest, locate, where, extra_keys=common)
        return head, options

    def _registered(
        self,
        raw: dict[str, Any],
        key: str,
        table: Mapping[str, Any],
        locate: Locate,
        where: str,
        what: str,
        common: tuple[str, ...],
    ) -> Any:
        if key not in raw:
            if self._typo_of(raw, (key,), locate, where, extra_keys=common):
                return None
            self.error(
                locate(()),
                f"{where}: missing required key '{key}'",
                _one_of(None, table, what),
                key=True,
            )
            return None
        value = raw[key]
        if not isinstance(value, str) or value not in table:
            self.error(
                locate((key,)),
                f"{where}: unknown {what[:-1]} {_show(value)}",
                _one_of(value, table, what),
            )
            return None
        return table[value]

    # -- buses and devices --------------------------------------------------------------------
    def _bus(self, i: int, raw: dict[str, Any]) -> BusConfig | None:
        def locate(rel: Loc) -> Loc:
            return ("buses", i, *rel)

        where = self._where("bus", raw, i)
        spec = self._registered(
            raw, "type", self.registry.bus_types, locate, where, "bus types", BUS_KEYS
        )
        head, options = self._split(raw, BUS_KEYS, spec and spec.options, locate, where)
        checked = self.validate(
            BusConfig, {**head, "options": options or Options()}, locate, where, skip=("type",)
        )
        return checked if spec and options is not None else None

    def _device(self, i: int, raw: dict[str, Any]) -> DeviceConfig | None:
        def locate(rel: Loc) -> Loc:
            return ("devices", i, *rel)

        where = self._where("device", raw, i)
        spec = self._registered(
            raw, "protocol", self.registry.protocols, locate, where, "protocols", DEVICE_KEYS
        )
        kind = raw.get("kind")
        kind_ok = False
        if "kind" not in raw:
            if not self._typo_of(raw, ("kind",), locate, where, extra_keys=DEVICE_KEYS):
                self.error(locate(()), f"{where}: missing required key 'kind'", key=True)
        else:
            if not isinstance(kind, str) or kind not in self.registry.device_kinds:
                self.error(
                    locate(("kind",)),
                    f"{where}: unknown device kind {_show(kind)}",
                    _one_of(kind, spec.kinds if spec else self.registry.device_kinds, "kinds"),
                )
            elif spec is not None and kind not in spec.kinds:
                self.error(
                    locate(("kind",)),
                    f"{where}: protocol '{spec.name}' does not drive '{kind}' devices;"
                    f" it drives: {', '.join(sorted(spec.kinds))}",
                )
            else:
                kind_ok = True
        head, options = self._split(raw, DEVICE_KEYS, spec and spec.options, locate, where)
        checked = self.validate(
            DeviceConfig,
            {**head, "options": options or Options()},
            locate,
            where,
            skip=("protocol", "kind"),
        )
        return checked if spec and options is not None and kind_ok else None

    def _unique(self, data: dict[str, Any], key: str, what: str) -> None:
        first: dict[str, int] = {}
        raw = data.get(key)
        if not isinstance(raw, list):
            return
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            ident = item["id"]
            if ident in first:
                mark = self.smap.value((key, first[ident], "id"))
                self.error(
                    (key, i, "id"),
                    f"duplicate {what} id '{ident}' (first at line {mark.line})",
                )
            else:
                first[ident] = i

    def _device_refs(self, data: dict[str, Any], buses: list[BusConfig]) -> None:
        bus_by_id = {b.id: b for b in buses}
        all_bus_ids = _ids(data.get("buses"))
        site_ids = _ids(data.get("sites"))
        for i, raw in self._items_quiet(data, "devices"):
            where = self._where("device", raw, i)
            for key, known, what in (("bus", all_bus_ids, "buses"), ("site", site_ids, "sites")):
                ref = raw.get(key)
                if isinstance(ref, str) and ref not in known:
                    self.error(
                        ("devices", i, key),
                        f"{where}: no {key} with id '{ref}'",
                        _one_of(ref, known, what),
                    )
            bus_id = raw.get("bus")
            protocol = raw.get("protocol")
            bus = bus_by_id.get(bus_id) if isinstance(bus_id, str) else None
            known = isinstance(protocol, str) and protocol in self.registry.protocols
            if bus is not None and known:
                spec = self.registry.protocols[protocol]
                if bus.type not in spec.bus_types:
                    self.error(
                        ("devices", i, "bus"),
                        f"{where}: protocol '{protocol}' runs on "
                        f"{' or '.join(sorted(spec.bus_types))} buses, but bus '{bus.id}' is"
                        f" of type '{bus.type}'",
                    )

    @staticmethod
    def _items_quiet(data: dict[str, Any], key: str) -> list[tuple[int, dict]]:
        raw = data.get(key)
        if not isinstance(raw, list):
            return []
        return [(i, item) for i, item in enumerate(raw) if isinstance(item, dict)]

    # -- sites and rules ----------------------------------------------------------------------
    def _site(self, i: int, raw: dict[str, Any], devices: list[DeviceConfig]) -> SiteConfig | None:
        from hearthgate.rules.profiles import PROFILES, expand_rules

        def locate(rel: Loc) -> Loc:
            return ("sites", i, *rel)

        where = self._where("site", raw, i)
        head = {k: v for k, v in raw.items() if k != "rules"}
        checked = self.validate(SiteConfig, head, locate, where)
        explicit: list[tuple[int, dict[str, Any]]] = []
        rules_raw = raw.get("rules")
        if rules_raw is not None and not isinstance(rules_raw, list):
            self.error(
                locate(("rules",)),
                f"{where}: 'rules:' should be a list of rules, not {_show(rules_raw)}",
            )
        elif rules_raw:
            for j, rule in enumerate(rules_raw):
                if isinstance(rule, dict):
                    explicit.append((j, rule))
                else:
                    self.error(
                        locate(("rules", j)),
                        f"{where}: each rule should be a mapping like {{type: sos}},"
                        f" not {_show(rule)}",
                    )
        profile = raw.get("profile")
        if profile is not None and (not isinstance(profile, str) or profile not in PROFILES):
            if isinstance(profile, str):  # a non-text profile was reported by SiteConfig
                self.error(
                    locate(("profile",)),
                    f"{where}: unknown profile '{profile}'",
                    _one_of(profile, PROFILES, "profiles"),
                )
            profile = None
        try:
            expanded = expand_rules(profile, [dict(r) for _, r in explicit])
        except (KeyError, TypeError, ValueError) as exc:
            self.error(locate(("profile",)), f"{where}: the profile cannot be applied ({exc})")
            return None
        site_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        site_devices = {d.id: d for d in devices if d.site == site_id}
        rules: list[RuleConfig] = []
        origins = self._rule_origins(i, expanded, explicit, profile)
        for k, rule in enumerate(expanded):
            rule_locate = origins[k]
            self.rule_locate[(i, k)] = rule_locate
            checked_rule = self._rule(rule, rule_locate, where, site_devices)
            if checked_rule is not None:
                rules.append(checked_rule)
        if checked is None or len(rules) != len(expanded):
            return None
        return checked.model_copy(update={"rules": tuple(rules)})

    def _rule_origins(
        self,
        site_i: int,
        expanded: list[dict[str, Any]],
        explicit: list[tuple[int, dict]],
        profile: str | None,
    ) -> list[Locate]:
        """Where each rule of the expanded list came from: an explicit entry, or the profile
        (whose rules have no place in the file but the `profile:` value)."""
        from hearthgate.rules.profiles import PROFILES

        def at(loc: Loc) -> Locate:
            return lambda rel: (*loc, *rel)

        if profile is None:
            # Without a profile the expanded list is the explicit one, in order.
            return [at(("sites", site_i, "rules", j)) for j, _ in explicit][: len(expanded)]
        profile_loc: Loc = ("sites", site_i, "profile")
        profile_types = {r.get("type") for r in PROFILES[profile]}
        extra = iter([(j, r) for j, r in explicit if r.get("type") not in profile_types])
        out: list[Locate] = []
        for rule in expanded:
            kind = rule.get("type")
            if kind not in profile_types:
                j = next(extra, (None, None))[0]
                out.append(at(("sites", site_i, "rules", j)) if j is not None else at(profile_loc))
                continue
            same = [(j, r) for j, r in explicit if r.get("type") == kind]
            key_from: dict[str, Loc] = {}
            for j, r in same:
                for key, value in r.items():
                    if rule.get(key) == value:
                        key_from[key] = ("sites", site_i, "rules", j, key)
            rule_loc: Loc = ("sites", site_i, "rules", same[-1][0]) if same else profile_loc
            out.append(_profiled_locate(rule_loc, profile_loc, key_from))
        while len(out) < len(expanded):
            out.append(at(profile_loc))
        return out

    def _rule(
        self, rule: dict[str, Any], locate: Locate, site_where: str, site_devices: dict
    ) -> RuleConfig | None:
        kind = rule.get("type")
        where = f"{site_where}, rule '{kind}'" if isinstance(kind, str) else f"{site_where}, rule"
        spec = self._registered(
            rule, "type", self.registry.rules, locate, where, "rule types", RULE_KEYS
        )
        if spec is None:
            return None
        _, options = self._split(rule, RULE_KEYS, spec.options, locate, where)
        if options is None:
            return None
        wanted = getattr(options, "devices", None)
        ok = True
        for n, device_id in enumerate(wanted or ()):
            device = site_devices.get(device_id)
            if device is None:
                self.error(
                    locate(("devices", n)),
                    f"{where}: no device '{device_id}' in this site",
                    _one_of(
                        device_id, site_devices, "devices of this site", "this site has no devices"
                    ),
                )
                ok = False
            elif spec.kinds and device.kind not in spec.kinds:
                self.error(
                    locate(("devices", n)),
                    f"{where}: the rule does not read '{device.kind}' devices (device"
                    f" '{device_id}'); it reads: {', '.join(sorted(spec.kinds))}",
                )
                ok = False
        return RuleConfig(type=spec.name, options=options) if ok else None


def _profiled_locate(rule_loc: Loc, profile_loc: Loc, key_from: dict[str, Loc]) -> Locate:
    def locate(rel: Loc) -> Loc:
        if not rel:
            return rule_loc
        head = key_from.get(str(rel[0]))
        return (*head, *rel[1:]) if head else profile_loc

    return locate


def _ids(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        return []
    return [r["id"] for r in raw if isinstance(r, dict) and isinstance(r.get("id"), str)]


_SOS_KIND = "sos_button"


class _Warnings:
    """Legal but probably wrong: what `hearthgate check` warns about."""

    def __init__(self, validator: _Validator, config: GatewayConfig) -> None:
        self.v = validator
        self.config = config
        self.out: list[ConfigProblem] = []

    def warn(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.out.append(_at(self.v.file, self.v.smap.value(loc), message, hint, warning=True))

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
                    self.v.rule_locate[(si, k)](("type",)),
                    f"site '{site.id}' has an 'sos' rule but no sos_button device: it can never"
                    " fire",
                )
            else:
                self.warn(site_loc, f"site '{site.id}' has no SOS device (sos_button)")
        self._poll_vs_window(si, site, devices)

    def _poll_vs_window(self, si: int, site: SiteConfig, devices: list) -> None:
        for rule in site.rules:
            window = getattr(rule.options, "window", None)
            if not isinstance(window, int | float) or isinstance(window, bool):
                continue
            spec = self.v.registry.rules.get(rule.type)
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
                    from hearthgate.core.durations import format_duration

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
