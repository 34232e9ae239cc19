"""Real FERPlus crowd votes for SynthFER's annotators (``data.vote_source=real_ferplus``).

The FER+ label file (Microsoft, MIT licence: ``assets/FERPLUS_LICENSE.md``) ships as package data,
``assets/fer2013new.csv``: 10 crowd votes per FER2013 image over neutral, happiness, surprise,
sadness, anger, disgust, fear, contempt, unknown and not-a-face (FERPlus's column order, which is
SynthFER's). With ``real_ferplus``, a synthetic image of true class ``c`` takes the 10 votes of a
real FERPlus *training* image whose plurality emotion is ``c`` (a unique top emotion count; rows
without emotion votes are skipped), drawn uniformly from the split's seeded generator, so the
votes carry the real confusion structure (happiness-contempt, surprise-fear, disgust-anger, ...).
Some real rows sum to 9, not 10; they are kept as they are.

What the real votes do not know: the synthetic face's own ambiguity (its mixture toward a
confusion partner, its intensity, occlusion). The votes are drawn by class alone, so a hard,
ambiguous face and a clear one of the same class get votes from the same pool.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import torch

ASSET = Path(__file__).resolve().parent / "assets" / "fer2013new.csv"
LICENSE = ASSET.parent / "FERPLUS_LICENSE.md"
HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
          "disgust", "fear", "contempt", "unknown", "NF"]  # fmt: skip


def _bad(msg: str) -> ValueError:
    return ValueError(f"data.vote_source=real_ferplus: {msg}")


@functools.lru_cache(maxsize=2)
def training_votes(path: str = str(ASSET)) -> torch.Tensor:
    """float [M, 10]: the vote rows of the ``Training`` split (rows without an image skipped)."""
    p = Path(path)
    if not p.is_file():
        raise _bad(f"the FERPlus vote table {str(p)!r} is missing (reinstall fer-study)")
    rows: list[list[float]] = []
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != HEADER:
            raise _bad(f"{str(p)!r} is corrupt: header {header!r}, expected {HEADER!r}")
        for line, row in enumerate(reader, start=2):
            if len(row) != len(HEADER):
                raise _bad(f"{str(p)!r} is corrupt at line {line}: {len(row)} fields, expected 12")
            if row[0] != "Training" or not row[1].strip():
                continue
            try:
                counts = [float(int(v)) for v in row[2:]]
            except ValueError as e:
                raise _bad(
                    f"{str(p)!r} is corrupt at line {line}: non-integer votes {row[2:]}"
                ) from e
            if min(counts) < 0 or sum(counts) > 10:
                raise _bad(f"{str(p)!r} is corrupt at line {line}: votes {row[2:]} out of range")
            rows.append(counts)
    if not rows:
        raise _bad(f"{str(p)!r} holds no Training rows")
    return torch.tensor(rows)


def plurality_pools(votes: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """Row indices whose unique top emotion count (over the first ``num_classes``) is class c."""
    emo = votes[:, :num_classes]
    top = emo.max(dim=1).values
    unique = (emo == top[:, None]).sum(dim=1) == 1
    arg = emo.argmax(dim=1)
    keep = unique & (top > 0)
    return [torch.nonzero(keep & (arg == c)).flatten() for c in range(num_classes)]


def draw_real_votes(
    y: torch.Tensor, num_classes: int, g: torch.Generator, path: str = str(ASSET)
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(votes float [n, 10], rows long [n])``: for each sample of class ``y[i]``, the votes of
    real training row ``rows[i]`` whose plurality is ``y[i]`` (classes drawn in order 0..C-1)."""
    table = training_votes(path)
    pools = plurality_pools(table, num_classes)
    rows = torch.empty(len(y), dtype=torch.long)
    for c in range(num_classes):
        where = torch.nonzero(y == c).flatten()
        if len(where) == 0:
            continue
        if len(pools[c]) == 0:
            raise _bad(f"no real training row has plurality class {c}")
        pick = torch.randint(0, len(pools[c]), (len(where),), generator=g)
        rows[where] = pools[c][pick]
    return table[rows].clone(), rows
