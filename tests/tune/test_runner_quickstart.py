"""``fer-study run studies/quickstart.yaml`` end to end with the real trainer (reduced size), then
``fer-study report``: both commands in this process (``study_cli``: the module's Ray session),
as ``tests/test_demo.py`` runs them as subprocesses."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
from study_cli import study_session_fixture  # noqa: F401 (the module's Ray + cache)

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "studies" / "quickstart.yaml"


def test_dry_run_prints_the_plan(capsys):
    from fer_core.tune.commands import main  # `fer-study run FILE --dry-run`, in this process

    assert main([str(QUICKSTART), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 trials" in out and "sched.lr" in out
    # the plan shows the GPUs the run would ask: --gpus-per-trial and --cpu-only change them
    paper = [str(QUICKSTART), "--dry-run", "--profile", "paper"]
    assert main([*paper, "--gpus-per-trial", "0.5"]) == 0
    assert "resources per trial: cpu 4, gpu 0.5;" in capsys.readouterr().out
    assert main([*paper, "--cpu-only"]) == 0
    out = capsys.readouterr().out
    assert "resources per trial: cpu 4, gpu 0;" in out and "--cpu-only: the study asks 1 GPU" in out


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, study_session):
    from fer_core.report.commands import main as report
    from fer_core.tune.commands import main as run

    run_dir = tmp_path / "qs"
    small = ["-o", "seeds=[0]", "-o", "trainer.epochs=1", "--num-cpus", "2"]
    small += ["-o", "data.n_train=600", "-o", "data.n_val=150", "-o", "data.n_test=150"]
    assert run([str(QUICKSTART), "--run-dir", str(run_dir), *small]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["data_hash"] and manifest["study_hash"]
    study = optuna.load_study(study_name=manifest["optuna_study"], storage=manifest["storage"])
    assert study.trials and all(t.value is not None for t in study.trials)
    with (run_dir / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(study.trials)
    assert all(r["status"] == "TERMINATED" for r in rows)
    assert all(0.0 <= float(r["best.test/acc"]) <= 1.0 for r in rows)
    trial = run_dir / rows[0]["trial_dir"]
    assert (trial / "config.yaml").is_file() and (trial / "metrics.json").is_file()
    assert list(trial.rglob("events.out.tfevents.*"))
    # (a second run into the same directory needs --resume or --new: tests/tune/test_runner.py;
    # a finished run resumed runs nothing: tests/test_demo.py)
    # ... and the study's report comes out of it: the sensitivity table over sched.lr, with
    # mean +- std over the run's seeds, in every format
    assert report([str(run_dir), "--out", str(tmp_path / "rep")]) == 0
    rep_dir = tmp_path / "rep"
    for name in ("report.md", "index.html", "tables/sensitivity.tex", "tables/sensitivity.csv"):
        assert (rep_dir / name).is_file(), name
    assert list((rep_dir / "plots").glob("sensitivity.*"))
    md = (rep_dir / "report.md").read_text()
    assert "quickstart" in md and "sched.lr" in md
    # one seed here: each (lr, warm-up) cell shows that trial's value, in percent
    for r in rows:
        assert f"{100 * float(r['best.test/acc']):.2f}" in md, r
