"""YAML read into plain Python data, with the line and column of every key and value kept.

ruamel.yaml composes the document into nodes that carry their marks; we build plain
dicts/lists from them ourselves so that duplicate keys, unknown tags, alias bombs and
`!secret` are ours to report, each at its own position. Nothing here raises for bad
input: problems are collected and returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hearthgate.config.models import ConfigProblem

Loc = tuple[str | int, ...]

# A config is a few kilobytes; these bounds keep a hostile or broken file from
# eating the Pi's memory (alias bombs expand exponentially).
MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

SECRET_TAG = "!secret"
_CORE_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based


START = Mark(1, 1)


class SecretLookupError(Exception):
    """A `!secret` that cannot be resolved; the message names no secret value."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# Resolves a secret name to its value, or raises SecretLookupError.
SecretResolver = Callable[[str], Any]


@dataclass
class SourceMap:
    """Where each key and value of a document sits, by its path of keys and indexes."""

    file: str
    keys: dict[Loc, Mark] = field(default_factory=dict)
    values: dict[Loc, Mark] = field(default_factory=dict)
    # Paths whose value came from a secret: their value is never shown.
    secret_paths: set[Loc] = field(default_factory=set)

    def key(self, loc: Loc) -> Mark:
        """The position of the key naming `loc` (for a list item: the item itself)."""
        loc = tuple(loc)
        while loc:
            mark = self.keys.get(loc) or self.values.get(loc)
            if mark:
                return mark
            loc = loc[:-1]
        return self.values.get((), START)

    def value(self, loc: Loc) -> Mark:
        loc = tuple(loc)
        return self.values.get(loc) or self.key(loc)

    def is_secret(self, loc: Loc) -> bool:
        loc = tuple(loc)
        return any(loc[: i + 1] in self.secret_paths for i in range(len(loc)))


def _mark(node_or_mark: Any) -> Mark:
    m = getattr(node_or_mark, "start_mark", node_or_mark)
    if m is None:
        return START
    return Mark(int(m.line) + 1, int(m.column) + 1)


def _problem(file: str, mark: Mark, message: str, hint: str | None = None) -> ConfigProblem:
    return ConfigProblem(file=file, line=mark.line, col=mark.col, message=message, hint=hint)


class _TooBig(Exception):
    pass


class _Builder:
    def __init__(self, file: str, secret: SecretResolver | None, constructor: Any) -> None:
        self.file = file
        self.secret = secret
        self.smap = SourceMap(file)
        self.problems: list[ConfigProblem] = []
        self.nodes = 0
        self.constructor = constructor
        self.stack: set[int] = set()

    def error(self, node: Any, message: str, hint: str | None = None) -> None:
        self.problems.append(_problem(self.file, _mark(node), message, hint))

    def build(self, node: Any, loc: Loc) -> Any:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig
        self.smap.values.setdefault(loc, _mark(node))
        if id(node) in self.stack:
            self.error(node, "an alias refers to the value it is part of (a loop)")
            return None
        if len(loc) > MAX_DEPTH:
            self.error(node, f"nested more than {MAX_DEPTH} levels deep")
            return None
        tag = node.tag or ""
        if tag == SECRET_TAG:
            return self._secret(node, loc)
        if tag.startswith("!") or (tag and not tag.startswith(_CORE_TAG)):
            self.error(node, f"unknown tag '{tag}' (the only tag a config uses is !secret)")
            return None
        self.stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            if isinstance(node, ScalarNode):
                return self._scalar(node)
            self.error(node, "unsupported YAML node")
            return None
        finally:
            self.stack.discard(id(node))

    def _scalar(self, node: Any) -> Any:
        from ruamel.yaml.error import YAMLError

        try:
            return self.constructor.construct_object(node, deep=True)
        except YAMLError as exc:
            self.error(node, f"cannot read this value: {getattr(exc, 'problem', None) or exc}")
            return None
        except Exception:  # ruamel's constructors trip over odd input (`!!int ` with no digits)
            self.error(
                node, f"cannot read {str(node.value)[:40]!r} as {node.tag.rsplit(':', 1)[-1]}"
            )
            return None

    def _key(self, node: Any) -> str | None:
        from ruamel.yaml.nodes import ScalarNode

        if not isinstance(node, ScalarNode) or (node.tag or "").startswith("!"):
            self.error(node, "a key must be a plain word, not a list, mapping or tagged value")
            return None
        return str(node.value)

    def _mapping(self, node: Any, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, loc, out)
                continue
            key = self._key(key_node)
            if key is None:
                continue
            here = _mark(key_node)
            if key in seen:
                first = seen[key]
                self.problems.append(
                    _problem(
                        self.file,
                        here,
                        f"duplicate key '{key}' (first at line {first.line}, column {first.col})",
                    )
                )
                continue
            seen[key] = here
            self.smap.keys[(*loc, key)] = here
            out[key] = self.build(value_node, (*loc, key))
        return out

    def _merge(self, value_node: Any, loc: Loc, out: dict[str, Any]) -> None:
        """`<<: *anchor` (or a list of them): keys not written here come from the anchor."""
        from ruamel.yaml.nodes import MappingNode, SequenceNode

        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for src in sources:
            if not isinstance(src, MappingNode):
                self.error(src, "'<<' merges mappings only")
                continue
            built = self.build(src, (*loc, "<<"))
            if not isinstance(built, dict):
                continue
            src_loc = (*loc, "<<")
            for key, value in built.items():
                if key not in out:
                    out[key] = value
                    self._copy_positions((*src_loc, key), (*loc, key))

    def _copy_positions(self, src: Loc, dst: Loc) -> None:
        """Merged keys report problems where they are written: in the anchored mapping."""
        n = len(src)
        for table in (self.smap.keys, self.smap.values):
            for path, mark in list(table.items()):
                if path[:n] == src:
                    table.setdefault((*dst, *path[n:]), mark)

    def _secret(self, node: Any, loc: Loc) -> Any:
        from ruamel.yaml.nodes import ScalarNode

        if not isinstance(node, ScalarNode) or not str(node.value).strip():
            self.error(node, "!secret takes a name, like: password: !secret uplink_password")
            return None
        name = str(node.value).strip()
        if self.secret is None:
            self.error(node, f"secret '{name}' cannot be read here (no secrets.yaml)")
            return None
        try:
            value = self.secret(name)
        except SecretLookupError as exc:
            self.error(node, exc.message, exc.hint)
            return None
        self.smap.secret_paths.add(loc)
        return value


def read_yaml(
    text: str | bytes, file: str, secret: SecretResolver | None = None
) -> tuple[Any, SourceMap, list[ConfigProblem]]:
    """Parse one YAML document into plain data and its source map; never raises for bad input."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    smap = SourceMap(file)
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            return None, smap, [_too_big(file)]
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            col = exc.start - (text.rfind(b"\n", 0, exc.start) + 1) + 1
            return None, smap, [_problem(file, Mark(line, col), "not UTF-8 text")]
    if len(text) > MAX_BYTES:
        return None, smap, [_too_big(file)]
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        yaml = YAML(typ="safe", pure=True)
        node = yaml.compose(text)
    except MarkedYAMLError as exc:
        return None, smap, [_syntax_problem(file, exc)]
    except (YAMLError, RecursionError, ValueError, TypeError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return None, smap, [_problem(file, START, f"YAML syntax error: {message}")]
    if node is None:
        return None, smap, []
    builder = _Builder(file, secret, yaml.constructor)
    try:
        data = builder.build(node, ())
    except _TooBig:
        return (
            None,
            smap,
            [_problem(file, START, f"more than {MAX_NODES} values (aliases expanding?)")],
        )
    except RecursionError:
        return None, smap, [_problem(file, START, "nested too deeply")]
    return data, builder.smap, builder.problems


_OPENED = {
    "while parsing a flow sequence": "the list opened",
    "while parsing a flow mapping": "the mapping opened",
    "while scanning a quoted scalar": "the quoted text opened",
    "while parsing a block mapping": "the mapping that starts",
    "while parsing a block collection": "the list that starts",
}


def _syntax_problem(file: str, exc: Any) -> ConfigProblem:
    problem = str(exc.problem or "").strip()
    context = str(exc.context or "").strip()
    mark = exc.problem_mark or exc.context_mark
    if "'\\t'" in problem or "\t" in problem:
        return _problem(file, _mark(mark), "a tab character: YAML indents with spaces only")
    hint = None
    if problem.startswith("but ") and context:
        message = f"{context} {problem}"  # "expected a single document ... but found another"
    else:
        message = problem or context or "not valid YAML"
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            where = _mark(exc.context_mark)
            opened = _OPENED.get(context, context)
            hint = f"{opened} at line {where.line}, column {where.col}"
    return _problem(file, _mark(mark), f"YAML syntax error: {message}", hint)


def _too_big(file: str) -> ConfigProblem:
    return _problem(
        file, START, f"the file is larger than {MAX_BYTES // 1024} KiB; a config is a few KB"
    )
