"""``fer-study run`` on a 2-fold study with the real trainer: Optuna sees the mean over folds,
trials.csv has every fold, and a SIGKILL mid-fold resumes (``--resume``) without re-running the
finished fold."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_resume import session_pids

from fer_core.tune.pauses import AT_ENV, DIR_ENV

REPO = Path(__file__).resolve().parents[2]
STUDY = Path(__file__).parent / "studies" / "kfold_tiny.yaml"
KILL_AT = "epoch:c0000-s0:3"  # fold 1's first epoch is checkpointed (2 epochs per fold)


def _cli(run_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "fer_core.cli", "run", str(STUDY), "--run-dir", str(run_dir)]
    return subprocess.Popen(
        [*args, "--num-cpus", "2", "--progress-interval", "1", *extra],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _best(history: list[dict], metric: str) -> float:
    return max(h[metric] for h in history if metric in h)


@pytest.mark.slow
def test_kfold_study_reports_the_fold_mean_and_resumes_mid_fold(tmp_path):
    run_dir, marks = tmp_path / "run", tmp_path / "marks"
    proc = _cli(run_dir, env={AT_ENV: KILL_AT, DIR_ENV: str(marks)})
    try:
        deadline = time.time() + 240
        while not (marks / KILL_AT).is_file():
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.time() < deadline, "the run never reached fold 1"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 30
    while session_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.5)
    assert session_pids(proc.pid) == [], "Ray processes of the killed runner remain"
    trial = run_dir / "trials" / "c0000_lr-0.001_s0"
    fold0 = trial / "fold_0" / "metrics.json"
    assert json.loads(fold0.read_text())["final"], "fold 0 had finished"
    assert (trial / "fold_1" / "checkpoints" / "last.pt").is_file()
    assert not (trial / "result.json").exists()
    stamp = fold0.stat().st_mtime_ns

    # `fer-study run --resume` in this process (its own local Ray, started and stopped by it)
    from fer_core.tune.commands import main

    args = [str(STUDY), "--run-dir", str(run_dir), "--num-cpus", "2", "--resume"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # the trials' threads, as the killed runner's
        assert main(args) == 0
    assert fold0.stat().st_mtime_ns == stamp, "the finished fold ran again"
    result = json.loads((trial / "result.json").read_text())
    assert result["resumed_from"]
    # every epoch of both folds is in the trial's history, numbered over folds
    assert [(h["fold"], h["epoch"]) for h in result["history"]] == [(0, 1), (0, 2), (1, 3), (1, 4)]

    folds = [json.loads((trial / f"fold_{i}" / "metrics.json").read_text()) for i in (0, 1)]
    best_val = [_best(f["history"], "val/acc") for f in folds]
    test_acc = [f["final"]["test/acc"] for f in folds]
    with (run_dir / "trials.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "TERMINATED"
    for i in (0, 1):
        assert float(row[f"best.fold{i}/val/acc"]) == pytest.approx(best_val[i], abs=1e-9)
        assert float(row[f"best.fold{i}/test/acc"]) == pytest.approx(test_acc[i], abs=1e-9)
    assert float(row["best.test/acc"]) == pytest.approx(sum(test_acc) / 2, abs=1e-9)
    assert "best.val/acc_std" in row and "best.test/acc_std" in row

    study = optuna.load_study(
        study_name="kfold_tiny-synth", storage=f"sqlite:///{run_dir}/optuna.db"
    )
    (t,) = study.trials
    assert t.state == TrialState.COMPLETE
    assert t.value == pytest.approx(sum(best_val) / 2, abs=1e-9)  # the mean over folds
    assert t.value == pytest.approx(float(row["best.val/acc"]), abs=1e-9)
    # Tune's last result carries the same mean, its std and each fold's value
    (tune_result,) = (run_dir / "tune" / "attempt-2").glob("*/result.json")
    last = json.loads(tune_result.read_text().strip().splitlines()[-1])
    assert last["val/acc"] == pytest.approx(t.value, abs=1e-9)
    assert {"val/acc_std", "fold0/val/acc", "fold1/val/acc", "test/acc_std"} <= set(last)
