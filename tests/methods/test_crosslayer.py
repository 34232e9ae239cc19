"""Cross-layer contrastive learning (003): knob checks, limit cases, one tiny epoch per module set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fer_core.data.base import DataSplits, FERImageSet
from fer_core.engine.build import compose, stage_configs
from fer_core.engine.recipe import run_stages
from fer_core.methods import MethodInfo, StepContext, create_method
from fer_core.models.backbones import create_backbone


def _xl(model: str = "resnet_tiny_cpu", batch_size: int | None = None, **kw):
    bb = create_backbone(model, img_size=32, in_chans=1)
    return create_method("crosslayer", bb, 7, info=MethodInfo(7, 32, 1, "t", batch_size), **kw)


def _batch(n: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 1, 32, 32, generator=g), "label": torch.arange(n) % 7}


def _ctx(seed: int = 0) -> StepContext:
    return StepContext(0, 0, 0, 1, 1, torch.device("cpu"), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"clfm_k": 1}, r"clfm.k \(number of clusters\) must be an integer >= 2, got 1"),
        ({"clbs_k": 1}, r"clbs.k \(number of clusters\) must be an integer >= 2, got 1"),
        ({"alpha": [0.1, 0.1]}, r"alpha must be one number or a list of L-1 = 3 weights"),
        ({"beta": [0, 0, 0, 0.1]}, r"beta must be one number or a list of L-1 = 3 weights"),
        ({"alpha": [0, -0.1, 0]}, r"alpha: each weight must be a number >= 0"),
        ({"centers": "kmedoids"}, r"centers must be one of kmeans, class_center"),
        ({"kmeans_iters": 0}, r"kmeans.iters .* integer >= 1"),
        ({"clfm_dim": 0}, r"clfm.dim must be an integer >= 1"),
        ({"msr_enabled": "yes"}, r"msr.enabled must be true or false"),
        ({"batch_size": 4}, r"clbs.k=7 is larger than trainer.batch_size=4.*2 <= clbs.k"),
        ({"model": "vit_tiny_cpu"}, r"msr.enabled=true needs .*halve.*msr.enabled=false"),
    ],
)
def test_bad_settings_fail_at_build_naming_the_knob(kw, message):
    with pytest.raises(ValueError, match=message):
        _xl(**kw)


def test_a_broadcast_weight_and_a_vit_without_msr_build():
    m = _xl(alpha=0.1, beta=0.0, msr_enabled=False, model="vit_tiny_cpu")
    assert m.alpha == [0.1, 0.1, 0.1] and not m.clbs_on and m.msr is None
    assert set(m.fm) == {"0", "1", "2", "3"}  # a coder per weighted block, plus the deep one


def test_default_codes_only_blocks_2_and_4():
    m = _xl()
    assert set(m.fm) == {"1", "3"} and set(m.bs) == {"1", "3"}  # Table V: alpha_2 = beta_2


def test_with_every_module_off_the_loss_is_plain_ce():
    m = _xl(clfm_enabled=False, clbs_enabled=False, msr_enabled=False)
    b = _batch()
    out = m.training_step(b, _ctx())
    want = F.cross_entropy(m.head(m.backbone.pooled(b["image"])), b["label"])
    assert out.loss.item() == pytest.approx(want.item(), abs=1e-5)
    assert sorted(out.logs) == ["ce"] and m.on_epoch_end(0) == {}


def test_the_step_is_seeded_and_sums_eq10():
    m = _xl().eval()  # BatchNorm in eval: two steps see the same network
    a, b = m.training_step(_batch(), _ctx(3)), m.training_step(_batch(), _ctx(3))
    assert a.loss.item() == b.loss.item()
    total = sum(float(a.logs[k]) for k in ("ce", "clfm", "clbs"))
    assert a.loss.item() == pytest.approx(total, abs=1e-5)
    mu = m.on_epoch_end(0)
    assert sorted(mu) == ["msr/mu1", "msr/mu2", "msr/mu3", "msr/mu4"]
    assert all(0 < v < 1 for v in mu.values())


def test_detach_targets_stops_the_gradient_through_the_deep_centroids():
    grads = {}
    for detach in (False, True):
        m = _xl(clbs_enabled=False, msr_enabled=False, clfm_detach_targets=detach)
        m.head.requires_grad_(False)
        out = m.training_step(_batch(), _ctx())
        (out.loss - out.logs["ce"]).backward()  # the CLFM term's gradient only
        grads[detach] = m.fm["3"].code.weight.grad
    assert grads[False] is not None and grads[False].abs().sum() > 0
    assert grads[True] is None or grads[True].abs().sum() == 0


def test_class_centres_and_the_unlabelled_stream():
    m = _xl(centers="class_center", unlabelled=True)
    assert m.needs.unlabelled
    b = _batch(8)
    b["unlabelled"] = {"views": [torch.randn(8, 1, 32, 32)], "index": torch.arange(8)}
    out = m.training_step(b, _ctx())
    assert out.logits.shape == (8, 7) and torch.isfinite(out.loss)


def test_a_batch_smaller_than_clbs_k_fails_naming_the_knob():
    with pytest.raises(ValueError, match="clbs.k=7 clusters need at least 7 samples"):
        _xl().training_step(_batch(4), _ctx())


def _set(n: int, seed: int) -> FERImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8)
    return FERImageSet(images=images, labels=torch.arange(n) % 7, num_classes=7)


@pytest.mark.parametrize(
    "off",
    [
        [],
        ["method.msr.enabled=false"],
        ["method.clfm.enabled=false"],
        ["method.clbs.enabled=false"],
    ],
    ids=["all-on", "msr-off", "clfm-off", "clbs-off"],
)
def test_one_tiny_epoch_with_every_module_on_and_each_off(off, tmp_path):
    over = ["method=crosslayer", "trainer.batch_size=16", "trainer.epochs=1",
            "sched.warmup_epochs=0", "trainer.threads=1", *off]  # fmt: skip
    splits = DataSplits(train=_set(32, 0), val=_set(14, 1), test=_set(14, 2), num_classes=7)
    seen: list[dict] = []
    run_stages(stage_configs(compose(over)), tmp_path, lambda *a: seen.append(a[2]) or True,
               splits=splits)  # fmt: skip
    m = seen[-1]
    assert ("train/clfm" in m) == ("method.clfm.enabled=false" not in off)
    assert ("train/clbs" in m) == ("method.clbs.enabled=false" not in off)
    assert ("msr/mu1" in m) == ("method.msr.enabled=false" not in off)
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values())
