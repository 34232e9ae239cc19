"""Uniform loss on the class (label) query embeddings (001, Sec. III-C.1, Eq. 2).

``L_uniform({t_i}) = 1/K sum_i log sum_j exp(t_i . t_j / tau)`` with the ``t_i`` on the unit
hypersphere; minimising it spreads the K class embeddings apart (the paper's remedy for class
imbalance, after Wang & Isola [54] and the targets of Li et al.'s targeted supervised contrastive
learning). Two knobs of the method ``pll`` decide how it is used (``uniform.mode``):

- ``precompute`` (the paper, Sec. III-C.1: "We compute the optimal positions for different classes
  of query embedding before training and optimize it using Eq. 2"): :func:`optimal_positions`
  minimises Eq. 2 over K unit vectors in float64 until converged, before training, cached under
  ``$FER_STUDY_CACHE/uniform/`` by (K, d, tau, exclude_self, seed) (:func:`cached_positions`).
  Training then pulls the queries towards those fixed targets (:func:`pull_loss`).
- ``regularize`` (this project's earlier reading): Eq. 2 on the learnable queries at every step.

Why the precompute has to be done carefully at the paper's ``tau = 0.001``: the ``j = i`` term is
``e^{1/tau}`` and every cross term is weighted by ``e^{(cos - 1)/tau}``, which is ``e^{-1000}`` at
``cos = 0``: below float64's smallest number.  As printed, Eq. 2's gradient is therefore exactly
zero almost everywhere, and any configuration looks converged.  Two exact ways out:

- ``exclude_self=True`` (knob ``uniform.exclude_self``): the sum runs over ``j != i``; each row is
  then a soft maximum of the cosines to the other classes and keeps a gradient of order ``1/tau``.
- ``exclude_self=False`` (Eq. 2 as printed): ``L - 1/tau = 1/K sum_i softplus(s_i)`` with
  ``s_i = logsumexp_{j != i} (t_i . t_j - 1) / tau`` is positive, so it has the same minimiser as
  ``log(L - 1/tau)``, which is computed without underflow (:func:`_precompute_objective`).

Both objectives are rotation invariant: the positions are optimal up to a rotation.  For
``K <= d + 1`` the regular simplex (pairwise cosine ``-1/(K-1)``) minimises both at every tau, so
tau changes the positions only when there are more classes than dimensions allow (e.g. K = 7 in
3-d, tested); in the method's setting (``d >= 128``) ``uniform.tau`` acts only in ``regularize``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

UNIFORM_MODES = ("precompute", "regularize")
_NEG = -1e4  # stands in for -inf on the diagonal (finite: no NaN gradients)


def _check(embeddings: torch.Tensor, tau: float) -> None:
    if embeddings.dim() != 2 or embeddings.shape[0] < 1:
        raise ValueError(f"embeddings must be [K, d] with K >= 1, got {tuple(embeddings.shape)}")
    if not tau > 0:
        raise ValueError(f"uniform.tau must be > 0, got {tau!r}")


def uniform_loss(
    embeddings: torch.Tensor,
    tau: float = 0.001,
    normalize: bool = True,
    exclude_self: bool = False,
) -> torch.Tensor:
    """Eq. 2 on ``embeddings`` [K, d] (L2-normalised here unless ``normalize=False``); scalar.

    ``exclude_self=False`` is Eq. 2 as printed (at least ``1/tau``, and with no usable gradient at
    small tau: module docstring); ``True`` sums over ``j != i`` only (needs K >= 2).
    """
    _check(embeddings, tau)
    t = F.normalize(embeddings, dim=1) if normalize else embeddings
    sim = t @ t.T / tau  # [K, K]
    if exclude_self:
        if t.shape[0] < 2:
            raise ValueError("uniform.exclude_self needs at least 2 embeddings")
        eye = torch.eye(t.shape[0], dtype=torch.bool, device=t.device)
        sim = sim.masked_fill(eye, _NEG)
    return torch.logsumexp(sim, dim=1).mean()


def _log_softplus(s: torch.Tensor) -> torch.Tensor:
    """``log(log(1 + e^s))`` without underflow (``= s`` to float64 precision for s < -30)."""
    safe = F.softplus(s.clamp_min(-30.0))
    return torch.where(s < -30.0, s, torch.log(safe))


def _precompute_objective(t: torch.Tensor, tau: float, exclude_self: bool) -> torch.Tensor:
    """A function with Eq. 2's minimiser and an O(1) gradient, for unit ``t`` [K, d].

    ``exclude_self``: ``tau * L`` (a soft maximum of the cosines).  Else ``tau * log(L - 1/tau)``
    (module docstring), computed from the row terms ``s_i`` in log space.
    """
    k = t.shape[0]
    eye = torch.eye(k, dtype=torch.bool, device=t.device)
    cos = (t @ t.T).masked_fill(eye, _NEG)
    if exclude_self:
        return tau * torch.logsumexp(cos / tau, dim=1).mean()
    s = torch.logsumexp((cos - 1.0) / tau, dim=1)  # [K]
    return tau * (torch.logsumexp(_log_softplus(s), dim=0) - math.log(k))


def optimal_positions(
    k: int,
    dim: int,
    tau: float = 0.001,
    *,
    exclude_self: bool = False,
    seed: int = 0,
    max_steps: int = 20000,
    tol: float = 1e-10,
) -> torch.Tensor:
    """K unit vectors in ``dim`` dimensions minimising Eq. 2, float64 [K, dim].

    Projected Adam on the sphere from ``seed``'s random start; the step size halves whenever the
    objective stops improving, and the run ends when it falls below 1e-7 (or the Riemannian
    gradient's norm below ``tol``), i.e. at convergence, not after a fixed budget.
    """
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"optimal_positions needs k >= 2 classes, got {k!r}")
    if not isinstance(dim, int) or dim < 2:
        raise ValueError(f"optimal_positions needs dim >= 2, got {dim!r}")
    if not tau > 0:
        raise ValueError(f"uniform.tau must be > 0, got {tau!r}")
    g = torch.Generator().manual_seed(int(seed))
    x = F.normalize(torch.randn(k, dim, generator=g, dtype=torch.float64), dim=1)
    # Continuation in tau: at a small tau the objective is nearly a hard maximum (slow to descend
    # from a random start), so each stage starts from the previous, smoother one's optimum.
    taus = [tau]
    while taus[-1] < 0.1:
        taus.append(taus[-1] * 4.0)
    for stage_tau in reversed(taus):
        x = _descend(x, stage_tau, exclude_self, max_steps, tol)
    return F.normalize(x.detach(), dim=1)


def _descend(
    x0: torch.Tensor, tau: float, exclude_self: bool, max_steps: int, tol: float
) -> torch.Tensor:
    """L-BFGS (strong Wolfe line search) on ``x / |x|``; stops when the gradient's norm or the
    change of the objective falls below ``tol`` (see optimal_positions)."""
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=max_steps,
        tolerance_grad=tol,
        tolerance_change=tol * 1e-3,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _precompute_objective(F.normalize(x, dim=1), tau, exclude_self)
        loss.backward()
        return loss

    opt.step(closure)
    return F.normalize(x.detach(), dim=1)


def cached_positions(
    k: int, dim: int, tau: float, *, exclude_self: bool = False, seed: int = 0
) -> torch.Tensor:
    """:func:`optimal_positions`, built once per (K, d, tau, exclude_self, seed) under
    ``$FER_STUDY_CACHE/uniform/<hash>/positions.pt`` (file lock + atomic rename)."""
    from fer_core.cache import build_once, config_hash

    spec = {"k": k, "dim": dim, "tau": float(tau), "exclude_self": bool(exclude_self)}
    spec["seed"], spec["version"] = int(seed), 1

    def build(tmp) -> None:
        pos = optimal_positions(k, dim, tau, exclude_self=exclude_self, seed=seed)
        torch.save(pos, tmp / "positions.pt")

    path = build_once("uniform", config_hash(spec), build)
    return torch.load(path / "positions.pt", map_location="cpu", weights_only=True)


def align_rotation(targets: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """``targets`` [K, d] rotated to be nearest to ``queries`` [K, d] (orthogonal Procrustes).

    Eq. 2 is rotation invariant, so the rotated targets are as optimal; the rotation keeps the
    queries' current geometry (e.g. a handed-over head) as far as possible.
    """
    u, _, vh = torch.linalg.svd(targets.T.double() @ queries.double(), full_matrices=False)
    return (targets.double() @ (u @ vh)).to(targets.dtype)


def pull_loss(embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``mean_i (1 - cos(q_i, t_i))``: queries [K, d] towards fixed targets [K, d]; scalar >= 0."""
    if embeddings.shape != targets.shape:
        raise ValueError(
            f"embeddings {tuple(embeddings.shape)} and targets {tuple(targets.shape)} differ"
        )
    return (1.0 - F.cosine_similarity(embeddings, targets.to(embeddings), dim=1)).mean()


class UniformLoss(nn.Module):
    """Eq. 2 as a module with the paper's default temperature ``tau = 0.001`` (Table IX)."""

    def __init__(self, tau: float = 0.001, exclude_self: bool = False) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"uniform.tau must be > 0, got {tau!r}")
        self.tau = tau
        self.exclude_self = exclude_self

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return uniform_loss(embeddings, self.tau, exclude_self=self.exclude_self)
