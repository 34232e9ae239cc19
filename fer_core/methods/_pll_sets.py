"""Candidate sets of the method ``pll`` (001, Sec. III-A): the warm-up model and ambiguity.

001 builds a sample's candidate set in two steps: "we adopt the method in [51] to determine the
potential ambiguous samples. For the ambiguous samples, we ... assign 1 to the components in Y_i
that correspond to the top-k predictions". Here:

- :func:`fit_ncm`: the warm-up model. The method's class head is freshly initialised when
  candidate sets are built (an earlier stage hands over the encoder only), so the warm-up
  classifier is the nearest-class-mean classifier on the (e.g. MaskFeat pre-trained) backbone's
  pooled features: cosine similarity to the mean feature of each class's samples (hard labels).
- :func:`topk_candidates`: its top-``k`` predictions, the hard label always kept.
- :func:`adversarial_flips`: ref. [51] of 001 (Zheng et al., "Attack can benefit", AAAI 2023):
  samples near a decision boundary, whose prediction an adversarial perturbation flips, are the
  ambiguous / noisily annotated ones.  The warm-up model is attacked with FGSM (``steps = 1``,
  one step of size ``eps``) or PGD (``steps > 1``, step ``2.5 eps / steps``, projection on the
  L-inf ball, no random start so that the sets are deterministic); ``eps`` is in pixel units
  ([0, 1] images; the inputs are normalised with std 0.5, so the ball is ``eps / 0.5`` wide
  there).  A sample is ambiguous when the attacked prediction differs from the clean one.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.data.transforms import STD

_ATTACK_TEMPERATURE = 0.05  # cosine scores / T -> logits of the attacked cross-entropy


@torch.no_grad()
def fit_ncm(
    backbone: nn.Module, batches: Iterator[dict], n: int, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of every training sample and the class means.

    Args:
        backbone: has ``pooled(images) -> [B, D]``. batches: evaluation batches in index order
            (``image``, ``index``). n: training-set size. labels: long [N] hard labels (-1: none).
    Returns:
        (features [N, D] unit rows, class means [C, D] unit rows), both float32 on the CPU.
    """
    was_training = backbone.training
    backbone.eval()
    feats = None
    for batch in batches:
        f = F.normalize(backbone.pooled(batch["image"]).float(), dim=1)
        if feats is None:
            feats = torch.zeros(n, f.shape[1])
        feats[batch["index"].cpu()] = f.cpu()
    backbone.train(was_training)
    known = labels >= 0
    if feats is None or not known.any():
        raise ValueError(
            "the pll warm-up model (labels.candidates=topk_model or labels.ambiguous=adversarial) "
            "needs a training set with hard labels"
        )
    protos = torch.zeros(num_classes, feats.shape[1]).index_add_(0, labels[known], feats[known])
    return feats, F.normalize(protos, dim=1)


def topk_candidates(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """bool [N, C]: the top-``k`` of ``scores`` [N, C]; a missing hard label replaces the k-th."""
    top = scores.topk(k, dim=1).indices  # [N, k]
    known = labels >= 0
    miss = known & ~(top == labels[:, None]).any(dim=1)
    top[miss, k - 1] = labels[miss]  # keep the annotated label in the set
    cand = torch.zeros(scores.shape, dtype=torch.bool)
    cand.scatter_(1, top, True)
    return cand


def adversarial_flips(
    backbone: nn.Module,
    protos: torch.Tensor,
    batches: Iterator[dict],
    n: int,
    eps: float,
    steps: int = 1,
) -> torch.Tensor:
    """bool [N]: the warm-up prediction flips under an L-inf attack of radius ``eps`` (pixels).

    FGSM for ``steps == 1``, else PGD (module docstring). The attack raises the cross-entropy of
    the nearest-class-mean scores against the clean prediction; only the inputs get gradients.
    """
    was_training = backbone.training
    backbone.eval()
    flipped = torch.zeros(n, dtype=torch.bool)
    radius = float(eps) / STD  # pixel units -> normalised input units
    step = radius if steps == 1 else 2.5 * radius / steps
    for batch in batches:
        x = batch["image"].detach()
        p = protos.to(x.device)

        def scores(images: torch.Tensor, p: torch.Tensor = p) -> torch.Tensor:
            return F.normalize(backbone.pooled(images).float(), dim=1) @ p.T

        with torch.no_grad():
            pred = scores(x).argmax(dim=1)
        adv = x.clone()
        for _ in range(steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(scores(adv) / _ATTACK_TEMPERATURE, pred)
                (grad,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                adv = adv.detach() + step * grad.sign()
                adv = (x + (adv - x).clamp(-radius, radius)).clamp(-1.0, 1.0)
        with torch.no_grad():
            flipped[batch["index"].cpu()] = (scores(adv).argmax(dim=1) != pred).cpu()
    backbone.train(was_training)
    return flipped
