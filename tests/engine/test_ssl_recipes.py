"""The protocol presets of 002 (``conf/recipe/ssl_*.yaml``): Supplement B's settings, ssl_linear
end to end on a small SynthFER, one cached pre-training serving the other protocols, and a
linear stage without a backbone to freeze refused before training."""

from __future__ import annotations

import pytest

from fer_core.engine.build import ConfigError, compose, stage_configs
from fer_core.engine.presets import parse_recipe
from fer_core.engine.recipe import run_recipe, run_stages

# (stage, optimiser, lr, weight decay, batch, schedule, protocol): 002 Sec. 4.1 and Supplement B
PRETRAIN = ("pretrain", "sgd", 0.05, 1e-4, 256, "cosine", "finetune")
LINEAR = ("linear", "sgd", 2.0, 0.0, 1024, "constant", "linear")  # B.1: no decay
EXPECTED = {
    "ssl_linear": [PRETRAIN, LINEAR],
    "ssl_semi": [PRETRAIN, ("semi", "sgd", 0.05, 1e-4, 512, "cosine", "semi")],  # B.2
    "ssl_finetune": [PRETRAIN, LINEAR, ("finetune", "sgd", 0.001, 1e-4, 512, "cosine", "finetune")],
}


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_presets_carry_supplement_b_settings(recipe):
    got = [
        (n, c["optim"]["name"], c["sched"]["lr"], c["optim"]["weight_decay"],
         c["trainer"]["batch_size"], c["sched"]["name"], c["trainer"]["protocol"])
        for n, c in stage_configs(compose([f"recipe={recipe}"]))
    ]  # fmt: skip
    assert got == EXPECTED[recipe]


def test_transfer_preset_changes_data_per_stage():
    stages = stage_configs(compose(["recipe=ssl_transfer", "data=affectnet8", "data.root=/an",
                                    "stages.finetune.data.root=/raf"]))  # fmt: skip
    data = [(n, c["data"]["name"], c["data"]["num_classes"], c["data"]["root"]) for n, c in stages]
    # B.4: pre-train on AffectNet, probe on AffectNet-7, fine-tune on RAF-DB
    assert data == [("pretrain", "affectnet", 8, "/an"), ("linear", "affectnet", 7, "/an"),
                    ("finetune", "rafdb", 7, "/raf")]  # fmt: skip
    assert stages[2][1]["init_from"] == {"stage": "linear", "parts": ["backbone", "head"]}


SMALL = [
    "data.n_train=32", "data.n_val=32", "data.n_test=32", "data.img_size=32",
    "trainer.epochs=1", "trainer.progress=false", "trainer.eval_batch_size=64",
    "stages.pretrain.method=simclr", "stages.pretrain.method.proj.hidden_dim=32",
    "stages.pretrain.method.proj.dim=16", "stages.pretrain.trainer.batch_size=32",
]  # fmt: skip


def test_ssl_linear_end_to_end_and_one_pretraining_serves_the_other_protocols(tmp_path):
    res = run_recipe(compose(["recipe=ssl_linear", *SMALL, "stages.linear.trainer.batch_size=32"]),
                     tmp_path / "linear")  # fmt: skip
    assert res.extra["ran"] == {"pretrain": True, "linear": True}
    assert [h["stage"] for h in res.history] == ["pretrain", "linear"]
    assert res.history[0]["simclr/loss"] > 0
    for m in ("test/acc", "test/acc_true", "val/acc"):
        assert 0.0 <= res.metrics[m] <= 1.0
    semi = run_recipe(compose(["recipe=ssl_semi", *SMALL, "stages.semi.trainer.semi.fraction=0.5",
                               "stages.semi.trainer.batch_size=16"]), tmp_path / "semi")  # fmt: skip
    assert semi.extra["ran"] == {"pretrain": False, "semi": True}  # the cached pre-training
    transfer = compose(["recipe=ssl_transfer", *SMALL, "stages.linear.data=synthfer",
                        "stages.finetune.data=synthfer", "stages.finetune.data.seed=1"])  # fmt: skip
    names = [(n, c["data"]["seed"]) for n, c in stage_configs(transfer)]
    assert names == [("pretrain", 0), ("linear", 0), ("finetune", 1)]  # another dataset at the end


def test_a_linear_first_stage_is_refused_in_a_preset():
    with pytest.raises(ConfigError, match=r"stage 'probe': protocol 'linear' .*first stage"):
        parse_recipe("x", {"stages": [{"name": "probe", "method": "ce", "protocol": "linear"},
                                      {"name": "ft", "method": "ce", "init_from": {"stage": "probe"}}]})  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"stage 'lin': protocol 'linear' .*does not take the backbone"
    ):
        parse_recipe("x", {"stages": [
            {"name": "a", "method": "ce"},
            {"name": "lin", "method": "ce", "protocol": "linear", "init_from": {"stage": "a", "parts": ["head"]}},
        ]})  # fmt: skip


def test_a_linear_first_stage_is_refused_before_training(tmp_path):
    # ad-hoc stages (no preset): the first stage has no earlier stage to take a backbone from
    cfg = compose(["stages.probe.method=ce", "stages.probe.trainer.protocol=linear",
                   "stages.ft.method=ce", *SMALL[:5]])  # fmt: skip
    with pytest.raises(ConfigError, match=r"stage 'probe': protocol 'linear' .*model\.checkpoint"):
        run_stages(stage_configs(cfg), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
