from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fer_core.engine.build import compose, stage_configs
from fer_core.engine.checkpoint import load_checkpoint
from fer_core.engine.recipe import run_stages


def _stages(*extra):
    return stage_configs(compose([*TINY, *extra]))


@pytest.fixture(scope="module")
def full_run(splits, tmp_path_factory):
    calls = []

    def cb(stage, epoch, metrics, ckpt_dir):
        calls.append((stage, epoch, dict(metrics), ckpt_dir))
        return True

    run_dir = tmp_path_factory.mktemp("full")
    res = run_stages(_stages("trainer.epochs=3", "trainer.ema=0.9"), run_dir, cb, splits=splits)
    return res, calls, run_dir


def test_run_writes_metrics_checkpoints_and_calls_back(full_run):
    res, calls, run_dir = full_run
    assert [c[:2] for c in calls] == [("main", 0), ("main", 1), ("main", 2)]
    assert all((c[3] / "last.pt").is_file() for c in calls)
    data = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in data["history"]] == [0, 1, 2]
    for k in ("train/loss", "val/acc", "val/uar", "val/f1", "val/acc_true", "lr"):
        assert k in data["history"][-1]
        assert k == "lr" or 0.0 <= data["history"][-1][k] <= 1.0 or k == "train/loss"
    for k in ("test/acc", "test/uar", "test/f1", "test/acc_true"):
        assert k in res.metrics and k in data["final"]
    ck = load_checkpoint(run_dir / "checkpoints")
    assert ck["epoch"] == 2 and ck["ema"] is not None
    assert (run_dir / "checkpoints" / "best.pt").is_file()


def test_tensorboard_read_back(full_run):
    _, _, run_dir = full_run
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for k in ("train/loss", "val/acc", "val/uar", "val/f1", "val/acc_true", "lr", "test/uar"):
        assert k in tags["scalars"], k
    assert [e.step for e in acc.Scalars("val/uar")] == [1, 2, 3]
    hist = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert acc.Scalars("train/loss")[-1].value == pytest.approx(hist[-1]["train/loss"], rel=1e-6)
    assert "val/confusion" in tags["images"] and "test/confusion" in tags["images"]
    assert "hparams" in acc.PluginTagToContent("hparams") or acc.PluginTagToContent("hparams")


def test_resume_reproduces_uninterrupted_run(splits, full_run, tmp_path):
    _, calls, _ = full_run
    stages = _stages("trainer.epochs=3", "trainer.ema=0.9")

    def stop_after_first(stage, epoch, metrics, ckpt_dir):
        return epoch < 1

    first = tmp_path / "a"
    run_stages(stages, first, stop_after_first, splits=splits)
    ckpt = load_checkpoint(first / "checkpoints")
    assert ckpt["epoch"] == 1
    resumed = []
    res = run_stages(stages, tmp_path / "b", lambda s, e, m, c: resumed.append((e, m)) or True,
                     resume=first / "checkpoints", splits=splits)  # fmt: skip
    assert [e for e, _ in resumed] == [2]
    want = calls[2][2]
    for k, v in want.items():
        assert resumed[0][1][k] == pytest.approx(v, abs=1e-6), k
    assert [h["epoch"] for h in res.history] == [0, 1, 2]


def test_callback_false_stops(splits, tmp_path):
    res = run_stages(_stages("trainer.epochs=3"), tmp_path, lambda *a: False, splits=splits)
    assert (
        res.stopped
        and len(res.history) == 1
        and not any(k.startswith("test/") for k in res.metrics)
    )


def test_a_few_epochs_lower_the_loss(splits, tmp_path):
    ovs = [o for o in TINY if not o.startswith("model.")]
    cfg = compose([*ovs, "trainer.epochs=3", "model=resnet_tiny_cpu", "sched.lr=3e-3",
                   "trainer.aug.policy=none"])  # fmt: skip
    res = run_stages(stage_configs(cfg), tmp_path, splits=splits)
    losses = [h["train/loss"] for h in res.history]
    assert losses[-1] < 0.9 * losses[0]
    assert torch.isfinite(torch.tensor(res.metrics["test/uar"]))
