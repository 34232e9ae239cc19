"""A two-node Ray cluster on 127.0.0.1 that loses a node mid-study (issue 19), and the checks that
fail before Ray starts (``--storage-path`` scheme, read-only run directory, silent ``--address``).

The cluster: ``ray start --head`` and ``ray start --address`` (a worker with the custom resource
``node_b``), each with its own temp dir and session, stopped by the pids of their sessions (never
``ray stop``, which goes by name). Token authentication (Ray's default for ``ray start``) is off:
every process is on 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_resume import session_pids

from fer_core.tune.runner import (
    ClusterAddressError,
    RunDirError,
    StoragePathError,
    check_address,
    run_study,
    tune_storage_path,
)
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN

RAY_BIN = Path(sys.executable).with_name("ray")
ENV = dict(os.environ, RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- before Ray starts


def test_storage_path_uri_and_unknown_scheme(tmp_path):
    run_dir = tmp_path / "runs" / "x-synth"
    assert tune_storage_path(run_dir, None) == str(run_dir / "tune")
    uri = tune_storage_path(run_dir, f"file://{tmp_path}/shared/")
    assert uri == f"file://{tmp_path}/shared/x-synth/tune"
    assert (tmp_path / "shared" / "x-synth" / "tune").is_dir()
    with pytest.raises(StoragePathError, match="--storage-path nosuch://bucket/runs: .*s3://"):
        tune_storage_path(run_dir, "nosuch://bucket/runs")


def test_read_only_run_dir_and_silent_address_fail_before_ray(tmp_path):
    import ray

    spec = StudySpec(name="ro", space={"synthetic.x1": {"grid": [0.5]}})
    if os.geteuid() == 0:  # root writes through file modes: use a file system that refuses
        run_dir = Path("/sys/fer-study-read-only-run")
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        run_dir = tmp_path / "ro" / "run"
    with pytest.raises(RunDirError, match=f"--run-dir {run_dir}: cannot write there"):
        run_study(spec, run_dir, train_fn=SYNTHETIC_TRAIN_FN)
    assert not ray.is_initialized()

    t0 = time.time()
    with pytest.raises(ClusterAddressError, match="no Ray cluster answers") as err:
        check_address(f"127.0.0.1:{_free_port()}")
    assert time.time() - t0 < 30 and "ray start --head" in str(err.value)
    with pytest.raises(ClusterAddressError, match="give host:port"):
        check_address("headnode")


# ---------------------------------------------------------------- two nodes, one lost


SPEC = dict(
    name="multi", space={"synthetic.x1": {"grid": [0.2, 0.5, 0.8]}}, seeds=[0], max_retries=1,
    max_concurrent=2, base_overrides=["trainer.epochs=5", "synthetic.epoch_s=0.6"],
)  # fmt: skip
DRIVER = f"""
import json, sys
from fer_core.tune.resources import UnsatisfiableResourcesError
from fer_core.tune.runner import run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN
run_dir, address, storage_path = sys.argv[1:4]
spec = StudySpec(**{SPEC!r})
import ray  # one connection for both runs (run_study then leaves it open)
ray.init(address=address, log_to_driver=False, runtime_env={{"env_vars": {{
    "RAY_CHDIR_TO_TRIAL_DIR": "0", "OMP_NUM_THREADS": "1"}}}})
try:  # two 'node_b' per trial: no node has that, and the message says so before any trial
    run_study(spec, run_dir + "-too-big", address=address, train_fn=SYNTHETIC_TRAIN_FN,
              trial_resources={{"node_b": 2}})
except UnsatisfiableResourcesError as exc:
    print("REFUSED", json.dumps(str(exc)), flush=True)
res = run_study(spec, run_dir, address=address, storage_path=storage_path,
                train_fn=SYNTHETIC_TRAIN_FN, progress_interval=1)
print("RESULT", json.dumps(res.counts), res.interrupted, flush=True)
"""


def _ray_start(args: list[str], temp_dir: Path) -> int:
    """``ray start ...`` in a session of its own; returns that session's id."""
    proc = subprocess.Popen(
        [str(RAY_BIN), "start", *args, "--node-ip-address", "127.0.0.1", "--temp-dir",
         str(temp_dir), "--disable-usage-stats"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    return proc.pid


def _raylet_of(sid: int) -> int:
    for pid in session_pids(sid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if cmd.endswith(b"/raylet"):
            return pid
    raise AssertionError(f"no raylet in session {sid}")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _lose_node(raylet: int) -> None:
    """The worker node dies: its raylet is SIGKILLed by pid, and the Ray workers it started
    with it (a lost machine takes its processes along; a worker alone may outlive its raylet
    for a moment and finish a short trial)."""
    workers = _children(raylet)
    os.kill(raylet, signal.SIGKILL)
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop_session(sid: int) -> None:
    """SIGKILL every process of a ``ray start`` session (a test cluster has nothing to save)."""
    deadline = time.time() + 20
    while session_pids(sid) and time.time() < deadline:
        for pid in session_pids(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    assert session_pids(sid) == [], f"session {sid} outlived SIGKILL"


def _attempts(trial_dir: Path) -> list[dict]:
    path = trial_dir / "nodes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
def test_trials_on_two_nodes_and_a_lost_node_retried(tmp_path):
    port = _free_port()
    sessions: list[int] = []
    temp = Path(tempfile.mkdtemp(prefix="fr-", dir="/tmp"))  # Ray's socket paths: <= 107 bytes
    try:
        sessions.append(
            _ray_start(
                ["--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false"],
                temp / "head",
            )  # fmt: skip
        )
        sessions.append(
            _ray_start(
                [
                    "--address",
                    f"127.0.0.1:{port}",
                    "--num-cpus",
                    "1",
                    "--resources",
                    '{"node_b": 1}',
                ],
                temp / "b",
            )  # fmt: skip
        )
        head_raylet, worker_raylet = _raylet_of(sessions[0]), _raylet_of(sessions[1])
        run_dir, shared = tmp_path / "multi-synth", tmp_path / "shared"
        script = tmp_path / "driver.py"
        script.write_text(DRIVER)
        driver = subprocess.Popen(
            [sys.executable, str(script), str(run_dir), f"127.0.0.1:{port}", f"file://{shared}"],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        # the worker node is lost once a trial on it has its second epoch's checkpoint in Tune's
        # storage (so the driver has surely taken the first: the retry must start from Tune's)
        tune_dir = shared / "multi-synth" / "tune" / "attempt-1"
        killed, deadline = None, time.time() + 180
        while killed is None and driver.poll() is None and time.time() < deadline:
            for tdir in run_dir.glob("trials/*"):
                first = _attempts(tdir)[:1]
                if first and first[0]["raylet_pid"] == worker_raylet:
                    if list((tune_dir / tdir.name).glob("checkpoint_00000[1-9]")):
                        _lose_node(worker_raylet)
                        killed = tdir
            time.sleep(0.1)
        try:
            out, _ = driver.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            _stop_session(driver.pid)
            raise
        assert driver.returncode == 0, out[-4000:]
        assert killed is not None, "no trial ran on the worker node before the study ended"
    finally:
        for sid in sessions:
            _stop_session(sid)
        shutil.rmtree(temp, ignore_errors=True)

    refused = json.loads(out.split("REFUSED ", 1)[1].splitlines()[0])
    assert list(tmp_path.glob("multi-synth-too-big/*")) == []  # refused before writing anything
    assert "one trial asks for 1 CPU, 2 node_b (resources.cpu, custom resource 'node_b')" in refused
    assert "custom resource 'node_b'" in refused and "ask for at most 1 'node_b'" in refused
    counts = json.loads(out.split("RESULT ", 1)[1].split(" False")[0])
    assert counts["TERMINATED"] == 3 and counts["ERROR"] == 0

    # trials ran on both nodes; the killed one ran again, on the head, from its checkpoint
    attempts = {t.name: _attempts(t) for t in run_dir.glob("trials/*")}
    assert len({a[0]["node_id"] for a in attempts.values()}) == 2
    again = attempts[killed.name]
    assert [a["raylet_pid"] for a in again] == [worker_raylet, head_raylet]
    assert again[0]["node_id"] != again[1]["node_id"]
    # ... from the checkpoint Tune kept in --storage-path, not from the lost node's disk
    resumed = json.loads((killed / "result.json").read_text())["resumed_from"]
    assert resumed and not resumed.startswith(str(tmp_path)), resumed
    assert list((shared / "multi-synth" / "tune" / "attempt-1").glob(f"{killed.name}/checkpoint_*"))

    # Optuna and trials.csv hold exactly the plan: 0 lost, 0 duplicated
    study = optuna.load_study(study_name="multi-synth", storage=f"sqlite:///{run_dir}/optuna.db")
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    with (run_dir / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["config_id"], r["seed"], r["status"]) for r in rows) == [
        (str(c), "0", "TERMINATED") for c in range(3)
    ]
    # Tune's state went to --storage-path (file:// in another directory), not RUN_DIR/tune
    assert list((shared / "multi-synth" / "tune" / "attempt-1").glob("experiment_state*.json"))
    assert not (run_dir / "tune").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["storage_path"] == f"file://{shared}/multi-synth/tune"
