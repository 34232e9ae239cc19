"""SSFER's FaceMix stage (004 Sec. 3.4): knob checks, needs, the step's loss, boxes.source, training."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from fer_core.data.base import FERImageSet
from fer_core.engine.batches import BatchMaker
from fer_core.engine.build import compose, stage_configs
from fer_core.engine.recipe import run_stages
from fer_core.losses.facemix import facemix_loss, iou_kappa
from fer_core.methods import MethodNeeds, StepContext, create_method
from fer_core.methods.mixing import mix_batch, sample_lambda
from fer_core.models.backbones import create_backbone


def _ssfer(**kw):
    bb = create_backbone("resnet_tiny_cpu", img_size=16, in_chans=1)
    return create_method("ssfer", bb, 3, **kw)


def _batch(n: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g) * 2 - 1
    box = torch.tensor([[0.0, 0, 8, 8], [2, 2, 14, 14], [4, 0, 16, 12]]).repeat(n // 3, 1)
    return {"image": x, "label": torch.arange(n) % 3, "index": torch.arange(n), "box": box,
            "boxes": [box]}  # fmt: skip


def _ctx(seed: int = 0) -> StepContext:
    return StepContext(0, 0, 0, 1, 1, torch.device("cpu"), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"facemix_kappa": "iou", "boxes_source": "full"},
         r"facemix.kappa=iou with boxes.source=full: .* choose boxes.source=annotated or detector"),
        ({"facemix_alpha": 0.0}, r"facemix.alpha must be a number > 0 .*got 0.0"),
        ({"facemix_alpha": -1}, r"facemix.alpha must be a number > 0"),
        ({"facemix_loss": "L5"}, r"facemix.loss must be one of L1, L2, L3, L4 .*got 'L5'"),
        ({"facemix_kappa": "lpips"}, r"facemix.kappa must be one of iou, psnr, ssim, fsim, none"),
        ({"facemix_enabled": "cutmix"}, r"facemix.enabled must be true .*, false .* or mixup"),
        ({"boxes_source": "yolo"}, r"boxes.source must be one of annotated, detector, full"),
    ],
)  # fmt: skip
def test_bad_settings_fail_at_build_naming_the_knob(kw, message):
    with pytest.raises(ValueError, match=message):
        _ssfer(**kw)


def test_full_boxes_are_fine_without_iou():
    assert not _ssfer(facemix_kappa="ssim", boxes_source="full").needs.boxes
    assert not _ssfer(facemix_enabled="mixup", boxes_source="full").needs.boxes


def test_detector_without_scikit_image_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage -> ImportError
    with pytest.raises(ValueError, match=r"boxes.source=detector needs scikit-image.*\[detect\]"):
        _ssfer(boxes_source="detector")
    _ssfer(boxes_source="detector", facemix_kappa="psnr")  # no boxes used: no detector needed


def test_needs_and_metrics_follow_the_knobs():
    m = _ssfer()
    assert m.needs.boxes and m.needs.box_source == "annotated"
    assert m.own_metrics == ("train/mix", "train/real", "train/kappa")
    assert _ssfer(facemix_enabled="mixup").own_metrics == ("train/mix",)
    assert _ssfer(facemix_enabled=False).own_metrics == ("train/ce",)


@pytest.mark.parametrize("form", ["L2"])  # every form's arithmetic: tests/losses/test_facemix.py
def test_step_is_the_facemix_loss_on_unmixed_and_mixed_images(form):
    torch.manual_seed(0)
    m = _ssfer(facemix_loss=form).eval()  # eval: BatchNorm uses running stats, batch-independent
    batch = _batch()
    before = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    out = m.training_step(batch, _ctx(3))
    for k, v in before.items():  # nothing mixed in place
        assert torch.equal(batch[k], v), k
    # the same draws, by hand: lam (one per batch), then the permutation
    g = torch.Generator().manual_seed(3)
    lam = sample_lambda(1, 1.0, 1.0, g).expand(6)
    mix = mix_batch(batch["image"], g, kind="mixup", alpha=1.0, beta=1.0, lam=lam)
    kappa = iou_kappa(batch["box"], batch["box"][mix.index])
    with torch.no_grad():
        ref, _ = facemix_loss(m(mix.images), m(batch["image"]), batch["label"], mix.index, lam,
                              kappa, form)  # fmt: skip
    assert float(out.loss.detach()) == pytest.approx(float(ref), abs=1e-5)
    assert float(out.logs["kappa"]) == pytest.approx(float(kappa.mean()), abs=1e-6)
    assert torch.allclose(out.logits, m(batch["image"]).detach(), atol=1e-5)


def test_mixup_and_ce_rows():
    torch.manual_seed(0)
    batch = _batch()
    ce = _ssfer(facemix_enabled=False).eval()
    out = ce.training_step(batch, _ctx())
    assert float(out.loss.detach()) == pytest.approx(
        float(F.cross_entropy(ce(batch["image"]), batch["label"]))
    )
    mx = _ssfer(facemix_enabled="mixup").eval()
    out = mx.training_step(batch, _ctx(3))
    g = torch.Generator().manual_seed(3)
    lam = sample_lambda(1, 1.0, 1.0, g).expand(6)
    mix = mix_batch(batch["image"], g, kind="mixup", alpha=1.0, beta=1.0, lam=lam)
    with torch.no_grad():
        logp = F.log_softmax(mx(mix.images), 1)
    ref = -(mix.targets(batch["label"], 3) * logp).sum(1).mean()
    assert float(out.loss.detach()) == pytest.approx(float(ref), abs=1e-5)


@pytest.mark.parametrize("kappa", ["psnr", "ssim", "fsim", "none"])
def test_image_kappas_and_unlabelled_rows(kappa):
    m = _ssfer(facemix_kappa=kappa)
    batch = _batch()
    batch["label"][1] = -1
    out = m.training_step(batch, _ctx())
    assert torch.isfinite(out.loss) and out.logits.shape == (6, 3)
    assert 0.0 <= float(out.logs["kappa"]) <= 1.0
    if kappa == "none":
        assert float(out.logs["kappa"]) == 1.0


def test_box_source_reaches_the_batches():
    g = torch.Generator().manual_seed(0)
    ds = FERImageSet(
        images=torch.randint(0, 256, (6, 1, 16, 16), generator=g, dtype=torch.uint8),
        labels=torch.arange(6) % 3, num_classes=3,
        boxes=torch.tensor([[1.0, 2, 9, 12]]).repeat(6, 1),
    )  # fmt: skip
    aug = {"policy": "none"}
    assert _ssfer(boxes_source="annotated").needs == MethodNeeds(boxes=True, box_source="annotated")
    for source, want in (("annotated", [1.0, 2, 9, 12]), ("full", [0.0, 0, 16, 16])):
        needs = MethodNeeds(boxes=True, box_source=source)
        b = BatchMaker(ds, needs, aug, torch.device("cpu")).make(torch.arange(4), g)
        assert b["box"].tolist() == [want] * 4, source


def test_ssfer_finetune_recipe_runs_on_synthfer(tmp_path):
    over = ["recipe=ssfer_finetune", "trainer.epochs=1", "trainer.batch_size=16",
            "trainer.threads=1", "trainer.semi.fraction=0.5", "data.n_train=64", "data.n_val=16",
            "data.n_test=16", "data.img_size=32", "model.embed_dim=32", "model.depth=1",
            "model.num_heads=2", "stages.pretrain.method.decoder.depth=1",
            "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2"]  # fmt: skip
    stages = stage_configs(compose(over))
    assert [(n, s["method"]["name"], s["trainer"]["protocol"]) for n, s in stages] == [
        ("pretrain", "mae", "finetune"), ("finetune", "ssfer", "semi")]  # fmt: skip
    assert stages[1][1]["init_from"] == {"stage": "pretrain", "parts": ["backbone"]}
    seen: list[tuple[str, dict]] = []
    res = run_stages(stages, tmp_path, lambda s, e, m, c: seen.append((s, m)) or True)
    assert [h["stage"] for h in res.history] == ["pretrain", "finetune"]
    # kappa = 1 - IoU of SynthFER's exact (annotated) boxes: it varies between pairs
    assert "mim/loss" in seen[0][1] and 0.0 < seen[-1][1]["train/kappa"] < 1.0
    assert seen[-1][1]["train/mix"] > 0 and seen[-1][1]["train/real"] > 0
    assert "test/acc_true" in res.metrics


# ------------------------------------------------------------------ the EMA-teacher stage (Eq. 1-5)
def _semi(**kw):
    torch.manual_seed(0)
    return _ssfer(ema_enabled=True, facemix_enabled=False, **kw)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"ema_momentum": 1.5}, r"ema.momentum must be a number in \[0, 1\], got 1.5"),
        ({"ema_momentum": -0.1}, r"ema.momentum must be a number in \[0, 1\]"),
        ({"conf_threshold": 1.01}, r"conf_threshold must be a number in \[0, 1\], got 1.01"),
        ({"conf_threshold": -1}, r"conf_threshold must be a number in \[0, 1\]"),
        ({"mu": -0.5}, r"mu must be a number >= 0"),
        ({"eval_model": "ema"}, r"eval_model must be one of teacher, student, got 'ema'"),
        ({"ema_enabled": "yes"}, r"ema.enabled must be true .* or false, got 'yes'"),
    ],
)  # fmt: skip
def test_bad_teacher_settings_fail_at_build(kw, message):
    with pytest.raises(ValueError, match=message):
        _ssfer(**kw)


def test_teacher_stage_needs_the_unlabelled_stream_and_logs_semi_metrics():
    m = _semi()
    assert m.needs.unlabelled and not _ssfer().needs.unlabelled
    assert {"semi/mask_rate", "semi/pseudo_acc", "semi/unlabelled_loss"} <= set(
        m.reported_metrics()
    )
    assert "teacher" in m.handoff_parts() and "teacher" not in _ssfer().handoff_parts()
    assert all(not p.requires_grad for p in m.teacher.parameters())


def _semi_batch(n: int = 6, seed: int = 1) -> dict:
    b = _batch(n, seed)
    g = torch.Generator().manual_seed(seed + 10)
    weak, strong = (torch.rand(n, 1, 16, 16, generator=g) * 2 - 1 for _ in range(2))
    b["unlabelled"] = {"views": [weak, strong], "weak": weak, "strong": strong,
                       "index": torch.arange(n), "true_label": torch.arange(n) % 3}  # fmt: skip
    return b


def test_teacher_starts_as_the_handed_on_model_and_is_the_ema_of_the_student_after_a_step():
    stage2 = _ssfer(facemix_enabled=False)
    m = _semi(ema_momentum=0.9)
    m.load_handoff({k: v for k, v in stage2.handoff_state().items() if k in ("backbone", "head")})
    t0 = [p.detach().clone() for p in m.teacher.parameters()]
    s0 = list(stage2.backbone.parameters()) + list(stage2.head.parameters())
    assert all(torch.equal(a, b) for a, b in zip(t0, s0))  # Eq. 1 at t = 0: the previous model
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    m.train()
    out = m.training_step(_semi_batch(), _ctx())
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    m.after_optimizer_step(_ctx())
    s1 = list(m.backbone.parameters()) + list(m.head.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(s1, s0))  # the student moved
    for t, a, b in zip(m.teacher.parameters(), t0, s1):  # theta_t = m theta_t + (1 - m) theta_s
        torch.testing.assert_close(t, 0.9 * a + 0.1 * b.detach())
    assert m.teacher.training is False  # the teacher labels in eval mode


def test_step_is_ce_plus_mu_times_the_masked_pseudo_label_loss():
    m = _semi(conf_threshold=0.0, mu=0.5).eval()
    batch = _semi_batch()
    out = m.training_step(batch, _ctx())
    u = batch["unlabelled"]
    with torch.no_grad():
        y_hat = m.teacher_logits(u["weak"]).argmax(1)  # tau = 0: every softmax max is > 0
    lu = F.cross_entropy(m(u["strong"]), y_hat)
    ll = F.cross_entropy(m(batch["image"]), batch["label"])
    torch.testing.assert_close(out.loss, ll + 0.5 * lu)
    metrics = m.on_epoch_end(0)
    assert metrics["semi/mask_rate"] == 1.0
    assert metrics["semi/pseudo_acc"] == pytest.approx(
        float((y_hat == u["true_label"]).float().mean())
    )
    assert metrics["semi/unlabelled_loss"] == pytest.approx(float(lu))
    m.on_epoch_start(1)
    m_all = _semi(conf_threshold=1.0).eval()  # max p > 1 never holds: L_u = 0, mask rate 0
    out = m_all.training_step(batch, _ctx())
    torch.testing.assert_close(out.loss, F.cross_entropy(m_all(batch["image"]), batch["label"]))
    assert m_all.on_epoch_end(0)["semi/mask_rate"] == 0.0


def test_evaluation_uses_the_teachers_current_weights_or_the_student():
    x = _batch()["image"]
    for eval_model in ("teacher", "student"):
        m = _semi(eval_model=eval_model).eval()
        with torch.no_grad():
            for p in m.teacher.parameters():
                p.add_(0.1)
        want = m.teacher_logits(x) if eval_model == "teacher" else m(x)
        torch.testing.assert_close(m.predict(x), want)
        assert not torch.allclose(m.teacher_logits(x), m(x))
