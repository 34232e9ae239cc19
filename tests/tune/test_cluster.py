"""GPU scheduling with fake GPUs, and ``--address`` against a local ``ray start --head``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import ray

from fer_core.tune.runner import run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN

RAY_BIN = Path(sys.executable).with_name("ray")


@pytest.fixture
def fake_gpu_ray():
    ray.init(
        address="local",
        num_cpus=4,
        num_gpus=2,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def test_four_half_gpu_trials_run_at_once(tmp_path, fake_gpu_ray):
    spec = StudySpec(
        name="gpus",
        space={"synthetic.x1": {"grid": [0.1, 0.3, 0.5, 0.7]}},
        base_overrides=["trainer.epochs=2", "synthetic.epoch_s=2.0"],
        cpu=0.5,
        gpu=0.5,
    )
    res = run_study(spec, tmp_path, train_fn=SYNTHETIC_TRAIN_FN, progress_interval=1)
    assert res.counts["TERMINATED"] == 4
    info = [json.loads(p.read_text()) for p in tmp_path.glob("trials/*/synthetic.json")]
    assert len(info) == 4
    assert max(i["start"] for i in info) < min(i["end"] for i in info), "not all 4 ran at once"
    assert sorted(i["gpus"] for i in info) == ["0", "0", "1", "1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if fields[0] != "Z" and sid in (int(fields[2]), int(fields[3])):
                out.append(int(entry.name))
    return out


DRIVER = """
import sys
from fer_core.tune.runner import run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN
spec = StudySpec(name="cluster", space={"synthetic.x1": {"grid": [0.2, 0.5]}},
                 base_overrides=["trainer.epochs=2"])
res = run_study(spec, sys.argv[1], address=sys.argv[2], train_fn=SYNTHETIC_TRAIN_FN)
import ray
print("CLUSTER", res.counts["TERMINATED"])
"""


@pytest.mark.slow
def test_address_reaches_a_local_cluster(tmp_path):
    port = _free_port()
    head = subprocess.Popen(
        [
            str(RAY_BIN),
            "start",
            "--head",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sid = head.pid
    try:
        out, _ = head.communicate(timeout=120)
        assert head.returncode == 0, out
        script = tmp_path / "driver.py"
        script.write_text(DRIVER)
        run = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "run"), f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=240,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "CLUSTER 2" in run.stdout
        study = optuna.load_study(
            study_name="cluster-synth", storage=f"sqlite:///{tmp_path}/run/optuna.db"
        )
        assert len(study.trials) == 2
    finally:
        # stop the head by the pids of its own session (never `ray stop`, which is by name)
        for pid in _session_pids(sid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 20
        while _session_pids(sid) and time.time() < deadline:
            time.sleep(0.5)
        for _ in range(20):
            for pid in _session_pids(sid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not _session_pids(sid):
                break
            time.sleep(0.5)
        # `ray start` records the head for later `ray.init()` calls; forget our dead head
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()
    assert _session_pids(sid) == []
