"""Study files and search spaces: schema, loading, validation, listing and dry-run plans.

    from fer_core.study import load_study, plan_trials, format_plan
    study = load_study("studies/quickstart.yaml", profile="synth", overrides=["seeds=[0]"])
    print(format_plan(plan_trials(study)))

Modules: ``schema`` (pydantic models), ``errors`` (file:line:key errors, did-you-mean),
``loader`` (``load_study``, ``-o`` rule, references), ``knobs`` (knob paths against the trainer
config), ``plan`` (``plan_trials``, ``format_plan``), ``validate`` (``validate_files``),
``commands`` (``fer-study validate`` / ``fer-study list``).
"""

from __future__ import annotations

from fer_core.study.errors import StudyError, StudyValidationError
from fer_core.study.loader import ResolvedStudy, load_study, parse_override
from fer_core.study.plan import Plan, PlannedTrial, format_plan, plan_trials
from fer_core.study.validate import validate_files

__all__ = [
    "Plan",
    "PlannedTrial",
    "ResolvedStudy",
    "StudyError",
    "StudyValidationError",
    "format_plan",
    "load_study",
    "parse_override",
    "plan_trials",
    "validate_files",
]
