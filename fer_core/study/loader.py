"""Load a study file: safe YAML, ``-o`` overrides, profiles, ``search_spaces/`` references.

``load_study(path, profile=None, overrides=())`` returns a :class:`ResolvedStudy` (profile applied,
references inlined, ablation factors expanded into rows) or raises :class:`StudyValidationError`
(a ``ValueError``) listing every problem with file, key path and line.

The ``-o KEY=VALUE`` rule (INTERFACES.md "Command line"): a key whose first part names a study
field (``seeds``, ``num_samples``, ``resources.gpu``, ``algorithm.name``, ...) sets the study;
any other key is a trainer override for every trial. Values parse as YAML (``seeds=[0,1]``).
A profile follows the same rule: ``resources``, ``seeds``, ``num_samples``, ... set the study,
everything else is a trainer override.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
from fer_core.study.overrides import (
    _forbidden_keys,
    _set_study_field,
    flatten,
    is_study_key,
    override_value,
    parse_override,
    to_overrides,
)
from fer_core.study.refs import SPACE_DIR, repo_root, resolve_space
from fer_core.study.schema import (
    DEFAULT_PROFILE,
    PROFILE_STUDY_FIELDS,
    STUDY_FIELDS,
    Distribution,
    StudyFile,
)

__all__ = [
    "SPACE_DIR",
    "RawStudy",
    "ResolvedStudy",
    "flatten",
    "is_study_key",
    "load_study",
    "override_value",
    "parse_override",
    "read_study",
    "repo_root",
    "resolve",
    "resolve_space",
    "to_overrides",
]


class ResolvedStudy(BaseModel):
    """A validated study with one profile applied: what the planner and the runner read.

    ``base`` is the merged trainer overrides (base, then the profile, then ``-o``) as dotted keys;
    ``trainer_overrides`` the same as Hydra ``key=value`` strings (group choices first);
    ``space`` maps knob paths to plain distribution entries (``{grid: [...]}``, ...);
    ``ablation`` holds ``baseline`` and the expanded ``rows`` (``[{name, set}]``).
    ``model_dump()`` is the run directory's ``study.yaml``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    paper: str | None = None
    profile: str = DEFAULT_PROFILE
    metric: str = "val/acc"
    mode: str = "max"
    base: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ablation: dict[str, Any] | None = None
    algorithm: dict[str, Any] = Field(default_factory=lambda: {"name": "grid"})
    num_samples: int = 1
    scheduler: dict[str, Any] = Field(default_factory=lambda: {"name": "none"})
    seeds: list[int] = Field(default_factory=lambda: [0])
    failure: dict[str, Any] = Field(default_factory=lambda: {"max_retries": 0})
    resources: dict[str, Any] = Field(default_factory=dict)
    reference: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    trainer_overrides: list[str] = Field(default_factory=list)
    source_file: str | None = Field(default=None, exclude=True)

    @property
    def study_name(self) -> str:
        """``<study>-<profile>``: the Optuna study name and run directory stem."""
        return f"{self.name}-{self.profile}"

    def distributions(self) -> dict[str, Distribution]:
        return {k: Distribution.model_validate(v) for k, v in self.space.items()}

    def ablation_rows(self) -> dict[str, dict[str, Any]]:
        """Row name -> knob settings (empty without an ablation)."""
        rows = (self.ablation or {}).get("rows") or []
        return {r["name"]: dict(r.get("set") or {}) for r in rows}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# ------------------------------------------------------------------ loading


def _errors(file: str, lines: dict[Loc, int], items: list[tuple[Loc, str]]) -> list[StudyError]:
    return [StudyError(file, key_str(loc), line_of(lines, loc), msg) for loc, msg in items]


def _validate(
    data: dict[str, Any], file: str, lines: dict[Loc, int]
) -> tuple[StudyFile | None, list[StudyError]]:
    errors = _errors(file, lines, unknown_keys(StudyFile, data))
    try:
        model = StudyFile.model_validate(data)
    except ValidationError as exc:
        return None, errors + pydantic_errors(exc, data, file, lines)
    return (None if errors else model), errors


@dataclass
class RawStudy:
    """A study file as read: data with ``-o`` study fields applied and references inlined.

    ``study_overrides`` (``-o`` keys naming study fields) are re-applied after a profile, so the
    command line wins over the profile; ``trainer`` holds the ``-o`` trainer overrides.
    """

    path: Path
    data: dict[str, Any]
    lines: dict[Loc, int]
    trainer: dict[str, Any] = field(default_factory=dict)
    study_overrides: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[StudyError] = field(default_factory=list)

    @property
    def file(self) -> str:
        return str(self.path)

    def profiles(self) -> list[str]:
        profiles = self.data.get("profiles")
        return list(profiles) if isinstance(profiles, dict) else []


def _inline(data: dict[str, Any], path: Path) -> list[tuple[Loc, str]]:
    if "space" not in data:
        return []
    space, errors = resolve_space(data.get("space"), repo_root(path))
    data["space"] = space
    return errors


def read_study(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RawStudy:
    """Read a study file (safe YAML), apply ``-o`` study fields, inline references."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file {file} does not exist")
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise StudyValidationError([StudyError(file, "", 1, "a study file is a YAML mapping")])
    raw = RawStudy(path, data, lines)
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            raw.errors.append(StudyError(file, "-o", None, str(exc)))
            continue
        if is_study_key(key):
            raw.study_overrides.append((key, value))
            _set_study_field(data, key, value)
        else:
            raw.trainer[key] = value
    raw.errors += _errors(file, lines, _inline(data, path))
    if isinstance(data.get("base"), dict):
        raw.errors += _errors(file, lines, _forbidden_keys(data["base"], ("base",)))
    for pname, prof in (data.get("profiles") or {}).items():
        if isinstance(prof, dict):
            raw.errors += _errors(file, lines, _forbidden_keys(prof, ("profiles", pname)))
    return raw


def split_profile(profile: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A profile's (study fields, trainer overrides)."""
    study, trainer = {}, {}
    for key, value in (profile or {}).items():
        head = str(key).split(".", 1)[0]
        if head in PROFILE_STUDY_FIELDS:
            study[key] = value
        elif head in STUDY_FIELDS:
            raise ValueError(
                f"{key!r} cannot be set by a profile; a profile may set {PROFILE_STUDY_FIELDS} "
                "and trainer overrides"
            )
        else:
            trainer[key] = value
    return study, trainer


def resolve(raw: RawStudy, profile: str | None) -> tuple[ResolvedStudy | None, list[StudyError]]:
    """Validate the study with ``profile`` applied (then the ``-o`` study fields again)."""
    file, lines = raw.file, raw.lines
    model, errors = _validate(raw.data, file, lines)
    if model is None:
        return None, errors
    profile = profile or DEFAULT_PROFILE
    if profile not in model.profiles:
        return None, [
            StudyError(
                file,
                "profiles",
                line_of(lines, ("profiles",)),
                f"profile {profile!r} does not exist; use one of {list(model.profiles)}",
            )
        ]
    try:
        study_part, trainer_part = split_profile(model.profiles[profile])
    except ValueError as exc:
        loc = ("profiles", profile)
        return None, [StudyError(file, key_str(loc), line_of(lines, loc), str(exc))]
    if study_part:
        applied = copy.deepcopy(raw.data)
        for key, value in study_part.items():
            _set_study_field(applied, key, value)
        for key, value in raw.study_overrides:
            _set_study_field(applied, key, value)
        plines = dict(lines)
        for key in study_part:  # errors in profile-set fields point at the profile's line
            head = key.split(".", 1)[0]
            plines[(head,)] = line_of(lines, ("profiles", profile, key)) or 0
            for loc in [loc for loc in plines if loc[:1] == (head,) and len(loc) > 1]:
                plines[loc] = plines[(head,)]
        ref_errors = _errors(file, plines, _inline(applied, raw.path))
        if ref_errors:
            return None, ref_errors
        model, errors = _validate(applied, file, plines)
        if model is None:
            return None, errors
    merged = flatten(model.base)
    merged.update(flatten(trainer_part))
    merged.update(raw.trainer)
    ablation = None
    if model.ablation is not None:
        ablation = {
            "baseline": model.ablation.baseline_name(),
            "design": model.ablation.design if model.ablation.factors else "rows",
            "rows": [
                {"name": r.name, "set": r.settings(profile), **({"note": r.note} if r.note else {})}
                for r in model.ablation.expanded_rows()
            ],
        }
    resolved = ResolvedStudy(
        name=model.name,
        description=model.description.strip(),
        paper=model.paper,
        profile=profile,
        metric=model.metric,
        mode=model.mode,
        base=merged,
        space={k: v.plain() for k, v in (model.space or {}).items()},
        ablation=ablation,
        algorithm={"name": model.algorithm.name, **model.algorithm.options},
        num_samples=model.num_samples,
        scheduler={"name": model.scheduler.name, **dict(model.scheduler.model_extra or {})},
        seeds=list(model.seeds),
        failure=model.failure.model_dump(),
        resources=model.resources.model_dump(),
        reference=model.reference.model_dump(exclude_none=True) if model.reference else None,
        report=model.report.model_dump(exclude_none=True) if model.report else None,
        trainer_overrides=to_overrides(merged),
        source_file=file,
    )
    return resolved, []


def load_study(
    path: str | Path,
    profile: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    check_knobs: bool = True,
) -> ResolvedStudy:
    """Load, validate and resolve one study file for ``profile`` (default ``synth``).

    ``overrides`` are ``-o KEY=VALUE`` strings. With ``check_knobs``, every knob path (base,
    profile, space, ablation rows) is composed into the trainer config
    (``fer_core.engine.build.compose``) when the trainer core is installed.
    Raises ``StudyValidationError`` (a ValueError) with every problem, or FileNotFoundError.
    """
    raw = read_study(path, overrides)
    errors = list(raw.errors)
    resolved, more = resolve(raw, profile)
    errors += more
    if resolved is not None and not errors and check_knobs:
        from fer_core.study.knobs import check_knob_paths

        errors += check_knob_paths(resolved, raw.lines)
    if errors or resolved is None:
        raise StudyValidationError(errors)
    return resolved
