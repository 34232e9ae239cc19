"""The one override formatter: Python values -> Hydra override strings.

Used by ``engine/build.py`` (recipe presets' ``set``), the study validator (``study/``) and the
trials (``tune/spec.py``), so what validates is exactly what a trial composes. Values round-trip
through Hydra's own override parser (``tests/study/test_overrides_format.py``): strings that need
it are quoted, so ``a,b`` never becomes a sweep and ``"1"`` stays a string.
"""

from __future__ import annotations

import numbers
import re
from typing import Any


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
