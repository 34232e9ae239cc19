"""Trainable pieces without Ray: overrides, the synthetic train function, HParams, the spec."""

from __future__ import annotations

import json

import pytest

from fer_core.tune.spec import StudySpec, spec_from_study, to_overrides
from fer_core.tune.trainable import (
    SEED_KNOB,
    load_train_fn,
    synthetic_train,
    trial_overrides,
    write_hparams,
)


def test_trial_overrides_join_base_params_rows_and_seed():
    rows = {"vanilla": {"method": {"decoder.enabled": False}}, "full": {}}
    out = trial_overrides(["method=pll"], {"row": "vanilla"}, 2, rows)
    assert out == ["method=pll", "method.decoder.enabled=false", f"{SEED_KNOB}=2"]
    out = trial_overrides([], {"method.revision.threshold": 0.3}, 0)
    assert out == ["method.revision.threshold=0.3", f"{SEED_KNOB}=0"]
    assert to_overrides({"method": "pll", "trainer.epochs": 3, "a": {"b": [1, 2]}}) == [
        "method=pll",
        "trainer.epochs=3",
        "a.b=[1,2]",
    ]


def test_load_train_fn():
    assert load_train_fn("fer_core.tune.trainable:synthetic_train") is synthetic_train
    with pytest.raises(ValueError, match="module:function"):
        load_train_fn("fer_core.tune.trainable")


def test_synthetic_train_reports_stops_and_resumes(tmp_path):
    seen = []

    def cb(stage, epoch, metrics, ckpt):
        seen.append(epoch)
        return epoch < 1  # stop after the second epoch

    out = synthetic_train(["trainer.epochs=4", "synthetic.x1=0.5"], tmp_path, cb, None)
    assert seen == [0, 1] and 0 < out["val/acc"] < 0.91 and "test/acc" in out
    seen.clear()
    out = synthetic_train(
        ["trainer.epochs=4"],
        tmp_path,
        lambda *a: seen.append(a[1]) or True,
        tmp_path / "checkpoints",
    )
    assert seen == [2, 3]
    with pytest.raises(RuntimeError, match="synthetic failure"):
        synthetic_train(["synthetic.fail=0"], tmp_path / "f", lambda *a: True, None)


def test_write_hparams_makes_an_event_file(tmp_path):
    write_hparams(tmp_path, {"method.revision.threshold": 0.3, "row": "full"}, 1, {"val/acc": 0.5})
    assert list((tmp_path / "hparams").rglob("events.out.tfevents.*"))


def test_spec_from_a_plain_study_dict():
    study = {
        "name": "pll_threshold",
        "profile": "synth",
        "metric": "val/acc",
        "mode": "max",
        "base": {"method": "pll", "trainer.epochs": 3},
        "profiles": {"synth": {"data": "synthfer"}, "paper": {"data": "rafdb"}},
        "space": {"method.revision.threshold": {"grid": [0.0, 0.5]}},
        "algorithm": {"name": "grid"},
        "seeds": [0, 1, 2],
        "failure": {"max_retries": 1},
        "resources": {"cpu": 1, "gpu": 0.25, "max_concurrent": 2},
        "ablation": None,
    }
    spec = spec_from_study(study)
    assert spec.study_name == "pll_threshold-synth"
    assert spec.base_overrides == ["method=pll", "data=synthfer", "trainer.epochs=3"]
    assert spec.epochs == 3 and spec.dataset == "synthfer" and spec.gpu == 0.25
    assert spec.max_retries == 1 and spec.seeds == [0, 1, 2]
    abl = spec_from_study(
        dict(
            study,
            space={},
            ablation={
                "rows": [{"name": "vanilla", "set": {"m.x": 0}}, {"name": "full", "set": {}}]
            },
        )
    )
    assert abl.ablation_rows == {"vanilla": {"m.x": 0}, "full": {}}
    assert json.dumps(spec.plain())
    with pytest.raises(ValueError, match="mode"):
        StudySpec(name="x", mode="up")
