"""SFEW 2.0 (Dhall et al., 2011/2015): movie stills, aligned faces, 7 classes.

Emotion folders Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise map to the canonical names.
The test labels are not public, so ``Val`` is used as the test split (as papers report) and the
validation split is a carve-out of train (or the test split with ``val_fraction`` 0).
"""

from __future__ import annotations

from pathlib import Path

from fer_core.data._io import Records, check_common, require_root
from fer_core.data._registry import DATASETS, Layout, register_layout
from fer_core.data.base import DataSplits
from fer_core.data.decoded import load_real
from fer_core.data.folder import listing_digest, scan_class_folders

LAYOUT = """<root>/
  Train/Train_Aligned_Faces/<Emotion>/*.png   Emotion in Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise
  Val/Val_Aligned_Faces/<Emotion>/*.png       (used as the test split)"""
DIRS = {"train": "Train/Train_Aligned_Faces", "test": "Val/Val_Aligned_Faces"}
SFEW_EMOTIONS = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


def parse(root: Path) -> dict[str, Records]:
    return {s: scan_class_folders(root / d, 7, "sfew") for s, d in DIRS.items()}


@DATASETS.register("sfew")
def build_sfew(
    root: str | None = None,
    img_size: int = 112,
    channels: int = 3,
    num_classes: int = 7,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_corrupt: str = "error",
) -> DataSplits:
    """SFEW 2.0 (layout in :data:`LAYOUT`).

    kwargs: root, img_size, channels (1|3), num_classes (7 only), val_fraction (carve-out of
    train; 0 = validate on test), seed, on_corrupt (error|skip). Boxes: the whole aligned face.
    """
    check_common(img_size, channels, num_classes, on_corrupt, val_fraction)
    if num_classes != 7:
        raise ValueError(
            f"data.num_classes must be 7 for sfew (it has no contempt), got {num_classes!r}"
        )
    path = require_root(root, "sfew", LAYOUT, tuple(DIRS.values()))
    recs = parse(path)
    key = {"root": str(path), "files": listing_digest(recs)}
    return load_real(
        "sfew",
        lambda: recs,
        key,
        num_classes=7,
        img_size=img_size,
        channels=channels,
        on_corrupt=on_corrupt,
        val_fraction=val_fraction,
        seed=seed,
    )


register_layout(
    Layout(
        "sfew", LAYOUT, lambda root: parse(require_root(root, "sfew", LAYOUT, tuple(DIRS.values())))
    )
)
