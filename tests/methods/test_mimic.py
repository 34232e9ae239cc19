"""MIMIC fine-tuning (000 Eq. 14): knob checks, views by contrastive, the loss, the recipe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fer_core.data.base import DataSplits, FERImageSet
from fer_core.engine.build import compose, stage_configs
from fer_core.losses.supcon import supcon_loss
from fer_core.methods import StepContext, create_method
from fer_core.models.backbones import create_backbone


def _bb():
    return create_backbone("vit_tiny_cpu", img_size=16, in_chans=1, embed_dim=32, depth=1,
                           num_heads=2)  # fmt: skip


def _mimic(**kw):
    return create_method("mimic", _bb(), 7, **kw)


def _batch(n: int = 8, views: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    vs = [torch.randn(n, 1, 16, 16, generator=g) for _ in range(views)]
    label = torch.arange(n) % 3
    label[-1] = -1  # one unlabelled sample: kept out of the contrastive term
    return {"image": vs[0], "views": vs, "label": label, "index": torch.arange(n)}


def _ctx(seed: int = 0) -> StepContext:
    return StepContext(0, 0, 0, 1, 1, torch.device("cpu"), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"proj_dim": 0}, r"proj.dim must be an integer >= 1, got 0"),
        ({"tau": 0.0}, r"tau must be a number > 0"),
        ({"tau": -0.07}, r"tau must be a number > 0"),
        ({"base_tau": 0}, r"base_tau must be a number > 0"),
        ({"mix_threshold": 1.5}, r"mix.threshold must be in \[0, 1\], got 1.5"),
        ({"mix_threshold": -0.1}, r"mix.threshold must be in \[0, 1\]"),
        ({"mix_alpha": 0.0}, r"mix.alpha must be a number > 0"),
        ({"mix_beta": -2.0}, r"mix.beta must be a number > 0"),
        ({"mix_kind": "facemix"}, r"mix.kind must be one of mixup, cutmix, both"),
        ({"mix_distance": "l2"}, r"mix.distance must be one of linf, l1"),
        ({"contrastive": "simclr"}, r"contrastive must be one of none, scl, mscl"),
        ({"proj_head": "mlp"}, r"proj.head must be one of none, linear, dense"),
        ({"lambda_": -1.0}, r"lambda_ .* must be a number >= 0"),
    ],
)
def test_bad_settings_fail_at_build_naming_the_knob(kw, message):
    with pytest.raises(ValueError, match=message):
        _mimic(**kw)


@pytest.mark.parametrize("contrastive", ["scl", "mscl"])
def test_a_contrastive_loss_with_batch_size_one_is_refused(contrastive):
    m = _mimic(contrastive=contrastive)
    with pytest.raises(ValueError, match=r"trainer.batch_size >= 2.*no negatives|no negatives"):
        m.training_step(_batch(1), _ctx())


def test_bad_batch_size_fails_before_any_update_through_the_engine(tmp_path):
    from fer_core.engine.recipe import run_stages

    def ds(n, s):
        g = torch.Generator().manual_seed(s)
        return FERImageSet(images=torch.randint(0, 256, (n, 1, 16, 16), generator=g,
                                                dtype=torch.uint8),
                           labels=torch.arange(n) % 7, num_classes=7)  # fmt: skip

    over = ["method=mimic", "model=vit_tiny_cpu", "model.embed_dim=32", "model.depth=1",
            "model.num_heads=2", "trainer.batch_size=1", "trainer.epochs=1"]  # fmt: skip
    splits = DataSplits(train=ds(4, 0), val=ds(4, 1), test=ds(4, 2), num_classes=7)
    with pytest.raises(ValueError, match="trainer.batch_size >= 2"):
        run_stages(stage_configs(compose(over)), tmp_path, lambda *a: True, splits=splits)
    assert not (tmp_path / "checkpoints").exists()  # refused when built, before any training


def test_views_and_metrics_follow_contrastive():
    assert _mimic(contrastive="none").needs.views == 1
    assert _mimic(contrastive="scl").needs.views == 2
    assert _mimic().needs.views == 2  # mscl is the default
    assert _mimic(contrastive="none").own_metrics == ("train/ce",)
    assert "train/con" in _mimic().reported_metrics()


def test_scl_step_is_ce_plus_lambda_supcon():
    torch.manual_seed(0)
    m = _mimic(contrastive="scl", lambda_=0.5, tau=0.1)
    b = _batch()
    out = m.training_step(b, _ctx())
    keep = b["label"] >= 0
    with torch.no_grad():
        r0, r1 = m.backbone.pooled(b["views"][0]), m.backbone.pooled(b["views"][1])
        ce = F.cross_entropy(m.head(r0), b["label"], ignore_index=-1)
        z = torch.stack([m.proj(r0)[keep], m.proj(r1)[keep]], dim=1)
        con = supcon_loss(z, b["label"][keep], temperature=0.1)
    assert out.loss.item() == pytest.approx((ce + 0.5 * con).item(), rel=1e-4)
    assert out.logs["con"].item() == pytest.approx(con.item(), rel=1e-4)


def test_lambda_zero_is_plain_cross_entropy():
    """Limit case: lambda_ = 0 -> the loss is CE on view 0, whatever the contrastive term."""
    torch.manual_seed(0)
    m = _mimic(lambda_=0.0)
    b = _batch()
    out = m.training_step(b, _ctx())
    with torch.no_grad():
        ce = F.cross_entropy(m(b["image"]), b["label"], ignore_index=-1)
    assert out.loss.item() == pytest.approx(ce.item(), rel=1e-5)


def test_mscl_step_draws_from_the_trial_generator():
    torch.manual_seed(0)
    m = _mimic()
    m.eval()  # no dropout: the step is a function of the batch and the generator
    b = _batch()
    a1 = m.training_step(b, _ctx(3)).loss.item()
    a2 = m.training_step(b, _ctx(3)).loss.item()
    a3 = m.training_step(b, _ctx(4)).loss.item()
    assert a1 == a2 and a1 != a3
    out = m.training_step(b, _ctx(3))
    assert set(out.logs) == {"ce", "con", "pos_frac"} and 0 < out.logs["pos_frac"] < 1


@pytest.mark.parametrize("contrastive", ["none", "scl", "mscl"])
def test_a_few_steps_lower_it(contrastive):
    torch.manual_seed(0)
    m = _mimic(contrastive=contrastive, lambda_=1.0, tau=0.5)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    b = _batch(12, seed=1)
    losses = []
    for step in range(8):
        out = m.training_step(b, _ctx(step % 2))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]


def test_it_runs_through_the_mae_finetune_recipe():
    over = ["recipe=mae_finetune", "stages.finetune.method=mimic",
            "stages.finetune.method.contrastive=scl", "stages.finetune.method.proj.dim=64"]  # fmt: skip
    stages = dict(stage_configs(compose(over)))
    assert list(stages) == ["pretrain", "finetune"]
    assert stages["pretrain"]["method"]["name"] == "mae"
    ft = stages["finetune"]
    assert ft["method"]["name"] == "mimic" and ft["method"]["proj"]["dim"] == 64
    assert ft["init_from"] == {"stage": "pretrain", "parts": ["backbone"]}
