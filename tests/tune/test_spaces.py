"""to_optuna and to_tune describe the same values on the same scale (tested against each other)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray.tune.search.sample import Categorical, Float, Integer, LogUniform, Quantized
from ray.tune.search.variant_generator import generate_variants

from fer_core.tune.spaces import conditions, to_optuna, to_tune

ENTRIES = {
    "grid": {"grid": [0.0, 0.2, 0.4]},
    "choice": {"choice": ["adamw", "adam", True]},
    "uniform": {"uniform": [0.1, 0.9]},
    "uniform_q": {"uniform": [0.0, 1.0], "q": 0.25},
    "uniform_q_offset": {"uniform": [0.05, 0.95], "q": 0.1},
    "loguniform": {"loguniform": [1.0e-5, 1.0e-2]},
    "int": {"int": [2, 5]},
    "int_q": {"int": [16, 64], "q": 16},
    "int_q_offset": {"int": [3, 20], "q": 4},
    "int_log": {"int": [1, 256], "log": True},
}


def _tune_values(domain, n: int = 300) -> list:
    if isinstance(domain, dict) and "grid_search" in domain:
        return list(domain["grid_search"])
    rng = np.random.default_rng(0)
    return [domain.sample(random_state=rng) for _ in range(n)]


def _optuna_values(name: str, dist, n: int = 300) -> list:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask({name: dist})
        out.append(trial.params[name])
        study.tell(trial, 0.0)
    return out


def _tune_contains(domain, value) -> bool:
    if isinstance(domain, dict):
        return value in domain["grid_search"]
    if isinstance(domain, Categorical):
        if isinstance(value, float):
            return any(isinstance(c, float) and abs(c - value) < 1e-9 for c in domain.categories)
        return value in domain.categories
    lo, hi = domain.lower, domain.upper
    if isinstance(domain, Integer):
        return isinstance(value, (int, np.integer)) and lo <= value < hi + (
            1 if isinstance(domain.get_sampler(), Quantized) else 0
        )
    return lo - 1e-9 <= value <= hi + 1e-9


@pytest.fixture(scope="module", autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name", list(ENTRIES))
def test_same_values_both_ways(name: str):
    entry = ENTRIES[name]
    dist = to_optuna({name: entry})[name]
    domain = to_tune({name: entry})[name]
    from_tune = _tune_values(domain)
    from_optuna = _optuna_values(name, dist)
    for v in from_tune:
        assert dist._contains(dist.to_internal_repr(v)), (name, v, dist)
    for v in from_optuna:
        assert _tune_contains(domain, v), (name, v, domain)
    # the small finite ones: the same value sets (up to float rounding)
    if isinstance(dist, CategoricalDistribution):
        assert set(map(repr, from_tune)) == set(map(repr, from_optuna))
    elif dist.step and (dist.high - dist.low) / dist.step <= 20:
        assert set(np.round(from_tune, 9).tolist()) == set(np.round(from_optuna, 9).tolist())


@pytest.mark.parametrize("name", ["loguniform", "int_log"])
def test_log_scale_on_both_sides(name: str):
    dist = to_optuna({name: ENTRIES[name]})[name]
    domain = to_tune({name: ENTRIES[name]})[name]
    assert dist.log
    assert isinstance(domain.get_sampler(), LogUniform)
    # a log scale puts about half the mass below the geometric mean
    lo, hi = ENTRIES[name].get("loguniform") or ENTRIES[name]["int"]
    mid = math.sqrt(lo * hi)
    for values in (_tune_values(domain), _optuna_values(name, dist)):
        share = np.mean(np.asarray(values) < mid)
        assert 0.35 < share < 0.65


def test_types():
    d = to_optuna(ENTRIES)
    assert isinstance(d["grid"], CategoricalDistribution)
    assert isinstance(d["uniform"], FloatDistribution) and d["uniform"].step is None
    assert d["uniform_q"].step == 0.25 and d["uniform_q_offset"].high == pytest.approx(0.95)
    assert isinstance(d["int_q"], IntDistribution) and d["int_q"].step == 16
    assert d["int_q_offset"].high == 19
    t = to_tune(ENTRIES)
    assert t["grid"] == {"grid_search": [0.0, 0.2, 0.4]}
    assert isinstance(t["uniform"], Float) and isinstance(t["uniform_q"].get_sampler(), Quantized)
    assert isinstance(t["uniform_q_offset"], Categorical)  # 0.05 is no multiple of 0.1


def test_conditional_parameters():
    space = {
        "method.decoder.enabled": {"grid": [True, False]},
        "method.uniform.tau": {"grid": [0.001, 0.01], "when": {"method.decoder.enabled": True}},
    }
    assert conditions(space) == {"method.uniform.tau": {"method.decoder.enabled": True}}
    assert set(to_optuna(space)) == set(space)
    configs = [
        cfg["config"]
        for _, cfg in itertools.islice(generate_variants({"config": to_tune(space)}), 20)
    ]
    assert len(configs) == 2
    for cfg in configs:
        if cfg["method.decoder.enabled"]:
            assert cfg["method.uniform.tau"] in (0.001, 0.01)
        else:
            assert cfg["method.uniform.tau"] is None


def test_accepts_a_resolved_study(tmp_path):
    from fer_core.study import load_study

    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "s.yaml"
    path.write_text(
        "name: s\nprofiles: {synth: {}, paper: {}}\nspace:\n  sched.lr: {grid: [0.1, 0.2]}\n"
    )
    study = load_study(path, check_knobs=False)
    assert to_optuna(study) == to_optuna(study.space)
