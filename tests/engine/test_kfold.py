"""trainer.protocol=kfold (004 Table 5): the val_fraction knob, bad input before training,
multi-stage recipes, per-fold reporting through the trainable and resume mid-fold."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_splits

from fer_core.engine.build import ConfigError, compose, stage_configs
from fer_core.engine.recipe import kfold_settings, kfold_splits, run_recipe
from fer_core.tune.trainable import FINAL_EPOCH, train_recipe

DATA = ["data.n_train=64", "data.n_val=32", "data.n_test=32", "data.img_size=32"]
KFOLD = [
    *DATA, "model=resnet_tiny_cpu", "trainer.epochs=2", "trainer.batch_size=32",
    "trainer.progress=false", "trainer.aug.policy=none",
]  # fmt: skip
ONE_STAGE = [*KFOLD, "trainer.protocol=kfold", "trainer.kfold.k=2"]
TWO_STAGES = [
    *KFOLD, "stages.pre.method=ce", "stages.pre.trainer.epochs=1", "stages.fin.method=ce",
    "stages.fin.trainer.protocol=kfold", "stages.fin.trainer.kfold.k=2",
]  # fmt: skip


def test_val_fraction_is_a_knob_that_inherits_data_val_fraction():
    s = kfold_settings(stage_configs(compose([*ONE_STAGE, "data.val_fraction=0.25"])))
    assert (s.k, s.val_fraction) == (2, 0.25)
    s = kfold_settings(stage_configs(compose([*ONE_STAGE, "trainer.kfold.val_fraction=0.3"])))
    assert s.val_fraction == 0.3
    splits = tiny_splits()
    n_pool = len(splits.train) + len(splits.val)
    for vf in (0.1, 0.3):
        folds = kfold_splits(splits, 3, seed=0, val_fraction=vf)
        for f in folds:
            part = len(f.train) + len(f.val)
            assert len(f.val) == pytest.approx(vf * part, abs=7)  # one rounding per class
            assert part + len(f.test) == n_pool
    # 0: select on the test fold (the papers' practice, as data.val_fraction=0)
    for f in kfold_splits(splits, 3, seed=0, val_fraction=0.0):
        assert torch.equal(f.val.labels, f.test.labels)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["trainer.kfold.k=1"], r"trainer.kfold.k=1 is not allowed; use an integer >= 2"),
        (["trainer.kfold.k=50"], r"trainer.kfold.k=50 is more folds than the smallest class"),
        (["trainer.kfold.val_fraction=1.5"], r"trainer.kfold.val_fraction=1.5 .* \[0, 1\)"),
    ],
)
def test_bad_kfold_settings_fail_before_training(tmp_path, extra, message):
    cfg = compose([*ONE_STAGE, *extra])
    with pytest.raises(ConfigError, match=message) as err:
        run_recipe(cfg, tmp_path, on_epoch_end=lambda *a: pytest.fail("trained"))
    if "k=50" in extra[0]:
        assert "allowed: 2.." in str(err.value)
    assert not list(tmp_path.glob("fold_*"))


def test_kfold_on_an_earlier_stage_is_refused(tmp_path):
    cfg = compose([*KFOLD, "stages.pre.method=ce", "stages.pre.trainer.protocol=kfold",
                   "stages.fin.method=ce"])  # fmt: skip
    with pytest.raises(ConfigError, match="stage 'pre': trainer.protocol=kfold is allowed on the"):
        run_recipe(cfg, tmp_path)


def test_a_recipe_takes_kfold_on_its_last_stage():
    cfg = compose(["recipe=mae_finetune", "stages.finetune.trainer.protocol=kfold"])
    protocols = {n: s["trainer"]["protocol"] for n, s in stage_configs(cfg)}
    assert protocols == {"pretrain": "finetune", "finetune": "kfold"}


@pytest.mark.slow
def test_multi_stage_kfold_reports_the_last_stage_of_every_fold(tmp_path):
    seen = []

    def cb(stage, epoch, metrics, ckpt):
        seen.append((stage, epoch, bool(metrics.get(FINAL_EPOCH)), "val/uar" in metrics))
        return True

    out = train_recipe(TWO_STAGES, tmp_path, cb, None)
    # epochs count over folds; only the last epoch of the last fold is marked final
    assert seen == [
        ("fold0/fin", 0, False, True), ("fold0/fin", 1, False, True),
        ("fold1/fin", 2, False, True), ("fold1/fin", 3, True, True),
    ]  # fmt: skip
    assert out["kfold/k"] == 2.0
    for m in ("test/acc", "val/uar"):
        folds = [out[f"fold{i}/{m}"] for i in range(2)]
        assert out[m] == pytest.approx(sum(folds) / 2)
        assert f"{m}_std" in out
    assert (tmp_path / "fold_1" / "metrics.json").is_file()


class Killed(Exception):
    pass


@pytest.mark.slow
def test_resume_mid_fold_keeps_finished_folds_and_repeats_the_run(tmp_path):
    cfg = compose(ONE_STAGE)
    full = run_recipe(cfg, tmp_path / "full")

    def kill_at_fold1(stage, epoch, metrics, ckpt):
        if stage == "fold1/main" and epoch == 0:  # fold 1's first checkpoint is written
            raise Killed
        return True

    run_dir = tmp_path / "killed"
    with pytest.raises(Killed):
        run_recipe(cfg, run_dir, on_epoch_end=kill_at_fold1)
    fold0 = run_dir / "fold_0" / "metrics.json"
    stamp = fold0.stat().st_mtime_ns
    seen = []
    res = run_recipe(cfg, run_dir, on_epoch_end=lambda s, e, m, c: seen.append((s, e)) or True,
                     resume=run_dir / "fold_1" / "checkpoints")  # fmt: skip
    assert seen == [("fold1/main", 1)]  # fold 0 is kept, fold 1 continues after its epoch 0
    assert fold0.stat().st_mtime_ns == stamp
    assert res.metrics.keys() == full.metrics.keys()
    for k, v in full.metrics.items():
        assert res.metrics[k] == pytest.approx(v, abs=1e-9), k
    hist = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert [(h["fold"], h["epoch"]) for h in hist] == [(0, 0), (0, 1), (1, 0), (1, 1)]
