"""Batch-level augmentation on uint8 image tensors, and normalisation.

Policies (004 Sec. III-D names weak and strong):

- ``weak``: random crop (zero padding ``crop_pad`` px, then crop back to H x W) + horizontal flip;
- ``strong``: ``weak`` + torchvision RandAugment (``randaug_n`` ops of magnitude ``randaug_m``),
  per sample;
- ``none``: the image as it is (evaluation).

Everything runs on whole batches ``uint8 [N, C, H, W]`` drawn from an in-memory
:class:`~fer_core.data.base.FERImageSet`, with an explicit ``torch.Generator`` so that runs
repeat exactly. Face boxes ``[N, 4]`` (x1, y1, x2, y2 in pixels) follow the crop and the flip.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

POLICIES = ("none", "weak", "strong")
#: ``trainer.aug.policy: auto`` (the default): no augmentation on SynthFER, whose generator already
#: jitters position, scale, rotation, head turn, lighting and contrast (crop + flip on top cost a
#: 4-epoch CE run 23 points of true-class accuracy: 0.31 vs 0.54, 3,000 images), and ``weak``
#: (crop + flip) on every real dataset.
AUTO_POLICY = {"synthfer": "none"}


def resolve_policy(policy: str, dataset: str) -> str:
    """``auto`` -> the dataset's policy (``AUTO_POLICY``, else ``weak``); others unchanged."""
    if policy == "auto":
        return AUTO_POLICY.get(dataset, "weak")
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


class BatchAugment:
    """A policy applied to uint8 batches: ``aug(images, generator, boxes) -> (float images, boxes)``.

    Output images are normalised float [N, C, H, W].
    """

    def __init__(
        self,
        policy: str = "weak",
        crop_pad: int = 4,
        flip: bool = True,
        randaug_n: int = 2,
        randaug_m: int = 9,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(
                f"trainer.aug.policy must be one of auto, {', '.join(POLICIES)}, got {policy!r}"
            )
        if int(crop_pad) < 0:
            raise ValueError(f"trainer.aug.crop_pad must be >= 0, got {crop_pad!r}")
        self.policy = policy
        self.crop_pad = int(crop_pad)
        self.flip = bool(flip)
        self.randaug = (
            v2.RandAugment(num_ops=int(randaug_n), magnitude=int(randaug_m))
            if policy == "strong"
            else None
        )

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        boxes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images.dtype != torch.uint8:
            raise ValueError(f"BatchAugment expects uint8 images, got {images.dtype}")
        if self.policy != "none":
            images, boxes = random_crop_flip(images, generator, self.crop_pad, self.flip, boxes)
        if self.randaug is not None:
            # RandAugment draws from torch's global RNG: seed it from our generator (repeatable).
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            images = torch.stack([self.randaug(img) for img in images])
            torch.random.set_rng_state(state)
        return normalize(images), boxes
