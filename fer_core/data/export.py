"""Write a dataset (SynthFER by default) in the on-disk layout of a real benchmark.

So the real loaders are tested on files of the real formats: ``rafdb`` (label file + aligned
JPEGs), ``ferplus`` (``fer2013new.csv`` and per-folder ``label.csv`` + 48x48 PNGs), ``affectnet``
(``training.csv`` / ``validation.csv`` with boxes and 68 landmarks + JPEGs), ``sfew`` (emotion
folders of PNGs) and ``folder`` (``<split>/<class>/``). Splits the layout lacks are merged: val
goes into train for RAF-DB, AffectNet and SFEW (whose loaders carve their own), and classes it
lacks (contempt for RAF-DB / SFEW) are skipped and counted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fer_core.data.affectnet import AFFECTNET_TO_CANONICAL
from fer_core.data.affectnet import COLUMNS as AFFECTNET_COLUMNS
from fer_core.data.base import CLASS_NAMES, DataSplits, FERImageSet
from fer_core.data.ferplus import HEADER, SPLIT_DIRS
from fer_core.data.rafdb import CANONICAL_TO_RAF
from fer_core.data.sfew import SFEW_EMOTIONS

LAYOUTS = ("rafdb", "ferplus", "affectnet", "sfew", "folder")
# Native image size / channels of each layout (SynthFER is generated like this for export).
NATIVE = {
    "rafdb": (100, 3),
    "ferplus": (48, 1),
    "affectnet": (128, 3),
    "sfew": (128, 3),
    "folder": (48, 3),
}
CANONICAL_TO_AFFECTNET = {v: k for k, v in AFFECTNET_TO_CANONICAL.items()}
SFEW_FOLDER = {
    0: "Neutral",
    1: "Happy",
    2: "Surprise",
    3: "Sad",
    4: "Angry",
    5: "Disgust",
    6: "Fear",
}
# rough (valence, arousal) per canonical class, for AffectNet's two extra columns
VALENCE_AROUSAL = [
    (0.0, 0.0),
    (0.7, 0.4),
    (0.2, 0.7),
    (-0.6, -0.3),
    (-0.6, 0.6),
    (-0.6, 0.4),
    (-0.5, 0.7),
    (-0.3, 0.2),
]
assert set(SFEW_FOLDER.values()) == set(SFEW_EMOTIONS)


def _pil(img: torch.Tensor) -> Image.Image:
    a = img.numpy()
    return (
        Image.fromarray(a[0])
        if a.shape[0] == 1
        else Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)))
    )


def _merge(*sets: FERImageSet) -> FERImageSet:
    """Concatenate splits (val into train for layouts without a validation split)."""

    def cat(attr: str) -> torch.Tensor | None:
        parts = [getattr(s, attr) for s in sets]
        return None if any(p is None for p in parts) else torch.cat(parts)

    return FERImageSet(images=cat("images"), labels=cat("labels"), num_classes=sets[0].num_classes, votes=cat("votes"),
                       true_labels=cat("true_labels"), boxes=cat("boxes"), name=sets[0].name, split=sets[0].split)  # fmt: skip


def _train_test(splits: DataSplits) -> dict[str, FERImageSet]:
    val_is_test = splits.val.meta.get("val_source") == "test"
    train = splits.train if val_is_test else _merge(splits.train, splits.val)
    return {"train": train, "test": splits.test}


_NOSE = [[0.5, 0.35], [0.5, 0.42], [0.5, 0.49], [0.5, 0.56], [0.42, 0.62], [0.46, 0.63], [0.5, 0.64], [0.54, 0.63], [0.58, 0.62]]  # fmt: skip
_EYE = [[0.0, 0.4], [0.05, 0.38], [0.1, 0.38], [0.15, 0.4], [0.1, 0.42], [0.05, 0.42]]  # fmt: skip


def landmarks_from_box(box: torch.Tensor) -> torch.Tensor:
    """A 68-point template (jaw 17, brows 5+5, nose 9, eyes 6+6, mouth 20: iBUG order) placed in
    ``box`` [4] -> [68, 2]. SynthFER has no landmark model; this fills AffectNet's column."""
    t = torch.linspace(0, 1, 17)
    jaw = torch.stack([0.05 + 0.9 * t, 0.45 + 0.5 * torch.sin(torch.pi * t)], 1)
    b = torch.linspace(0, 0.3, 5)
    brows = [torch.stack([x0 + b, torch.full((5,), 0.28)], 1) for x0 in (0.15, 0.55)]
    eyes = [torch.tensor(_EYE) + torch.tensor([x0, 0.0]) for x0 in (0.22, 0.63)]
    a = torch.linspace(0, 2 * torch.pi, 21)[:20]
    mouth = torch.stack([0.5 + 0.17 * torch.cos(a), 0.77 + 0.06 * torch.sin(a)], 1)
    pts = torch.cat([jaw, *brows, torch.tensor(_NOSE), *eyes, mouth])
    x1, y1, x2, y2 = box.tolist()
    return pts * torch.tensor([x2 - x1, y2 - y1]) + torch.tensor([x1, y1])


def export(splits: DataSplits, layout: str, out: Path) -> dict[str, object]:
    """Write ``splits`` in ``layout`` under ``out``; returns counts written / skipped per split."""
    if layout not in LAYOUTS:
        raise ValueError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "rafdb": _rafdb,
        "ferplus": _ferplus,
        "affectnet": _affectnet,
        "sfew": _sfew,
        "folder": _folder,
    }[layout](splits, out)


def _rafdb(splits: DataSplits, out: Path) -> dict:
    (out / "EmoLabel").mkdir(exist_ok=True)
    (out / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    lines, report = [], {}
    for split, ds in _train_test(splits).items():
        n = skipped = 0
        for i in range(len(ds)):
            c = int(ds.labels[i])
            if c not in CANONICAL_TO_RAF:
                skipped += 1
                continue
            n += 1
            stem = f"{split}_{n:05d}"
            _pil(ds.images[i]).convert("RGB").save(
                out / "Image" / "aligned" / f"{stem}_aligned.jpg", quality=95
            )
            lines.append(f"{stem}.jpg {CANONICAL_TO_RAF[c]}")
        report[split] = {"written": n, "skipped": skipped}
    (out / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return report


def _ferplus(splits: DataSplits, out: Path) -> dict:
    usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    sets = {"train": splits.train, "val": splits.val, "test": splits.test}
    rows, report, k = [HEADER], {}, 0
    for split, ds in sets.items():
        if ds.votes is None:
            raise ValueError("the ferplus layout needs annotator votes; this dataset has none")
        d = out / SPLIT_DIRS[split]
        d.mkdir(exist_ok=True)
        label_rows = []
        for i in range(len(ds)):
            name = f"fer{k:07d}.png"
            k += 1
            img = _pil(ds.images[i]).convert("L")
            img.save(d / name)
            votes = [str(int(v)) for v in ds.votes[i].tolist()]
            rows.append([usage[split], name, *votes])
            label_rows.append([name, f"(0, 0, {img.width}, {img.height})", *votes])
        with open(d / "label.csv", "w", newline="") as f:
            csv.writer(f).writerows(label_rows)
        report[split] = {"written": len(ds), "skipped": 0}
    with open(out / "fer2013new.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return report


def _affectnet(splits: DataSplits, out: Path) -> dict:
    lists = out / "Manually_Annotated_file_lists"
    lists.mkdir(exist_ok=True)
    report = {}
    for split, ds in _train_test(splits).items():
        fname = "training.csv" if split == "train" else "validation.csv"
        rows = [list(AFFECTNET_COLUMNS)]
        for i in range(len(ds)):
            c = int(ds.labels[i])
            sub = f"{1 + i // 500}/{split}_{i:06d}.jpg"
            p = out / "Manually_Annotated_Images" / sub
            p.parent.mkdir(parents=True, exist_ok=True)
            _pil(ds.images[i]).convert("RGB").save(p, quality=95)
            h, w = ds.images.shape[-2:]
            box = (
                ds.boxes[i]
                if ds.boxes is not None
                else torch.tensor([0.0, 0.0, float(w), float(h)])
            )
            x1, y1, x2, y2 = (int(round(v)) for v in box.tolist())
            lm = ";".join(
                f"{v:.2f}"
                for v in landmarks_from_box(torch.tensor([x1, y1, x2, y2], dtype=torch.float32))
                .flatten()
                .tolist()
            )
            va = VALENCE_AROUSAL[c] if c >= 0 else (0.0, 0.0)
            expr = CANONICAL_TO_AFFECTNET[c] if c >= 0 else 9  # 9 = Uncertain
            rows.append([sub, x1, y1, x2 - x1, y2 - y1, lm, expr, va[0], va[1]])
        with open(lists / fname, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        report[split] = {"written": len(ds), "skipped": 0}
    return report


def _class_folders(ds: FERImageSet, base: Path, names: dict[int, str]) -> dict:
    n = skipped = 0
    for i in range(len(ds)):
        c = int(ds.labels[i])
        if c not in names:
            skipped += 1
            continue
        d = base / names[c]
        d.mkdir(parents=True, exist_ok=True)
        _pil(ds.images[i]).save(d / f"{i:06d}.png")
        n += 1
    return {"written": n, "skipped": skipped}


def _sfew(splits: DataSplits, out: Path) -> dict:
    dirs = {
        "train": out / "Train" / "Train_Aligned_Faces",
        "test": out / "Val" / "Val_Aligned_Faces",
    }
    return {s: _class_folders(ds, dirs[s], SFEW_FOLDER) for s, ds in _train_test(splits).items()}


def _folder(splits: DataSplits, out: Path) -> dict:
    names = dict(enumerate(CLASS_NAMES[: splits.num_classes]))
    sets = {"train": splits.train, "test": splits.test}
    if splits.val_is_official:
        sets["val"] = splits.val
    return {s: _class_folders(ds, out / s, names) for s, ds in sets.items()}


def export_synthfer(layout: str, out: Path, **knobs) -> dict:
    """Generate SynthFER at the layout's native size / channels (unless given) and export it."""
    from fer_core.data import build_splits

    if layout not in LAYOUTS:
        raise ValueError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    size, ch = NATIVE[layout]
    knobs.setdefault("img_size", size)
    knobs.setdefault("channels", ch)
    knobs.setdefault("num_classes", 8 if layout in ("ferplus", "affectnet") else 7)
    return export(build_splits("synthfer", **knobs), layout, out)
