"""``report.reference``: one configuration run beside a study, e.g. cross-entropy on plurality
labels under the same budget for the PLL studies (issue 27).

It runs after the study's trials, into ``<run_dir>/reference/`` (its own run directory and Optuna
study ``<study>-reference-<profile>``, the study's seeds), so the study's trial counts and
searcher are unchanged. Reports draw it as a horizontal line with its band on sensitivity plots
and as a row of ablation tables (``fer_core/report/collect.py`` reads it back).

The configuration is the study's base (profile and ``-o`` applied) with ``report.reference.set``
on top; a group choice in ``set`` (``method: ce``) drops the base's settings under that group
(``method.*``), which belong to the replaced method. A recipe choice (``recipe: supervised``)
also drops the base's ``stages.*`` settings: they name the replaced recipe's stages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fer_core.overrides import to_overrides

DIRNAME = "reference"
# settings that belong to a group's choice besides its own ``group.*`` keys
OWNED_BY = {"recipe": ("stages",)}


def reference_block(study: Any) -> dict[str, Any] | None:
    """``report.reference`` of a resolved study (or its plain dict), or None."""
    report = study.get("report") if isinstance(study, dict) else getattr(study, "report", None)
    ref = (report or {}).get("reference") if isinstance(report, dict) else None
    return ref if isinstance(ref, dict) else None


def reference_settings(study: Any) -> dict[str, Any] | None:
    """The reference run's trainer settings (dotted keys), or None without ``report.reference``."""
    ref = reference_block(study)
    if ref is None:
        return None
    base = dict(study.get("base") if isinstance(study, dict) else study.base)
    changes = dict(ref.get("set") or {})
    groups = [k for k in changes if "." not in k]  # group choices: method, model, data, ...
    owned = tuple(f"{o}." for g in groups for o in (g, *OWNED_BY.get(g, ())))
    kept = {k: v for k, v in base.items() if not k.startswith(owned)}
    return {**kept, **changes}


def reference_spec(study: Any, spec: Any) -> Any | None:
    """The reference run's :class:`~fer_core.tune.spec.StudySpec` (one configuration, the
    study's seeds, no search, no early stopping), or None without ``report.reference``."""
    settings = reference_settings(study)
    if settings is None:
        return None
    ref = reference_block(study) or {}
    resolved = dict(spec.resolved or {})
    resolved.update(
        name=f"{spec.name}-{DIRNAME}",
        description=f"report.reference of {spec.name}: {ref.get('label', DIRNAME)}",
        base=settings,
        space={},
        ablation=None,
        algorithm={"name": "grid"},
        num_samples=1,
        scheduler={"name": "none"},
        report=None,
        reference=None,
    )
    return dataclasses.replace(
        spec,
        name=f"{spec.name}-{DIRNAME}",
        space={},
        ablation_rows=None,
        algorithm={"name": "grid"},
        num_samples=1,
        scheduler={"name": "none"},
        base_overrides=[str(o) for o in to_overrides(settings)],
        resolved=resolved,
    )


def reference_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / DIRNAME
