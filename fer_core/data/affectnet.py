"""AffectNet (Mollahosseini et al., TAC 2017), manually annotated part, 7- or 8-class setting.

Native expression 0-10 = Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt, None,
Uncertain, No-Face; 8-10 are dropped (and 7, contempt, in the 7-class setting); the rest maps to
the canonical order (:data:`AFFECTNET_TO_CANONICAL`). ``training.csv`` -> train,
``validation.csv`` -> test (the test set is not public; papers report on validation), so val is a
carve-out of train (or the test split with ``val_fraction`` 0). Faces are cropped to the
annotated box by default (``crop``); boxes and the 68 landmarks are mapped to the stored image.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fer_core.data._io import (
    Records,
    check_common,
    file_digest,
    read_csv_rows,
    require_root,
    safe_join,
)
from fer_core.data._registry import DATASETS, Layout, register_layout
from fer_core.data.base import DataSplits
from fer_core.data.decoded import load_real

LAYOUT = """<root>/
  training.csv, validation.csv   (or Manually_Annotated_file_lists/training.csv, ...) with columns
      subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal
      (the header row may be missing; facial_landmarks = 136 numbers 'x1;y1;x2;y2;...';
       expression 0-10 = Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt, None,
       Uncertain, No-Face)
  Manually_Annotated_Images/<subDirectory_filePath>   (or the paths relative to <root>)"""
COLUMNS = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]
AFFECTNET_TO_CANONICAL = {0: 0, 1: 1, 2: 3, 3: 2, 4: 6, 5: 5, 6: 4, 7: 7}
CSV_DIRS = ("", "Manually_Annotated_file_lists")
IMAGE_DIR = "Manually_Annotated_Images"


def find_csvs(root: Path) -> tuple[Path, Path]:
    for d in CSV_DIRS:
        tr, va = root / d / "training.csv", root / d / "validation.csv"
        if tr.is_file() and va.is_file():
            return tr, va
    raise ValueError(
        f"affectnet: training.csv and validation.csv not found under {root}; expected layout:\n{LAYOUT}"
    )


def _parse_csv(path: Path, root: Path, num_classes: int) -> Records:
    img_root = root / IMAGE_DIR if (root / IMAGE_DIR).is_dir() else root
    rows = read_csv_rows(path)
    start = 1 if rows and rows[0][0].strip() == COLUMNS[0] else 0  # tolerate a missing header
    paths, labels, boxes, lms = [], [], [], []
    for i, row in enumerate(rows[start:], start + 1):
        where = f"{path} row {i}"
        if len(row) != len(COLUMNS):
            raise ValueError(
                f"{where}: expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), got {len(row)}"
            )
        try:
            expr = int(row[6])
        except ValueError:
            raise ValueError(f"{where}: expression {row[6]!r} is not an integer 0-10") from None
        if not 0 <= expr <= 10:
            raise ValueError(f"{where}: expression {expr} is not in 0-10")
        if expr >= 8 or (num_classes == 7 and expr == 7):
            continue  # None / Uncertain / No-Face (and contempt in the 7-class setting)
        try:
            x, y, w, h = (float(v) for v in row[1:5])
            lm = [float(v) for v in row[5].split(";") if v.strip()]
        except ValueError:
            raise ValueError(f"{where}: face box / landmarks must be numbers") from None
        if w <= 0 or h <= 0:
            raise ValueError(f"{where}: face box width/height must be > 0, got {w}, {h}")
        if len(lm) != 136:
            raise ValueError(
                f"{where}: facial_landmarks must hold 136 numbers (68 points), got {len(lm)}"
            )
        paths.append(safe_join(img_root, row[0], where))
        labels.append(AFFECTNET_TO_CANONICAL[expr])
        boxes.append([x, y, x + w, y + h])
        lms.append(lm)
    return Records(
        paths=paths,
        labels=torch.tensor(labels, dtype=torch.long),
        boxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        landmarks=torch.tensor(lms, dtype=torch.float32).view(-1, 68, 2),
    )


def parse(root: Path, num_classes: int = 8, crop: bool = True) -> dict[str, Records]:
    tr, va = find_csvs(root)
    recs = {"train": _parse_csv(tr, root, num_classes), "test": _parse_csv(va, root, num_classes)}
    if crop:
        for rec in recs.values():
            rec.crops = rec.boxes.clone()
    return recs


@DATASETS.register("affectnet")
def build_affectnet(
    root: str | None = None,
    img_size: int = 112,
    channels: int = 3,
    num_classes: int = 8,
    crop: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_corrupt: str = "error",
) -> DataSplits:
    """AffectNet (layout in :data:`LAYOUT`).

    kwargs: root, img_size (decoded size), channels (1|3), num_classes (8, or 7 = AffectNet-7
    without contempt), crop (crop to the annotated face box before resizing), val_fraction
    (carve-out of train; 0 = validate on test), seed, on_corrupt (error|skip).
    """
    check_common(img_size, channels, num_classes, on_corrupt, val_fraction)
    path = require_root(root, "affectnet", LAYOUT)
    tr, va = find_csvs(path)
    key = {"root": str(path), "labels": file_digest(tr, va), "crop": bool(crop)}
    return load_real(
        "affectnet",
        lambda: parse(path, num_classes, crop),
        key,
        num_classes=num_classes,
        img_size=img_size,
        channels=channels,
        on_corrupt=on_corrupt,
        val_fraction=val_fraction,
        seed=seed,
    )


register_layout(
    Layout("affectnet", LAYOUT, lambda root: parse(require_root(root, "affectnet", LAYOUT)))
)
