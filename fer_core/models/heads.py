"""Heads: the linear classifier and the projection head of contrastive learning (000 Table III)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PROJECTION_KINDS = ("none", "linear", "dense")


class ClassifierHead(nn.Module):
    """Linear classifier on a pooled feature: [N, D] -> logits [N, num_classes] (optional dropout)."""

    def __init__(self, in_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"head dropout must be in [0, 1), got {dropout!r}")
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x))


class ProjectionHead(nn.Module):
    """Projection head ``none | linear | dense`` (dense = linear-ReLU-linear), L2-normalised.

    [N, in_dim] -> [N, dim] (``none``: [N, in_dim]), each row of unit norm (000 Sec. III-C).
    """

    def __init__(self, in_dim: int, kind: str = "dense", dim: int = 128) -> None:
        super().__init__()
        if kind not in PROJECTION_KINDS:
            raise ValueError(
                f"proj.head must be one of {', '.join(PROJECTION_KINDS)}, got {kind!r}"
            )
        if int(dim) < 1:
            raise ValueError(f"proj.dim must be >= 1, got {dim!r}")
        self.kind = kind
        if kind == "none":
            self.net: nn.Module = nn.Identity()
            self.out_dim = in_dim
        elif kind == "linear":
            self.net = nn.Linear(in_dim, dim)
            self.out_dim = dim
        else:
            self.net = nn.Sequential(
                nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, dim)
            )
            self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)
