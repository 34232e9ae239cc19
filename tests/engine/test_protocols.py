from __future__ import annotations

import torch
from conftest import TINY

from fer_core.engine.build import compose, stage_configs
from fer_core.engine.checkpoint import load_checkpoint
from fer_core.engine.recipe import kfold_splits, run_stages
from fer_core.methods import MethodInfo


def _run(splits, path, *extra, cb=None):
    return run_stages(stage_configs(compose([*TINY, "trainer.epochs=1", *extra])), path, cb,
                      splits=splits)  # fmt: skip


def test_linear_protocol_freezes_backbone(splits, tmp_path):
    _run(splits, tmp_path / "ft", "trainer.seed=1")
    _run(splits, tmp_path / "lin", "trainer.protocol=linear", "trainer.seed=1")
    ft = load_checkpoint(tmp_path / "ft" / "checkpoints")["model"]
    lin = load_checkpoint(tmp_path / "lin" / "checkpoints")["model"]
    # same seed -> same initial weights; only the fine-tuned backbone moved
    from fer_core.engine.build import build_method
    from fer_core.engine.seed import derive_seed, seed_everything

    ((_, st),) = stage_configs(compose([*TINY, "trainer.seed=1"]))
    seed_everything(derive_seed(1, 0))
    init = build_method(st, MethodInfo(7, 32, 1)).state_dict()
    k = "backbone.model.patch_embed.proj.weight"
    assert torch.equal(lin[k], init[k]) and not torch.equal(ft[k], init[k])
    assert not torch.equal(lin["head.fc.weight"], init["head.fc.weight"])


def test_semi_protocol_trains_on_labelled_fraction(splits, tmp_path):
    res = _run(splits, tmp_path, "trainer.protocol=semi", "trainer.semi.fraction=0.5")
    assert "test/uar" in res.metrics


def test_transfer_protocol_starts_from_checkpoint(splits, tmp_path):
    _run(splits, tmp_path / "src")
    res = _run(splits, tmp_path / "dst", "trainer.protocol=transfer",
               f"trainer.init={tmp_path / 'src' / 'checkpoints'}")  # fmt: skip
    assert "test/acc" in res.metrics


def test_kfold_splits_partition_the_pool(splits):
    folds = kfold_splits(splits, 3, seed=0, val_fraction=0.1)
    assert len(folds) == 3
    n_pool = len(splits.train) + len(splits.val)
    assert sum(len(f.test) for f in folds) == n_pool
    for f in folds:
        assert len(f.train) + len(f.val) + len(f.test) == n_pool
