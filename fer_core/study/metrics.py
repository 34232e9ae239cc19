"""Metric names a study may use, from the methods' own declarations (``methods/base.py``).

``metric``, ``report.metrics`` and ``report.x`` are checked before anything runs (``fer-study
validate``, ``run --dry-run`` and ``run``). The names a configuration reports are those its last
stage's method declares (``reported_metrics()``: the method is built on PyTorch's ``meta`` device,
so no weights are allocated), plus what its protocol adds: under ``trainer.protocol=kfold``
``<name>_std``, ``fold<i>/<name>`` (i < k) and ``kfold/k`` (INTERFACES.md "Metrics").
``metric`` must be reported by every configuration checked (the knob scenarios of
``study/knobs.py``); ``report.metrics`` by at least one.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from fer_core.study.errors import Loc, StudyError, key_str, line_of
from fer_core.study.loader import ResolvedStudy

_FOLD = re.compile(r"^fold(\d+)/(.+)$")


@dataclass
class MetricNames:
    """What one configuration reports: exact names, and k-fold's generated families."""

    exact: tuple[str, ...]
    folds: int | None = None  # k under trainer.protocol=kfold
    method: str = ""
    generated: tuple[str, ...] = field(default_factory=tuple)

    def __contains__(self, name: str) -> bool:
        if name in self.exact or name in self.generated:
            return True
        m = _FOLD.match(name)
        return bool(self.folds and m and int(m.group(1)) < self.folds and m.group(2) in self.exact)

    def listing(self) -> list[str]:
        """Every valid name in full (the fold family as one ``fold{i}/...`` pattern)."""
        out = list(self.exact) + list(self.generated)
        if self.folds:
            out.append(f"fold{{0..{self.folds - 1}}}/<any of the above>")
        return out


def declared_metrics(cfg: Any) -> MetricNames:
    """The metric names of a composed trainer config (``engine.build.compose``)."""
    import json

    from fer_core.engine.build import stage_configs

    _, stage = stage_configs(cfg)[-1]
    data = stage["data"]
    key = {
        "model": stage["model"],
        "method": stage["method"],
        "trainer": {
            k: stage.get("trainer", {}).get(k) for k in ("protocol", "kfold", "select_metric")
        },
        "data": [data.get(k) for k in ("num_classes", "img_size", "channels", "name")],
    }
    return _declared(json.dumps(key, sort_keys=True, default=str))


@functools.lru_cache(maxsize=512)
def _declared(key: str) -> MetricNames:
    """Build the method on the ``meta`` device (no memory, no weights) and read its names."""
    import json

    import torch

    from fer_core.engine.build import build_method
    from fer_core.methods import MethodInfo

    stage = json.loads(key)
    num_classes, img_size, channels, dataset = stage["data"]
    info = MethodInfo(
        num_classes=int(num_classes or 7),
        img_size=int(img_size or 48),
        channels=int(channels or 3),
        dataset=str(dataset or ""),
    )
    with torch.device("meta"):
        method = build_method(stage, info)
    names = list(method.reported_metrics())
    trainer = stage["trainer"]
    select = trainer.get("select_metric")
    if select and select in names:
        names.append(f"{select}_best")
    names = list(dict.fromkeys(names))
    if trainer.get("protocol") == "kfold":
        k = int((trainer.get("kfold") or {}).get("k") or 0)
        std = tuple(f"{n}_std" for n in names if n.startswith(("val/", "test/")))
        return MetricNames(tuple(names), k or None, method.method_name, (*std, "kfold/k"))
    return MetricNames(tuple(names), None, method.method_name)


def suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def check_metric_names(
    resolved: ResolvedStudy, lines: dict[Loc, int], scenarios: list[tuple[str, MetricNames]]
) -> list[StudyError]:
    """``metric`` and ``report.metrics`` against the declared names (``report.x`` is checked
    by the schema: a searched knob).

    ``scenarios``: (what was composed, e.g. ``ablation row 'pll'``, its names) for every
    configuration the knob check composed.
    """
    file = resolved.source_file or resolved.name
    errors: list[StudyError] = []
    if not scenarios:
        return errors

    def err(loc: Loc, msg: str) -> None:
        errors.append(StudyError(file, key_str(loc), line_of(lines, loc), msg))

    def full(names: list[str]) -> str:
        return ", ".join(names)

    metric = resolved.metric
    for where, names in scenarios:
        if metric not in names:
            valid = [n for n in names.listing() if n.startswith("val/") or n.startswith("mim/")]
            err(
                ("metric",),
                f"{metric!r} is not reported by method {names.method!r} ({where}); "
                f"{suggest(metric, names.listing())}valid names: {full(valid or names.listing())} "
                f"(profile {resolved.profile})",
            )
            break
    report = resolved.report or {}
    union: list[str] = []
    for _, names in scenarios:
        union += [n for n in names.listing() if n not in union]
    for i, name in enumerate(report.get("metrics") or []):
        if not any(name in names for _, names in scenarios):
            err(
                ("report", "metrics", i),
                f"{name!r} is not a metric any configuration reports; "
                f"{suggest(name, union)}valid names: {full(union)} (profile {resolved.profile})",
            )
    return errors
