"""The ask/tell seed-group searcher, driven by hand (no Ray trials): real Optuna, real files."""

from __future__ import annotations

import inspect
import json

import optuna
import pytest
from optuna.trial import TrialState
from pydantic import ValidationError

from fer_core.study.schema import Algorithm
from fer_core.tune.results import ResultBook, trial_dirname
from fer_core.tune.searcher import SeedGroupSearcher
from fer_core.tune.searchers import SEARCHERS, list_searchers, searcher_options
from fer_core.tune.spec import StudySpec
from fer_core.tune.storage import (
    conditions,
    default_storage_url,
    make_sampler,
    num_configs,
    open_study,
    to_distributions,
)

SPACE = {"synthetic.x1": {"grid": [0.1, 0.5, 0.9]}}


def _searcher(tmp_path, spec: StudySpec) -> SeedGroupSearcher:
    dists = to_distributions(spec)
    study = open_study(spec, default_storage_url(tmp_path), dists)
    book = ResultBook(tmp_path / "trials.csv")
    return SeedGroupSearcher(
        study,
        dists,
        conditions(spec),
        spec.seeds,
        num_configs(spec, dists),
        spec.metric,
        spec.mode,
        book,
        tmp_path,
        meta={"profile": spec.profile},
    )


def _finish(s: SeedGroupSearcher, tid: str, values: list[float], done: bool = True, error=False):
    cfg = s.live[tid]
    for epoch, v in enumerate(values, 1):
        s.on_trial_result(tid, {"val/acc": v, "train/loss": 1 - v, "epoch": epoch})
    if done:
        tdir = s.run_dir / "trials" / trial_dirname(*cfg, s.groups[cfg[0]].params)
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / "result.json").write_text(json.dumps({"metrics": {"test/acc": 0.5}, "wall_s": 1}))
    s.on_trial_complete(tid, result=None, error=error)


def test_grid_seed_groups_tell_the_mean(tmp_path):
    spec = StudySpec(name="g", space=SPACE, seeds=[0, 1])
    s = _searcher(tmp_path, spec)
    configs = []
    n = 0
    while (cfg := s.suggest(f"t{n}")) != "FINISHED":
        configs.append(cfg)
        _finish(s, f"t{n}", [0.2, 0.4 + 0.1 * cfg["seed"]])
        n += 1
    assert n == 6
    assert sorted({c["params"]["synthetic.x1"] for c in configs}) == [0.1, 0.5, 0.9]
    study = optuna.load_study(study_name="g-synth", storage=default_storage_url(tmp_path))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert all(t.value == pytest.approx(0.45) for t in study.trials)
    assert study.trials[0].user_attrs["tune_trial_ids"] == {"0": "t0", "1": "t1"}
    assert len(study.trials[0].intermediate_values) == 2
    rows = ResultBook(tmp_path / "trials.csv").rows
    assert len(rows) == 6
    assert rows[(0, 1)]["best.test/acc"] == "0.5" and rows[(0, 1)]["status"] == "TERMINATED"


def test_pruned_and_errored_seeds(tmp_path):
    spec = StudySpec(name="p", space=SPACE, seeds=[0, 1])
    s = _searcher(tmp_path, spec)
    s.suggest("a"), s.suggest("b")
    _finish(s, "a", [0.3, 0.5])
    _finish(s, "b", [0.3], done=False)  # stopped by a scheduler: no result.json
    s.suggest("c"), s.suggest("d")
    _finish(s, "c", [0.3, 0.5])
    _finish(s, "d", [0.1], done=False, error=True)
    trials = s.study.trials
    assert trials[0].state == TrialState.PRUNED
    assert trials[0].value == pytest.approx((0.5 + 0.3) / 2)
    assert trials[1].state == TrialState.FAIL
    book = ResultBook(tmp_path / "trials.csv")
    assert book.status(0, 1) == "PRUNED" and book.status(1, 1) == "ERROR"


def test_reconcile_finishes_a_stale_running_trial_once(tmp_path):
    spec = StudySpec(name="r", space=SPACE, seeds=[0, 1])
    s = _searcher(tmp_path, spec)
    s.suggest("a"), s.suggest("b")
    _finish(s, "a", [0.6])
    # the driver dies here: Optuna trial 0 RUNNING, seed 1 PENDING in trials.csv
    s2 = _searcher(tmp_path, spec)
    assert list(s2.queue) == [(0, 1)]
    cfg = s2.suggest("b2")
    assert (cfg["config_id"], cfg["seed"]) == (0, 1)
    _finish(s2, "b2", [0.8])
    while s2.suggest(f"n{len(s2.study.trials)}{len(s2.live)}") != "FINISHED":
        _finish(s2, next(iter(s2.live)), [0.5])
    study = optuna.load_study(study_name="r-synth", storage=default_storage_url(tmp_path))
    assert len(study.trials) == 3
    assert study.trials[0].value == pytest.approx(0.7)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(ResultBook(tmp_path / "trials.csv").rows) == 6
    # a third start has nothing left to run and tells nobody twice
    s3 = _searcher(tmp_path, spec)
    assert s3.suggest("z") == "FINISHED"


def test_reconcile_tells_a_group_whose_seeds_all_finished(tmp_path):
    spec = StudySpec(name="t", space=SPACE, seeds=[0])
    s = _searcher(tmp_path, spec)
    s.suggest("a")
    s.book.update(0, 0, status="TERMINATED", **{"best.val/acc": 0.9})  # row written, tell lost
    s2 = _searcher(tmp_path, spec)
    assert s2.study.trials[0].state == TrialState.COMPLETE
    assert s2.study.trials[0].value == pytest.approx(0.9)


@pytest.mark.parametrize("algo", list_searchers())
def test_every_sampler_runs_a_small_search(tmp_path, algo):
    if algo == "grid":  # 2 x 3 values
        space = {"synthetic.x1": {"grid": [0.0, 0.5]}, "synthetic.x2": {"grid": [0.2, 0.5, 0.8]}}
    else:
        space = {"synthetic.x1": {"uniform": [0.0, 1.0]}, "synthetic.x2": {"uniform": [0.0, 1.0]}}
    spec = StudySpec(name=algo, space=space, algorithm={"name": algo, "seed": 1}, num_samples=6)
    s = _searcher(tmp_path, spec)
    n = 0
    while (cfg := s.suggest(f"t{n}")) != "FINISHED":
        x = cfg["params"]
        _finish(s, f"t{n}", [1 - (x["synthetic.x1"] - 0.5) ** 2 - (x["synthetic.x2"] - 0.5) ** 2])
        n += 1
    assert n == 6
    assert all(t.state == TrialState.COMPLETE for t in s.study.trials)


@pytest.mark.parametrize("algo", list_searchers())
def test_study_schema_spec_and_runner_share_the_registry(algo):
    """Every registered searcher is a valid ``algorithm.name`` for the schema and the runner."""
    assert Algorithm.model_validate({"name": algo, "seed": 3}).name == algo
    spec = StudySpec(name="x", space=SPACE, algorithm={"name": algo, "seed": 3}, num_samples=2)
    sampler = make_sampler(spec, to_distributions(spec))
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    assert set(searcher_options(algo)) <= set(inspect.signature(SEARCHERS.get(algo)).parameters)


def test_unknown_searcher_names_the_value_and_the_choices():
    with pytest.raises(
        ValidationError, match="'tpee'.*allowed: cmaes, gp, grid.*Did you mean 'tpe'"
    ):
        Algorithm.model_validate({"name": "tpee"})
    with pytest.raises(ValueError, match="algorithm.name: 'tpee' is not allowed; use one of cmaes"):
        StudySpec(name="x", algorithm={"name": "tpee"})


def test_conditional_parameters_and_ablation_rows(tmp_path):
    spec = StudySpec(
        name="c",
        space={
            "method.decoder.enabled": {"grid": [True, False]},
            "method.decoder.depth": {"grid": [1], "when": {"method.decoder.enabled": True}},
        },
        algorithm={"name": "random"},
        num_samples=8,
    )
    s = _searcher(tmp_path, spec)
    for i in range(8):
        p = s.suggest(f"t{i}")["params"]
        assert ("method.decoder.depth" in p) == p["method.decoder.enabled"]
        _finish(s, f"t{i}", [0.5])
    abl = StudySpec(name="a", ablation_rows={"vanilla": {"method.x": 0}, "full": {}})
    (tmp_path / "abl").mkdir()
    s = _searcher(tmp_path / "abl", abl)
    assert sorted(s.suggest(f"r{i}")["params"]["row"] for i in range(2)) == ["full", "vanilla"]


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match="algorithm.name"):
        StudySpec(name="x", algorithm={"name": "bayes"})
    with pytest.raises(ValueError, match="scheduler.name"):
        StudySpec(name="x", scheduler={"name": "pbt"})
    spec = StudySpec(name="x", space={"a": {"uniform": [0, 1]}})
    with pytest.raises(ValueError, match="space.a"):
        make_sampler(spec, to_distributions(spec))
