"""Normalisation, the padded random crop + flip primitive, and ``trainer.aug.policy: auto``.

The named augmentation policies (none, crop_flip, weak, strong, simclr, erase) live in
``fer_core/conf/aug/`` and ``fer_core/data/augment.py``; this module keeps what they build on:
``normalize`` (uint8 -> [-1, 1]) and ``random_crop_flip`` (per-sample translation by up to ``pad``
px + horizontal flip, boxes following), both on whole batches ``uint8 [N, C, H, W]`` with an
explicit ``torch.Generator`` so that runs repeat exactly.
"""

from __future__ import annotations

import torch

#: ``trainer.aug.policy: auto`` (the default): no augmentation on SynthFER, whose generator already
#: jitters position, scale, rotation, head turn, lighting and contrast (crop + flip on top cost a
#: 4-epoch CE run 23 points of true-class accuracy: 0.31 vs 0.54, 3,000 images), and ``crop_flip``
#: (padded crop + flip) on every real dataset.
AUTO_POLICY = {"synthfer": "none"}
AUTO_DEFAULT = "crop_flip"


def resolve_policy(policy: str, dataset: str) -> str:
    """``auto`` -> the dataset's policy (``AUTO_POLICY``, else ``crop_flip``); others unchanged."""
    if policy == "auto":
        return AUTO_POLICY.get(dataset, AUTO_DEFAULT)
    return policy


MEAN = 0.5  # SynthFER and the real sets are normalised to [-1, 1] (mean 0.5, std 0.5 per channel)
STD = 0.5


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [N, C, H, W] in [-1, 1]."""
    return (images.float() / 255.0 - MEAN) / STD


def random_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    pad: int = 4,
    flip: bool = True,
    boxes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample random translation by up to ``pad`` px (zero fill) and a horizontal flip (p=0.5).

    images uint8 [N, C, H, W]; boxes float [N, 4] or None. Returns the same shapes.
    """
    n, c, h, w = images.shape
    out = images
    if pad > 0:
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # [N, 1, H, 1]
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # [N, 1, 1, W]
        ni = torch.arange(n)[:, None, None, None]
        ci = torch.arange(c)[None, :, None, None]
        out = padded[ni, ci, rows, cols]
        if boxes is not None:
            shift = torch.stack([pad - ox, pad - oy, pad - ox, pad - oy], dim=1).to(boxes)
            boxes = (boxes + shift).clamp(min=0)
            boxes = torch.minimum(boxes, torch.tensor([w, h, w, h], dtype=boxes.dtype))
    if flip:
        f = torch.rand(n, generator=generator) < 0.5
        out = torch.where(f[:, None, None, None], out.flip(-1), out)
        if boxes is not None:
            flipped = torch.stack(
                [w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1
            )
            boxes = torch.where(f[:, None], flipped, boxes)
    return out, boxes
