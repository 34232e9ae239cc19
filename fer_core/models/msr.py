"""Multi-scale representation, MSR (003, Sec. III-C, Fig. 4, Eq. 8-9).

Each block's map ``f_j`` [N, C_j, H_j, W_j] is brought to block 1's resolution by pixel shuffle
(PS, Shi et al. 2016, the paper's [56]) with ``r_j = 2^(j-1)`` ([N, C_j / r_j^2, r_j H_j, r_j W_j]),
then (Eq. 8) ``f'_j = Conv1x1(Flatten(AP(Conv(PS(f_j)))))`` [N, fd] and the attention weight
``mu_j = sigmoid(W^T f'_j)`` (a scalar per sample and block; W [fd] is one FC layer shared by the
blocks); Eq. 9 fuses ``F = sum_j mu_j f'_j`` [N, fd] (fd = ``msr.dim``, 128), the classifier's
input (Eq. 11).

Choices the paper leaves open (said so that they can be changed): ``Conv`` is a 3x3 convolution to
fd channels with BatchNorm and ReLU (the supplementary architecture is not in the text); ``AP`` is
global average pooling (so Flatten gives [N, fd] and ``Conv1x1`` acts as a linear layer).

MSR needs stages whose resolution halves from block to block (the reductions of timm's
``feature_info`` are ``R, 2R, 4R, ...``) and widths divisible by ``r_j^2``: a ResNet. A plain ViT's
blocks share one grid, so its "stages" cannot be pixel-shuffled to one scale: refused by
:func:`check_stages` before training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def shuffle_factors(num_stages: int) -> list[int]:
    """``r_j = 2^(j-1)`` for j = 1 .. L (Sec. IV-A)."""
    return [2**j for j in range(num_stages)]


def check_stages(channels: Sequence[int], reductions: Sequence[int], where: str = "") -> None:
    """Refuse backbones MSR cannot align: reductions must be R * 2^(j-1) and C_j divisible by
    r_j^2. ``where`` names the backbone in the message."""
    rs = shuffle_factors(len(channels))
    red = [int(r) for r in reductions]
    if len(red) < 2 or any(red[j] != red[0] * rs[j] for j in range(len(red))):
        raise ValueError(
            f"msr.enabled=true needs a backbone whose stages halve in resolution block by block "
            f"(reductions R, 2R, 4R, ...: a ResNet); {where or 'this backbone'} has reductions "
            f"{red}. Set method.msr.enabled=false or choose model=resnet_tiny_cpu / resnet18"
        )
    for j, (c, r) in enumerate(zip(channels, rs)):
        if int(c) % (r * r):
            raise ValueError(
                f"msr: block {j + 1} has {c} channels, not divisible by r^2 = {r * r} (pixel "
                f"shuffle r = 2^(j-1)); set method.msr.enabled=false or choose another backbone"
            )


def fuse(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 9: features f' [N, L, fd], weights mu [N, L] -> F [N, fd] = sum_j mu_j f'_j."""
    if features.shape[:2] != weights.shape:
        raise ValueError(
            f"features [N, L, fd] and weights [N, L] differ: {features.shape} vs {weights.shape}"
        )
    return (weights.unsqueeze(-1) * features).sum(1)


class MultiScaleRepresentation(nn.Module):
    """Eq. 8-9 over L stage maps; ``forward(maps) -> (F [N, fd], mu [N, L])``."""

    def __init__(
        self, channels: Sequence[int], reductions: Sequence[int], dim: int = 128, where: str = ""
    ) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"msr.dim must be an integer >= 1, got {dim!r}")
        check_stages(channels, reductions, where)
        self.factors = shuffle_factors(len(channels))
        self.dim = dim
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.PixelShuffle(r),
                nn.Conv2d(int(c) // (r * r), dim, 3, padding=1, bias=False),
                nn.BatchNorm2d(dim),
                nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(1),
                nn.Linear(dim, dim),  # Conv1x1 on the pooled 1 x 1 map
            )
            for c, r in zip(channels, self.factors)
        )
        self.attention = nn.Linear(dim, 1)  # W of Eq. 8, shared by the blocks

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(maps) != len(self.branches):
            raise ValueError(f"MSR expects {len(self.branches)} stage maps, got {len(maps)}")
        f = torch.stack([b(m) for b, m in zip(self.branches, maps)], dim=1)  # [N, L, fd]
        mu = torch.sigmoid(self.attention(f)).squeeze(-1)  # [N, L]
        return fuse(f, mu), mu
