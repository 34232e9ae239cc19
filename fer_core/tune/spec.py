"""What the study runner needs from a study, as one plain typed record (``StudySpec``).

The study helper's ``load_study`` returns a ``ResolvedStudy`` (validated, profile applied,
references inlined). The runner reads only the fields below, through :func:`spec_from_study`, so
its tests can build a ``StudySpec`` from a dict without the study schema.

Trial = (configuration, seed): a configuration is one Optuna trial (``config_id`` = its number),
run once per seed as one Ray Tune trial each (INTERFACES.md "Seeds, Tune trials and Optuna trials").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from fer_core.overrides import flatten, to_overrides
from fer_core.study.schema import SCHEDULERS
from fer_core.tune.searchers import list_searchers

__all__ = ["SCHEDULERS", "StudySpec", "spec_from_study", "to_overrides"]


@dataclass
class StudySpec:
    """A resolved study as the runner uses it.

    ``space`` maps knob paths to the study file's distribution entries (``{grid: [...]}``,
    ``{uniform: [lo, hi], q: 0.1}``, ``{..., when: {path: value}}``); ``ablation_rows`` maps row
    names to the knob settings of that row (then the space is the categorical ``row``).
    ``base_overrides`` are trainer overrides (``key=value``) applied to every trial.
    """

    name: str
    profile: str = "synth"
    metric: str = "val/acc"
    mode: str = "max"
    space: dict[str, Any] = field(default_factory=dict)
    ablation_rows: dict[str, dict[str, Any]] | None = None
    algorithm: dict[str, Any] = field(default_factory=lambda: {"name": "grid"})
    num_samples: int = 1
    scheduler: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    seeds: list[int] = field(default_factory=lambda: [0])
    max_retries: int = 0
    cpu: float = 1.0
    gpu: float = 0.0
    max_concurrent: int | None = None
    base_overrides: list[str] = field(default_factory=list)
    epochs: int | None = None
    dataset: str = ""
    resolved: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode: {self.mode!r} is not allowed; use 'max' or 'min'")
        algo = self.algorithm.get("name", "grid")
        if algo not in list_searchers():
            raise ValueError(
                f"algorithm.name: {algo!r} is not allowed; use one of {', '.join(list_searchers())}"
            )
        sched = self.scheduler.get("name", "none")
        if sched not in SCHEDULERS:
            raise ValueError(f"scheduler.name: {sched!r} is not allowed; use one of {SCHEDULERS}")
        if not self.seeds:
            raise ValueError("seeds: an empty list is not allowed; give at least one seed")
        if self.cpu < 0 or self.gpu < 0:
            raise ValueError(f"resources: cpu={self.cpu}, gpu={self.gpu}; both must be >= 0")
        if self.num_samples < 1:
            raise ValueError(f"num_samples: {self.num_samples} is not allowed; use >= 1")

    @property
    def study_name(self) -> str:
        """The Optuna study name and run directory stem, ``<study>-<profile>``."""
        return f"{self.name}-{self.profile}"

    @property
    def algorithm_name(self) -> str:
        return str(self.algorithm.get("name", "grid"))

    def plain(self) -> dict[str, Any]:
        """The resolved study as plain data (``study.yaml``); the spec itself when none is given."""
        if self.resolved:
            return self.resolved
        from dataclasses import asdict

        return asdict(self)

    def hash(self) -> str:
        """sha256 (16 hex) of the resolved study: a changed study file changes it."""
        text = json.dumps(self.plain(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=False)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return obj


def spec_from_study(study: Any) -> StudySpec:
    """Build a :class:`StudySpec` from the study helper's ``ResolvedStudy`` (or a plain dict).

    Reads ``name, profile, metric, mode, space, ablation, algorithm, num_samples, scheduler,
    seeds, failure.max_retries, resources.{cpu,gpu,max_concurrent}`` and the trainer overrides
    (``trainer_overrides`` if the object has them, else ``base`` merged with the profile).
    """
    data = _plain(study)
    resolved = data if isinstance(data, dict) else {}
    name = _get(study, "name") or resolved.get("name")
    profile = _get(study, "profile") or resolved.get("profile") or "synth"
    overrides = _get(study, "trainer_overrides")
    if callable(overrides):
        overrides = overrides()
    if overrides is None:
        merged = flatten(_plain(_get(study, "base")) or {})
        prof = _get(study, "profile_overrides")
        if prof is None:
            profiles = _plain(_get(study, "profiles")) or {}
            prof = profiles.get(profile, {}) if isinstance(profiles, dict) else {}
        merged.update(flatten(_plain(prof) or {}))
        overrides = to_overrides(merged)
    overrides = [str(o) for o in overrides]
    space = _plain(_get(study, "space")) or {}
    ablation = _plain(_get(study, "ablation"))
    rows = None
    if ablation:
        rows = {}
        for row in _get(ablation, "rows") or []:
            rows[str(_get(row, "name"))] = dict(_plain(_get(row, "set")) or {})
        if not rows and hasattr(study, "ablation_rows"):
            rows = dict(study.ablation_rows)
    algorithm = _plain(_get(study, "algorithm")) or {"name": "grid"}
    if isinstance(algorithm, str):
        algorithm = {"name": algorithm}
    scheduler = _plain(_get(study, "scheduler")) or {"name": "none"}
    if isinstance(scheduler, str):
        scheduler = {"name": scheduler}
    seeds = _get(study, "seeds") or [0]
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    failure = _plain(_get(study, "failure")) or {}
    resources = _plain(_get(study, "resources")) or {}
    epochs = None
    dataset = ""
    for o in overrides:
        key, _, value = o.partition("=")
        if key in ("trainer.epochs",):
            try:
                epochs = int(value)
            except ValueError:
                epochs = None
        if key in ("data", "data.name"):
            dataset = value
    return StudySpec(
        name=str(name),
        profile=str(profile),
        metric=str(_get(study, "metric") or "val/acc"),
        mode=str(_get(study, "mode") or "max"),
        space={k: _plain(v) for k, v in dict(space).items()},
        ablation_rows=rows,
        algorithm=dict(algorithm),
        num_samples=int(_get(study, "num_samples") or 1),
        scheduler=dict(scheduler),
        seeds=[int(s) for s in seeds],
        max_retries=int(_get(failure, "max_retries", 0) or 0),
        cpu=float(_get(resources, "cpu", 1.0) if _get(resources, "cpu") is not None else 1.0),
        gpu=float(_get(resources, "gpu", 0.0) or 0.0),
        max_concurrent=_get(resources, "max_concurrent"),
        base_overrides=overrides,
        epochs=epochs,
        dataset=dataset or "synthfer",
        resolved=resolved,
    )
