"""Face boxes for FaceMix (004 SSFER ``boxes.source``): annotated, detector, or the full image.

Boxes are ``[N, 4]`` float (x1, y1, x2, y2) in pixels of the stored image. ``annotated`` uses
the dataset's boxes (SynthFER: the exact face box; AffectNet: the annotated box; aligned
datasets: the whole image); ``detector`` runs scikit-image's LBP frontal-face cascade (the one
detector a kept package ships, PITFALLS.md) and falls back to the full image where it finds no
face; ``full`` is the whole image.

Config: the ``boxes.source`` knob of a method that needs boxes (``method.boxes.source`` of
``ssfer``) reaches :func:`face_boxes` through the method's ``needs.box_source``
(``engine/batches.py``), once per split before the first batch. The detector needs scikit-image,
the ``detect`` extra (``pip install 'fer-study[detect]'``): :func:`require_detector` says so, and
the method calls it when built, before any training.
"""

from __future__ import annotations

import torch

from fer_core.data.base import FERImageSet

BOX_SOURCES = ("annotated", "detector", "full")


DETECTOR_MISSING = (
    "boxes.source=detector needs scikit-image, which is not installed: pip install "
    "'fer-study[detect]' (or scikit-image), or choose boxes.source=annotated or full"
)


def detector_available() -> bool:
    """Whether scikit-image (the ``detect`` extra) can be imported."""
    try:
        import skimage  # noqa: F401
    except ImportError:
        return False
    return True


def require_detector() -> None:
    """Raise ``ValueError`` naming ``boxes.source`` and the ``detect`` extra without scikit-image."""
    if not detector_available():
        raise ValueError(DETECTOR_MISSING)


def full_image_boxes(n: int, height: int, width: int) -> torch.Tensor:
    return torch.tensor([[0.0, 0.0, float(width), float(height)]]).repeat(n, 1)


def detect_faces(images: torch.Tensor, min_size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest LBP-cascade detection per image.

    Args: images uint8 [N, C, H, W]. Returns boxes [N, 4] and found bool [N] (boxes of images
    without a detection are the full image).
    """
    try:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade
    except ImportError as exc:  # scikit-image is the detect extra
        raise ValueError(DETECTOR_MISSING) from exc
    n, c, h, w = images.shape
    cascade = Cascade(lbp_frontal_face_cascade_filename())
    boxes = full_image_boxes(n, h, w)
    found = torch.zeros(n, dtype=torch.bool)
    grey = images.float().mean(1) / 255.0 if c == 3 else images[:, 0].float() / 255.0
    for i in range(n):
        dets = cascade.detect_multi_scale(
            img=grey[i].numpy(),
            scale_factor=1.2,
            step_ratio=1,
            min_size=(min_size, min_size),
            max_size=(h, w),
        )
        if dets:
            d = max(dets, key=lambda d: d["width"] * d["height"])
            boxes[i] = torch.tensor(
                [d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]], dtype=torch.float32
            )
            found[i] = True
    return boxes, found


def face_boxes(ds: FERImageSet, source: str = "annotated") -> torch.Tensor:
    """The face boxes of every sample of ``ds`` from ``source`` (see module docstring): [N, 4]."""
    if source not in BOX_SOURCES:
        raise ValueError(f"boxes.source must be one of {', '.join(BOX_SOURCES)}, got {source!r}")
    n, _, h, w = ds.images.shape
    if source == "full":
        return full_image_boxes(n, h, w)
    if source == "annotated":
        if ds.boxes is None:
            raise ValueError(
                f"boxes.source=annotated but dataset {ds.name!r} has no face boxes; use detector or full"
            )
        return ds.boxes.float()
    return detect_faces(ds.images)[0]
