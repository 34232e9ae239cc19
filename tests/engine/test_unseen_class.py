"""003 Table III's unseen class: data.drop_class / data.keep_fraction and
trainer.eval.unseen_threshold (hand values, bad input, a tiny run)."""

from __future__ import annotations

import pytest
import torch

from fer_core.data import build_splits, dataset_kwargs
from fer_core.data.base import DataSplits, FERImageSet, reduce_class
from fer_core.data.splits import keep_class_indices
from fer_core.engine.build import ConfigError, compose, stage_configs, trainer_settings
from fer_core.engine.metrics import classification_metrics, unseen_predictions


def test_keep_fraction_of_one_class_by_hand_and_nested():
    y = torch.tensor([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2])  # ten samples of class 1
    assert keep_class_indices(y, 1, 0.0).tolist() == [0, 11]
    kept = keep_class_indices(y, 1, 0.3, seed=4)
    assert len(kept) == 2 + 3 and {0, 11} <= set(kept.tolist())
    assert set(keep_class_indices(y, 1, 0.1, seed=4).tolist()) <= set(kept.tolist())
    with pytest.raises(ValueError, match=r"data.keep_fraction must be in \[0, 1\)"):
        keep_class_indices(y, 1, 1.0)


def _set(labels: list[int]) -> FERImageSet:
    n = len(labels)
    return FERImageSet(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), torch.tensor(labels), 7)


def test_reduce_class_touches_train_only_and_names_bad_classes():
    s = DataSplits(_set([0, 0, 3, 3, 3]), _set([3]), _set([3, 0]), 7, data_hash="h")
    r = reduce_class(s, "sadness", 0.0)  # sadness is class 3
    assert r.train.labels.tolist() == [0, 0] and r.test is s.test and r.val is s.val
    assert r.data_hash == "h-drop-sadness-0"
    assert reduce_class(s, None) is s
    with pytest.raises(ValueError, match="data.drop_class 'contempt' is not a class .*neutral"):
        reduce_class(s, "contempt", 0.1)  # 7 classes: no contempt


def test_every_dataset_takes_the_keys_and_synthfer_applies_them():
    assert {"drop_class", "keep_fraction"} <= set(dataset_kwargs("rafdb"))
    kw = dict(n_train=140, n_val=14, n_test=14, img_size=16, seed=0)
    full = build_splits("synthfer", **kw)
    cut = build_splits("synthfer", drop_class="happiness", keep_fraction=0.1, **kw)
    n_happy = int((full.train.labels == 1).sum())
    assert int((cut.train.labels == 1).sum()) == round(0.1 * n_happy)
    assert len(cut.train) == len(full.train) - n_happy + round(0.1 * n_happy)
    assert torch.equal(cut.test.labels, full.test.labels) and cut.data_hash != full.data_hash


def test_unseen_predictions_by_hand():
    # softmax tops: e^5 / (e^5 + 6) = 0.96 stays class 0; 1/7 and e^.5 / (2 e^.5 + 5) = 0.20 are
    # below 0.25: the dropped class 5
    logits = torch.tensor([[5.0, 0, 0, 0, 0, 0, 0], [0.0] * 7, [0.5, 0.5, 0, 0, 0, 0, 0]])
    assert unseen_predictions(logits, 5, 0.25).tolist() == [0, 5, 5]
    assert unseen_predictions(logits, 5, 0.1).tolist() == [0, 0, 0]
    m, _ = classification_metrics(logits, torch.tensor([0, 5, 1]), 7, "test", unseen=(5, 0.25))
    assert m["test/acc"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1])
def test_unseen_threshold_outside_zero_one_fails_before_training(bad):
    cfg = compose([f"trainer.eval.unseen_threshold={bad}"])
    with pytest.raises(ConfigError, match=r"trainer.eval.unseen_threshold must be in \(0, 1\)"):
        trainer_settings(stage_configs(cfg)[0][1]["trainer"])


def test_a_tiny_run_evaluates_with_the_unseen_rule(tmp_path):
    from fer_core.engine.recipe import run_recipe

    over = ["method=ce", "data.n_train=70", "data.n_val=14", "data.n_test=14", "data.img_size=16",
            "data.drop_class=fear", "data.keep_fraction=0.0", "trainer.epochs=1",
            "trainer.batch_size=32", "trainer.eval.unseen_threshold=0.99", "trainer.threads=1"]  # fmt: skip
    res = run_recipe(compose(over), tmp_path)
    # threshold 0.99 after one epoch: every test sample is predicted as fear (class 6)
    labels = build_splits("synthfer", n_train=70, n_val=14, n_test=14, img_size=16).test.labels
    assert res.metrics["test/acc"] == pytest.approx(float((labels == 6).float().mean()))
