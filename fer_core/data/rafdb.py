"""RAF-DB basic emotion subset (Li et al., CVPR 2017), the 7-class benchmark of papers 000-004.

Native labels 1-7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral; mapped to the
canonical FERPlus order (:data:`RAF_TO_CANONICAL`). Train/test come from the file-name prefix
(``train_`` / ``test_``); there is no official validation split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fer_core.data._io import (
    Records,
    check_common,
    file_digest,
    full_boxes,
    require_root,
    safe_join,
)
from fer_core.data._registry import DATASETS, Layout, register_layout
from fer_core.data.base import DataSplits
from fer_core.data.decoded import load_real

LAYOUT = """<root>/
  EmoLabel/list_patition_label.txt    lines 'train_00001.jpg 5' (labels 1-7: Surprise, Fear,
                                      Disgust, Happiness, Sadness, Anger, Neutral)
  Image/aligned/train_00001_aligned.jpg   the 100x100 aligned faces (one per label line)"""
LABEL_FILE = "EmoLabel/list_patition_label.txt"
RAF_NAMES = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
# RAF-DB label (1-7) -> canonical index (neutral, happiness, surprise, sadness, anger, disgust, fear)
RAF_TO_CANONICAL = {1: 2, 2: 6, 3: 5, 4: 1, 5: 3, 6: 4, 7: 0}
CANONICAL_TO_RAF = {v: k for k, v in RAF_TO_CANONICAL.items()}


def parse(root: Path) -> dict[str, Records]:
    """Read the label file into train/test :class:`Records` (paths of the aligned images)."""
    label_file = root / LABEL_FILE
    paths: dict[str, list[Path]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    for lineno, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{label_file}:{lineno}"
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{where}: expected '<image name> <label 1-7>', got {line!r}")
        fname, lab = parts
        if not lab.isdigit() or int(lab) not in RAF_TO_CANONICAL:
            raise ValueError(
                f"{where}: label {lab!r} of {fname} is not one of 1-7 ({', '.join(RAF_NAMES)})"
            )
        split = (
            "train" if fname.startswith("train_") else "test" if fname.startswith("test_") else None
        )
        if split is None:
            raise ValueError(f"{where}: image name {fname!r} must start with train_ or test_")
        stem = Path(fname).stem
        paths[split].append(safe_join(root, f"Image/aligned/{stem}_aligned.jpg", where))
        labels[split].append(RAF_TO_CANONICAL[int(lab)])
    return {
        s: Records(paths=paths[s], labels=torch.tensor(labels[s], dtype=torch.long)) for s in paths
    }


@DATASETS.register("rafdb")
def build_rafdb(
    root: str | None = None,
    img_size: int = 100,
    channels: int = 3,
    num_classes: int = 7,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_corrupt: str = "error",
) -> DataSplits:
    """RAF-DB basic (layout in :data:`LAYOUT`).

    kwargs: root (dataset folder), img_size (decoded size, images are resized), channels (1|3),
    num_classes (7 only; RAF-DB has no contempt), val_fraction (seeded stratified carve-out of
    train; 0 = validate on test as the papers do), seed (of the carve-out), on_corrupt
    (error|skip unreadable images). Face boxes: the whole aligned image.
    """
    check_common(img_size, channels, num_classes, on_corrupt, val_fraction)
    if num_classes != 7:
        raise ValueError(
            f"data.num_classes must be 7 for rafdb (it has no contempt), got {num_classes!r}"
        )
    path = require_root(root, "rafdb", LAYOUT, (LABEL_FILE,))

    def parse_with_boxes() -> dict[str, Records]:
        recs = parse(path)
        for rec in recs.values():
            rec.boxes = full_boxes(len(rec.paths))
        return recs

    key = {"root": str(path), "labels": file_digest(path / LABEL_FILE)}
    return load_real(
        "rafdb",
        parse_with_boxes,
        key,
        num_classes=7,
        img_size=img_size,
        channels=channels,
        on_corrupt=on_corrupt,
        val_fraction=val_fraction,
        seed=seed,
    )


register_layout(
    Layout("rafdb", LAYOUT, lambda root: parse(require_root(root, "rafdb", LAYOUT, (LABEL_FILE,))))
)
