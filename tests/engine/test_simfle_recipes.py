"""The SimFLE protocol presets (``conf/recipe/simfle_*.yaml``): the ``ssl_*`` presets with
``simfle`` pre-training, and ``simfle_linear`` end to end on a small SynthFER (one tiny
pre-training epoch, then the linear probe on its frozen backbone)."""

from __future__ import annotations

import pytest
import torch

from fer_core.engine.build import compose, stage_configs
from fer_core.engine.checkpoint import load_checkpoint
from fer_core.engine.recipe import run_recipe


@pytest.mark.parametrize("protocol", ["linear", "semi", "finetune", "transfer"])
def test_simfle_presets_are_the_ssl_presets_with_simfle_pretraining(protocol):
    ssl = stage_configs(compose([f"recipe=ssl_{protocol}"]))
    simfle = stage_configs(compose([f"recipe=simfle_{protocol}"]))
    assert [n for n, _ in simfle] == [n for n, _ in ssl]
    assert simfle[0][1]["method"]["name"] == "simfle" and ssl[0][1]["method"]["name"] == "byol"
    for (_, a), (_, b) in zip(ssl, simfle, strict=True):
        for group in ("optim", "sched", "trainer", "data"):
            assert a[group] == b[group]
    for (_, a), (_, b) in zip(ssl[1:], simfle[1:], strict=True):
        assert a["method"] == b["method"] and a["init_from"] == b["init_from"]


SMALL = [
    "recipe=simfle_linear", "data.n_train=32", "data.n_val=32", "data.n_test=32",
    "data.img_size=32", "trainer.epochs=1", "trainer.progress=false",
    "trainer.eval_batch_size=64", "stages.pretrain.trainer.batch_size=32",
    "stages.linear.trainer.batch_size=32", "stages.pretrain.method.proj.hidden_dim=32",
    "stages.pretrain.method.pred.hidden_dim=32", "stages.pretrain.method.distil.hidden_dim=32",
    "stages.pretrain.method.ffl.img_size=32", "stages.pretrain.method.ffl.patch=8",
    "stages.pretrain.method.ffl.encoder=vit_tiny_cpu", "stages.pretrain.method.decoder.depth=1",
    "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2",
    "stages.pretrain.method.ffl.feature_stage=1",
]  # fmt: skip


def test_simfle_linear_pretrains_one_epoch_and_probes_its_backbone(tmp_path):
    res = run_recipe(compose(SMALL), tmp_path)
    assert [h["stage"] for h in res.history] == ["pretrain", "linear"]
    pre = res.history[0]
    for k in ("simfle/loss", "simfle/gfl", "simfle/rec", "simfle/group", "simfle/distil"):
        assert torch.isfinite(torch.tensor(pre[k])), k
    for m in ("test/acc", "test/acc_true", "val/acc"):
        assert 0.0 <= res.metrics[m] <= 1.0
    ckpt = load_checkpoint(tmp_path / "checkpoints")
    handed = ckpt["handoffs"]["pretrain"]
    assert set(handed) == {"backbone"}  # FaceMAE, GFL heads and target stay behind
    for k, v in handed["backbone"].items():  # the probe's backbone is the pre-trained one
        assert torch.equal(ckpt["model"][f"backbone.model.{k}"], v), k
