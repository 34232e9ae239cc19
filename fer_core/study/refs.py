"""``search_spaces/<file>.yaml#<entry>`` references, resolved from the repository root.

The root is the parent of the study file's ``studies/`` folder (else the nearest parent holding
``search_spaces/``). A reference may stand for the whole space, for one item of a list of spaces,
or for one knob's entry (the entry's distribution for that knob). Paths stay inside the root.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fer_core.study.distributions import DIST_KINDS
from fer_core.study.errors import Loc, StudyValidationError, read_yaml

SPACE_DIR = "search_spaces"


def repo_root(study_file: Path) -> Path:
    """The parent of the study file's ``studies/`` folder (else the nearest dir with search_spaces/)."""
    path = study_file.resolve()
    if path.parent.name == "studies":
        return path.parent.parent
    for parent in path.parents:
        if (parent / SPACE_DIR).is_dir():
            return parent
    return path.parent


class _RefError(Exception):
    pass


def _load_ref(ref: str, root: Path) -> tuple[Any, str]:
    """``search_spaces/pll.yaml#threshold`` -> (the entry, or the whole file's merged entries)."""
    file_part, _, entry = ref.partition("#")
    rel = Path(file_part)
    if rel.is_absolute() or ".." in rel.parts or not file_part.endswith((".yaml", ".yml")):
        raise _RefError(
            f"reference {ref!r} is not allowed; use 'search_spaces/<file>.yaml#<entry>' "
            "(relative to the repository root)"
        )
    target = root / rel
    if not target.is_file():
        avail = sorted(p.name for p in (root / SPACE_DIR).glob("*.yaml"))
        raise _RefError(f"reference {ref!r}: {target} does not exist; space files: {avail}")
    data, _ = read_yaml(target)
    if not isinstance(data, dict):
        raise _RefError(f"reference {ref!r}: {file_part} is not a mapping of entries")
    if not entry:
        merged: dict[str, Any] = {}
        for value in data.values():
            if isinstance(value, dict):
                merged.update(value)
        return merged, file_part
    if entry not in data:
        import difflib

        close = difflib.get_close_matches(entry, list(data), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise _RefError(
            f"reference {ref!r}: {file_part} has no entry {entry!r}; entries: {list(data)}.{hint}"
        )
    return data[entry], file_part


def _is_dist(value: Any) -> bool:
    return isinstance(value, dict) and any(k in value for k in DIST_KINDS)


def resolve_space(space: Any, root: Path) -> tuple[Any, list[tuple[Loc, str]]]:
    """Inline references: the whole space, list items, or one knob's entry may be a reference."""
    errors: list[tuple[Loc, str]] = []
    if space is None:
        return None, errors
    if isinstance(space, str):
        space = [space]
    if isinstance(space, list):
        merged: dict[str, Any] = {}
        for i, item in enumerate(space):
            if isinstance(item, str):
                try:
                    entry, _ = _load_ref(item, root)
                except (_RefError, StudyValidationError) as exc:
                    errors.append((("space", i), str(exc)))
                    continue
                if not isinstance(entry, dict) or _is_dist(entry):
                    errors.append(
                        (
                            ("space", i),
                            f"reference {item!r} is one distribution; put it under a knob",
                        )
                    )
                    continue
                merged.update(copy.deepcopy(entry))
            elif isinstance(item, dict):
                merged.update(item)
            else:
                errors.append((("space", i), f"{item!r} is neither a reference nor a mapping"))
        space = merged
    if not isinstance(space, dict):
        return space, errors
    out: dict[str, Any] = {}
    for knob, value in space.items():
        if isinstance(value, str):
            try:
                entry, file_part = _load_ref(value, root)
            except (_RefError, StudyValidationError) as exc:
                errors.append((("space", knob), str(exc)))
                continue
            if isinstance(entry, dict) and not _is_dist(entry):
                if knob not in entry:
                    errors.append(
                        (
                            ("space", knob),
                            f"reference {value!r} has no knob {knob!r}; it has {list(entry)}",
                        )
                    )
                    continue
                entry = entry[knob]
            out[knob] = copy.deepcopy(entry)
        else:
            out[knob] = value
    return out, errors
