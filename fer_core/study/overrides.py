"""The ``-o KEY=VALUE`` rule (the override formatter itself lives in ``fer_core/overrides.py``).

A key whose first part names a study field (``seeds``, ``num_samples``, ``resources.gpu``,
``algorithm.name``, ...) sets the study; any other key is a trainer override for every trial
(INTERFACES.md "Command line"). Values parse as YAML (``-o seeds=[0,1]``). No key may set
``_target_`` or another Hydra special key (``_partial_``, ...).
"""

from __future__ import annotations

from typing import Any

import yaml

from fer_core.overrides import flatten, override_value, to_overrides  # noqa: F401 (re-exported)
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


def _forbidden_keys(mapping: dict[str, Any], loc: Loc) -> list[tuple[Loc, str]]:
    out = []
    for k, v in flatten(mapping).items():
        if any(p.startswith("_") and p.endswith("_") for p in k.split(".")):
            out.append(((*loc, k), "overrides may not set '_target_' or any import path"))
        elif isinstance(v, str) and "_target_" in v:
            out.append(((*loc, k), "overrides may not set '_target_' or any import path"))
    return out
