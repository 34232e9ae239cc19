"""``data=faces``: unlabelled face images for label-free stages (004 Sec. 4.2: SSFER pre-trains
MAE on ~1.2 M face images, CASIA-WebFace plus AffectNet, without labels).

- ``data.root`` set: every image file under it, at any depth (a CASIA-WebFace tree
  ``<root>/<identity>/<n>.jpg`` works as it is), decoded once to ``img_size`` x ``channels`` and
  cached under ``$FER_STUDY_CACHE/decoded``; ``data.max_images`` keeps a seeded random subset.
- ``data.root: null``: a separate SynthFER draw (``n_train`` images, every other SynthFER knob as
  the FER dataset's) from a seed no FER dataset of the study uses (``data.seed`` and
  ``data.draw`` hashed), with its labels, votes and true classes removed.

Every label is -1 (``labels``), so a stage that needs labels refuses ``data=faces`` before training
(``engine/recipe.py``). The set has no validation or test images of its own: ``val`` and ``test``
are the training images (a label-free stage never evaluates). The config group
(``conf/data/faces.yaml``) takes every SynthFER key, so a study's top-level ``data.*`` settings
reach the faces stage too, and its ``stages.<stage>.data.*`` settings override them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from pathlib import Path

import torch

from fer_core.data._io import Records, check_common, decode_records
from fer_core.data._registry import DATASETS
from fer_core.data.base import DataSplits, FERImageSet
from fer_core.data.decoded import cached_entry
from fer_core.data.folder import IMAGE_SUFFIXES, listing_digest
from fer_core.data.synthfer import VERSION, check_knobs, generate_split
from fer_core.data.synthfer_dataset import build_synthfer

# SynthFER knobs that shape a draw (split sizes other than n_train do not: no val/test is drawn)
_SYNTH = {k: p.default for k, p in inspect.signature(build_synthfer).parameters.items()}
_NOT_DRAWN = ("n_val", "n_test", "val_fraction", "seed")


def face_files(root: Path) -> list[Path]:
    """Every image file under ``root`` (any depth), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _label_free(ds: FERImageSet, name: str = "faces") -> FERImageSet:
    return dataclasses.replace(
        ds, labels=torch.full((len(ds),), -1, dtype=torch.long), votes=None, true_labels=None,
        targets=None, name=name, split="train", meta=dict(ds.meta),
    )  # fmt: skip


def _splits(train: FERImageSet, num_classes: int, key: str) -> DataSplits:
    val = dataclasses.replace(train, split="val", meta=dict(train.meta))
    test = dataclasses.replace(train, split="test", meta=dict(train.meta))
    return DataSplits(train, val, test, num_classes, val_is_official=False, data_hash=key)


def draw_seed(seed: int, draw: int) -> int:
    """The SynthFER seed of a faces draw: a hash of (seed, draw), so it is not ``data.seed``."""
    h = hashlib.sha256(f"faces-{int(seed)}-{int(draw)}".encode()).hexdigest()
    return int(h[:8], 16)


def build_faces(
    root: str | None = None, draw: int = 1, max_images: int | None = None,
    on_corrupt: str = "error", **synth,
) -> DataSplits:  # fmt: skip
    """Unlabelled face images (module docstring). kwargs: root (a folder of images, any depth;
    null = a SynthFER draw), draw (which SynthFER draw: another integer, another set of faces),
    max_images (null = all; else a seeded random subset of that many), on_corrupt (error|skip),
    and every ``synthfer`` key (``img_size``, ``channels`` and ``seed`` also apply to a folder)."""
    knobs = {**_SYNTH, **synth}
    seed, size, channels = int(knobs["seed"]), knobs["img_size"], knobs["channels"]
    nc = int(knobs["num_classes"])
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1
    ):
        raise ValueError(f"data.max_images must be null or an integer >= 1, got {max_images!r}")
    if isinstance(draw, bool) or not isinstance(draw, int):
        raise ValueError(f"data.draw must be an integer, got {draw!r}")
    if root is None:
        gen = {k: v for k, v in knobs.items() if k not in _NOT_DRAWN}
        gen["n_val"], gen["n_test"] = 0, 1  # check_knobs' split sizes; only train is drawn
        check_knobs(**gen)
        n = int(gen.pop("n_train"))
        gen.pop("n_val"), gen.pop("n_test")
        if gen.get("vote_source") == "simulated":
            gen.pop("vote_source")
        s = draw_seed(seed, draw)
        key_obj = {"version": VERSION, "faces": 1, "n": n, "seed": s, **gen}
        info = {"name": "faces", "num_classes": nc, "meta": {"generator_version": VERSION}}

        def build() -> tuple[dict[str, FERImageSet], dict]:
            train = generate_split("train", n, seed=s, **gen)
            return {"train": _label_free(train)}, info

        sets, _, key = cached_entry("faces", key_obj, build)
        train = sets["train"]
    else:
        check_common(size, channels, nc, on_corrupt, 0.0)
        path = Path(str(root)).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"data.root {str(path)!r} is not a folder of face images (data=faces)")
        files = face_files(path)
        if not files:
            raise ValueError(
                f"data=faces: no image file ({', '.join(sorted(IMAGE_SUFFIXES))}) under {str(path)!r}"
            )
        if max_images is not None and max_images < len(files):
            pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))
            files = [files[i] for i in sorted(pick[:max_images].tolist())]
        rec = Records(paths=files, labels=torch.full((len(files),), -1, dtype=torch.long))
        key_obj = {"faces": 1, "root": str(path), "files": listing_digest({"train": rec}),
                   "img_size": size, "channels": channels, "on_corrupt": on_corrupt}  # fmt: skip
        info = {"name": "faces", "num_classes": nc, "meta": {}}

        def build() -> tuple[dict[str, FERImageSet], dict]:
            ds, _ = decode_records(rec, name="faces", split="train", num_classes=nc,
                                   img_size=size, channels=channels, on_corrupt=on_corrupt)  # fmt: skip
            return {"train": ds}, info

        sets, _, key = cached_entry("decoded", key_obj, build)
        train = sets["train"]
    if max_images is not None and root is None and max_images < len(train):
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        train = train.subset(pick[:max_images].sort().values)
        key = f"{key}-max{max_images}"
    return _splits(train, nc, key)


# The signature dataset_kwargs() reads (the config group's keys): faces' own + every SynthFER key.
_OWN = [p for p in inspect.signature(build_faces).parameters.values() if p.kind != p.VAR_KEYWORD]
build_faces.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    _OWN
    + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in _SYNTH.items()]
)
DATASETS.register("faces")(build_faces)
