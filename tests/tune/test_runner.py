"""The study runner with real Ray Tune and real Optuna, on the synthetic train function."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
import ray
from optuna.trial import TrialState

from fer_core.tune.runner import NoGPUError, run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        log_to_driver=False,
        runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0", "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


def _rows(run_dir):
    with (run_dir / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def _run(spec, run_dir, **kw):
    return run_study(spec, run_dir, train_fn=SYNTHETIC_TRAIN_FN, progress_interval=1, **kw)


def test_grid_study_with_an_errored_trial_goes_on(tmp_path):
    spec = StudySpec(
        name="grid",
        space={"synthetic.x1": {"grid": [0.2, 0.5]}, "synthetic.nan": {"grid": [-1, 1]}},
        seeds=[0, 1],
        base_overrides=["trainer.epochs=2"],
        max_retries=1,
        max_concurrent=2,
    )
    res = _run(spec, tmp_path)
    assert not res.interrupted
    assert res.counts["TERMINATED"] == 4 and res.counts["ERROR"] == 4
    study = optuna.load_study(study_name="grid-synth", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.trials) == 4
    by_state = {}
    for t in study.trials:
        by_state.setdefault(t.state, []).append(t)
        assert t.user_attrs["seeds"] == [0, 1]
    assert len(by_state[TrialState.COMPLETE]) == 2 and len(by_state[TrialState.FAIL]) == 2
    best = study.best_trial
    assert best.params["synthetic.x1"] == 0.5
    rows = _rows(tmp_path)
    assert len(rows) == 8
    assert {(r["config_id"], r["seed"]) for r in rows} == {
        (str(c), str(s)) for c in range(4) for s in (0, 1)
    }
    errored = [r for r in rows if r["status"] == "ERROR"]
    assert all("NaN" in r["error"] for r in errored)
    ok = [r for r in rows if r["status"] == "TERMINATED"]
    assert all(r["epochs"] == "2" and float(r["best.val/acc"]) > 0 for r in ok)
    assert {"param.synthetic.x1", "final.val/acc", "best.test/acc"} <= set(rows[0])
    # the value told to Optuna is the seed mean of best.val/acc
    for t in by_state[TrialState.COMPLETE]:
        vals = [float(r["best.val/acc"]) for r in ok if r["optuna_trial"] == str(t.number)]
        assert t.value == pytest.approx(sum(vals) / 2)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["optuna_study"] == "grid-synth" and manifest["study_hash"] == spec.hash()
    assert {"git_commit", "versions", "hardware", "data_hash", "command"} <= set(manifest)
    assert (tmp_path / "study.yaml").is_file() and (tmp_path / "tune" / "attempt-1").is_dir()
    for r in ok:
        assert (tmp_path / r["trial_dir"] / "result.json").is_file()


def test_asha_prunes_and_optuna_records_pruned(tmp_path):
    spec = StudySpec(
        name="asha",
        space={
            "synthetic.x1": {"grid": [0.5, 0.8, 0.2, 0.0]}
        },  # best first: later, worse configs meet a filled rung (grids run in this order)
        seeds=[0],
        base_overrides=["trainer.epochs=4", "synthetic.epoch_s=0.3"],
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        epochs=4,
        max_concurrent=2,
    )
    res = _run(spec, tmp_path)
    assert res.counts["TERMINATED"] + res.counts["PRUNED"] == 4
    assert res.counts["PRUNED"] >= 1
    study = optuna.load_study(study_name="asha-synth", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == res.counts["PRUNED"]
    pruned = [r for r in _rows(tmp_path) if r["status"] == "PRUNED"]
    assert all(int(r["epochs"]) < 4 for r in pruned)


def test_gpu_study_on_a_machine_without_gpus_stops(tmp_path):
    spec = StudySpec(name="gpu", space={"synthetic.x1": {"grid": [0.5]}}, gpu=1)
    with pytest.raises(NoGPUError, match="--cpu-only"):
        _run(spec, tmp_path)
    res = _run(spec, tmp_path / "cpu", cpu_only=True)
    assert res.counts["TERMINATED"] == 1


def test_cli_run_new_and_resume(tmp_path, monkeypatch, capsys):
    from fer_core.tune import commands

    spec = StudySpec(
        name="cli", space={"synthetic.x1": {"grid": [0.5]}}, base_overrides=["trainer.epochs=1"]
    )
    monkeypatch.setattr(commands, "load_spec", lambda *a: (None, spec))
    run_dir = tmp_path / "cli-synth"
    base = ["study.yaml", "--run-dir", str(run_dir), "--train-fn", SYNTHETIC_TRAIN_FN]
    assert commands.main(base) == 0
    assert commands.main(base) == 1
    assert "--resume" in capsys.readouterr().err
    assert commands.main([*base, "--resume"]) == 0
    assert len(_rows(run_dir)) == 1
    assert commands.main([*base, "--new"]) == 0
    assert (tmp_path / "cli-synth-2" / "trials.csv").is_file()
    assert commands.main([*base, "--new", "--gpus-per-trial", "1"]) == 1
    assert "--cpu-only" in capsys.readouterr().err
