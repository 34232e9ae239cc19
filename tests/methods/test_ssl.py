"""The self-supervised baselines (``methods/ssl.py``): each pre-trains one tiny epoch and hands its
backbone to a linear probe (``recipe=ssl_linear``); the momentum target and queue; bad input."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from fer_core.data.base import DataSplits, FERImageSet
from fer_core.engine.build import build_method, compose, stage_configs
from fer_core.engine.checkpoint import load_checkpoint
from fer_core.engine.recipe import run_stages
from fer_core.methods import MethodInfo, StepContext, create_method
from fer_core.methods.ssl import SSL_METHODS
from fer_core.models.backbones import create_backbone

# small heads and queue (the defaults are 2048-4096 wide and 65536 keys)
SMALL_HEADS = {"proj.hidden_dim": 64, "proj.dim": 32, "pred.hidden_dim": 64, "queue_size": 48}
COMMON = ["trainer.epochs=1", "trainer.eval_batch_size=64", "trainer.progress=false",
          "stages.pretrain.trainer.batch_size=16", "stages.linear.trainer.batch_size=16"]  # fmt: skip


def _overrides(name: str) -> list[str]:
    group = compose([f"method={name}"]).method
    small = [f"stages.pretrain.method.{k}={v}" for k, v in SMALL_HEADS.items()
             if OmegaConf.select(group, k) is not None]  # fmt: skip
    return ["recipe=ssl_linear", f"stages.pretrain.method={name}", *COMMON, *small]


def tiny_splits(n_train: int) -> DataSplits:
    def part(n: int, seed: int) -> FERImageSet:
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 7, (n,), generator=g)
        images = torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8)
        return FERImageSet(images=images, labels=labels, num_classes=7, name="random",
                           true_labels=labels.clone())  # fmt: skip

    return DataSplits(train=part(n_train, 0), val=part(32, 1), test=part(32, 2), num_classes=7,
                      val_is_official=True, data_hash="random-ssl")  # fmt: skip


@pytest.mark.parametrize("name", SSL_METHODS)
def test_pretrains_one_epoch_and_hands_its_backbone_to_a_linear_probe(name, tmp_path):
    stages = stage_configs(compose(_overrides(name)))
    assert [(n, c["method"]["name"]) for n, c in stages] == [("pretrain", name), ("linear", "ce")]
    res = run_stages(stages, tmp_path, splits=tiny_splits(16), data_tag=f"ssl-test-{name}")
    pre = [h for h in res.history if h["stage"] == "pretrain"]
    assert len(pre) == 1 and torch.isfinite(torch.tensor(pre[0][f"{name}/loss"]))
    assert 0.0 <= res.metrics["test/acc"] <= 1.0
    ckpt = load_checkpoint(tmp_path / "checkpoints")
    handed = ckpt["handoffs"]["pretrain"]
    assert set(handed) == {"backbone"}  # projectors, predictor, target and queue stay behind
    model = ckpt["model"]
    # the probe's backbone is the pre-trained one, unchanged: weights and BN statistics frozen
    for k, v in handed["backbone"].items():
        assert torch.equal(model[f"backbone.model.{k}"], v), k


def _method(name: str, batch_size: int = 8, **kw):
    bb = create_backbone("resnet_tiny_cpu", img_size=32, in_chans=1)
    info = MethodInfo(7, 32, 1, "random", batch_size=batch_size)
    small = {"proj_hidden_dim": 32, "proj_dim": 16}
    return create_method(name, bb, 7, info=info, **{**small, **kw})


def _ctx(step: int = 0, steps: int = 4) -> StepContext:
    return StepContext(0, step, step, steps, 1, torch.device("cpu"))


def _views(n: int = 8, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"views": [torch.randn(n, 1, 32, 32, generator=g) for _ in range(2)]}


@pytest.mark.parametrize("ema", [0.0, 1.0])
def test_target_follows_gfl_ema(ema):
    m = _method("byol", gfl_ema=ema, pred_hidden_dim=32)
    m.on_train_start(None)
    before = [p.clone() for p in m.target["backbone"].parameters()]
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(1.0)  # stands in for an optimiser step
    m.after_optimizer_step(_ctx())
    after = list(m.target["backbone"].parameters())
    online = list(m.backbone.parameters())
    if ema == 0.0:  # rho <- theta
        assert all(torch.equal(a, o) for a, o in zip(after, online))
    else:  # rho unchanged
        assert all(torch.equal(a, b) for a, b in zip(after, before))


def test_cosine_schedule_reaches_one_at_the_last_step():
    m = _method("byol", gfl_ema=0.996, gfl_ema_schedule="cosine", pred_hidden_dim=32)
    m.after_optimizer_step(_ctx(0, 4))
    assert m.momentum == pytest.approx(0.996)
    m.after_optimizer_step(_ctx(3, 4))
    assert m.momentum == pytest.approx(1.0)


def test_simsiam_and_simclr_have_no_target():
    for name in ("simsiam", "simclr"):
        m = _method(name, **({"pred_hidden_dim": 8} if name == "simsiam" else {}))
        assert not hasattr(m, "target")


def test_moco_queue_not_a_multiple_of_the_batch_fills_by_wrapping():
    m = _method("moco", queue_size=20)  # batch 8: 20 is not a multiple, and need not be
    for step in range(3):
        out = m.training_step(_views(seed=step), _ctx(step))
        assert torch.isfinite(out.loss) and set(out.logs) == {"moco/loss"}
    assert int(m.queue.ptr) == 24 % 20
    assert "queue.keys" in m.state_dict()  # the queue is in the checkpoint


@pytest.mark.parametrize(
    "name, kw, match",
    [
        ("byol", {"gfl_ema": 1.5}, r"method\.gfl\.ema=1\.5"),
        ("moco", {"gfl_ema": -0.1}, r"method\.gfl\.ema=-0\.1"),
        ("byol", {"gfl_ema_schedule": "step"}, r"method\.gfl\.ema_schedule='step'"),
        ("moco", {"queue_size": 0}, r"method\.queue_size=0"),
        ("mocov2", {"temperature": 0.0}, r"method\.temperature=0\.0"),
        ("simclr", {"proj_head": "dense"}, r"method\.proj\.head='dense'.*mlp, linear"),
        ("simsiam", {"batch_size": 1}, r"trainer\.batch_size >= 2"),
    ],
)
def test_bad_settings_name_the_knob(name, kw, match):
    bs = kw.pop("batch_size", 8)
    with pytest.raises(ValueError, match=match):
        _method(name, batch_size=bs, **kw)


def test_bad_ema_fails_when_the_recipe_builds_before_training(tmp_path):
    stages = stage_configs(compose(_overrides("byol") + ["stages.pretrain.method.gfl.ema=2"]))
    with pytest.raises(ValueError, match=r"method\.gfl\.ema=2"):
        run_stages(stages, tmp_path, splits=tiny_splits(32))
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_predict_says_it_is_label_free():
    st = stage_configs(compose(["method=simclr"]))[0][1]
    m = build_method(st, MethodInfo(7, 32, 1, "random", batch_size=8))
    assert m.selection_metric == "simclr/loss" and m.selection_mode == "min"
    assert set(m.reported_metrics()) == {"train/loss", "lr", "simclr/loss"}
    with pytest.raises(RuntimeError, match="label-free"):
        m.predict(torch.zeros(2, 1, 32, 32))
