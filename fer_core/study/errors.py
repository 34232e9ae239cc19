"""Study errors with file, key path and line; YAML line maps; unknown keys with "did you mean".

``fer-study validate`` prints every error at once, one per line::

    studies/pll_k.yaml:12: space.method.labels.k.int: [4, 2] is not allowed; the low bound ...
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

Loc = tuple[Any, ...]


@dataclass(frozen=True)
class StudyError:
    """One problem in a study or search-space file."""

    file: str
    key: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class StudyValidationError(ValueError):
    """A study could not be loaded; ``errors`` holds every problem found."""

    def __init__(self, errors: list[StudyError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


# ------------------------------------------------------------------ YAML: safe load + line map


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loading that rejects duplicate keys (YAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


_KEYS = yaml.SafeLoader("")


def _line_map(node: yaml.Node | None, prefix: Loc, out: dict[Loc, int]) -> None:
    if node is None:
        return
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _KEYS.construct_object(key_node, deep=True)
            loc = (*prefix, key)
            out[loc] = key_node.start_mark.line + 1
            _line_map(value_node, loc, out)
            out[loc] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            loc = (*prefix, i)
            out[loc] = item.start_mark.line + 1
            _line_map(item, loc, out)


def read_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Safe-load ``path``; return (data, key path -> 1-based line). Raises StudyValidationError."""
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        lines: dict[Loc, int] = {}
        _line_map(yaml.compose(text, Loader=yaml.SafeLoader), (), lines)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise StudyValidationError(
            [StudyError(str(path), "", line, f"not valid YAML: {problem}")]
        ) from None
    return data, lines


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the longest prefix of ``loc`` that the file has."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def key_str(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


# ------------------------------------------------------------------ unknown keys


def _field_names(cls: type[BaseModel]) -> dict[str, str]:
    """YAML key -> attribute name (aliases included)."""
    out = {}
    for name, info in cls.model_fields.items():
        out[info.alias or name] = name
    return out


def _members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def unknown_keys(cls: type[BaseModel], data: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Every key of ``data`` that ``cls`` (recursively) does not have, with a suggestion.

    Models that take free options (``model_config extra="allow"``) check those themselves.
    """
    if not isinstance(data, dict) or cls.model_config.get("extra") != "forbid":
        return []
    names = _field_names(cls)
    out: list[tuple[Loc, str]] = []
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), list(names), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            out.append(((*loc, key), f"unknown key {key!r}; allowed: {', '.join(names)}.{hint}"))
            continue
        annotation = cls.model_fields[names[key]].annotation
        out += _walk(annotation, value, (*loc, key))
    return out


def _walk(tp: Any, value: Any, loc: Loc) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    for member in _members(tp):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(value, dict):
                return unknown_keys(member, value, loc)
        elif origin is list and isinstance(value, list):
            (item,) = typing.get_args(member) or (Any,)
            for i, v in enumerate(value):
                out += _walk(item, v, (*loc, i))
            return out
        elif origin is dict and isinstance(value, dict):
            args = typing.get_args(member)
            item = args[1] if len(args) == 2 else Any
            for k, v in value.items():
                out += _walk(item, v, (*loc, k))
            return out
    return out


# ------------------------------------------------------------------ pydantic -> StudyError


def _display_loc(data: Any, loc: Loc) -> Loc:
    """Drop pydantic's union tags (``str``, ``Factor``, ...) that are not keys of the data."""
    out: list[Any] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, (dict, list)):
            continue  # a union tag
        else:
            break
    return tuple(out)


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    if err.get("type") in ("missing",):
        return "this field is required"
    got = err.get("input")
    if not isinstance(got, (dict, list)) and err.get("type") != "missing":
        return f"{msg} (got {got!r})"
    return msg


def _split_key(msg: str, loc: Loc, prefix: Loc, lines: dict[Loc, int]) -> tuple[Loc, str]:
    """``"space.x.when: ..."`` raised at a model level -> (the key's loc, the rest)."""
    head, sep, rest = msg.partition(": ")
    if not sep or "." not in head or " " in head or "'" in head:
        return loc, msg
    known = {key_str(k[len(prefix) :]): k for k in lines if k[: len(prefix)] == prefix}
    parts = head.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in known and len(known[cand]) >= len(loc):
            found = known[cand]
            tail = tuple(parts[n:])
            return (*found, *tail), rest
    return loc, msg


def pydantic_errors(
    exc: ValidationError, data: Any, file: str, lines: dict[Loc, int], prefix: Loc = ()
) -> list[StudyError]:
    """Convert a ValidationError (extra-key errors dropped: ``unknown_keys`` reports those)."""
    out, seen = [], set()
    for err in exc.errors():
        if err.get("type") == "extra_forbidden":
            continue
        loc = (*prefix, *_display_loc(data, tuple(err.get("loc", ()))))
        loc, msg = _split_key(_message(err), loc, prefix, lines)
        e = StudyError(file, key_str(loc), line_of(lines, loc), msg)
        if (e.key, e.message) not in seen:
            seen.add((e.key, e.message))
            out.append(e)
    return out
