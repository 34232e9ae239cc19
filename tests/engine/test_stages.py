from __future__ import annotations

import pytest
from conftest import TINY

from fer_core.cache import cache_root
from fer_core.engine import stages as stages_mod
from fer_core.engine.build import compose, stage_configs
from fer_core.engine.recipe import run_stages
from fer_core.methods import list_methods

PRE = [
    "stages.pretrain.method=mae", "stages.pretrain.trainer.epochs=1",
    "stages.pretrain.method.decoder.depth=1", "stages.pretrain.method.decoder.dim=32",
    "stages.pretrain.method.decoder.heads=2", "stages.finetune.method=ce",
    "stages.finetune.trainer.epochs=1",
]  # fmt: skip


@pytest.mark.skipif("mae" not in list_methods(), reason="the MAE method is not registered yet")
def test_pretrain_stage_is_cached_and_feeds_finetune(splits, tmp_path, monkeypatch):
    runs = []
    real = stages_mod.cached_stage

    def counting(key, run):
        def wrapped():
            runs.append(key)
            return run()

        return real(key, wrapped)

    monkeypatch.setattr("fer_core.engine.recipe.cached_stage", counting)
    seen = []
    cb = lambda s, e, m, c: seen.append((s, e, sorted(m))) or True  # noqa: E731
    a = run_stages(stage_configs(compose([*TINY, *PRE])), tmp_path / "a", cb, splits=splits)
    assert [s for s, _, _ in seen] == ["pretrain", "finetune"]
    assert "mim/loss" in seen[0][2] and "val/uar" in seen[1][2]
    assert "test/uar" in a.metrics
    # a fine-tuning knob changes: the pre-training stage comes from the cache
    b = run_stages(stage_configs(compose([*TINY, *PRE, "stages.finetune.method.label_smoothing=0.1"])),
                   tmp_path / "b", splits=splits)  # fmt: skip
    assert len(runs) == 1 and "test/uar" in b.metrics
    assert [h["stage"] for h in b.history] == ["pretrain", "finetune"]
    assert (cache_root() / "stages" / runs[0] / "handoff.pt").is_file()


def test_stage_key_ignores_bookkeeping():
    ((_, st),) = stage_configs(compose(["trainer.epochs=1"]))
    other = {**st, "trainer": {**st["trainer"], "run_dir": "/x", "progress": False}}
    assert stages_mod.stage_key(st, "") == stages_mod.stage_key(other, "")
    changed = {**st, "trainer": {**st["trainer"], "seed": 5}}
    assert stages_mod.stage_key(st, "") != stages_mod.stage_key(changed, "")


def test_stage_key_changes_with_the_threads_it_trains_with(monkeypatch):
    """A CPU stage's floats depend on its thread count (reduction order): an entry built with 2
    threads is not a 1-thread run's result. ``trainer.threads`` unset means torch's current count."""
    ((_, st),) = stage_configs(compose(["trainer.epochs=1"]))
    assert st["trainer"]["threads"] is None

    def with_threads(n):
        return {**st, "trainer": {**st["trainer"], "threads": n}}

    monkeypatch.setattr(stages_mod.torch, "get_num_threads", lambda: 2)
    assert stages_mod.stage_key(st, "") == stages_mod.stage_key(with_threads(2), "")
    assert stages_mod.stage_key(st, "") != stages_mod.stage_key(with_threads(1), "")
    monkeypatch.setattr(stages_mod.torch, "get_num_threads", lambda: 1)
    assert stages_mod.stage_key(st, "") == stages_mod.stage_key(with_threads(1), "")


def test_stage_key_changes_with_the_code_that_trains_the_stage(tmp_path, monkeypatch):
    """An entry built by other code (a fix since) is not this code's result: the key hashes
    fer_core's .py and .yaml files, so editing one gives every stage a new key."""
    ((_, st),) = stage_configs(compose(["trainer.epochs=1"]))
    before = stages_mod.stage_key(st, "")
    version = stages_mod.code_version()
    assert len(version) == 16 and version == stages_mod.code_version()
    pkg = tmp_path / "fer_core" / "engine"
    pkg.mkdir(parents=True)
    (pkg / "stages.py").write_text("x = 1\n")
    monkeypatch.setattr(stages_mod, "__file__", str(pkg / "stages.py"))
    stages_mod.code_version.cache_clear()
    try:
        assert stages_mod.stage_key(st, "") != before
        (pkg / "stages.py").write_text("x = 2\n")  # one byte of one file
        stages_mod.code_version.cache_clear()
        first = stages_mod.code_version()
        (pkg / "stages.py").write_text("x = 1\n")
        stages_mod.code_version.cache_clear()
        assert stages_mod.code_version() != first
    finally:
        monkeypatch.undo()
        stages_mod.code_version.cache_clear()
    assert stages_mod.stage_key(st, "") == before
