"""GPU-ready trainer knobs on the CPU: trainer.compile (eager backend: no code generation) and
trainer.aug.device=auto (augmentation where the batch lives), each with exact resume."""

from __future__ import annotations

import shutil

import pytest
from conftest import TINY

from fer_core.engine import build, loop
from fer_core.engine.build import ConfigError, compose, stage_configs
from fer_core.engine.checkpoint import load_checkpoint
from fer_core.engine.loop import compile_backbones
from fer_core.engine.recipe import run_stages

KNOBS = ["trainer.compile=true", "trainer.compile_backend=eager", "trainer.aug.device=auto",
         "trainer.aug.policy=crop_flip", "trainer.epochs=2"]  # fmt: skip


def _stages(*extra):
    return stage_configs(compose([*TINY, *extra]))


def test_compile_and_device_aug_train_and_resume_exactly(splits, tmp_path, monkeypatch):
    compiled = []

    def counting(method, backend):
        compiled.append((compile_backbones(method, backend), backend))
        return compiled[-1][0]

    monkeypatch.setattr(loop, "compile_backbones", counting)
    stages = _stages(*KNOBS)
    calls, saved = [], tmp_path / "epoch0"

    def keep_first(stage, epoch, metrics, ckpt_dir):
        calls.append(metrics)
        if epoch == 0:  # the checkpoint a run stopped after its first epoch would leave
            saved.mkdir()
            shutil.copy(ckpt_dir / "last.pt", saved / "last.pt")
        return True

    run_stages(stages, tmp_path / "full", keep_first, splits=splits)
    assert compiled and compiled[0][0] >= 3 and compiled[0][1] == "eager"  # embed, block, norm
    assert len(calls) == 2 and calls[-1]["train/loss"] > 0
    assert load_checkpoint(saved)["epoch"] == 0
    # resumed without compiling: the checkpoint's keys are the plain model's and eager compile
    # changes no number, so the second epoch repeats exactly
    plain = _stages(*[k for k in KNOBS if not k.startswith("trainer.compile")])
    resumed = []
    run_stages(plain, tmp_path / "b", lambda s, e, m, c: resumed.append(m) or True,
               resume=saved, splits=splits)  # fmt: skip
    assert len(resumed) == 1
    for k in ("train/loss", "val/acc", "val/uar"):
        assert resumed[0][k] == pytest.approx(calls[1][k], abs=1e-6), k


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.compile=yes", "trainer.compile' takes a bool"),
        ("trainer.aug.device=gpu", "trainer.aug.device must be one of cpu, auto, got 'gpu'"),
    ],
)
def test_bad_knobs_name_the_knob(override, message):
    with pytest.raises(ConfigError, match=message):
        (_, scfg), = _stages(override)  # fmt: skip
        build.trainer_settings(scfg["trainer"])
