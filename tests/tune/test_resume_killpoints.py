"""Resume after a SIGKILL at any instant (issue 15): a sweep over named kill points.

Each case runs a small synthetic study in a runner process of its own session, holds it at a
pause point (``fer_core/tune/pauses.py``: no racing sleeps), SIGKILLs the runner's process group,
then ``--resume``s until the study is complete and compares everything with an uninterrupted run.
The runners share one Ray cluster per module (``--address``) and the last resume of each case runs
in this process, to keep Ray's start-up out of each run; ``test_kfold_study.py`` kills a runner
that owns its Ray.
"""

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
from fer_core.tune.results import key_of_dirname
from fer_core.tune.runner import StudyResult, run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN

pytestmark = pytest.mark.slow

SPEC = dict(
    name="sweep", space={"synthetic.x1": {"grid": [0.2, 0.5, 0.8]}}, seeds=[0, 1],
    base_overrides=["trainer.epochs=3", "synthetic.epoch_s=0.02"], max_concurrent=2, epochs=3,
)  # fmt: skip
DRIVER = f"""
import sys
from fer_core.tune.runner import run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN
try:
    res = run_study(StudySpec(**{SPEC!r}), sys.argv[1], train_fn=SYNTHETIC_TRAIN_FN,
                    resume=sys.argv[2] == "resume", address=sys.argv[3], progress_interval=1)
except KeyboardInterrupt:  # as fer-study run does
    from fer_core.tune.runner import resume_hint
    print(resume_hint(sys.argv[1]), flush=True)
    sys.exit(130)
sys.exit(130 if res.interrupted else 0)
"""
N_CONFIGS, SEEDS = 3, (0, 1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=200 * 2**20, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0", "OMP_NUM_THREADS": "1"}})  # fmt: skip
    node = ray._private.worker._global_node
    raylet = node.all_processes["raylet"][0].process.pid
    script = tmp_path_factory.mktemp("driver") / "driver.py"
    script.write_text(DRIVER)
    yield ray.get_runtime_context().gcs_address, raylet, script
    ray.shutdown()


def _start(cluster, run_dir: Path, mode: str, point: str | None = None, marks: Path | None = None):
    address, _, script = cluster
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop(AT_ENV, None)
    if point:
        env.update({AT_ENV: point, DIR_ENV: str(marks)})
    return subprocess.Popen(
        [sys.executable, str(script), str(run_dir), mode, address],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


_IDLE = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _busy_workers(raylet: int) -> list[int]:
    """Ray workers of the shared cluster still running a task (a killed driver's trials)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == raylet and cmd.startswith("ray::") and cmd not in _IDLE:
            out.append(int(entry.name))
    return out


def _kill_at(cluster, run_dir: Path, mode: str, point: str, tmp: Path) -> None:
    """Run until ``point`` is reached, SIGKILL the runner's group and wait for its trials."""
    marks = tmp / f"marks-{point.replace(':', '_')}-{mode}"
    proc = _start(cluster, run_dir, mode, point, marks)
    try:
        deadline = time.time() + 120
        while not (marks / point).is_file():
            if proc.poll() is not None:
                pytest.fail(f"the run ended before {point}: {proc.stdout.read()[-3000:]}")
            assert time.time() < deadline, f"never reached {point}"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 30
    while (session_pids(proc.pid) or _busy_workers(cluster[1])) and time.time() < deadline:
        time.sleep(0.1)
    assert session_pids(proc.pid) == [] and _busy_workers(cluster[1]) == []


def _finish(run_dir: Path) -> StudyResult:
    """``--resume`` to the end, in this process (on the module's Ray: no start-up per case)."""
    res = run_study(StudySpec(**SPEC), run_dir, train_fn=SYNTHETIC_TRAIN_FN, resume=True,
                    progress_interval=5, log=lambda msg: None)  # fmt: skip
    assert not res.interrupted
    return res


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.csv"
    if not path.is_file():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _stamps(run_dir: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (run_dir / "trials").glob("*/result.json")}


def _study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="sweep-synth", storage=f"sqlite:///{run_dir}/optuna.db")


def _metrics(run_dir: Path) -> dict:
    rows = {(r["config_id"], r["seed"]): r for r in _rows(run_dir)}
    cols = {k for r in rows.values() for k in r if k.startswith(("final.", "best."))}
    values = {t.number: t.value for t in _study(run_dir).trials}
    return {"rows": {k: {c: float(r[c]) for c in cols} for k, r in rows.items()}, "values": values}


def _check(run_dir: Path, reference: dict, stamps: dict[str, int], before: list[dict]) -> None:
    study = _study(run_dir)
    assert len(study.trials) == N_CONFIGS
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    rows = _rows(run_dir)
    keys = [(r["config_id"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == N_CONFIGS * len(SEEDS)
    assert all(r["status"] == "TERMINATED" for r in rows), rows
    now = _stamps(run_dir)
    assert {k: now[k] for k in stamps} == stamps, "a finished seed ran again"
    ids = {(r["config_id"], r["seed"]): r["tune_trial_id"] for r in rows}
    kept = [r for r in before if r["status"] == "TERMINATED"]
    assert all(ids[(r["config_id"], r["seed"])] == r["tune_trial_id"] for r in kept)
    got = _metrics(run_dir)
    assert got["rows"].keys() == reference["rows"].keys()
    for key, cols in reference["rows"].items():
        assert got["rows"][key].keys() == cols.keys(), key
        for c, v in cols.items():
            assert got["rows"][key][c] == pytest.approx(v, abs=1e-9), (key, c)
    for n, v in reference["values"].items():
        assert got["values"][n] == pytest.approx(v, abs=1e-9), n


@pytest.fixture(scope="module")
def reference(cluster, tmp_path_factory):
    """The uninterrupted run; it is also the 'tail' case (killed after every trial finished)."""
    tmp = tmp_path_factory.mktemp("tail")
    run_dir = tmp / "run"
    _kill_at(cluster, run_dir, "first", "tail", tmp)
    ref = _metrics(run_dir)
    assert len(ref["rows"]) == N_CONFIGS * len(SEEDS) and len(ref["values"]) == N_CONFIGS
    stamps, before = _stamps(run_dir), _rows(run_dir)
    res = _finish(run_dir)
    assert res.ray_init_s == 0.0 and res.counts["TERMINATED"] == N_CONFIGS * len(SEEDS)
    _check(run_dir, ref, stamps, before)
    return ref


# (kill points of the first run, then of each resume before the one that must finish)
CASES = {
    "ray_start_up": ["ray_init"],
    "mid_epoch": ["mid_epoch:c0001-s0:2"],
    "after_last_checkpoint": ["trained:c0001-s0"],
    "one_seed_done": ["seed_done:c0001-s0"],
    "after_tell": ["told:1"],
    # the second kill: the seed held mid-epoch by the first must finish training on resume (a
    # later trial may already have finished in the other slot before the first kill)
    "two_kills_in_a_row": ["mid_epoch:c0001-s1:2", "trained:c0001-s1"],
}


@pytest.mark.parametrize("points", list(CASES.values()), ids=list(CASES))
def test_resume_after_a_kill_at(points, cluster, reference, tmp_path):
    run_dir = tmp_path / "run"
    for i, point in enumerate(points):
        _kill_at(cluster, run_dir, "resume" if i else "first", point, tmp_path)
    stamps, before = _stamps(run_dir), _rows(run_dir)
    _finish(run_dir)
    _check(run_dir, reference, stamps, before)
    killed = [p.split(":")[1] for p in points if p.startswith(("mid_epoch:", "trained:"))]
    for key in killed:  # the seed killed mid-flight continued from its checkpoint
        (tdir,) = [d for d in (run_dir / "trials").iterdir() if key_of_dirname(d.name) == key]
        assert json.loads((tdir / "result.json").read_text())["resumed_from"]
    if killed:
        assert (run_dir / "tune" / f"attempt-{len(points) + 1}").is_dir()


def test_ctrl_c_twice_leaves_a_resumable_run(cluster, reference, tmp_path):
    run_dir, marks = tmp_path / "run", tmp_path / "marks"
    point = "epoch:c0001-s0:1"  # note: the trial, not the driver, waits here
    proc = _start(cluster, run_dir, "first", point, marks)
    try:
        deadline = time.time() + 120
        while not (marks / point).is_file():
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)  # the second Ctrl-C lands while the first is being handled
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out[-3000:]
    assert "--resume" in out, out[-3000:]
    deadline = time.time() + 30
    while _busy_workers(cluster[1]) and time.time() < deadline:
        time.sleep(0.1)
    before = _rows(run_dir)
    assert not any(r["status"] in ("PRUNED", "ERROR") for r in before), before
    states = {t.state for t in _study(run_dir).trials}
    assert states <= {TrialState.RUNNING, TrialState.COMPLETE}
    stamps = _stamps(run_dir)
    _finish(run_dir)
    _check(run_dir, reference, stamps, before)


def test_real_trainer_killed_after_a_seeds_last_epoch_resumes(cluster, tmp_path):
    """studies/pll_threshold.yaml (synth, reduced): SIGKILL right after seed 0's final epoch is
    checkpointed (before its result.json), then --resume: the seed reports its recorded last
    epoch once instead of ending the study (issue 15's crash)."""
    from fer_core.tune.commands import load_spec

    repo = Path(__file__).resolve().parents[2]
    study_file = repo / "studies" / "pll_threshold.yaml"
    small = ["space={method.revision.threshold: {grid: [0.2]}}", "seeds=[0, 1]",
             "trainer.epochs=2", "data.n_train=240", "data.n_val=60", "data.n_test=60"]  # fmt: skip
    run_dir, marks, point = tmp_path / "run", tmp_path / "marks", "epoch:c0000-s0:2"
    args = [sys.executable, "-m", "fer_core.cli", "run", str(study_file), "--run-dir",
            str(run_dir), "--address", cluster[0], *(a for o in small for a in ("-o", o))]  # fmt: skip
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        **{AT_ENV: point, DIR_ENV: str(marks)},
    )
    proc = subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while not (marks / point).is_file():
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 30
    while _busy_workers(cluster[1]) and time.time() < deadline:
        time.sleep(0.1)
    seed0 = run_dir / "trials" / "c0000_threshold-0.2_s0"
    assert (seed0 / "checkpoints" / "last.pt").is_file() and not (seed0 / "result.json").exists()

    _, spec = load_spec(str(study_file), None, small)
    res = run_study(spec, run_dir, resume=True, progress_interval=5, log=lambda msg: None)
    assert not res.interrupted and res.counts["TERMINATED"] == 2
    (t,) = optuna.load_study(
        study_name=spec.study_name, storage=f"sqlite:///{run_dir}/optuna.db"
    ).trials
    assert t.state == TrialState.COMPLETE
    rows = {r["seed"]: r for r in _rows(run_dir)}
    assert len(rows) == 2
    done = json.loads((seed0 / "result.json").read_text())
    assert done["resumed_from"] and [h["epoch"] for h in done["history"]] == [1, 2]
    # the row is the uninterrupted one: best.val/acc over both epochs of the trainer's own log
    logged = json.loads((seed0 / "metrics.json").read_text())["history"]
    assert float(rows["0"]["best.val/acc"]) == pytest.approx(max(h["val/acc"] for h in logged))
    assert float(rows["0"]["final.val/acc"]) == pytest.approx(logged[-1]["val/acc"])
    assert float(rows["0"]["best.test/acc"]) == pytest.approx(done["metrics"]["test/acc"])
    vals = [float(r["best.val/acc"]) for r in rows.values()]
    assert t.value == pytest.approx(sum(vals) / 2)
