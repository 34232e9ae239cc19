"""GWOSampler: reference value H, search quality, parallel/failed trials, resume, Ray Tune."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from fer_core.tune.searchers import create_searcher, list_searchers
from fer_core.tune.searchers._coords import Coder
from fer_core.tune.searchers.gwo import GWOSampler, coefficient_a, gwo_record, gwo_step

optuna.logging.set_verbosity(optuna.logging.WARNING)

H_VALUE = 0.8914667  # REFERENCE_VALUES.md row H
H_R1 = (0.25, 0.5, 0.9)  # alpha, beta, delta
H_R2 = (0.75, 0.5, 0.1)


def _sphere(trial: optuna.Trial, dim: int = 5) -> float:
    return sum(trial.suggest_float(f"x{i}", -5.0, 5.0) ** 2 for i in range(dim))


def _best(sampler: optuna.samplers.BaseSampler, n: int, objective=_sphere) -> float:
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=n)
    return study.best_value


# ------------------------------------------------------------------ the formula


def test_reference_value_h_one_step():
    a = coefficient_a(3, 10)
    assert a == pytest.approx(1.4, abs=1e-12)
    new = gwo_step([0.5], [[1.0], [0.8], [0.6]], a, H_R1, H_R2)
    assert new[0] == pytest.approx(H_VALUE, abs=1e-6)


def test_reference_value_h_through_the_sampler(monkeypatch):
    """Trial 16 = wolf 0 of generation 4 (t = 3, T = 10), moving from trial 12 at x = 0.5."""
    sampler = GWOSampler(seed=0, population_size=4, n_generations=10)
    r = np.array([0.0, *H_R1, *H_R2])
    monkeypatch.setattr(sampler, "_uniforms", lambda number, name: r)
    study = optuna.create_study(sampler=sampler)
    leaders = {1.0: 0.0, 0.8: 1.0, 0.6: 2.0}
    xs = [-0.9 + 0.1 * i for i in range(16)]
    xs[3], xs[7], xs[9], xs[12] = 1.0, 0.8, 0.6, 0.5
    for x in xs:  # enqueued trials are wolves too, at their params
        study.enqueue_trial({"x": x})
    study.optimize(lambda t: leaders.get(t.suggest_float("x", -1.0, 1.0), 10.0), n_trials=16)
    trial = study.ask()
    assert trial.number == 16
    assert trial.suggest_float("x", -1.0, 1.0) == pytest.approx(H_VALUE, abs=1e-6)
    record = gwo_record(study._storage.get_trial(trial._trial_id))
    assert record["leaders"] == [3, 7, 9] and record["wolf"] == 0
    assert record["generation"] == 4 and record["a"] == pytest.approx(1.4)
    assert study._storage.get_trial(trial._trial_id).user_attrs["gwo"]["leaders"] == [3, 7, 9]


@pytest.mark.parametrize(
    "dist, values",
    [
        (optuna.distributions.FloatDistribution(-5.0, 5.0), [-5.0, -1.25, 0.0, 5.0]),
        (optuna.distributions.FloatDistribution(1e-6, 1e-2, log=True), [1e-6, 1e-4, 1e-2]),
        (optuna.distributions.FloatDistribution(0.0, 0.5, step=0.1), [0.0, 0.2, 0.5]),
        (optuna.distributions.IntDistribution(1, 12), [1, 7, 12]),
        (optuna.distributions.IntDistribution(8, 512, log=True), [8, 64, 512]),
        (optuna.distributions.CategoricalDistribution(["a", "b", "c"]), ["a", "b", "c"]),
    ],
)
def test_coordinates_round_trip_and_centre(dist, values):
    coder = Coder(dist)
    for v in values:
        assert coder.decode(coder.encode(v)) == pytest.approx(v) and -1 <= coder.encode(v) <= 1
    if isinstance(dist, optuna.distributions.FloatDistribution) and not dist.step:
        mid = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
        assert coder.decode(0.0) == pytest.approx(mid)  # the origin is the centre of the range


def test_categorical_positions_are_equal_width_bins():
    coder = Coder(optuna.distributions.CategoricalDistribution(["a", "b", "c", "d"]))
    zs = np.linspace(-1, 1, 4001)
    counts = {c: sum(coder.decode(z) == c for z in zs) for c in "abcd"}
    assert max(counts.values()) - min(counts.values()) <= 2


# ------------------------------------------------------------------ search behaviour


def test_reproducible_under_a_seed_and_order_free():
    def params(seed: int, reverse: bool = False) -> list[dict]:
        def obj(t: optuna.Trial) -> float:
            names = ["b", "a"] if reverse else ["a", "b"]
            v = {n: t.suggest_float(n, -3.0, 3.0) for n in names}
            return (v["a"] - 1) ** 2 + v["b"] ** 2

        study = optuna.create_study(sampler=GWOSampler(seed=seed, population_size=4, n_trials=24))
        study.optimize(obj, n_trials=24)
        return [t.params for t in study.trials]

    first = params(3)
    assert first == params(3)
    assert first == params(3, reverse=True)  # random numbers are keyed by parameter name
    assert first != params(4)


def test_relative_and_independent_paths_agree(monkeypatch):
    ref = GWOSampler(seed=1, population_size=5, n_trials=30)
    indep = GWOSampler(seed=1, population_size=5, n_trials=30)
    monkeypatch.setattr(indep, "infer_relative_search_space", lambda study, trial: {})
    runs = []
    for sampler in (ref, indep):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: _sphere(t, 3), n_trials=30)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_sphere_5d_beats_random_search():
    gwo = [_best(GWOSampler(seed=s, n_trials=150), 150) for s in range(7)]
    rnd = [_best(optuna.samplers.RandomSampler(seed=s), 150) for s in range(7)]
    assert np.median(gwo) <= 0.04
    assert np.median(gwo) <= 0.1 * np.median(rnd)


def test_categorical_int_and_log_parameters():
    def obj(t: optuna.Trial) -> float:
        lr = t.suggest_float("lr", 1e-6, 1e-2, log=True)
        depth = t.suggest_int("depth", 1, 12)
        width = t.suggest_int("width", 8, 512, log=True)
        drop = t.suggest_float("drop", 0.0, 0.5, step=0.1)
        act = t.suggest_categorical("act", ["relu", "gelu", "silu", "tanh"])
        return (
            (math.log10(lr) + 4) ** 2
            + (depth - 7) ** 2 / 10
            + (math.log2(width) - 6) ** 2 / 10
            + (drop - 0.2) ** 2
            + (act != "silu")
        )

    study = optuna.create_study(sampler=GWOSampler(seed=0, population_size=6, n_trials=90))
    study.optimize(obj, n_trials=90)
    for t in study.trials:
        assert isinstance(t.params["depth"], int) and 1 <= t.params["depth"] <= 12
        assert isinstance(t.params["width"], int) and 8 <= t.params["width"] <= 512
        assert t.params["act"] in ("relu", "gelu", "silu", "tanh")
        assert 1e-6 <= t.params["lr"] <= 1e-2
        assert min(abs(t.params["drop"] - k / 10) for k in range(6)) < 1e-9
        # lr moves in log space: the stored coordinate is the position on log(lr)
        z = gwo_record(t)["z"]["lr"]
        expect = math.exp(math.log(1e-6) + (z + 1) / 2 * (math.log(1e-2) - math.log(1e-6)))
        assert t.params["lr"] == pytest.approx(expect, rel=1e-9)
    assert {t.params["act"] for t in study.trials} == {"relu", "gelu", "silu", "tanh"}
    best = study.best_params
    assert best["act"] == "silu" and study.best_value < 0.6


# ------------------------------------------------------------------ parallel, failed, pruned


def test_ask_tell_two_in_flight_with_failures_and_pruning():
    """Every score goes to the trial that produced it; leaders are the best three told so far."""
    n_pop = 5
    study = optuna.create_study(sampler=GWOSampler(seed=2, population_size=n_pop, n_trials=60))
    told: dict[int, float] = {}
    in_flight: list[tuple[optuna.Trial, dict]] = []
    for step in range(60):
        trial = study.ask()
        x = [trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(3)]
        expected = sorted(told, key=lambda n: (told[n], n))[:3]
        record = gwo_record(study._storage.get_trial(trial._trial_id))
        assert record["leaders"] == expected
        assert (record["wolf"], record["generation"]) == divmod(trial.number, n_pop)[::-1]
        in_flight.append((trial, {"x": x}))
        if len(in_flight) < 2 and step < 59:
            continue
        # finish the older of the two in flight, so asks and tells interleave
        done, payload = in_flight.pop(0)
        if done.number % 7 == 3:
            study.tell(done, state=TrialState.FAIL)
        elif done.number % 11 == 5:
            done.report(1.0, step=0)
            study.tell(done, state=TrialState.PRUNED)
        else:
            value = float(sum(v * v for v in payload["x"]))
            study.tell(done, value)
            told[done.number] = value
    for trial, payload in in_flight:
        study.tell(trial, float(sum(v * v for v in payload["x"])))
        told[trial.number] = float(sum(v * v for v in payload["x"]))
    complete = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
    assert complete == told
    assert all(t.state.is_finished() for t in study.trials)
    assert min(told.values()) < 1.0


def test_two_parallel_workers_with_injected_failures():
    sampler = GWOSampler(seed=5, population_size=6, n_trials=60)
    study = optuna.create_study(sampler=sampler)
    rng = random.Random(0)
    returned: list[float] = []

    def flaky(trial: optuna.Trial) -> float:
        value = _sphere(trial, 3)
        if rng.random() < 0.2:
            raise RuntimeError("injected failure")
        returned.append(value)
        return value

    study.optimize(flaky, n_trials=60, n_jobs=2, catch=(RuntimeError,))
    trials = study.trials
    assert len(trials) == 60 and all(t.state.is_finished() for t in trials)
    complete = sorted(t.value for t in trials if t.state == TrialState.COMPLETE)
    assert complete == sorted(returned)
    assert any(t.state == TrialState.FAIL for t in trials)
    by_number = {t.number: t for t in trials}
    for t in trials:
        record = gwo_record(t)
        assert (record["wolf"], record["generation"]) == (t.number % 6, t.number // 6)
        assert set(record["z"]) == {"x0", "x1", "x2"}
        for n in record["leaders"]:
            assert by_number[n].state == TrialState.COMPLETE and n < t.number
    assert sampler._contexts == {}


@pytest.mark.parametrize("use_pruned, leaders", [(False, [0, 1, 3]), (True, [2, 0, 1])])
def test_pruned_trials_lead_only_when_allowed(use_pruned, leaders):
    study = optuna.create_study(
        sampler=GWOSampler(seed=0, population_size=3, use_pruned=use_pruned)
    )
    for value in (5.0, 6.0, None, 7.0):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        if value is None:
            trial.report(0.1, step=1)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    trial = study.ask()
    assert gwo_record(study._storage.get_trial(trial._trial_id))["leaders"] == leaders


# ------------------------------------------------------------------ resume, plumbing, settings


def test_resume_from_storage_continues_exactly(tmp_path):
    def obj(t: optuna.Trial) -> float:
        return _sphere(t, 2) + (t.suggest_categorical("c", ["p", "q", "r"]) != "q")

    full = optuna.create_study(sampler=GWOSampler(seed=9, population_size=4, n_trials=14))
    full.optimize(obj, n_trials=14)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = optuna.create_study(
        study_name="s", storage=url, sampler=GWOSampler(seed=9, population_size=4, n_trials=14)
    )
    first.optimize(obj, n_trials=7)
    resumed = optuna.load_study(
        study_name="s", storage=url, sampler=GWOSampler(seed=9, population_size=4, n_trials=14)
    )
    resumed.optimize(obj, n_trials=7)
    assert [t.params for t in resumed.trials] == [t.params for t in full.trials]


def test_a_remade_trial_keeps_the_leaders_it_was_asked_with():
    study = optuna.create_study(sampler=GWOSampler(seed=0, population_size=3, n_trials=12))
    study.optimize(lambda t: _sphere(t, 2), n_trials=8)
    trial = study.ask()
    x0 = trial.suggest_float("x0", -5.0, 5.0)
    before = gwo_record(study._storage.get_trial(trial._trial_id))
    study.tell(study.ask(), -1.0)  # a new best arrives meanwhile
    study.sampler = pickle.loads(pickle.dumps(study.sampler))  # Ray's searcher checkpoint
    again = optuna.Trial(study, trial._trial_id)  # the runner re-makes trials to tell them
    assert again.suggest_float("x0", -5.0, 5.0) == x0
    again.suggest_float("x1", -5.0, 5.0)
    after = gwo_record(study._storage.get_trial(trial._trial_id))
    assert after["leaders"] == before["leaders"] and 9 not in after["leaders"]
    assert after["z"]["x0"] == before["z"]["x0"]


def test_plain_optuna_and_registry_and_pickle():
    study = optuna.create_study(sampler=GWOSampler(seed=0), direction="maximize")
    study.optimize(lambda t: -abs(t.suggest_float("x", -1, 1)), n_trials=25)
    assert study.best_value > -0.2
    assert "gwo" in list_searchers()
    sampler = create_searcher("gwo", seed=1, population_size=5, n_trials=20)
    clone = pickle.loads(pickle.dumps(sampler))
    assert (clone.seed, clone.population_size, clone.n_generations) == (1, 5, 4)
    assert GWOSampler(population_size=5, n_trials=20, n_generations=7).n_generations == 7


def test_the_gwo_lr_study_file_builds_it_with_its_budget(repo_root):
    """studies/gwo_lr.yaml -> the runner's sampler; a stand-in objective peaked at Table 16."""
    from fer_core.study import load_study
    from fer_core.tune.spec import spec_from_study
    from fer_core.tune.storage import make_sampler, sample_config, to_distributions

    spec = spec_from_study(load_study(repo_root / "studies/gwo_lr.yaml", profile="synth"))
    dists = to_distributions(spec)
    sampler = make_sampler(spec, dists)
    assert isinstance(sampler, GWOSampler)
    assert sampler.n_generations * sampler.population_size == spec.num_samples
    assert all(d.log for d in dists.values())
    table16 = {"sched.lr": 1.23e-4, "sched.min_lr": 3.29e-5, "sched.warmup_lr": 3.69e-5}
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for _ in range(spec.num_samples):
        trial = study.ask()
        cfg = sample_config(trial, dists, {})
        study.tell(
            trial, -sum((math.log10(cfg[k]) - math.log10(v)) ** 2 for k, v in table16.items())
        )
    first_pack = max(t.value for t in study.trials[: sampler.population_size])
    assert study.best_value > first_pack


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"population_size": 1}, "population_size"),
        ({"n_generations": 0}, "n_generations"),
        ({"n_trials": -1}, "n_trials"),
        ({"n_trials": 0, "n_generations": 2}, "n_trials"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_settings_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        GWOSampler(**kwargs)


def test_multi_objective_is_rejected():
    study = optuna.create_study(sampler=GWOSampler(seed=0), directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="multi-objective"):
        study.ask()


@pytest.mark.slow
def test_through_ray_tune_optuna_search():
    ray = pytest.importorskip("ray")
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    def trainable(config: dict) -> None:
        tune.report({"loss": (math.log10(config["lr"]) + 4) ** 2 + config["k"]})

    # address="local": never attach to a cluster someone started with `ray start` on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2)
    try:
        searcher = OptunaSearch(
            space={
                "lr": optuna.distributions.FloatDistribution(1e-6, 1e-2, log=True),
                "k": optuna.distributions.IntDistribution(0, 3),
            },
            sampler=GWOSampler(seed=0, population_size=2, n_trials=4),
            metric="loss",
            mode="min",
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher, num_samples=4, max_concurrent_trials=2, reuse_actors=True
            ),
        )
        results = tuner.fit()
        assert len(results) == 4 and not results.errors
        trials = searcher._ot_study.trials
        assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
        records = [gwo_record(t) for t in trials]
        assert [(r["wolf"], r["generation"]) for r in records] == [(0, 0), (1, 0), (0, 1), (1, 1)]
        # a new trial starts only when one has finished, so generation 1 has leaders to follow
        assert all(r["leaders"] for r in records[2:])
    finally:
        ray.shutdown()
