"""MAE and MaskFeat pre-training methods (fer_core/methods/mae.py, maskfeat.py) and their configs."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from fer_core.methods import StepContext, create_method, list_methods
from fer_core.methods.mae import MaskedAutoencoder
from fer_core.methods.maskfeat import MaskFeat
from fer_core.models.backbones import create_backbone

REPO = Path(__file__).resolve().parents[2]
CLASSES = {"mae": MaskedAutoencoder, "maskfeat": MaskFeat}


def _backbone(in_chans: int = 3, img: int = 32):
    return create_backbone(
        "vit_tiny_cpu", img_size=img, in_chans=in_chans, embed_dim=32, depth=1, num_heads=2
    )


def _method(name: str, in_chans: int = 3, **kw):
    if name == "mae":
        kw = {"decoder_depth": 1, "decoder_dim": 32, "decoder_heads": 2, **kw}
    return create_method(name, _backbone(in_chans), 7, **kw)


def _ctx(step: int = 0, seed: int = 0) -> StepContext:
    return StepContext(
        epoch=0, step=step, global_step=step, steps_per_epoch=10, num_epochs=1,
        device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


@pytest.mark.parametrize("name", ["mae", "maskfeat"])
def test_registered_and_label_free(name: str):
    # (the config group mirroring the constructor: tests/test_defaults.py)
    assert name in list_methods()
    assert CLASSES[name].needs.labels is False


def test_search_space_paths_are_pretrain_knobs():
    space = yaml.safe_load((REPO / "search_spaces/mim.yaml").read_text())
    assert set(space) >= {"mask_ratio", "norm_pix_loss", "decoder"}
    knobs = set(inspect.signature(MaskedAutoencoder.__init__).parameters)
    for entry in space.values():
        for path in entry:
            assert path.startswith("stages.pretrain.method.")
            assert path[len("stages.pretrain.method.") :].replace(".", "_") in knobs, path


@pytest.mark.parametrize(("name", "in_chans"), [("mae", 3), ("mae", 1), ("maskfeat", 3)])
def test_few_steps_lower_the_loss(name: str, in_chans: int):
    torch.manual_seed(0)
    m = _method(name, in_chans=in_chans)
    images = torch.randn(8, in_chans, 32, 32, generator=torch.Generator().manual_seed(1))
    images = images + torch.linspace(-1, 1, 32).view(1, 1, 1, 32)  # some structure to learn
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for step in range(12):
        out = m.training_step({"image": images}, _ctx(step, seed=0))  # same masks every step
        assert set(out.logs) == {"mim/loss"}
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("name", ["mae", "maskfeat"])
def test_same_seed_same_loss_and_encoder_is_timm(name: str):
    m = _method(name).eval()
    images = torch.randn(4, 3, 32, 32)
    a = m.training_step({"image": images}, _ctx(seed=5)).loss
    b = m.training_step({"image": images}, _ctx(seed=5)).loss
    assert a.item() == b.item()
    sd = m.handoff_state()["backbone"]
    assert "patch_embed.proj.weight" in sd and "pos_embed" in sd
    assert not any(k.startswith(("decoder", "mask_token", "head.")) for k in sd)
    fresh = _backbone()
    fresh.load_timm_state_dict(sd)  # loads into a plain timm ViT backbone
    assert torch.equal(
        fresh.model.patch_embed.proj.weight, m.backbone.model.patch_embed.proj.weight
    )
    larger = _backbone(img=48)  # another image size: position embeddings are interpolated
    larger.load_timm_state_dict(sd)
    assert larger.model.pos_embed.shape[1] == 1 + 6 * 6
    with pytest.raises(RuntimeError, match="label-free"):
        m.predict(images)


def test_mae_reconstruction_grid():
    m = _method("mae")
    grids = m.log_images({"image": torch.randn(6, 3, 32, 32)})
    grid = grids["mae/reconstruction"]
    assert grid.shape == (3, 4 * 32, 3 * 32)  # 4 rows of original | masked | reconstruction
    assert 0.0 <= grid.min() and grid.max() <= 1.0
    assert m.training  # restored


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="mask_ratio"):
        _method("mae", mask_ratio=1.0)
    with pytest.raises(ValueError, match="decoder.dim"):
        _method("mae", decoder_dim=30)
    with pytest.raises(ValueError, match="hog.cell"):
        _method("maskfeat", hog_cell=16)  # patch 8
    with pytest.raises(ValueError, match="hog.gradient"):
        _method("maskfeat", hog_gradient="prewitt")
    with pytest.raises(ValueError, match="hog.window"):
        _method("maskfeat", hog_window="box")
    with pytest.raises(ValueError, match="hog.orientation"):
        _method("maskfeat", hog_orientation="north")
    with pytest.raises(TypeError, match="unknown settings"):
        _method("maskfeat", norm_pix_loss=True)
    resnet = create_backbone("resnet_tiny_cpu", img_size=32, in_chans=3)
    with pytest.raises(ValueError, match="VisionTransformer"):
        create_method("mae", resnet, 7)


# --- a pre-train then linear-probe recipe through the trainer's stages --------------------------
_TINY = [
    "data.n_train=64", "data.n_val=32", "data.n_test=32", "data.img_size=32",
    "model=vit_tiny_cpu", "model.embed_dim=32", "model.depth=1", "model.num_heads=2",
    "trainer.epochs=1", "trainer.batch_size=32", "trainer.progress=false",
    "stages.probe.method=ce", "stages.probe.trainer.protocol=linear",
]  # fmt: skip
_PRETRAIN = {
    "mae": [
        "stages.pretrain.method=mae",
        "stages.pretrain.method.decoder.depth=1",
        "stages.pretrain.method.decoder.dim=32",
        "stages.pretrain.method.decoder.heads=2",
    ],
    "maskfeat": ["stages.pretrain.method=maskfeat"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mae", "maskfeat"])
def test_pretrain_then_linear_probe_recipe(name: str, tmp_path: Path):
    from fer_core.cache import cache_root
    from fer_core.engine.build import compose
    from fer_core.engine.recipe import run_recipe

    stages_dir = cache_root() / "stages"
    before = set(stages_dir.glob("[!.]*")) if stages_dir.is_dir() else set()
    # stage order follows the first mention: pretrain first
    cfg = compose(_PRETRAIN[name] + _TINY)
    assert list(cfg.stages) == ["pretrain", "probe"]
    result = run_recipe(cfg, tmp_path / "run1")
    pre = [h for h in result.history if h["stage"] == "pretrain"]
    assert len(pre) == 1 and pre[0]["mim/loss"] > 0
    assert 0.0 <= result.metrics["test/acc"] <= 1.0
    new = set(stages_dir.glob("[!.]*")) - before
    assert len(new) == 1  # the pre-training stage was cached ...
    handoff = torch.load(next(iter(new)) / "handoff.pt", weights_only=True)
    assert set(handoff) == {"backbone"}  # the decoder / HOG predictor is not handed on
    encoder = handoff["backbone"]
    assert "pos_embed" in encoder and not any(k.startswith("decoder") for k in encoder)
    last = torch.load(tmp_path / "run1/checkpoints/last.pt", weights_only=True)["model"]
    # ... and handed to the frozen (linear-protocol) backbone of the probe unchanged
    for k in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "pos_embed"):
        assert torch.equal(last[f"backbone.model.{k}"], encoder[k])
    if name == "mae":  # the reconstruction grid reached TensorBoard
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "run1"), size_guidance={"images": 0}).Reload()
        assert "mae/reconstruction" in events.Tags()["images"]
    # a sweep over a probe knob reuses the cached pre-training
    cfg2 = compose([*_PRETRAIN[name], *_TINY, "stages.probe.method.label_smoothing=0.1"])
    run_recipe(cfg2, tmp_path / "run2")
    assert set(stages_dir.glob("[!.]*")) - before == new
