"""Shared plumbing of the real-dataset loaders: root checks, safe paths, image decoding.

A loader parses its annotation files into one :class:`Records` per split (paths + labels + what
else the format has); :func:`decode_records` turns them into a :class:`FERImageSet` of uint8
images resized to ``img_size``, reporting unreadable files by name (``on_corrupt="error"``) or
skipping and counting them (``on_corrupt="skip"``).
"""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch
from PIL import Image

from fer_core.data.base import FERImageSet

ON_CORRUPT = ("error", "skip")


@dataclass
class Records:
    """One split before decoding. ``crops`` [N, 4] (x1, y1, x2, y2 in source pixels) or None;
    ``boxes`` / ``landmarks`` are in source pixels and are mapped to the stored image."""

    paths: list[Path]
    labels: torch.Tensor
    votes: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    crops: torch.Tensor | None = None
    problems: list[str] = field(default_factory=list)  # missing files found while parsing


def check_common(
    img_size: int, channels: int, num_classes: int, on_corrupt: str, val_fraction: float
) -> None:
    if not isinstance(img_size, int) or not 8 <= img_size <= 1024:
        raise ValueError(f"data.img_size must be an integer in [8, 1024], got {img_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"data.channels must be 1 or 3, got {channels!r}")
    if num_classes not in (7, 8):
        raise ValueError(f"data.num_classes must be 7 or 8, got {num_classes!r}")
    if on_corrupt not in ON_CORRUPT:
        raise ValueError(
            f"data.on_corrupt must be one of {', '.join(ON_CORRUPT)}, got {on_corrupt!r}"
        )
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction!r}")


def require_root(
    root: str | os.PathLike | None, name: str, layout: str, needed: tuple[str, ...] = ()
) -> Path:
    """The absolute dataset root; a missing root or missing entries name the expected layout."""
    if root is None or str(root) == "":
        raise ValueError(
            f"data.root is not set for dataset {name!r}; point it at a folder laid out as:\n{layout}"
        )
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(
            f"data.root {str(path)!r} for dataset {name!r} does not exist; expected layout:\n{layout}"
        )
    for rel in needed:
        if not (path / rel).exists():
            raise ValueError(
                f"{name}: {str(path / rel)!r} is missing under data.root; expected layout:\n{layout}"
            )
    return path


def safe_join(root: Path, rel: str, where: str) -> Path:
    """``root / rel`` for a relative path from an annotation file; absolute paths and ``..``
    components are rejected (they would read outside the dataset root)."""
    rel = rel.strip()
    if not rel:
        raise ValueError(f"{where}: empty image path")
    if (
        PurePosixPath(rel).is_absolute()
        or PureWindowsPath(rel).is_absolute()
        or PureWindowsPath(rel).drive
    ):
        raise ValueError(
            f"{where}: image path {rel!r} is absolute; paths must be relative to the dataset root"
        )
    parts = rel.replace("\\", "/").split("/")
    if ".." in parts:
        raise ValueError(f"{where}: image path {rel!r} escapes the dataset root ('..')")
    return root.joinpath(*[p for p in parts if p not in ("", ".")])


def full_boxes(n: int) -> torch.Tensor:
    """Boxes covering the whole image (aligned face crops), in any source size: [0, 0, inf, inf]
    becomes [0, 0, img_size, img_size] when :func:`decode_records` scales and clips it."""
    return torch.tensor([[0.0, 0.0, float("inf"), float("inf")]]).expand(n, 4).clone()


def file_digest(*paths: Path) -> str:
    """sha256 of annotation files (part of a decoded-cache key: edited labels mean a new entry)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def read_csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [row for row in csv.reader(f) if row and any(c.strip() for c in row)]


def _load_one(
    path: Path, size: int, channels: int, crop: tuple[float, float, float, float] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode, crop, resize one image: (uint8 [C, size, size], source (width, height))."""
    with Image.open(path) as im:
        wh = im.size
        im = im.convert("L" if channels == 1 else "RGB")
        if crop is not None:
            x1, y1, x2, y2 = crop
            im = im.crop((int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))))
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arr = np.array(im, dtype=np.uint8)
    return (arr[None] if channels == 1 else arr.transpose(2, 0, 1)), wh


def decode_records(
    rec: Records,
    *,
    name: str,
    split: str,
    num_classes: int,
    img_size: int,
    channels: int,
    on_corrupt: str,
) -> tuple[FERImageSet, list[str]]:
    """Decode every image of ``rec``; returns the split and the list of problems (file: reason).

    With ``on_corrupt="error"`` any missing or unreadable file raises ValueError naming it.
    Boxes and landmarks are mapped into the stored ``img_size`` image (after the crop, if any).
    """
    n = len(rec.paths)
    images = torch.empty(n, channels, img_size, img_size, dtype=torch.uint8)
    src_sizes = torch.zeros(n, 2)
    ok = torch.ones(n, dtype=torch.bool)
    problems = list(rec.problems)

    def work(i: int) -> tuple[int, np.ndarray | None, tuple[int, int] | None, str | None]:
        p = rec.paths[i]
        crop = None if rec.crops is None else tuple(rec.crops[i].tolist())
        try:
            arr, wh = _load_one(p, img_size, channels, crop)
            return i, arr, wh, None
        except FileNotFoundError:
            return i, None, None, f"{p}: missing"
        except Exception as exc:  # PIL raises many types for a bad file
            return i, None, None, f"{p}: unreadable ({type(exc).__name__}: {exc})"

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for i, arr, wh, err in pool.map(work, range(n)):
            if err is not None:
                ok[i] = False
                problems.append(err)
                continue
            images[i] = torch.from_numpy(arr)
            src_sizes[i] = torch.tensor(wh, dtype=torch.float32)
    if problems and on_corrupt == "error":
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError(
            f"{name} {split}: {len(problems)} missing or unreadable image(s):\n  {shown}{more}\n"
            "(set data.on_corrupt=skip to skip and count them)"
        )
    # map boxes / landmarks from source pixels to the stored image
    if rec.crops is not None:
        origin = rec.crops[:, :2]
        extent = (rec.crops[:, 2:] - rec.crops[:, :2]).clamp(min=1e-6)
    else:
        origin = torch.zeros(n, 2)
        extent = src_sizes.clamp(min=1e-6)
    scale = img_size / extent  # [N, 2]
    boxes = None
    if rec.boxes is not None:
        b = rec.boxes.view(n, 2, 2)
        boxes = ((b - origin[:, None]) * scale[:, None]).view(n, 4).clamp(0, img_size)
    landmarks = None
    if rec.landmarks is not None:
        landmarks = (rec.landmarks - origin[:, None]) * scale[:, None]

    def keep(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[ok]

    ds = FERImageSet(
        images=images[ok],
        labels=rec.labels[ok],
        num_classes=num_classes,
        votes=keep(rec.votes),
        boxes=keep(boxes),
        landmarks=keep(landmarks),
        targets=keep(rec.targets),
        name=name,
        split=split,
        meta={"skipped": int((~ok).sum())},
    )
    return ds, problems
