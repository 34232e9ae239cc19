"""Recipes: presets compose, hand-off of head and teacher, the stage cache count, bad recipes."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY

from fer_core.engine import commands
from fer_core.engine.build import ConfigError, compose, stage_configs
from fer_core.engine.presets import list_recipes, parse_recipe
from fer_core.engine.recipe import run_stages
from fer_core.methods.base import METHODS, Method, MethodNeeds, StepOutput

SHIPPED = {"supervised", "mae_finetune", "maskfeat_pll"}
MAE_TINY = [
    "stages.pretrain.method.decoder.depth=1", "stages.pretrain.method.decoder.dim=32",
    "stages.pretrain.method.decoder.heads=2", "trainer.epochs=1",
]  # fmt: skip


# --------------------------------------------------------------------------- presets compose
def test_the_presets_are_shipped():
    assert SHIPPED <= set(list_recipes())


@pytest.mark.parametrize("name", list_recipes())
def test_every_preset_composes_with_cfg_job(name, capsys):
    assert commands.main(["--cfg", "job", f"recipe={name}"]) == 0
    out = capsys.readouterr().out
    assert f"recipe: {name}" in out and "init_from" in out


def test_preset_order_layers_and_stage_overrides():
    cfg = compose(["recipe=mae_finetune", "trainer.epochs=2", "model.depth=2",
                   "stages.finetune.method.label_smoothing=0.1", "stages.pretrain.trainer.epochs=3"])  # fmt: skip
    assert list(cfg.stages) == ["pretrain", "finetune"]  # the preset's order, not the overrides'
    pre, ft = cfg.stages.pretrain, cfg.stages.finetune
    assert pre.method.name == "mae" and ft.method.name == "ce"
    assert ft.method.label_smoothing == 0.1
    assert pre.trainer.epochs == 3 and ft.trainer.epochs == 2  # the stage's own setting wins
    assert pre.model.name == ft.model.name == "vit_tiny_cpu"  # the preset's recipe-wide set
    assert pre.model.depth == ft.model.depth == 2  # the command line applies to every stage
    assert ft.init_from == {"stage": "pretrain", "parts": ["backbone"]}
    # the command line replaces the preset's recipe-wide model
    assert (
        compose(["recipe=mae_finetune", "model=vit_small"]).stages.pretrain.model.name
        == "vit_small"
    )


# --------------------------------------------------------------------------- bad input
def test_unknown_recipe_is_one_line_with_status_2(capsys):
    assert commands.main(["--cfg", "job", "recipe=mae_finetun"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "unknown recipe 'mae_finetun'" in err and "mae_finetune" in err and "supervised" in err


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["recipe=mae_finetune", "stages.probe.method=ce"], "has no stage 'probe'.*pretrain, finetune"),
        (["recipe=mae_finetune", "method=pll"], "each stage names its own method"),
        (["recipe=supervised", "trainer.protocol=linear"], "stages.<stage>.trainer.protocol"),
    ],
)  # fmt: skip
def test_stage_overrides_cannot_reshape_a_preset(overrides, match):
    with pytest.raises(ConfigError, match=match):
        compose(overrides)


def _stages(*stages):
    return {"stages": list(stages)}


@pytest.mark.parametrize(
    ("recipe", "match"),
    [
        (_stages({"name": "a", "method": "ce", "init_from": {"stage": "a"}}), "stage 'a'.*itself"),
        (_stages({"name": "a", "method": "ce", "init_from": {"stage": "b"}}, {"name": "b", "method": "ce"}),
         "stage 'a'.*'b' is a later stage"),
        (_stages({"name": "a", "method": "ce", "init_from": {"stage": "b"}},
                 {"name": "b", "method": "ce", "init_from": {"stage": "a"}}), "no valid order.*a -> b -> a"),
        (_stages({"name": "a", "method": "ce", "init_from": {"stage": "zz"}}), "'zz' is not a stage"),
        (_stages({"name": "a", "method": "cee"}), "stage 'a': method 'cee'.*allowed: (.*, )?ce,"),
        (_stages({"name": "a", "method": "ce", "protocol": "probe"}), "protocol 'probe'.*linear"),
        (_stages({"name": "a", "method": "ce"}, {"name": "b", "method": "ce",
                  "init_from": {"stage": "a", "parts": ["optimizer"]}}), "parts.*'optimizer'.*teacher"),
        (_stages({"name": "a", "method": "ce", "set": {"method": "pll"}}), "set may hold"),
        ({"set": {"method.label_smoothing": 0.1}, "stages": [{"name": "a", "method": "ce"}]},
         "recipe 'bad': set may hold"),
        (_stages({"name": "a", "method": "ce", "lr": 1}), "unknown keys \\['lr'\\]"),
        ({"stages": []}, "non-empty list 'stages'"),
    ],
)  # fmt: skip
def test_bad_recipes_name_the_stage_key_and_allowed_values(recipe, match):
    with pytest.raises(ConfigError, match=match):
        parse_recipe("bad", recipe)


def test_a_part_the_earlier_stage_lacks_fails_before_training(splits, tmp_path):
    stages = stage_configs(
        compose([*TINY, "trainer.epochs=1", "stages.a.method=ce", "stages.b.method=ce"])
    )
    stages[1][1]["init_from"] = {"stage": "a", "parts": ["backbone", "teacher"]}
    with pytest.raises(
        ConfigError,
        match="stage 'b'.*'teacher'.*stage 'a' \\(method 'ce'\\) has only backbone, head",
    ):
        run_stages(stages, tmp_path, splits=splits)
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


# --------------------------------------------------------------------------- hand-off
class _Teacher(Method):
    """A toy with a head and an EMA teacher; records what it starts from."""

    own_metrics = ("train/ce",)
    needs = MethodNeeds()

    def __init__(self, backbone, num_classes, **kw):
        super().__init__(backbone, num_classes, **kw)
        self.head = torch.nn.Linear(backbone.num_features, num_classes)
        self.teacher = torch.nn.Linear(backbone.num_features, num_classes)
        self.started_from: dict[str, dict] = {}

    def forward(self, images):
        return self.head(self.backbone.pooled(images))

    def on_train_start(self, ctx):
        self.started_from = {
            "head": copy.deepcopy(self.head.state_dict()),
            "teacher": copy.deepcopy(self.teacher.state_dict()),
        }

    def training_step(self, batch, ctx):
        logits = self(batch["image"])
        loss = torch.nn.functional.cross_entropy(logits, batch["label"], ignore_index=-1)
        return StepOutput(loss=loss, logs={"ce": loss.detach()}, logits=logits.detach())

    @torch.no_grad()
    def after_optimizer_step(self, ctx):
        for t, s in zip(self.teacher.parameters(), self.head.parameters()):
            t.mul_(0.5).add_(s, alpha=0.5)


@pytest.fixture
def toy_method():
    METHODS.register("toy_teacher")(_Teacher)
    _Teacher.method_name = "toy_teacher"
    yield "toy_teacher"
    METHODS._entries.pop("toy_teacher")


def test_later_stage_starts_from_the_earlier_head_and_teacher(
    splits, tmp_path, toy_method, monkeypatch
):
    monkeypatch.setenv("FER_STUDY_CACHE", str(tmp_path / "cache"))
    built: list[_Teacher] = []
    real = METHODS.get(toy_method)
    monkeypatch.setitem(
        METHODS._entries, toy_method, lambda *a, **k: built.append(real(*a, **k)) or built[-1]
    )
    stages = stage_configs(compose([*TINY, "trainer.epochs=1", "stages.first.method=ce", "stages.second.method=ce",
                                    "stages.first.trainer.seed=3"]))  # fmt: skip
    for _, st in stages:
        st["method"] = {"name": toy_method}
    stages[1][1]["init_from"] = {"stage": "first", "parts": ["backbone", "head", "teacher"]}
    res = run_stages(stages, tmp_path, splits=splits)
    assert [h["stage"] for h in res.history] == ["first", "second"]
    # built once each for the pre-training check, then once each to train
    first, second = built[2], built[3]
    given = first.handoff_state()
    assert set(given) == {"backbone", "head", "teacher"}
    for part in ("head", "teacher"):
        for k, v in given[part].items():
            assert torch.equal(second.started_from[part][k], v), (part, k)
    # the teacher moved during stage one, so a freshly built teacher would not pass
    assert not torch.equal(first.started_from["teacher"]["weight"], given["teacher"]["weight"])


# --------------------------------------------------------------------------- the stage cache
def test_a_sweep_over_a_last_stage_knob_runs_each_earlier_stage_once_per_seed(
    splits, tmp_path, monkeypatch
):
    monkeypatch.setenv("FER_STUDY_CACHE", str(tmp_path / "cache"))
    ran: dict[int, int] = {0: 0, 1: 0}
    for smoothing in (0.0, 0.05, 0.1, 0.2):
        for seed in (0, 1):
            cfg = compose(["recipe=mae_finetune", *TINY, *MAE_TINY, f"trainer.seed={seed}",
                           f"stages.finetune.method.label_smoothing={smoothing}"])  # fmt: skip
            res = run_stages(stage_configs(cfg), tmp_path / f"r{smoothing}-{seed}", splits=splits)
            assert res.extra["ran"]["finetune"] and "test/uar" in res.metrics
            ran[seed] += res.extra["ran"]["pretrain"]
            # a cache hit still shows the earlier stage in this run's history
            assert [h["stage"] for h in res.history] == ["pretrain", "finetune"]
    assert ran == {0: 1, 1: 1}
    assert len(list((tmp_path / "cache" / "stages").glob("[!.]*"))) == 2


# --------------------------------------------------------------------------- supervised trains
@pytest.mark.slow
def test_supervised_recipe_trains_on_synthfer(tmp_path, capsys):
    rc = commands.main(["--run-dir", str(tmp_path), "recipe=supervised", "trainer.epochs=1",
                        "data.n_train=256", "data.n_val=64", "data.n_test=64"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "main epoch 1" in out and "train/ce" in out and "val/uar_best" in out
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
