"""Tune gets a checkpoint only on the epochs that wrote last.pt (trainer.save_every), no more."""

from __future__ import annotations

from pathlib import Path

from ray import tune

from fer_core.tune.trainable import SYNTHETIC_TRAIN_FN, make_trainable, synthetic_train


def test_synthetic_train_hands_a_checkpoint_only_when_it_wrote_one(tmp_path):
    seen = []
    synthetic_train(["trainer.epochs=5", "trainer.save_every=2"], tmp_path,
                    lambda s, e, m, c: seen.append((e, c)) or True, None)  # fmt: skip
    assert [(e, c is not None) for e, c in seen] == [(0, False), (1, True), (2, False), (3, True), (4, True)]  # fmt: skip


def test_the_trainable_reports_checkpoints_every_save_every_epochs(tmp_path, monkeypatch):
    reports = []
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda rec, checkpoint=None: reports.append((rec["epoch"], checkpoint)))  # fmt: skip
    trial = make_trainable(SYNTHETIC_TRAIN_FN, tmp_path, ["trainer.epochs=5", "trainer.save_every=2"], "val/acc", hparams=False)  # fmt: skip
    trial({"config_id": 0, "seed": 0, "params": {}})
    assert [e for e, _ in reports] == [1, 2, 3, 4, 5]
    with_ckpt = [e for e, c in reports if c is not None]
    assert with_ckpt == [2, 4, 5]  # epochs 1, 3 and the last (1-based), as last.pt was written
    assert all(Path(c.path).name == "checkpoints" for _, c in reports if c is not None)
