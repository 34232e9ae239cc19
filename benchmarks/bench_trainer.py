"""Trainer overhead and loader headroom (issue 3).

1. step-time ratio: ``fer_core``'s training step (``StageTrainer._epoch``: batch cut + method step +
   optimiser + schedule + metric accumulation) divided by a bare hand-written PyTorch loop on the
   same model, batch, optimiser and threads (goal <= 1.05; median of interleaved repeats);
2. loader ratio: images/s of the batch maker (weak augmentation, from the in-memory uint8 split)
   divided by the images/s the model consumes in training (goal >= 10).

Run: ``OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.bench_trainer`` ->
``benchmarks/results/bench_trainer.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results"


def _random_splits(n: int, size: int = 48):
    from fer_core.data.base import DataSplits, FERImageSet

    g = torch.Generator().manual_seed(0)

    def one(k: int) -> FERImageSet:
        return FERImageSet(
            images=torch.randint(0, 256, (k, 1, size, size), generator=g, dtype=torch.uint8),
            labels=torch.randint(0, 7, (k,), generator=g), num_classes=7,
        )  # fmt: skip

    return DataSplits(train=one(n), val=one(64), test=one(64), num_classes=7)


def measure(model: str, steps: int, repeats: int, batch: int) -> dict:
    from fer_core.data.transforms import normalize
    from fer_core.engine.batches import BatchMaker
    from fer_core.engine.build import (
        build_method,
        build_optimizer,
        compose,
        stage_configs,
        trainer_settings,
    )
    from fer_core.engine.loop import RunLogger, StagePlan, StageTrainer
    from fer_core.engine.recipe import (
        build_stage_method,
        freeze_for_protocol,
        method_info,
        stage_data,
    )
    from fer_core.engine.seed import derive_seed, seed_everything

    splits = _random_splits(steps * batch)
    cfg = compose([f"model={model}", f"trainer.batch_size={batch}", "trainer.aug.policy=none",
                   "trainer.progress=false", "sched.warmup_epochs=0"])  # fmt: skip
    ((name, st),) = stage_configs(cfg)
    tmp = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    # the stage prepared as ``recipe.run_stages`` prepares it (one stage: no hand-off, no resume)
    s = trainer_settings(st["trainer"])
    data = stage_data(splits, s)
    seed_everything(derive_seed(s.seed, 0))
    method = build_stage_method(st, data, s)
    frozen = freeze_for_protocol(method, s)
    plan = StagePlan(name, 0, st, s, method, data.splits, data.train, data.unlabelled, frozen)
    trainer = StageTrainer(plan, tmp, RunLogger(tmp), None, None, 0, {})
    trainer._setup()
    bare = build_method(st, method_info(st, data))
    bare.load_state_dict(trainer.method.state_dict())
    opt = build_optimizer(st["optim"], st["sched"], bare)
    images, labels = splits.train.images, splits.train.labels

    def run_trainer() -> float:
        t = time.perf_counter()
        trainer._epoch(0, torch.Generator().manual_seed(0))
        return (time.perf_counter() - t) / steps

    def run_bare() -> float:
        bare.train()
        perm = torch.randperm(len(images))
        t = time.perf_counter()
        for s in range(steps):
            idx = perm[s * batch : (s + 1) * batch]
            loss = F.cross_entropy(bare(normalize(images[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - t) / steps

    run_trainer(), run_bare()  # warm-up
    tr, br = [], []
    for _ in range(repeats):
        tr.append(run_trainer())
        br.append(run_bare())
    step_t, step_b = statistics.median(tr), statistics.median(br)
    # loader: weak augmentation from the in-memory split
    bm = BatchMaker(splits.train, trainer.method.needs, {"policy": "weak"}, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    n_batches = 50
    t = time.perf_counter()
    for _ in range(n_batches):
        bm.make(torch.randint(0, len(images), (batch,), generator=g), g)
    loader_ips = n_batches * batch / (time.perf_counter() - t)
    model_ips = batch / step_t
    return {
        "model": model, "batch": batch, "steps": steps, "repeats": repeats,
        "trainer_step_ms": step_t * 1e3, "bare_step_ms": step_b * 1e3,
        "step_ratio": step_t / step_b, "trainer_steps_ms": [x * 1e3 for x in tr],
        "bare_steps_ms": [x * 1e3 for x in br], "loader_img_per_s": loader_ips,
        "model_img_per_s": model_ips, "loader_ratio": loader_ips / model_ips,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vit_tiny_cpu", "resnet_tiny_cpu"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("FER_STUDY_CACHE", tempfile.mkdtemp(prefix="bench-trainer-cache-"))
    rows = []
    for m in args.models:
        rows.append(measure(m, args.steps, args.repeats, args.batch))
        print({k: v for k, v in rows[-1].items() if not isinstance(v, list)}, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"rows": rows, "threads": args.threads, "cpu_count": os.cpu_count(), "loadavg_1m": load,
              "goals": {"step_ratio": "<= 1.05", "loader_ratio": ">= 10"}}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_trainer.json").write_text(json.dumps(result, indent=1))
    md = [
        "# Trainer overhead and loader headroom",
        "",
        f"{args.threads} threads, batch {args.batch}, 48 px grey, {args.steps} steps x {args.repeats} "
        f"interleaved repeats (median); 1-min load average at the end: {load}.",
        "",
        "| model | trainer step ms | bare step ms | ratio (goal <= 1.05) | loader img/s | model img/s | loader ratio (goal >= 10) |",
        "|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['model']} | {r['trainer_step_ms']:.1f} | {r['bare_step_ms']:.1f} | {r['step_ratio']:.3f} "
        f"| {r['loader_img_per_s']:.0f} | {r['model_img_per_s']:.0f} | {r['loader_ratio']:.1f} |"
        for r in rows
    ]
    (args.out / "bench_trainer.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
