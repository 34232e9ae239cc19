"""``validate_files(paths) -> list[StudyError]``: every problem of every file, at once.

A study file is checked as written and then once per profile (profile applied, references
inlined, knob paths composed into the trainer config when the trainer core is there). A file in
a ``search_spaces/`` folder is checked as a search-space file: ``entry -> {knob: distribution}``
(or ``entry -> distribution``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fer_core.study.errors import (
    Loc,
    StudyError,
    StudyValidationError,
    key_str,
    line_of,
    pydantic_errors,
    read_yaml,
    unknown_keys,
)
from fer_core.study.loader import read_study, resolve
from fer_core.study.refs import SPACE_DIR, _is_dist
from fer_core.study.schema import Distribution, check_knob_path

_PROFILE = re.compile(r" \(profile ([\w.-]+)\)$")


def is_space_file(path: Path) -> bool:
    return path.parent.name == SPACE_DIR


def _space_errors(
    space: dict[str, Any], file: str, lines: dict[Loc, int], loc: Loc
) -> list[StudyError]:
    """Check ``knob -> distribution`` entries (knob paths, distributions, ``when`` order)."""
    errors: list[StudyError] = []
    names = list(space)
    for knob, entry in space.items():
        kloc = (*loc, knob)
        try:
            check_knob_path(knob)
        except ValueError as exc:
            errors.append(StudyError(file, key_str(kloc), line_of(lines, kloc), str(exc)))
        if not isinstance(entry, dict):
            msg = f"{entry!r} is not a distribution; use grid, choice, uniform, loguniform or int"
            errors.append(StudyError(file, key_str(kloc), line_of(lines, kloc), msg))
            continue
        for eloc, msg in unknown_keys(Distribution, entry, kloc):
            errors.append(StudyError(file, key_str(eloc), line_of(lines, eloc), msg))
        try:
            dist = Distribution.model_validate(entry)
        except ValidationError as exc:
            errors += pydantic_errors(exc, entry, file, lines, kloc)
            continue
        for k in dist.when or {}:
            if k not in space or names.index(k) >= names.index(knob):
                msg = f"when: {k!r} must be a knob searched earlier in the same entry"
                errors.append(StudyError(file, key_str(kloc), line_of(lines, kloc), msg))
    return errors


def validate_space_file(path: Path) -> list[StudyError]:
    file = str(path)
    try:
        data, lines = read_yaml(path)
    except StudyValidationError as exc:
        return exc.errors
    if not isinstance(data, dict) or not data:
        return [StudyError(file, "", 1, "a search-space file maps entry names to spaces")]
    errors: list[StudyError] = []
    for entry, space in data.items():
        loc: Loc = (entry,)
        if _is_dist(space):
            try:
                Distribution.model_validate(space)
            except ValidationError as exc:
                errors += pydantic_errors(exc, space, file, lines, loc)
        elif isinstance(space, dict) and space:
            errors += _space_errors(space, file, lines, loc)
        else:
            msg = "an entry maps knob paths to distributions (e.g. optim.lr: {loguniform: [..]})"
            errors.append(StudyError(file, key_str(loc), line_of(lines, loc), msg))
    return errors


def validate_study_file(
    path: Path, overrides: list[str] | tuple[str, ...] = ()
) -> list[StudyError]:
    """Every problem of one study file, over all of its profiles."""
    from fer_core.study.knobs import check_knob_paths

    file = str(path)
    try:
        raw = read_study(path, overrides)
    except StudyValidationError as exc:
        return exc.errors
    except FileNotFoundError as exc:
        return [StudyError(file, "", None, str(exc))]
    out = list(raw.errors)
    seen: dict[tuple[str, str], int] = {(e.key, e.message): i for i, e in enumerate(out)}
    for name in raw.profiles() or [None]:
        resolved, errs = resolve(raw, name)
        if resolved is not None and not raw.errors:
            errs += check_knob_paths(resolved, raw.lines)
        for e in errs:
            m = _PROFILE.search(e.message)
            base = e.message[: m.start()] if m else e.message
            key = (e.key, base)
            if key not in seen:
                seen[key] = len(out)
                out.append(e)
            elif m:  # the same problem in another profile: name both
                old = out[seen[key]]
                out[seen[key]] = replace(old, message=old.message[:-1] + f", {m.group(1)})")
    return out


def validate_files(paths: list[str | Path] | tuple[str | Path, ...]) -> list[StudyError]:
    """Validate study and search-space files; an empty list means all of them are fine."""
    errors: list[StudyError] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            errors.append(StudyError(str(path), "", None, "file does not exist"))
        elif is_space_file(path):
            errors += validate_space_file(path)
        else:
            errors += validate_study_file(path)
    return errors
