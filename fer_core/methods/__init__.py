"""Methods: the training step of each recipe (see ``base.py`` for the contract).

Every module in this package registers its methods on import; importing the package imports them
all, so ``list_methods()`` is complete.
"""

from __future__ import annotations

import importlib
import pkgutil

from fer_core.methods.base import (
    HANDOFF_PARTS,
    METHODS,
    Method,
    MethodInfo,
    MethodNeeds,
    StepContext,
    StepOutput,
    TrainContext,
    create_method,
    list_methods,
    register_method,
)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "HANDOFF_PARTS",
    "METHODS",
    "Method",
    "MethodInfo",
    "MethodNeeds",
    "StepContext",
    "StepOutput",
    "TrainContext",
    "create_method",
    "list_methods",
    "register_method",
]
