"""Uniform loss on the class (label) query embeddings (001, Sec. III-C.1, Eq. 2).

``L_uniform({t_i}) = 1/K sum_i log sum_j exp(t_i . t_j / tau)`` with the ``t_i`` on the unit
hypersphere; minimising it spreads the K class embeddings apart (the paper's remedy for class
imbalance, after Li et al.'s targeted supervised contrastive learning). The sum over ``j`` includes
``j = i`` as Eq. 2 is printed, so the loss is at least ``1 / tau`` (1000 at the paper's
``tau = 0.001``); that constant has no gradient. ``subtract_self=True`` removes it (the value
becomes ``1/K sum_i log(1 + sum_{j != i} exp((t_i . t_j - 1) / tau))`` >= 0, same gradient), which
keeps ``train/loss`` curves readable; the method ``pll`` trains and logs that form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def uniform_loss(
    embeddings: torch.Tensor,
    tau: float = 0.001,
    normalize: bool = True,
    subtract_self: bool = False,
) -> torch.Tensor:
    """Eq. 2 on ``embeddings`` [K, d] (L2-normalised here unless ``normalize=False``); scalar.

    ``subtract_self`` subtracts the constant ``1 / tau`` (needs unit-norm embeddings).
    """
    if embeddings.dim() != 2 or embeddings.shape[0] < 1:
        raise ValueError(f"embeddings must be [K, d] with K >= 1, got {tuple(embeddings.shape)}")
    if not tau > 0:
        raise ValueError(f"uniform.tau must be > 0, got {tau!r}")
    t = F.normalize(embeddings, dim=1) if normalize else embeddings
    sim = t @ t.T / tau  # [K, K]
    if subtract_self:
        if not normalize:
            raise ValueError(
                "uniform_loss: subtract_self=True needs normalize=True (unit-norm t_i)"
            )
        sim = sim - 1.0 / tau  # log sum_j exp(s_ij - 1/tau) = Eq. 2 row - 1/tau
    return torch.logsumexp(sim, dim=1).mean()


class UniformLoss(nn.Module):
    """Eq. 2 as a module with the paper's default temperature ``tau = 0.001`` (Table IX)."""

    def __init__(self, tau: float = 0.001) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"uniform.tau must be > 0, got {tau!r}")
        self.tau = tau

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return uniform_loss(embeddings, self.tau)
