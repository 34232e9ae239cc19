"""``studies/gwo_lr.yaml``: the trial budget lets GWO's ``a`` fall below 1 (exploitation)."""

from __future__ import annotations

import yaml

from fer_core.tune.searchers.gwo import GWOSampler


def test_gwo_lr_reaches_exploitation(repo_root):
    study = yaml.safe_load((repo_root / "studies" / "gwo_lr.yaml").read_text())
    algo = study["algorithm"]
    sampler = GWOSampler(
        seed=algo["seed"], population_size=algo["population_size"], n_trials=study["num_samples"]
    )
    gens = {sampler.generation_of(n)[1] for n in range(study["num_samples"])}
    a = sorted(sampler.a_of(g) for g in gens if g >= 1)  # generation 0 is the random pack
    assert a[0] < 1.0, a  # |A| = |2 a r1 - a| < 1 for every r1: the pack closes in on leaders
    assert sum(sampler.a_of(g) < 1.0 for g in gens) >= 2  # more than one exploiting generation
