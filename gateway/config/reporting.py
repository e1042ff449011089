"""Problems at their YAML positions, in words an installer reads.

pydantic reports `('buses', 0, 'baudrate')` and "Input should be a valid integer"; this
module maps the location back through the SourceMap to a line and column and the message
to "should be a whole number", adds did-you-mean hints for typos, and keeps secret values
out of every message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from hearthgate.config.models import GATEWAY_ID_PATTERN, ConfigProblem
from hearthgate.config.positions import Loc, Mark, SourceMap
from hearthgate.config.secrets import redact
from hearthgate.core.options import ID_PATTERN

# Where a relative YAML path points in the file (profiles move rules around).
Locate = Callable[[Loc], Loc]


def problem_at(
    file: str, mark: Mark, message: str, hint: str | None = None, *, warning: bool = False
) -> ConfigProblem:
    return ConfigProblem(
        file=file,
        line=mark.line,
        col=mark.col,
        message=message,
        hint=hint,
        severity="warning" if warning else "error",
    )


def finish(problems: list[ConfigProblem], secrets: list[str]) -> list[ConfigProblem]:
    """The problems once each, secrets redacted, sorted by position."""
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


def one_of(word: Any, choices: Iterable[str], what: str, empty: str | None = None) -> str:
    """A hint: the name `word` was probably meant to be, or else every name there is."""
    names = sorted(set(choices))
    return did_you_mean(word, names) or (
        f"known {what}: {', '.join(names)}" if names else (empty or f"no {what} are registered")
    )


def show(value: Any) -> str:
    """A value as a message quotes it: short, and a mapping or list by its shape."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def where(what: str, raw: dict[str, Any], index: int) -> str:
    """An entry as messages name it: by its id, or by its place when it has none."""
    ident = raw.get("id")
    return f"{what} '{ident}'" if isinstance(ident, str) and ident else f"{what} #{index + 1}"


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
    shown = "" if secret else f", got {show(value)}"
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        error = ctx.get("error")
        hint = getattr(error, "hint", None)
        if secret and getattr(error, "quotes_value", True):
            return "the value is not valid", None
        return msg, hint
    if kind == "string_pattern_mismatch":
        what = "" if secret else f"{show(value)} "
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


class Reporter:
    """Collects the errors of one file, each at its position.

    Args:
        file: the file name that problems carry.
        smap: where each key and value of the file sits.
    """

    def __init__(self, file: str, smap: SourceMap) -> None:
        self.file = file
        self.smap = smap
        self.problems: list[ConfigProblem] = []

    def error_at(self, mark: Mark, message: str, hint: str | None = None) -> None:
        self.problems.append(problem_at(self.file, mark, message, hint))

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
            if kind == "missing" and self.typo_of(data, loc, locate, where, model, extra_keys):
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

    def typo_of(
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
        """`data` as a `model`, or None after reporting why not."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.report(exc, data, locate, where, model, extra_keys, skip)
            return None
