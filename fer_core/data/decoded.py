"""The decoded-image cache: every dataset decoded once into one uint8 tensor file per split.

Entry layout (``cache_root()/<kind>/<key>/``): ``<split>.pt`` (``torch.save`` of a dict of
tensors: images uint8 [N, C, H, W], labels, and votes / true_labels / boxes / landmarks / targets
where the dataset has them) and ``info.json`` (name, num_classes, splits, counts, skipped files).
Files are loaded with ``torch.load(mmap=True, weights_only=True)``, so trials on one machine
share the pages instead of decoding or copying the images again.

:func:`finish_splits` then gives the trainer its ``DataSplits``: the official validation split if
the dataset has one, else a seeded stratified carve-out of train (two index views over the
memory-mapped train split: ``base.IndexedImages``), or the test split when ``val_fraction`` is 0 (the papers'
practice; reports say so).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import torch

from fer_core.cache import build_once, config_hash
from fer_core.data.base import DataSplits, FERImageSet
from fer_core.data.splits import stratified_split

FIELDS = ("images", "labels", "votes", "true_labels", "boxes", "landmarks", "targets")


def _own(t: torch.Tensor) -> torch.Tensor:
    """A tensor that owns exactly its storage (torch.save of a view writes the whole base)."""
    t = t.contiguous()
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        t = t.clone()
    return t


def save_split(ds: FERImageSet, path: Path) -> None:
    torch.save({f: _own(getattr(ds, f)) for f in FIELDS if getattr(ds, f) is not None}, path)


def load_split(
    path: Path, *, name: str, split: str, num_classes: int, meta: dict | None = None
) -> FERImageSet:
    d = torch.load(path, mmap=True, weights_only=True)
    return FERImageSet(num_classes=num_classes, name=name, split=split, meta=dict(meta or {}), **d)


def write_entry(out: Path, splits: dict[str, FERImageSet], info: dict) -> None:
    """Write splits + info.json into ``out`` (a fresh directory from :func:`build_once`)."""
    info = dict(info)
    info["splits"] = list(splits)
    info["counts"] = {
        s: {
            "n": len(ds),
            "per_class": torch.bincount(
                ds.labels[ds.labels >= 0], minlength=ds.num_classes
            ).tolist(),
        }
        for s, ds in splits.items()
    }
    for s, ds in splits.items():
        save_split(ds, out / f"{s}.pt")
    (out / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True))


def read_entry(path: Path) -> tuple[dict[str, FERImageSet], dict]:
    info = json.loads((path / "info.json").read_text())
    sets = {
        s: load_split(
            path / f"{s}.pt",
            name=info["name"],
            split=s,
            num_classes=info["num_classes"],
            meta=info.get("meta"),
        )
        for s in info["splits"]
    }
    return sets, info


def cached_entry(
    kind: str, key_obj: dict, build: Callable[[], tuple[dict[str, FERImageSet], dict]]
) -> tuple[dict[str, FERImageSet], dict, str]:
    """Load (or build once) the entry keyed by ``config_hash(key_obj)``.

    ``build()`` returns ``(splits, info)``; ``info`` must hold ``name`` and ``num_classes``.
    Returns ``(splits, info, key)``.
    """
    key = config_hash(key_obj)

    def builder(out: Path) -> None:
        splits, info = build()
        info = {**info, "key": key, "key_obj": key_obj}
        write_entry(out, splits, info)

    path = build_once(kind, key, builder)
    splits, info = read_entry(path)
    return splits, info, key


def finish_splits(
    official: dict[str, FERImageSet], info: dict, key: str, *, val_fraction: float, seed: int
) -> DataSplits:
    """Official train/val/test, or a carved (``val_fraction`` > 0) or test-as-val validation set.

    ``official`` must hold ``train`` and ``test`` and may hold ``val``.
    """
    train, test = official["train"], official["test"]
    nc = info["num_classes"]
    if "val" in official:
        return DataSplits(train, official["val"], test, nc, val_is_official=True, data_hash=key)
    if val_fraction == 0:
        val = dataclasses.replace(test, split="val", meta={**test.meta, "val_source": "test"})
        return DataSplits(
            train, val, test, nc, val_is_official=False, data_hash=config_hash([key, "val=test"])
        )

    # The carve-out is two index views over the memory-mapped train split (no copy, nothing
    # written): recomputing it from the labels is cheap and seeded. The hash names it as before.
    carve_obj = {"data": key, "val_fraction": float(val_fraction), "seed": int(seed)}
    rest, carved = stratified_split(train.labels, float(val_fraction), seed=int(seed))
    val = train.subset(carved, "val")
    val.meta["val_source"] = f"{val_fraction:g} of train (seed {seed})"
    return DataSplits(
        train.subset(rest, "train"), val, test, nc, val_is_official=False,
        data_hash=config_hash(carve_obj),
    )  # fmt: skip


def load_real(
    name: str,
    parse: Callable[[], dict],
    key_obj: dict,
    *,
    num_classes: int,
    img_size: int,
    channels: int,
    on_corrupt: str,
    val_fraction: float,
    seed: int,
) -> DataSplits:
    """Parse + decode a real dataset once (cached under ``decoded/``), then :func:`finish_splits`.

    ``parse()`` returns ``{split: Records}`` with ``train`` and ``test`` (and ``val`` if official);
    ``key_obj`` identifies the source (name, root, annotation digests, loader options).
    """
    from fer_core.data._io import decode_records

    def build() -> tuple[dict[str, FERImageSet], dict]:
        sets, skipped, problems = {}, {}, {}
        for split, rec in parse().items():
            ds, probs = decode_records(
                rec,
                name=name,
                split=split,
                num_classes=num_classes,
                img_size=img_size,
                channels=channels,
                on_corrupt=on_corrupt,
            )
            sets[split] = ds
            skipped[split] = int(ds.meta.get("skipped", 0))
            problems[split] = probs[:100]
        info = {
            "name": name,
            "num_classes": num_classes,
            "meta": {"skipped": skipped},
            "problems": problems,
        }
        return sets, info

    full_key = {
        **key_obj,
        "name": name,
        "num_classes": num_classes,
        "img_size": img_size,
        "channels": channels,
        "on_corrupt": on_corrupt,
        "decoder": 1,
    }
    official, info, key = cached_entry("decoded", full_key, build)
    return finish_splits(official, info, key, val_fraction=val_fraction, seed=seed)
