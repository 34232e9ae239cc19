"""Batch mixing: Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019), 000 Eq. 9-10.

``mix_batch(images, generator, kind=..., alpha=..., beta=...)`` mixes each sample ``i`` with a
partner ``index[i]`` (a random permutation of the batch) with its own ``lam ~ Beta(alpha, beta)``
(Eq. 9; 000 uses alpha = beta = 2):

- ``mixup``: ``lam * x_i + (1 - lam) * x_index[i]`` (Eq. 10);
- ``cutmix``: a box of area ``(1 - lam) * H * W`` (side ratio ``sqrt(1 - lam)``, centre uniform,
  clipped at the border) is pasted from the partner; ``lam`` is then corrected to the area actually
  kept, as in CutMix and timm (``correct_lam``);
- ``both``: each sample draws mixup or cutmix with probability 1/2 (timm's ``switch_prob``).

Every draw comes from the trial's ``torch.Generator`` (``StepContext.generator``): timm's ``Mixup``
draws from numpy's global RNG, so Beta samples come from a numpy ``Generator`` seeded by one draw
of the torch generator. Inputs are never modified in place. Face boxes (``[N, 4]``, x1 y1 x2 y2
pixels) are carried along: ``partner_boxes`` are the partner's, for 004's FaceMix (kappa = 1 -
IoU of the two faces); ``cut_boxes`` are the pasted regions (zero-size for mixup samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MIX_KINDS = ("mixup", "cutmix", "both")


def check_mix_settings(kind: str, alpha: float, beta: float) -> None:
    """Raise ``ValueError`` naming ``mix.kind`` / ``mix.alpha`` / ``mix.beta`` when bad."""
    if kind not in MIX_KINDS:
        raise ValueError(f"mix.kind must be one of {', '.join(MIX_KINDS)}, got {kind!r}")
    for name, v in (("mix.alpha", alpha), ("mix.beta", beta)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name} must be a number > 0 (Beta(alpha, beta)), got {v!r}")


@dataclass
class MixResult:
    """A mixed batch: ``images[i] = Mix(x_i, x_index[i])`` with weight ``lam[i]`` on ``x_i``.

    images: float [N, C, H, W] (a new tensor); index: long [N]; lam: float [N] (CutMix: the kept
    area fraction); cutmix: bool [N] (which samples were cut-mixed); cut_boxes: float [N, 4] the
    pasted region (x1, y1, x2, y2; zero-size for mixup); boxes / partner_boxes: float [N, 4] the
    face boxes of ``x_i`` and of its partner when boxes were given, else None.
    """

    images: torch.Tensor
    index: torch.Tensor
    lam: torch.Tensor
    cutmix: torch.Tensor
    cut_boxes: torch.Tensor
    boxes: torch.Tensor | None = None
    partner_boxes: torch.Tensor | None = None

    def targets(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Mixed labels ``lam * onehot(y_i) + (1 - lam) * onehot(y_index[i])``: float [N, K]."""
        one = F.one_hot(labels, num_classes).float()
        lam = self.lam.to(one)[:, None]
        return lam * one + (1.0 - lam) * one[self.index]


def sample_lambda(
    n: int, alpha: float, beta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``lam ~ Beta(alpha, beta)``, float [n], reproducible from the torch generator."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, beta, size=n)).float()


def cut_boxes(
    lam: torch.Tensor, height: int, width: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """CutMix boxes (long [N, 4], x1 y1 x2 y2, end-exclusive) of side ratio ``sqrt(1 - lam)``."""
    n = lam.shape[0]
    ratio = torch.sqrt(1.0 - lam)
    ch, cw = (height * ratio).long(), (width * ratio).long()
    cy = torch.randint(0, height, (n,), generator=generator)
    cx = torch.randint(0, width, (n,), generator=generator)
    y1, y2 = (cy - ch // 2).clamp(0, height), (cy + ch // 2).clamp(0, height)
    x1, x2 = (cx - cw // 2).clamp(0, width), (cx + cw // 2).clamp(0, width)
    return torch.stack([x1, y1, x2, y2], dim=1)


def mix_batch(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    kind: str = "both",
    alpha: float = 2.0,
    beta: float = 2.0,
    boxes: torch.Tensor | None = None,
    index: torch.Tensor | None = None,
    lam: torch.Tensor | None = None,
) -> MixResult:
    """Mix a batch (module docstring). ``images`` [N, C, H, W] is not modified.

    ``index`` (long [N]) and ``lam`` (float [N]) may be given (tests, or a caller that mixes two
    batches alike); otherwise they are drawn: ``index`` a random permutation, ``lam`` from Beta.
    Draws happen on the CPU from ``generator``; the result lives on ``images.device``.
    """
    check_mix_settings(kind, alpha, beta)
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got {tuple(images.shape)}")
    n, _, h, w = images.shape
    dev = images.device
    if index is None:
        index = torch.randperm(n, generator=generator)
    if lam is None:
        lam = sample_lambda(n, alpha, beta, generator)
    index, lam = index.cpu().long(), lam.cpu().float()
    if kind == "both":
        is_cut = torch.rand(n, generator=generator) < 0.5
    else:
        is_cut = torch.full((n,), kind == "cutmix")
    cuts = cut_boxes(lam, h, w, generator)
    cuts[~is_cut] = 0
    area = ((cuts[:, 2] - cuts[:, 0]) * (cuts[:, 3] - cuts[:, 1])).float()
    lam = torch.where(is_cut, 1.0 - area / float(h * w), lam)  # the area actually kept
    ys = torch.arange(h)[None, :, None]
    xs = torch.arange(w)[None, None, :]
    inside = (
        (ys >= cuts[:, 1, None, None])
        & (ys < cuts[:, 3, None, None])
        & (xs >= cuts[:, 0, None, None])
        & (xs < cuts[:, 2, None, None])
    )  # [N, H, W]: pixels taken from the partner
    index_d, lam_d = index.to(dev), lam.to(device=dev, dtype=images.dtype)
    partner = images[index_d]  # a copy (advanced indexing)
    lam4 = torch.where(is_cut.to(dev), torch.ones_like(lam_d), lam_d)[:, None, None, None]
    blended = lam4 * images + (1.0 - lam4) * partner  # mixup rows; cutmix rows keep x_i here
    mixed = torch.where(inside.to(dev)[:, None], partner, blended)
    return MixResult(
        images=mixed,
        index=index_d,
        lam=lam_d,
        cutmix=is_cut.to(dev),
        cut_boxes=cuts.float().to(dev),
        boxes=None if boxes is None else boxes.clone(),
        partner_boxes=None if boxes is None else boxes[index_d.to(boxes.device)],
    )
