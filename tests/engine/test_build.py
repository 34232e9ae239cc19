from __future__ import annotations

import pytest
import torch

from fer_core.engine.build import (
    GROUPS,
    ConfigError,
    build_method,
    build_optimizer,
    build_scheduler,
    compose,
    flatten_knobs,
    group_options,
    stage_configs,
)
from fer_core.methods import MethodInfo


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_option_composes(group):
    options = group_options(group)
    assert options
    for opt in options:
        cfg = compose([f"{group}={opt}"])
        assert group in cfg


def test_defaults_are_cpu_vit_on_synthfer():
    cfg = compose()
    assert cfg.data.name == "synthfer" and cfg.model.name == "resnet_tiny_cpu"
    assert cfg.method.name == "ce" and not cfg.stages
    assert [n for n, _ in stage_configs(cfg)] == ["main"]


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["model=vit_tiny"], ["model", "vit_tiny_cpu", "allowed"]),
        (["trainer.epoch=3"], ["trainer.epoch", "Did you mean", "trainer.epochs"]),
        (["trainer.epochs=abc"], ["trainer.epochs", "number", "abc"]),
        (["trainer.deterministic=3"], ["trainer.deterministic", "bool"]),
        (["model._target_=os.system"], ["_target_"]),
        (["+trainer.foo=1"], ["adding"]),
        (["foo=1"], ["foo"]),
        (["stages.pre=mae"], ["stages.<stage>"]),
        (["stages.pre.method=mae", "stages.pre.method.mask_ration=0.5"], ["mask_ratio", "pre"]),
    ],
)
def test_config_errors_name_key_and_allowed(overrides, words):
    with pytest.raises(ConfigError) as e:
        compose(overrides)
    for w in words:
        assert w in str(e.value)


def test_stages_compose_in_order_with_shared_overrides():
    cfg = compose([
        "stages.pretrain.method=mae", "stages.pretrain.method.mask_ratio=0.6",
        "stages.pretrain.trainer.epochs=5", "stages.finetune.method=ce", "trainer.seed=3",
    ])  # fmt: skip
    names = [n for n, _ in stage_configs(cfg)]
    assert names == ["pretrain", "finetune"]
    assert cfg.stages.pretrain.method.mask_ratio == 0.6
    assert cfg.stages.pretrain.trainer.epochs == 5
    assert cfg.stages.finetune.trainer.epochs == cfg.trainer.epochs
    assert cfg.stages.finetune.trainer.seed == 3


def test_flatten_knobs_joins_with_underscore():
    assert flatten_knobs({"revision": {"threshold": 0.3}, "k": 2}) == {
        "revision_threshold": 0.3,
        "k": 2,
    }


def test_layer_decay_and_schedule():
    cfg = compose(["model=vit_tiny_cpu", "optim.layer_decay=0.65", "sched.warmup_epochs=1", "sched.lr=1e-3",
                   "sched.warmup_lr=1e-5", "sched.min_lr=1e-6"])  # fmt: skip
    ((_, st),) = stage_configs(cfg)
    m = build_method(st, MethodInfo(7, 48, 1))
    opt = build_optimizer(st["optim"], st["sched"], m)
    scales = sorted({round(g.get("lr_scale", 1.0), 6) for g in opt.param_groups})
    assert len(scales) > 2 and scales[-1] == 1.0 and scales[0] < 0.65**4
    sched = build_scheduler(st["sched"], opt, epochs=3, steps_per_epoch=10)
    top = max(opt.param_groups, key=lambda g: g.get("lr_scale", 1.0))
    sched.step_update(0)
    assert top["lr"] == pytest.approx(1e-5)
    sched.step_update(10)
    assert top["lr"] == pytest.approx(1e-3)
    sched.step_update(30)
    assert top["lr"] == pytest.approx(1e-6, rel=1e-3)
    # per-group layer decay scales the scheduled lr
    low = min(opt.param_groups, key=lambda g: g.get("lr_scale", 1.0))
    sched.step_update(10)
    assert low["lr"] == pytest.approx(1e-3 * low["lr_scale"])


def test_exponential_schedule_decays_per_epoch():
    cfg = compose(["sched=exponential", "sched.gamma=0.5", "sched.lr=0.1"])
    ((_, st),) = stage_configs(cfg)
    m = build_method(st, MethodInfo(7, 48, 1))
    opt = build_optimizer(st["optim"], st["sched"], m)
    sched = build_scheduler(st["sched"], opt, epochs=3, steps_per_epoch=4)
    sched.step_update(9)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)
    assert torch.is_tensor(next(m.parameters()))
