"""GPU scheduling with fake GPUs. ``--address`` against ``ray start --head`` (plus a worker node
that is lost mid-study) is ``test_multinode.py``."""

from __future__ import annotations

import json

import pytest
import ray

from fer_core.tune.runner import run_study
from fer_core.tune.spec import StudySpec
from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN


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
