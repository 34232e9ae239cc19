"""MSR (003 Eq. 8-9): pixel shuffle and fusion by hand, the stage checks, shapes on the CPU ResNet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fer_core.models.backbones import create_backbone
from fer_core.models.msr import MultiScaleRepresentation, check_stages, fuse, shuffle_factors


def test_pixel_shuffle_layout_by_hand():
    # r = 2: channels (a, b, c, d) of one pixel become the 2 x 2 block [[a, b], [c, d]]
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    assert nn.PixelShuffle(2)(x).reshape(2, 2).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert shuffle_factors(4) == [1, 2, 4, 8]


def test_eq9_fusion_by_hand():
    f = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]]])  # N = 1, L = 3, fd = 2
    mu = torch.tensor([[0.5, 0.25, 0.1]])
    assert fuse(f, mu).tolist() == [[0.5 + 0.75 + 1.0, 1.0 + 1.0 + 0.0]]


def test_eq8_weights_are_sigmoid_of_the_shared_fc():
    bb = create_backbone("resnet_tiny_cpu", img_size=48, in_chans=1)
    info = bb.stage_info()
    msr = MultiScaleRepresentation(
        [d["num_chs"] for d in info], [d["reduction"] for d in info], dim=8
    ).eval()
    maps = bb.features(torch.randn(3, 1, 48, 48), stages=True).stages
    fused, mu = msr(maps)
    assert fused.shape == (3, 8) and mu.shape == (3, 4)
    assert bool(((mu > 0) & (mu < 1)).all())
    with torch.no_grad():
        msr.attention.weight.zero_()
        msr.attention.bias.fill_(0.0)  # sigmoid(0) = 1/2 for every block
        fused, mu = msr(maps)
        parts = torch.stack([b(m) for b, m in zip(msr.branches, maps)], 1)
    assert torch.allclose(mu, torch.full((3, 4), 0.5))
    assert torch.allclose(fused, 0.5 * parts.sum(1), atol=1e-6)


def test_stages_that_share_one_grid_are_refused():
    vit = create_backbone("vit_tiny_cpu", img_size=48, in_chans=1)
    info = vit.stage_info()
    with pytest.raises(ValueError, match="msr.enabled=true needs .*halve.*\\[8, 8, 8, 8\\]"):
        check_stages([d["num_chs"] for d in info], [d["reduction"] for d in info], "vit_tiny_cpu")
    with pytest.raises(ValueError, match="not divisible by r\\^2 = 4"):
        check_stages([32, 6], [4, 8])
    with pytest.raises(ValueError, match="msr.dim"):
        MultiScaleRepresentation([32, 64], [4, 8], dim=0)


def test_stage_info_gives_resnet_tiny_cpu_widths():
    bb = create_backbone("resnet_tiny_cpu", img_size=48, in_chans=1)
    assert [d["num_chs"] for d in bb.stage_info()] == [32, 64, 128, 256]
    assert [d["reduction"] for d in bb.stage_info()] == [4, 8, 16, 32]
    maps = bb.features(torch.randn(1, 1, 64, 64), stages=True).stages
    assert [m.shape[1] for m in maps] == [32, 64, 128, 256]
    assert [64 // m.shape[-1] for m in maps] == [4, 8, 16, 32]
