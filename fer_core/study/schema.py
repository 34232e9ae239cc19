"""The study-file schema: pydantic v2 models, unknown keys rejected with a "did you mean".

A study file (``studies/<name>.yaml``) is one paper figure or table; ``studies/quickstart.yaml``
is the commented worked example. The models here check one file's shape and value ranges; the
loader (``study/loader.py``) reads YAML, applies the profile and ``-o`` overrides, inlines
``search_spaces/...`` references and checks knob paths against the trainer config.

Field summary (INTERFACES.md, issue 6)::

    name, description, paper, metric (a val/ metric), mode (max | min)
    base: trainer overrides            profiles: {synth: {...}, paper: {...}, ...}
    space: {knob path: distribution}   ablation: {baseline, rows | factors + design}
    algorithm: {name: a searcher (fer_core.tune.searchers), options...}, num_samples
    scheduler: {name: none|asha|median, options...}
    seeds, failure: {max_retries}, resources: {cpu, gpu, max_concurrent}
    reference: the paper's numbers     report: {kind, x, metrics, components, rows, labels}

Distributions: ``{grid: [...]}``, ``{choice: [...]}``, ``{uniform: [lo, hi]}``,
``{loguniform: [lo, hi]}``, ``{int: [lo, hi]}`` (``log: true`` for a log-scaled int), a step
``q`` on uniform / int, and ``when: {other knob: value}`` for conditional parameters.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fer_core.study.ablation import Ablation, AblationRow, Factor
from fer_core.study.distributions import DIST_KINDS, Distribution, Strict, check_knob_path

__all__ = [
    "DIST_KINDS",
    "Ablation",
    "AblationRow",
    "Algorithm",
    "Distribution",
    "Factor",
    "Scheduler",
    "StudyFile",
    "check_knob_path",
]

SCHEDULERS = ("none", "asha", "median")
REPORT_KINDS = ("sensitivity", "ablation", "search")
REQUIRED_PROFILES = ("synth", "paper")
DEFAULT_PROFILE = "synth"
# Study fields a profile or ``-o KEY=VALUE`` may set (every other key is a trainer override).
STUDY_FIELDS = (
    "name",
    "description",
    "paper",
    "metric",
    "mode",
    "base",
    "profiles",
    "space",
    "ablation",
    "algorithm",
    "num_samples",
    "scheduler",
    "seeds",
    "failure",
    "resources",
    "reference",
    "report",
)
PROFILE_STUDY_FIELDS = (
    "space",
    "algorithm",
    "num_samples",
    "scheduler",
    "seeds",
    "failure",
    "resources",
    "metric",
    "mode",
)
_SCHEDULER_OPTIONS = {
    "none": (),
    "asha": ("grace_period", "reduction_factor", "max_t", "brackets"),
    "median": ("grace_period", "min_samples_required"),
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _searchers() -> Any:
    """The searcher registry (Optuna only, no Ray), imported when a study is validated."""
    from fer_core.tune import searchers

    return searchers


def _check_options(section: str, name: str, options: dict[str, Any], allowed: tuple) -> None:
    import difflib

    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{section}: option {key!r} is not an option of {name!r}; allowed: "
                f"{', '.join(allowed) or '(none)'}.{hint}"
            )


class Algorithm(BaseModel):
    """The search algorithm and its options (passed to the Optuna sampler by the runner)."""

    model_config = ConfigDict(extra="allow")
    name: str = "grid"

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        _searchers().SEARCHERS.get(v)  # "unknown searcher 'x'; allowed: ... Did you mean ...?"
        return v

    @model_validator(mode="after")
    def _check(self) -> Algorithm:
        options = _searchers().searcher_options(self.name)
        _check_options("algorithm", self.name, self.options, options)
        seed = self.options.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"algorithm.seed: {seed!r} is not allowed; use an integer")
        pop = self.options.get("population_size")
        if pop is not None and (not isinstance(pop, int) or pop < 2):
            raise ValueError(f"algorithm.population_size: {pop!r}; use an integer >= 2")
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Scheduler(BaseModel):
    """Trial scheduler: none, asha {grace_period, reduction_factor, max_t}, median."""

    model_config = ConfigDict(extra="allow")
    name: Literal["none", "asha", "median"] = "none"

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check(self) -> Scheduler:
        opts = dict(self.model_extra or {})
        _check_options("scheduler", self.name, opts, _SCHEDULER_OPTIONS[self.name])
        for key in ("grace_period", "max_t", "brackets", "min_samples_required"):
            v = opts.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"scheduler.{key}: {v!r} is not allowed; use an integer >= 1")
        rf = opts.get("reduction_factor")
        if rf is not None and (not isinstance(rf, (int, float)) or rf <= 1):
            raise ValueError(f"scheduler.reduction_factor: {rf!r} is not allowed; use a number > 1")
        gp, mt = opts.get("grace_period"), opts.get("max_t")
        if gp is not None and mt is not None and gp > mt:
            raise ValueError(f"scheduler.grace_period: {gp} is above max_t {mt}; use <= max_t")
        return self


class Failure(Strict):
    """What to do with trials that raise or go NaN."""

    max_retries: int = Field(default=0, ge=0)


class Resources(Strict):
    """Per-trial resources (fractional GPUs pack trials onto one GPU) and the concurrency cap."""

    cpu: float = Field(default=1.0, ge=0)
    gpu: float = Field(default=0.0, ge=0)
    max_concurrent: int | None = Field(default=None, ge=1)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"{v} GPUs is not allowed; above 1, ask for whole GPUs")
        return v


class Optimum(Strict):
    """The paper's stated best setting, when it gives a figure but no numbers."""

    value: Any = None
    note: str | None = None


class Reference(Strict):
    """The paper's numbers for reports: percentages as printed, per dataset."""

    source: str | None = None
    metric: str | None = None
    values: dict[str, dict[Any, float | None] | float | None] | None = None
    optimum: Optimum | None = None
    note: str | None = None


class ReferenceRun(Strict):
    """``report.reference``: one configuration run beside the study, in its own run directory
    (``<run_dir>/reference/``, the study's seeds; not a trial, so trial counts are unchanged),
    drawn as a line with its band on sensitivity plots and as a row of ablation tables. ``set``
    is applied on top of the study's base and profile; a group choice in it (``method: ce``)
    drops the base's settings of that group (``method.*``)."""

    label: str = "reference"
    set: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _paths(self) -> ReferenceRun:
        for path in self.set:
            try:
                check_knob_path(path)
            except ValueError as exc:
                raise ValueError(f"report.reference.set: {exc}") from None
        return self


class Report(Strict):
    """How the report shows the study."""

    kind: Literal["sensitivity", "ablation", "search"] | None = None
    x: str | None = None
    log_x: bool = False
    metrics: list[str] = Field(default_factory=list)
    components: dict[str, str] | None = None
    rows: list[str] | None = None
    title: str | None = None
    labels: dict[Any, str] | None = None  # sensitivity: names of swept values, e.g. {0.9: never}
    # sensitivity: the point every other value is tested against (Welch + Holm), typically the
    # paper's default; null: no test (ablations name theirs in ablation.baseline)
    baseline: Any | None = None
    reference: ReferenceRun | None = None  # e.g. CE on plurality labels under the same budget


class StudyFile(Strict):
    """One study file after references are inlined (the loader's ``-o`` overrides applied)."""

    name: str
    description: str = ""
    paper: str | None = None
    metric: str = "val/acc"
    mode: Literal["max", "min"] = "max"
    base: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[str, dict[str, Any]]
    space: dict[str, Distribution] | None = None
    ablation: Ablation | None = None
    algorithm: Algorithm = Field(default_factory=Algorithm)
    num_samples: int = Field(default=1, ge=1)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    failure: Failure = Field(default_factory=Failure)
    resources: Resources = Field(default_factory=Resources)
    reference: Reference | None = None
    report: Report | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not allowed; use letters, digits, '_', '-', '.' (it names the run "
                "directory runs/<name>-<profile>)"
            )
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if "/" not in v:
            raise ValueError(f"{v!r} is not a metric name; use e.g. 'val/acc' or 'val/uar'")
        if v.startswith("test/"):
            raise ValueError(
                f"{v!r}: searchers and schedulers select on a val/ metric; test/ metrics are "
                "for reports (set data.val_fraction=0 to select on test as the papers do)"
            )
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError(f"{v} is not allowed; give a count >= 1 or a list of seeds")
            return list(range(v))
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"{v} repeats a seed; every seed must be distinct")
        return v

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        missing = [p for p in REQUIRED_PROFILES if p not in v]
        if missing:
            raise ValueError(
                f"profile(s) {missing} missing; every study has 'synth' (SynthFER, CPU-sized, the "
                "default) and 'paper' (the paper's dataset and hyper-parameters)"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> StudyFile:
        if self.space and self.ablation is not None:
            raise ValueError("give either space (a search) or ablation (rows), not both")
        if self.ablation is not None and self.algorithm.name != "grid":
            raise ValueError(
                f"algorithm.name: {self.algorithm.name!r} with an ablation; ablation rows run "
                "as a grid (use algorithm: grid)"
            )
        for row in self.ablation.rows or [] if self.ablation is not None else []:
            bad = [p for p in row.profiles if p not in self.profiles]
            if bad:
                raise ValueError(
                    f"ablation.rows: row {row.name!r} sets profiles {bad} that the study does not "
                    f"have; use {list(self.profiles)}"
                )
        space = self.space or {}
        for path in space:
            check_knob_path(path)
        names = list(space)
        for path, dist in space.items():
            for k, v in (dist.when or {}).items():
                if k not in space or names.index(k) >= names.index(path):
                    raise ValueError(
                        f"space.{path}.when: {k!r} must be a knob searched earlier in the space"
                    )
                if not space[k].contains(v):
                    raise ValueError(f"space.{path}.when: {k}={v!r} is a value {k} never takes")
        if self.algorithm.name == "grid":
            for path, dist in space.items():
                if dist.grid_values() is None:
                    raise ValueError(
                        f"space.{path}: a continuous {dist.kind} range cannot be a grid; give "
                        "grid values, a step q, or another algorithm (random, tpe, ...)"
                    )
        if self.algorithm.name == "cmaes":
            bad = [p for p, d in space.items() if d.is_categorical]
            if bad:
                raise ValueError(
                    f"algorithm.name: 'cmaes' samples numeric ranges only; {bad} are categorical"
                )
        rep = self.report
        if rep is not None:
            if rep.x and rep.x not in space:
                import difflib

                close = difflib.get_close_matches(rep.x, list(space), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"report.x: {rep.x!r} is not a searched knob; {hint}valid: "
                    + (", ".join(space) or "(none: the study searches no knob)")
                )
            if rep.baseline is not None:
                self._check_report_baseline(rep, space)
            if rep.kind == "ablation" and self.ablation is None:
                raise ValueError("report.kind: 'ablation' needs an ablation block")
            if rep.rows and self.ablation is not None:
                known = [r.name for r in self.ablation.expanded_rows()]
                bad = [r for r in rep.rows if r not in known]
                if bad:
                    raise ValueError(f"report.rows: {bad} are not ablation rows; use {known}")
        return self

    def _check_report_baseline(self, rep: Report, space: dict[str, Distribution]) -> None:
        """``report.baseline`` is a value the swept knob takes (sensitivity studies only)."""
        if self.ablation is not None or rep.kind in ("ablation", "search"):
            raise ValueError(
                f"report.baseline: {rep.baseline!r} is for sensitivity studies; an ablation names "
                "its baseline row in ablation.baseline"
            )
        x = rep.x or next(iter(space), None)
        dist = space.get(x) if x else None
        if dist is None:
            raise ValueError(
                f"report.baseline: {rep.baseline!r} needs a swept knob (report.x or a space entry)"
            )
        values = dist.grid_values()
        if values is not None and not any(_same(rep.baseline, v) for v in values):
            raise ValueError(
                f"report.baseline: {rep.baseline!r} is not a value of {x}; allowed: "
                + ", ".join(map(str, values))
            )
        if values is None and not dist.contains(rep.baseline):
            raise ValueError(f"report.baseline: {rep.baseline!r} is outside the range of {x}")


def _same(a: Any, b: Any) -> bool:
    """Equal as swept values: numbers compare as floats (0.1 == 1e-1), the rest as text."""
    try:
        return not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
