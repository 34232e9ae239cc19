"""A study's search space as Optuna distributions and as a Ray Tune ``param_space``.

One function each (issue 6), tested against each other (tests/tune/test_spaces.py): for every
entry both describe the same set of values on the same scale.

=====================  ==========================================  ===============================
study entry            Optuna (``to_optuna``)                      Ray Tune (``to_tune``)
=====================  ==========================================  ===============================
grid: [a, b]           CategoricalDistribution([a, b])             tune.grid_search([a, b])
choice: [a, b]         CategoricalDistribution([a, b])             tune.choice([a, b])
uniform: [lo, hi]      FloatDistribution(lo, hi)                   tune.uniform(lo, hi)
uniform + q            FloatDistribution(lo, hi', step=q)          tune.quniform / choice(values)
loguniform: [lo, hi]   FloatDistribution(lo, hi, log=True)         tune.loguniform(lo, hi)
int: [lo, hi]          IntDistribution(lo, hi)                     tune.randint(lo, hi + 1)
int + q                IntDistribution(lo, hi', step=q)            tune.qrandint / choice(values)
int + log: true        IntDistribution(lo, hi, log=True)           tune.lograndint(lo, hi + 1)
when: {k: v}           the same distribution (see ``conditions``)  tune.sample_from(...): None
                                                                   unless config[k] == v
=====================  ==========================================  ===============================

``hi'`` is the largest ``lo + n*q <= hi``. Ray quantises to multiples of ``q``, Optuna to
``lo + n*q``; where those differ (``lo`` not a multiple of ``q``) Tune gets ``choice`` over the
exact values so both sides keep the same set. Inside a conditional, a grid becomes a choice
(Tune cannot grid-search a value that may be absent). The study runner drives search through
Optuna (``to_optuna``); ``to_tune`` serves plain Tune use and the equivalence tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fer_core.study.schema import Distribution

__all__ = ["conditions", "entries", "to_optuna", "to_tune"]


def entries(space: Mapping[str, Any] | Any) -> dict[str, Distribution]:
    """Normalise a space (plain dicts, ``Distribution`` models, or a ``ResolvedStudy``)."""
    if hasattr(space, "distributions") and callable(space.distributions):
        return dict(space.distributions())
    out = {}
    for knob, entry in dict(space or {}).items():
        out[knob] = entry if isinstance(entry, Distribution) else Distribution.model_validate(entry)
    return out


def conditions(space: Mapping[str, Any] | Any) -> dict[str, dict[str, Any]]:
    """``knob -> {other knob: value}`` for conditional knobs (sampled only when all hold)."""
    return {k: dict(d.when) for k, d in entries(space).items() if d.when}


def _multiple(x: float, q: float) -> bool:
    r = x / q
    return abs(r - round(r)) < 1e-9


def _top(lo: float, hi: float, q: float) -> float:
    """Largest ``lo + n*q <= hi`` (what Optuna uses as the upper bound)."""
    n = math.floor((hi - lo) / q + 1e-9)
    return round(lo + n * q, 12)


def _optuna_one(d: Distribution) -> BaseDistribution:
    kind, value = d.kind, d.raw(d.kind)
    if kind in ("grid", "choice"):
        return CategoricalDistribution(list(value))
    lo, hi = value
    if kind == "int":
        step = int(d.q or 1)
        return IntDistribution(int(lo), int(_top(lo, hi, step)), log=d.log, step=step)
    if d.q:
        return FloatDistribution(float(lo), float(_top(lo, hi, d.q)), step=float(d.q))
    return FloatDistribution(float(lo), float(hi), log=kind == "loguniform")


def to_optuna(space: Mapping[str, Any] | Any) -> dict[str, BaseDistribution]:
    """``knob path -> optuna distribution``, in the space's order (conditions: ``conditions``)."""
    return {knob: _optuna_one(d) for knob, d in entries(space).items()}


def _tune_one(d: Distribution, *, conditional: bool = False) -> Any:
    from ray import tune

    kind, value = d.kind, d.raw(d.kind)
    if kind == "grid":
        return tune.choice(list(value)) if conditional else tune.grid_search(list(value))
    if kind == "choice":
        return tune.choice(list(value))
    lo, hi = value
    if kind == "int":
        if d.log:
            return tune.lograndint(int(lo), int(hi) + 1)
        if d.q and d.q != 1:
            if _multiple(lo, d.q):
                return tune.qrandint(int(lo), int(_top(lo, hi, d.q)), int(d.q))
            return tune.choice(d.grid_values())
        return tune.randint(int(lo), int(hi) + 1)
    if d.q:
        if _multiple(lo, d.q):
            return tune.quniform(float(lo), float(_top(lo, hi, d.q)), float(d.q))
        return tune.choice(d.grid_values())
    if kind == "loguniform":
        return tune.loguniform(float(lo), float(hi))
    return tune.uniform(float(lo), float(hi))


class _When:
    """``tune.sample_from`` body: sample ``domain`` when the conditions hold, else None."""

    def __init__(self, domain: Any, when: dict[str, Any]) -> None:
        self.domain = domain
        self.when = when

    def __call__(self, spec: Any) -> Any:
        # Attribute access on Tune's guard raises RecursiveDependencyError while the parent
        # is unresolved, so Tune resolves parents first.
        config = spec.config if hasattr(spec, "config") else spec
        for key, want in self.when.items():
            if getattr(config, key) != want:
                return None
        return self.domain.sample()

    def __repr__(self) -> str:
        return f"when({self.when}) -> {self.domain}"


def to_tune(space: Mapping[str, Any] | Any) -> dict[str, Any]:
    """``knob path -> Ray Tune domain`` (a ``param_space``; dotted knob paths stay flat keys)."""
    from ray import tune

    out: dict[str, Any] = {}
    for knob, d in entries(space).items():
        if d.when:
            out[knob] = tune.sample_from(_When(_tune_one(d, conditional=True), dict(d.when)))
        else:
            out[knob] = _tune_one(d)
    return out
