"""Datasets: the embedded SynthFER and the real FER benchmarks, behind one entry point.

``build_splits(name, **kwargs) -> DataSplits`` is what the trainer calls (kwargs = the keys of
``conf/data/<name>.yaml`` minus ``name``); ``prepare`` builds the cache entries and returns the data
hash; ``list_datasets()`` names every registered dataset. See docs/data.md for the layouts.
"""

from __future__ import annotations

import inspect

from fer_core.data import affectnet, faces, ferplus, folder, rafdb, sfew, synthfer_dataset  # noqa: F401 (registers)
from fer_core.data._registry import DATASETS, LAYOUTS, VALUE_CHECKS
from fer_core.data.base import (
    CLASS_NAMES,
    VOTE_COLUMNS,
    DataSplits,
    FERImageSet,
    class_names,
    reduce_class,
)
from fer_core.data.noise import apply_label_noise, check_label_noise

__all__ = [
    "CLASS_NAMES",
    "VOTE_COLUMNS",
    "DataSplits",
    "FERImageSet",
    "LAYOUTS",
    "build_splits",
    "check_data",
    "class_names",
    "dataset_kwargs",
    "list_datasets",
    "prepare",
]


def list_datasets() -> list[str]:
    """Registered dataset names (synthfer, rafdb, ferplus, affectnet, sfew, folder)."""
    return DATASETS.names()


# Keys every dataset takes (``build_splits`` applies them after the builder): 003 Table III's
# unseen class, ``data.drop_class`` keeps ``data.keep_fraction`` of that class's training samples;
# 004 Table 8's ``data.label_noise`` flips that fraction of the training labels (data/noise.py).
COMMON_KWARGS: dict[str, object] = {"drop_class": None, "keep_fraction": 0.0, "label_noise": 0.0}


def dataset_kwargs(name: str) -> dict[str, object]:
    """The keyword arguments of dataset ``name`` and their defaults (the config group's keys)."""
    sig = inspect.signature(DATASETS.get(name))
    return {**{k: p.default for k, p in sig.parameters.items()}, **COMMON_KWARGS}


def check_data(name: str, **kwargs) -> None:
    """Check the ``data`` group's keys and values for dataset ``name`` without building it.

    Unknown keys and ``data.label_noise`` for every dataset, and the dataset's own value checks
    where it registers them (``VALUE_CHECKS``: SynthFER's knobs); a real dataset's files are
    checked when it is built (``fer-study data check``). Raises ValueError naming the knob.
    """
    allowed = dataset_kwargs(name)
    bad = sorted(set(kwargs) - set(allowed))
    if bad:
        raise ValueError(
            f"unknown data key(s) {', '.join(bad)} for dataset {name!r}; allowed: {', '.join(allowed)}"
        )
    check_label_noise(kwargs.get("label_noise", 0.0))
    check = VALUE_CHECKS.get(name)
    if check is not None:
        own = {k: v for k, v in allowed.items() if k not in COMMON_KWARGS}
        check(**{**own, **{k: v for k, v in kwargs.items() if k in own}})


def build_splits(name: str, **kwargs) -> DataSplits:
    """Build (or load from the cache) the train/val/test splits of dataset ``name``.

    Unknown kwargs raise ValueError naming the key and the allowed ones; each builder validates
    its values (ValueError naming the knob, the value and what is allowed).
    """
    fn = DATASETS.get(name)
    allowed = dataset_kwargs(name)
    bad = sorted(set(kwargs) - set(allowed))
    if bad:
        raise ValueError(
            f"unknown data key(s) {', '.join(bad)} for dataset {name!r}; allowed: {', '.join(allowed)}"
        )
    common = {k: kwargs.pop(k, v) for k, v in COMMON_KWARGS.items()}
    check_label_noise(common["label_noise"])  # before the (possibly long) build
    splits = fn(**kwargs)
    splits = reduce_class(
        splits, common["drop_class"], common["keep_fraction"], kwargs.get("seed", 0)
    )
    return apply_label_noise(splits, common["label_noise"], kwargs.get("seed", 0))


def prepare(name: str, **kwargs) -> str:
    """Build every cache entry of ``name`` once (before trials start) and return its data hash."""
    return build_splits(name, **kwargs).data_hash
