"""Resume after SIGKILL of the runner's whole process group: nothing lost, nothing duplicated."""

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

from fer_core.tune.runner import StudyChangedError, run_study
from fer_core.tune.spec import StudySpec

DRIVER = """
import sys
from fer_core.tune.runner import run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN
spec = StudySpec(
    name="resume", space={"synthetic.x1": {"grid": [0.1, 0.3, 0.5, 0.7]}}, seeds=[0, 1],
    base_overrides=["trainer.epochs=4", "synthetic.epoch_s=0.6"], max_concurrent=2, epochs=4,
)
res = run_study(
    spec, sys.argv[1], train_fn=SYNTHETIC_TRAIN_FN, resume=sys.argv[2] == "resume",
    progress_interval=1,
    ray_init_kwargs={"num_cpus": 2, "object_store_memory": 200 * 2**20},
)
sys.exit(130 if res.interrupted else 0)
"""


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.csv"
    if not path.is_file():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def session_pids(sid: int) -> list[int]:
    """Live processes whose session or process group is ``sid`` (zombies excluded)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        state, pgrp, session = fields[0], int(fields[2]), int(fields[3])
        if state != "Z" and sid in (pgrp, session):
            out.append(int(entry.name))
    return out


def _in_progress(run_dir: Path) -> list[Path]:
    return [
        d
        for d in (run_dir / "trials").glob("c*")
        if (d / "checkpoints" / "last.pt").is_file() and not (d / "result.json").is_file()
    ]


@pytest.mark.slow
def test_kill_then_resume_loses_and_duplicates_nothing(tmp_path):
    run_dir = tmp_path / "run"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), "first"],
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            done = [r for r in _rows(run_dir) if r["status"] == "TERMINATED"]
            if len(done) >= 2 and _in_progress(run_dir):
                break
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("the study never reached the kill point")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 30
    while session_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.5)
    assert session_pids(proc.pid) == [], "Ray processes of the killed runner remain"

    before = _rows(run_dir)
    assert any(r["status"] in ("RUNNING", "PENDING") for r in before)
    storage = f"sqlite:///{run_dir}/optuna.db"
    killed = optuna.load_study(study_name="resume-synth", storage=storage)
    assert any(t.state == TrialState.RUNNING for t in killed.trials)

    out = subprocess.run(
        [sys.executable, str(script), str(run_dir), "resume"],
        start_new_session=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    study = optuna.load_study(study_name="resume-synth", storage=storage)
    assert len(study.trials) == 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert sorted(t.params["synthetic.x1"] for t in study.trials) == [0.1, 0.3, 0.5, 0.7]
    rows = _rows(run_dir)
    keys = [(r["config_id"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == 8
    assert all(r["status"] == "TERMINATED" for r in rows)
    # rows finished before the kill are kept as they were (not re-run)
    kept = {(r["config_id"], r["seed"]): r for r in before if r["status"] == "TERMINATED"}
    now = {(r["config_id"], r["seed"]): r for r in rows}
    assert all(now[k]["tune_trial_id"] == r["tune_trial_id"] for k, r in kept.items())
    resumed = [
        json.loads(p.read_text()).get("resumed_from")
        for p in (run_dir / "trials").glob("*/result.json")
    ]
    assert any(resumed), "no unfinished trial continued from its checkpoint"
    assert (run_dir / "tune" / "attempt-2").is_dir()
    for t in study.trials:
        vals = [float(now[(str(t.number), s)]["best.val/acc"]) for s in ("0", "1")]
        assert t.value == pytest.approx(sum(vals) / 2)


def test_resume_refuses_a_changed_study(tmp_path):
    spec = StudySpec(name="chg", space={"synthetic.x1": {"grid": [0.1]}}, seeds=[0])
    from fer_core.tune.manifest import write_study_yaml

    write_study_yaml(tmp_path, spec)
    changed = StudySpec(name="chg", space={"synthetic.x1": {"grid": [0.1, 0.2]}}, seeds=[0, 1])
    with pytest.raises(StudyChangedError) as err:
        run_study(changed, tmp_path, resume=True)
    assert "seeds" in str(err.value) and "space.synthetic.x1.grid" in str(err.value)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.replace("synthetic.epoch_s=0.6", "synthetic.epoch_s=1.0"))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), "first"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"),
    )
    try:
        deadline = time.time() + 120
        while not _in_progress(run_dir) and time.time() < deadline:
            assert proc.poll() is None
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out[-3000:]
    assert "--resume" in out
    rows = _rows(run_dir)
    assert not any(r["status"] in ("PRUNED", "ERROR") for r in rows), rows
    study = optuna.load_study(study_name="resume-synth", storage=f"sqlite:///{run_dir}/optuna.db")
    assert all(t.state in (TrialState.RUNNING, TrialState.COMPLETE) for t in study.trials)
    deadline = time.time() + 30
    while session_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.5)
    assert session_pids(proc.pid) == []
