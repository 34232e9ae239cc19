"""The three-stage ``ssfer`` recipe (004 Fig. 2) on SynthFER at a reduced size: MAE on a separate
label-free SynthFER draw, FaceMix fine-tuning, the EMA-teacher stage; the teacher is the EMA of
the student after a step; a sweep over tau reruns only the last stage; bad input fails before
training, naming the knob and what is allowed."""

from __future__ import annotations

import pytest
import torch

from fer_core.engine import build
from fer_core.engine.build import ConfigError, compose, stage_configs
from fer_core.engine.recipe import run_stages, stage_data
from fer_core.methods.base import MethodInfo

# 64 training images, a quarter labelled: one step per stage (batch 16)
SMALL = ["recipe=ssfer", "trainer.epochs=1", "trainer.batch_size=16", "trainer.threads=1",
         "stages.semi.trainer.batch_size=16", "trainer.semi.fraction=0.25", "data.n_train=64",
         "data.n_val=16", "data.n_test=16", "data.img_size=32", "model.embed_dim=32",
         "model.depth=1", "model.num_heads=2", "stages.pretrain.method.decoder.depth=1",
         "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2",
         "stages.semi.method.ema.momentum=0.5", "stages.semi.method.conf_threshold=0.2"]  # fmt: skip


def _semi_method(scfg: dict):
    info = MethodInfo(num_classes=7, img_size=32, channels=1, dataset="synthfer", batch_size=16)
    return build.build_method(scfg, info)


def test_ssfer_recipe_runs_three_stages_and_the_teacher_is_the_ema_of_the_student(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("FER_STUDY_CACHE", str(tmp_path / "cache"))
    stages = stage_configs(compose(SMALL))
    assert [(n, s["data"]["name"], s["method"]["name"], s["trainer"]["protocol"])
            for n, s in stages] == [("pretrain", "faces", "mae", "finetune"),
                                    ("finetune", "synthfer", "ssfer", "semi"),
                                    ("semi", "synthfer", "ssfer", "semi")]  # fmt: skip
    semi = stages[2][1]
    assert (
        semi["method"]["ema"]["enabled"] is True and semi["method"]["facemix"]["enabled"] == "false"
    )
    assert semi["init_from"] == {"stage": "finetune", "parts": ["backbone", "head"]}
    res = run_stages(stages, tmp_path / "run")
    assert res.extra["ran"] == {"pretrain": True, "finetune": True, "semi": True}
    last = [h for h in res.history if h["stage"] == "semi"][-1]
    assert 0.0 <= last["semi/mask_rate"] <= 1.0 and 0.0 <= last["semi/pseudo_acc"] <= 1.0
    assert "semi/unlabelled_loss" in last and "test/acc_true" in res.metrics
    # teacher after the one step = 0.5 * stage 2's handed-on model + 0.5 * the student after it
    handoff = next(
        torch.load(p, weights_only=True)
        for p in (tmp_path / "cache").rglob("handoff.pt")
        if "head" in torch.load(p, weights_only=True)
    )
    before = _semi_method(semi)
    before.load_handoff({k: handoff[k] for k in ("backbone", "head")})
    after = _semi_method(semi)
    after.load_state_dict(torch.load(tmp_path / "run" / "checkpoints" / "last.pt",
                                     weights_only=True)["model"])  # fmt: skip
    student = list(after.backbone.parameters()) + list(after.head.parameters())
    teacher0 = list(before.teacher.parameters())
    assert any(not torch.equal(s, t) for s, t in zip(student, teacher0))  # the student trained
    for t1, t0, s1 in zip(after.teacher.parameters(), teacher0, student):
        torch.testing.assert_close(t1, 0.5 * t0 + 0.5 * s1)
    # a sweep over tau: stages 1-2 come from the cache
    again = run_stages(stage_configs(compose([*SMALL, "stages.semi.method.conf_threshold=0.9"])),
                       tmp_path / "run2")  # fmt: skip
    assert again.extra["ran"] == {"pretrain": False, "finetune": False, "semi": True}


@pytest.mark.parametrize(
    "extra, match",
    [
        (["stages.finetune.data=faces"],
         r"stage 'finetune': data=faces has no labels, but method 'ssfer' needs them"),
        (["trainer.semi.fraction=1.0"],
         r"stage 'finetune': method 'ssfer' trains on unlabelled samples|stage 'semi': method "
         r"'ssfer' trains on unlabelled samples, but trainer.semi .* labels all"),
        (["trainer.semi.per_class=1000"], r"trainer.semi.per_class=1000 is above the smallest "
                                           r"class's count .*; allowed: 1\.\.\d+"),
        (["trainer.semi.per_class=2", "trainer.semi.total=10"],
         r"trainer.semi.per_class=2 and trainer.semi.total=10 are both set"),
        (["stages.pretrain.data.channels=3"], r"stage 'finetune' takes backbone from stage "
                                              r"'pretrain', whose images are 3 x 32 px"),
        (["stages.semi.method.conf_threshold=1.5"], r"conf_threshold must be a number in \[0, 1\]"),
        (["stages.semi.method.ema.momentum=2"], r"ema.momentum must be a number in \[0, 1\]"),
    ],
)  # fmt: skip
def test_bad_input_fails_before_training(tmp_path, extra, match):
    with pytest.raises((ConfigError, ValueError), match=match):
        run_stages(stage_configs(compose([*SMALL, *extra])), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


def test_label_noise_is_refused_before_data_is_built():
    with pytest.raises(ValueError, match=r"data.label_noise must be a number in \[0, 1\)"):
        build.build_data({**stage_configs(compose([*SMALL, "data.label_noise=1.0"]))[1][1]["data"]})


def test_total_budget_is_exact_and_the_same_for_every_method():
    picks = []
    for method in ("ce", "ssfer"):
        cfg = stage_configs(compose([f"method={method}", "trainer.protocol=semi", "trainer.semi.total=20",
                                     "data.n_train=64", "data.img_size=16"]))[0][1]  # fmt: skip
        s = build.trainer_settings(cfg["trainer"])
        d = stage_data(build.build_data(cfg["data"]), s)
        assert len(d.train) == 20 and len(d.unlabelled) == len(d.splits.train) - 20
        picks.append(d.train.images)
    assert torch.equal(*picks)


def test_stage_keys_ignore_what_a_stage_does_not_use():
    from fer_core.engine.stages import stage_key

    def keys(*extra):
        return [stage_key(s, "") for _, s in stage_configs(compose([*SMALL, *extra]))]

    base = keys()
    # the label budget and label noise do not reach MAE on unlabelled faces; they do reach the rest
    for extra in ("trainer.semi.fraction=0.5", "data.label_noise=0.2", "trainer.kfold.k=3"):
        other = keys(extra)
        assert other[0] == base[0], extra
    assert keys("trainer.semi.fraction=0.5")[1] != base[1]
    assert keys("data.label_noise=0.2")[1] != base[1]
    assert keys("data.n_train=80")[0] != base[0]  # the faces draw's size does


def test_kfold_protocol_is_checked_and_applies_to_the_last_stage_only():
    from fer_core.engine.recipe import fold_stages, kfold_settings

    stages = stage_configs(compose([*SMALL, "stages.semi.trainer.protocol=kfold",
                                    "trainer.kfold.protocol=semi", "trainer.kfold.k=2"]))  # fmt: skip
    assert kfold_settings(stages).protocol == "semi"
    folded = fold_stages(stages, "semi")
    assert [s["trainer"]["protocol"] for _, s in folded] == ["finetune", "semi", "semi"]
    assert stages[-1][1]["trainer"]["protocol"] == "kfold"  # the run's own config is unchanged
    bad = stage_configs(compose([*SMALL, "stages.semi.trainer.protocol=kfold",
                                 "trainer.kfold.protocol=linear"]))  # fmt: skip
    with pytest.raises(ConfigError, match=r"trainer.kfold.protocol='linear' is not allowed; use "
                                          r"one of finetune, semi"):  # fmt: skip
        kfold_settings(bad)
