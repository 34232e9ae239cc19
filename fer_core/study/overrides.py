"""The ``-o KEY=VALUE`` rule and trainer-override formatting.

A key whose first part names a study field (``seeds``, ``num_samples``, ``resources.gpu``,
``algorithm.name``, ...) sets the study; any other key is a trainer override for every trial
(INTERFACES.md "Command line"). Values parse as YAML (``-o seeds=[0,1]``). No key may set
``_target_`` or another Hydra special key (``_partial_``, ...).
"""

from __future__ import annotations

import numbers
import re
from typing import Any

import yaml

from fer_core.study.distributions import DIST_KINDS
from fer_core.study.errors import Loc
from fer_core.study.schema import STUDY_FIELDS


def parse_override(text: str) -> tuple[str, Any]:
    """``"seeds=[0,1]"`` -> ``("seeds", [0, 1])``; the value parses as a YAML scalar or list."""
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"-o {text!r}: use KEY=VALUE (e.g. -o seeds=[0,1] -o trainer.epochs=2)")
    if any(p.startswith("_") and p.endswith("_") for p in key.split(".")):
        raise ValueError(f"-o {text!r}: overrides may not set '_target_' or any import path")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def is_study_key(key: str) -> bool:
    return key.split(".", 1)[0] in STUDY_FIELDS


def _set_study_field(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a study field from a dotted ``-o`` key (space / base / profiles keep dotted knobs)."""
    parts = key.split(".")
    head = parts[0]
    if len(parts) == 1:
        data[head] = value
        return
    rest = ".".join(parts[1:])
    if head == "base":
        data.setdefault("base", {})[rest] = value
    elif head == "profiles":
        prof = data.setdefault("profiles", {}).setdefault(parts[1], {})
        prof[".".join(parts[2:])] = value
    elif head == "space":
        space = data.get("space")
        if not isinstance(space, dict):
            space = data["space"] = {}
        if rest not in space and parts[-1] in (*DIST_KINDS, "q", "log", "when"):
            knob = ".".join(parts[1:-1])
            if isinstance(space.get(knob), dict):
                space[knob][parts[-1]] = value
                return
        space[rest] = value
    else:
        cur = data
        for p in parts[:-1]:
            if not isinstance(cur.get(p), dict):
                cur[p] = {} if not isinstance(cur.get(p), str) else {"name": cur[p]}
            cur = cur[p]
        cur[parts[-1]] = value


def flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    """``{"trainer": {"epochs": 3}, "method": "pll"}`` -> ``{"trainer.epochs": 3, "method": "pll"}``."""
    out: dict[str, Any] = {}
    if not isinstance(mapping, dict):
        return out
    for k, v in mapping.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


# A string goes unquoted only when Hydra reads it back as that same string: a plain
# identifier or path (``pll``, ``vit_tiny_cpu``, ``/data/rafdb``) that is not a bool, null,
# inf or nan. Everything else is single-quoted, so ``a,b`` never becomes a sweep.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_RESERVED = {"true", "false", "null", "inf", "nan"}
_DICT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _quote(text: str) -> str:
    r"""``it's`` -> ``'it\'s'``, Hydra's quoted-string escapes: a backslash escapes only a quote
    or the closing quote, so only the runs of backslashes before those are doubled."""
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    return f"'{body}'"


def override_value(value: Any) -> str:
    """A Python value as a Hydra override value that Hydra parses back to the same value.

    The one formatter for trainer overrides: study validation (``knobs.py``) and the trials
    (``tune/spec.py``, ``tune/trainable.py``) both use it. Strings are quoted unless plain, so
    ``"a,b"`` stays one string, ``"1"`` / ``"true"`` / ``"null"`` stay strings and unicode
    parses. ``${...}`` inside a string is kept: Hydra reads it as an interpolation.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dict_key(k)}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return _quote(text)


def _dict_key(key: Any) -> str:
    if not isinstance(key, str) or not _DICT_KEY.fullmatch(key):
        raise ValueError(
            f"mapping key {key!r} cannot be written in a Hydra override; use letters, digits, "
            "'_' and '-' (or set the nested keys one by one: a.b=1)"
        )
    return key


def to_overrides(settings: dict[str, Any]) -> list[str]:
    """Flat/nested settings -> ``key=value`` strings, group choices (no dot) first."""
    flat = flatten(settings)
    order = [k for k in flat if "." not in k] + [k for k in flat if "." in k]
    return [f"{k}={override_value(flat[k])}" for k in order]


def _forbidden_keys(mapping: dict[str, Any], loc: Loc) -> list[tuple[Loc, str]]:
    out = []
    for k, v in flatten(mapping).items():
        if any(p.startswith("_") and p.endswith("_") for p in k.split(".")):
            out.append(((*loc, k), "overrides may not set '_target_' or any import path"))
        elif isinstance(v, str) and "_target_" in v:
            out.append(((*loc, k), "overrides may not set '_target_' or any import path"))
    return out
