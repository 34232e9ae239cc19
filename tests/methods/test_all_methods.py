"""One tiny training epoch of every registered method, on the model its config group names.

Each method's group (``conf/method/<name>.yaml``) names its ``test_model`` (a ViT for MIM,
``resnet_tiny_cpu`` for methods that need feature maps); the run must report exactly the metric
names the method declares (``Method.reported_metrics()``).
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from fer_core.data.base import DataSplits, FERImageSet
from fer_core.engine.build import compose, group_options, stage_configs
from fer_core.engine.recipe import run_stages
from fer_core.methods import list_methods
from fer_core.methods.ssl import SSL_METHODS

COMMON = ["trainer.batch_size=16", "trainer.epochs=1", "sched.warmup_epochs=0"]
# keep every model tiny, whatever it is: only the keys its group has are set
SHRINK_MODEL = {"embed_dim": 32, "depth": 1, "num_heads": 2}
SHRINK_DECODER = {"depth": 1, "layers": 1, "dim": 32, "heads": 2}
# self-supervised heads and queues (methods/ssl.py; 64 instead of 4096 wide heads and a 65536-key
# queue: 5x faster): only the keys the method's group has are set
SHRINK_SSL = {"proj.hidden_dim": 64, "proj.dim": 32, "pred.hidden_dim": 64, "queue_size": 64}
# SimFLE's FFL branch (methods/simfle.py): FaceMAE is a ViT-B/16 at 112 px by default (150 s here);
# its CPU ViT on the 32-px test images, and its GFL / distillation heads 64 wide
SHRINK_FFL = {"ffl.encoder": "vit_tiny_cpu", "ffl.img_size": 32, "ffl.patch": 8,
              "ffl.feature_stage": 1, "proj.hidden_dim": 64, "pred.hidden_dim": 64, "distil.hidden_dim": 64}  # fmt: skip


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


def _overrides(name: str) -> list[str]:
    base = compose([f"method={name}"])
    model = base.method.get("test_model")
    if model not in group_options("model"):
        pytest.fail(
            f"conf/method/{name}.yaml must name its test_model (a model option), got {model!r}"
        )
    mcfg = compose([f"model={model}"]).model
    over = [f"method={name}", f"model={model}", *COMMON]
    over += [f"model.{k}={v}" for k, v in SHRINK_MODEL.items() if k in mcfg]
    dec = base.method.get("decoder") or {}
    over += [f"method.decoder.{k}={v}" for k, v in SHRINK_DECODER.items() if k in dec]
    if name in SSL_METHODS:
        over += [
            f"method.{k}={v}" for k, v in SHRINK_SSL.items() if OmegaConf.select(base.method, k)
        ]
    if "ffl" in base.method:
        over += [f"method.{k}={v}" for k, v in SHRINK_FFL.items()]
    return over


@pytest.mark.parametrize("name", list_methods())
def test_method_runs_one_epoch_on_its_model(name, tmp_path):
    if name not in group_options("method"):
        pytest.fail(f"method {name!r} has no config group fer_core/conf/method/{name}.yaml")
    splits = DataSplits(train=_set(32, 0), val=_set(16, 1), test=_set(16, 2), num_classes=7)
    stages = stage_configs(compose(_overrides(name)))
    seen: list[dict] = []
    res = run_stages(stages, tmp_path, lambda s, e, m, c: seen.append(m) or True, splits=splits)
    assert res.history and all(
        torch.isfinite(torch.tensor(v)) for k, v in res.history[-1].items() if isinstance(v, float)
    )
    from fer_core.engine.build import build_method
    from fer_core.methods import MethodInfo

    method = build_method(stages[0][1], MethodInfo(7, 32, 1, "random"))
    declared = set(method.reported_metrics())
    reported = set(seen[-1]) | set(res.metrics)
    assert reported == declared, (
        f"{name}: reported but not declared {sorted(reported - declared)}; "
        f"declared but not reported {sorted(declared - reported)}"
    )
    assert method.selection_metric in declared
    assert set(method.diagnostic_metrics) <= declared
    assert all("*" not in m for m in declared)  # exact names, no patterns
