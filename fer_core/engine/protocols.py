"""Evaluation protocols (``trainer.protocol``).

``finetune`` (default), ``linear`` (frozen backbone and BatchNorm statistics, only the head
trains), ``semi`` (``trainer.semi.fraction`` / ``per_class`` labelled, the rest unlabelled) and
``transfer`` (``trainer.init``: the backbone of another run's checkpoint) are handled inside
``loop.StageTrainer``. ``kfold`` lives here: train+val are pooled and split into
``trainer.kfold.k`` stratified folds (004 Table 5); fold i trains on the rest (a seeded,
stratified 10 % of it validates) and tests on fold i; ``test/*`` are the mean over folds and
``test/*_std`` the standard deviation (ddof=1). Fold runs live in ``run_dir/fold_<i>``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from fer_core.data.base import DataSplits, FERImageSet


def _concat(a: FERImageSet, b: FERImageSet) -> FERImageSet:
    def cat(x, y):
        return None if x is None or y is None else torch.cat([x, y])

    return FERImageSet(
        images=torch.cat([a.images, b.images]), labels=torch.cat([a.labels, b.labels]),
        num_classes=a.num_classes, votes=cat(a.votes, b.votes),
        true_labels=cat(a.true_labels, b.true_labels), boxes=cat(a.boxes, b.boxes),
        landmarks=cat(a.landmarks, b.landmarks), name=a.name, split="pool",
        targets=cat(a.targets, b.targets),
    )  # fmt: skip


def kfold_splits(splits: DataSplits, k: int, seed: int) -> list[DataSplits]:
    from fer_core.data.splits import stratified_kfold, stratified_split

    pool = _concat(splits.train, splits.val)
    out = []
    for tr, te in stratified_kfold(pool.labels, int(k), seed=seed):
        rest, val = stratified_split(pool.labels[tr], 0.1, seed=seed)
        out.append(DataSplits(
            train=pool.subset(tr[rest], "train"), val=pool.subset(tr[val], "val"),
            test=pool.subset(te, "test"), num_classes=splits.num_classes,
            val_is_official=False, data_hash=splits.data_hash,
        ))  # fmt: skip
    return out


def run_kfold(stages: list[tuple[str, dict]], run_dir: Path, on_epoch_end=None):
    """k runs of the recipe, one per fold; returns a RunResult with mean and std of ``test/*``."""
    from fer_core.engine import build
    from fer_core.engine.loop import RunResult, run_stages

    last = build.trainer_settings(stages[-1][1]["trainer"])
    k = int((last.kfold or {}).get("k", 5))
    if k < 2:
        raise ValueError(f"trainer.kfold.k must be >= 2, got {k!r}")
    splits = build.build_data(stages[-1][1]["data"])
    results = []
    for i, fold in enumerate(kfold_splits(splits, k, last.seed)):

        def cb(stage, epoch, metrics, ckpt, i=i):
            return (
                True
                if on_epoch_end is None
                else on_epoch_end(f"fold{i}/{stage}", epoch, metrics, ckpt)
            )

        tag = f"{splits.data_hash}-kfold{k}-{i}-{last.seed}"
        results.append(run_stages(stages, run_dir / f"fold_{i}", cb, None, fold, data_tag=tag))
        if results[-1].stopped:
            break
    final: dict[str, float] = {}
    keys = sorted({m for r in results for m in r.metrics if m.startswith(("test/", "val/"))})
    for m in keys:
        vals = [r.metrics[m] for r in results if m in r.metrics]
        final[m] = statistics.fmean(vals)
        if len(vals) > 1:
            final[f"{m}_std"] = statistics.stdev(vals)
    final["kfold/k"] = float(len(results))
    history = [{**h, "fold": i} for i, r in enumerate(results) for h in r.history]
    (run_dir / "metrics.json").write_text(
        json.dumps({"history": history, "final": final}, indent=1)
    )
    return RunResult(metrics=final, history=history, run_dir=run_dir,
                     stopped=any(r.stopped for r in results))  # fmt: skip
