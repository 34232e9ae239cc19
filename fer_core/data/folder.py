"""A generic folder-per-class dataset: ``<root>/<split>/<class>/*.png|jpg``.

Class folders are matched case-insensitively against the canonical names and common aliases
(``happy`` -> happiness, ``angry`` -> anger, ``sad``, ``surprised``, ``fearful``, ``disgusted``,
...), so SFEW-style and FER2013-style trees read as they are. ``val`` is optional.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fer_core.cache import config_hash
from fer_core.data._io import Records, check_common, full_boxes, require_root
from fer_core.data._registry import DATASETS, Layout, register_layout
from fer_core.data.base import CLASS_NAMES, DataSplits
from fer_core.data.decoded import load_real

LAYOUT = """<root>/
  train/<class>/*.png|jpg|jpeg|bmp   test/<class>/...   val/<class>/... (optional)
  <class> is one of neutral, happiness, surprise, sadness, anger, disgust, fear, contempt
  (case-insensitive; aliases such as happy, sad, angry, surprised, fearful, disgusted work)"""
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
ALIASES = {
    **{n: i for i, n in enumerate(CLASS_NAMES)},
    "happy": 1, "surprised": 2, "surprise": 2, "sad": 3, "angry": 4, "disgusted": 5, "fearful": 6, "scared": 6, "contemptuous": 7,
}  # fmt: skip


def class_index(folder: str) -> int | None:
    return ALIASES.get(folder.strip().lower())


def scan_class_folders(split_dir: Path, num_classes: int, name: str) -> Records:
    """Every image under ``split_dir/<class>/`` (sorted, so the order is stable)."""
    paths, labels = [], []
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        c = class_index(d.name)
        if c is None:
            allowed = ", ".join(CLASS_NAMES[:num_classes])
            raise ValueError(
                f"{name}: class folder {str(d)!r} is not a known expression; allowed: {allowed} (or aliases)"
            )
        if c >= num_classes:
            raise ValueError(
                f"{name}: class folder {str(d)!r} is {CLASS_NAMES[c]}, which num_classes={num_classes} excludes"
            )
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [c] * len(files)
    return Records(
        paths=paths, labels=torch.tensor(labels, dtype=torch.long), boxes=full_boxes(len(paths))
    )


def listing_digest(recs: dict[str, Records]) -> str:
    """Cache key part for folder datasets: the file names and sizes (no annotation file exists)."""
    return config_hash(
        {
            s: [[str(p), p.stat().st_size if p.exists() else -1] for p in r.paths]
            for s, r in recs.items()
        }
    )


def parse(root: Path, num_classes: int = 8) -> dict[str, Records]:
    recs = {}
    for split in ("train", "val", "test"):
        if (root / split).is_dir():
            recs[split] = scan_class_folders(root / split, num_classes, "folder")
    for split in ("train", "test"):
        if split not in recs:
            raise ValueError(
                f"folder: {str(root / split)!r} is missing; expected layout:\n{LAYOUT}"
            )
    return recs


@DATASETS.register("folder")
def build_folder(
    root: str | None = None,
    img_size: int = 48,
    channels: int = 3,
    num_classes: int = 7,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_corrupt: str = "error",
) -> DataSplits:
    """Folder-per-class images (layout in :data:`LAYOUT`).

    kwargs: root, img_size, channels (1|3), num_classes (7|8), val_fraction (used when there is
    no val/ folder; 0 = validate on test), seed, on_corrupt (error|skip).
    """
    check_common(img_size, channels, num_classes, on_corrupt, val_fraction)
    path = require_root(root, "folder", LAYOUT, ("train", "test"))
    recs = parse(path, num_classes)
    key = {"root": str(path), "files": listing_digest(recs)}
    return load_real(
        "folder",
        lambda: recs,
        key,
        num_classes=num_classes,
        img_size=img_size,
        channels=channels,
        on_corrupt=on_corrupt,
        val_fraction=val_fraction,
        seed=seed,
    )


register_layout(
    Layout(
        "folder",
        LAYOUT,
        lambda root: parse(require_root(root, "folder", LAYOUT, ("train", "test"))),
    )
)
