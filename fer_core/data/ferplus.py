"""FERPlus (Barsoum et al., ICMI 2016): FER2013 images relabelled by 10 crowd annotators.

Vote columns are already in the canonical order (neutral, happiness, surprise, sadness, anger,
disgust, fear, contempt, unknown, NF). Splits: ``Training`` -> train, ``PublicTest`` -> val
(official), ``PrivateTest`` -> test. The training targets follow ``label_mode`` (the reference
code's ``majority``, ``probability``, ``crossentropy``, ``multi_target``, or ``votes`` = the
normalised raw votes); val and test always use ``majority``, as the reference code evaluates.
Rows whose result is unknown/NF (or contempt with ``num_classes`` 7) are dropped; rows with no
image name are skipped. The raw votes of every kept row are in ``votes``; the training split's
``meta["label_mode"]`` names the mode, so that the method ``ce`` trains it as the reference
(``probability``: a label drawn per use; ``multi_target``: the reference's loss).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fer_core.data._io import (
    Records,
    check_common,
    file_digest,
    full_boxes,
    read_csv_rows,
    require_root,
    safe_join,
)
from fer_core.data._registry import DATASETS, Layout, register_layout
from fer_core.data.base import VOTE_COLUMNS, DataSplits
from fer_core.data.decoded import load_real
from fer_core.data.labels import LABEL_MODES, ferplus_label_mode

LAYOUT = """<root>/
  fer2013new.csv     header 'Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,
                     contempt,unknown,NF' (Usage: Training | PublicTest | PrivateTest)
  FER2013Train/fer0000000.png ...   FER2013Valid/...   FER2013Test/...   (48x48 greyscale)
or, instead of fer2013new.csv, one label.csv per folder (FERPlus's generate_training_data.py):
  FER2013Train/label.csv   rows 'fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0'"""
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_DIRS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
HEADER = ["Usage", "Image name", *VOTE_COLUMNS]


def _votes(cells: list[str], where: str) -> list[float]:
    if len(cells) != 10:
        raise ValueError(
            f"{where}: expected 10 vote counts ({', '.join(VOTE_COLUMNS)}), got {len(cells)}"
        )
    try:
        out = [float(c) for c in cells]
    except ValueError:
        raise ValueError(f"{where}: vote counts must be numbers, got {cells}") from None
    if any(v < 0 for v in out):
        raise ValueError(f"{where}: vote counts must be >= 0, got {cells}")
    return out


def read_votes(
    root: Path,
) -> dict[str, tuple[list[str], torch.Tensor, list[tuple[float, ...]] | None]]:
    """{split: (image names, votes [N, 10], face rects or None)} from either annotation format."""
    out: dict[str, tuple[list[str], list[list[float]], list | None]] = {}
    csv_path = root / "fer2013new.csv"
    if csv_path.is_file():
        acc: dict[str, tuple[list[str], list[list[float]]]] = {s: ([], []) for s in SPLIT_DIRS}
        rows = read_csv_rows(csv_path)
        if rows and rows[0][:2] == HEADER[:2]:
            rows = rows[1:]
        for i, row in enumerate(rows, 2):
            where = f"{csv_path} row {i}"
            if len(row) != 12:
                raise ValueError(
                    f"{where}: expected 12 columns ({','.join(HEADER)}), got {len(row)}"
                )
            if row[0] not in USAGE_TO_SPLIT:
                raise ValueError(
                    f"{where}: Usage {row[0]!r} is not one of {', '.join(USAGE_TO_SPLIT)}"
                )
            if not row[1].strip():
                continue  # no image for this FER2013 row (173 such rows in the release)
            names, votes = acc[USAGE_TO_SPLIT[row[0]]]
            names.append(row[1].strip())
            votes.append(_votes(row[2:], where))
        return {
            s: (n, torch.tensor(v, dtype=torch.float32).view(-1, 10), None)
            for s, (n, v) in acc.items()
        }
    for split, d in SPLIT_DIRS.items():
        lab = root / d / "label.csv"
        if not lab.is_file():
            raise ValueError(
                f"ferplus: neither {csv_path} nor {lab} exists; expected layout:\n{LAYOUT}"
            )
        names, votes, rects = [], [], []
        for i, row in enumerate(read_csv_rows(lab), 1):
            where = f"{lab} row {i}"
            if i == 1 and row and row[0].strip().lower() in ("image name", "image", "name"):
                continue  # tolerate a header
            if len(row) != 12:
                raise ValueError(
                    f"{where}: expected 12 columns (image, face rect, 10 vote counts), got {len(row)}"
                )
            try:
                rect = tuple(float(x) for x in row[1].strip().strip("()").split(","))
                assert len(rect) == 4
            except (ValueError, AssertionError):
                raise ValueError(
                    f"{where}: face rect must look like '(0, 0, 48, 48)', got {row[1]!r}"
                ) from None
            names.append(row[0].strip())
            votes.append(_votes(row[2:], where))
            rects.append(rect)
        out[split] = (names, torch.tensor(votes, dtype=torch.float32).view(-1, 10), rects)
    return out


def parse(root: Path, label_mode: str = "majority", num_classes: int = 8) -> dict[str, Records]:
    recs = {}
    for split, (names, votes, rects) in read_votes(root).items():
        mode = label_mode if split == "train" else "majority"
        keep, targets = ferplus_label_mode(votes, mode, num_classes)
        idx = torch.nonzero(keep).flatten().tolist()
        paths = [
            safe_join(root, f"{SPLIT_DIRS[split]}/{names[i]}", f"ferplus {split} {names[i]}")
            for i in idx
        ]
        boxes = full_boxes(len(idx))
        if rects is not None:
            # label.csv rects are (left, top, width, height) of the face in the 48x48 image
            r = torch.tensor([rects[i] for i in idx], dtype=torch.float32).view(-1, 4)
            boxes = torch.cat([r[:, :2], r[:, :2] + r[:, 2:]], 1)
        recs[split] = Records(
            paths=paths,
            labels=targets.argmax(1),
            votes=votes[keep],
            targets=None if mode == "majority" else targets,
            boxes=boxes,
        )
    return recs


@DATASETS.register("ferplus")
def build_ferplus(
    root: str | None = None,
    img_size: int = 48,
    channels: int = 1,
    num_classes: int = 8,
    label_mode: str = "majority",
    val_fraction: float = 0.1,
    seed: int = 0,
    on_corrupt: str = "error",
) -> DataSplits:
    """FERPlus (layout in :data:`LAYOUT`).

    kwargs: root, img_size (images are resized from 48), channels (1|3), num_classes (8, or 7 =
    contempt rows dropped), label_mode (majority | probability | crossentropy | multi_target |
    votes; train only), val_fraction and seed (unused: FERPlus has an official validation split),
    on_corrupt (error|skip). ``targets`` hold the label-mode distributions, ``votes`` the raw votes.
    """
    check_common(img_size, channels, num_classes, on_corrupt, val_fraction)
    if label_mode not in LABEL_MODES:
        raise ValueError(
            f"data.label_mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}"
        )
    path = require_root(root, "ferplus", LAYOUT)
    ann = (
        [path / "fer2013new.csv"]
        if (path / "fer2013new.csv").is_file()
        else [path / d / "label.csv" for d in SPLIT_DIRS.values()]
    )
    missing = [str(p) for p in ann if not p.is_file()]
    if missing:
        raise ValueError(
            f"ferplus: {missing[0]} is missing under data.root; expected layout:\n{LAYOUT}"
        )
    key = {"root": str(path), "labels": file_digest(*ann), "label_mode": label_mode}
    splits = load_real(
        "ferplus",
        lambda: parse(path, label_mode, num_classes),
        key,
        num_classes=num_classes,
        img_size=img_size,
        channels=channels,
        on_corrupt=on_corrupt,
        val_fraction=val_fraction,
        seed=seed,
    )
    # The method trains the mode as the reference does (fer_core/methods/ce.py): tell it which.
    splits.train.meta["label_mode"] = label_mode
    return splits


register_layout(
    Layout("ferplus", LAYOUT, lambda root: parse(require_root(root, "ferplus", LAYOUT)))
)
