"""The dataset registries: builders (name -> ``build_<name>(**kwargs) -> DataSplits``) and, for
the real formats, layout parsers used by ``fer-study data check``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fer_core.data.base import DataSplits
from fer_core.registry import Registry

DATASETS: Registry[DataSplits] = Registry("dataset")


@dataclass(frozen=True)
class Layout:
    """How ``fer-study data check`` reads one real format without decoding it."""

    name: str
    doc: str  # the expected directory layout, shown in errors and --help
    parse: Callable[[Path], dict]  # root -> {split: Records} with the loader's defaults


LAYOUTS: dict[str, Layout] = {}

#: Value checks a dataset runs on its knobs without building anything (name -> check(**kwargs),
#: the builder's keyword arguments with its defaults filled in): ``fer_core.data.check_data``,
#: which the study check calls so that ``--dry-run`` refuses what the build would.
VALUE_CHECKS: dict[str, Callable[..., None]] = {}


def register_layout(layout: Layout) -> None:
    LAYOUTS[layout.name] = layout
