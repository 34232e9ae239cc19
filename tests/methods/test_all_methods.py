"""One tiny training step of every registered method, composed from its config group."""

from __future__ import annotations

import pytest
import torch

from fer_core.data.base import DataSplits, FERImageSet
from fer_core.engine.build import compose, group_options, stage_configs
from fer_core.engine.recipe import run_stages
from fer_core.methods import list_methods

TINY = ["model=vit_tiny_cpu", "model.embed_dim=32", "model.depth=1", "model.num_heads=2", "trainer.batch_size=16",
        "trainer.epochs=1", "sched.warmup_epochs=0"]  # fmt: skip


def _set(n: int, seed: int) -> FERImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 7, (n,), generator=g)
    votes = torch.zeros(n, 10)
    votes[torch.arange(n), labels] = 6.0
    votes[torch.arange(n), (labels + 2) % 7] = 4.0
    return FERImageSet(
        images=torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8),
        labels=labels, num_classes=7, votes=votes, true_labels=labels.clone(),
        boxes=torch.tensor([2.0, 2.0, 30.0, 30.0]).expand(n, 4).clone(),
    )  # fmt: skip


@pytest.mark.parametrize("name", list_methods())
def test_method_runs_one_epoch(name, tmp_path):
    if name not in group_options("method"):
        pytest.fail(f"method {name!r} has no config group fer_core/conf/method/{name}.yaml")
    splits = DataSplits(train=_set(32, 0), val=_set(16, 1), test=_set(16, 2), num_classes=7)
    base = compose([f"method={name}", *TINY])
    shrink = {
        "depth": 1,
        "layers": 1,
        "dim": 32,
        "heads": 2,
    }  # keep decoders tiny, whatever the method
    dec = base.method.get("decoder") or {}
    extra = [f"method.decoder.{k}={v}" for k, v in shrink.items() if k in dec]
    res = run_stages(
        stage_configs(compose([f"method={name}", *TINY, *extra])), tmp_path, splits=splits
    )
    assert res.history and all(
        torch.isfinite(torch.tensor(v)) for k, v in res.history[-1].items() if isinstance(v, float)
    )
