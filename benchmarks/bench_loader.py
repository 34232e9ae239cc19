"""Loader throughput at 224 px (issue 20): the trainer's ``BatchMaker`` with augmentation on the CPU
(``trainer.aug.device: cpu``) vs on the trial's device (``auto``; the device is the CPU here).

A batch is what the training loop asks for: a gather of 64 rows from a uint8 split (an index view
over it, as a subset is), the policy's augmentation, normalisation, and the move to the device.
Rows are interleaved over repeats (median), threads fixed by ``--threads`` (2 = this machine).
Run: ``.venv/bin/python -m benchmarks.bench_loader [--threads 2] [--quick]`` ->
``benchmarks/results/loader.{json,md}``.

What it is compared with (README "Efficiency"): timm's published ViT-B/16 training throughput on
one RTX 3090, 390.86 img/s (AMP, batch 192; ``results/benchmark-train-amp-nchw-pt112-cu113-
rtx3090.csv`` in huggingface/pytorch-image-models, the source docs/cluster.md cites).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from fer_core.data.base import FERImageSet
from fer_core.engine.batches import BatchMaker
from fer_core.methods.base import MethodNeeds

RESULTS = Path(__file__).resolve().parent / "results"
VIT_B16_RTX3090_IMG_S = 390.86  # timm benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv
POLICIES = ("none", "crop_flip", "weak", "strong")


def _set(n: int, px: int) -> FERImageSet:
    g = torch.Generator().manual_seed(0)
    full = FERImageSet(
        images=torch.randint(0, 256, (n, 3, px, px), dtype=torch.uint8, generator=g),
        labels=torch.randint(0, 7, (n,), generator=g),
        num_classes=7,
        name="rafdb",
    )
    return full.subset(torch.randperm(n, generator=g)[: n - n // 10])  # a view, as trials see


def time_policy(ds: FERImageSet, policy: str, on_device: bool, batches: int) -> float:
    bm = BatchMaker(ds, MethodNeeds(), {"policy": policy}, torch.device("cpu"),
                    aug_on_device=on_device)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    bm.start_epoch(g)
    perm = torch.randperm(len(ds), generator=g)
    t = time.perf_counter()
    for i in range(batches):
        bm.make(perm[(i * 64) % (len(ds) - 64) :][:64], g)
    return batches * 64 / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--px", type=int, default=224)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = _set(512 if args.quick else 2048, args.px)
    batches, repeats = (3, 2) if args.quick else (8, 5)
    rows = {(p, d): [] for p in POLICIES for d in (False, True)}
    load0 = os.getloadavg()
    for _ in range(repeats):
        for key in rows:
            rows[key].append(time_policy(ds, *key, batches))
    res = []
    for (p, d), v in rows.items():
        med = statistics.median(v)
        res.append({"policy": p, "aug_device": "auto (CPU)" if d else "cpu",
                    "img_s": round(med, 1),
                    "cores_for_vit_b16_3090": round(VIT_B16_RTX3090_IMG_S / med * args.threads, 1)})  # fmt: skip
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "threads": args.threads, "px": args.px, "batch": 64, "batches": batches,
        "repeats": repeats, "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        "vit_b16_rtx3090_train_img_s": VIT_B16_RTX3090_IMG_S, "rows": res,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loader.json").write_text(json.dumps(out, indent=1))
    md = [
        "# Loader throughput at 224 px (`benchmarks/bench_loader.py`)", "",
        f"BatchMaker batches of 64 from a uint8 index view, {args.threads} threads, median of "
        f"{repeats} interleaved repeats of {batches} batches; load average "
        f"{load0[0]:.1f} before, {os.getloadavg()[0]:.1f} after (a busy shared machine lowers "
        "the absolute numbers). Cores for a ViT-B/16 on one RTX 3090 = 390.86 img/s (timm's "
        "published AMP training throughput) / this rate x threads.", "",
        "| policy | trainer.aug.device | img/s | CPU cores to feed ViT-B/16 on a 3090 |",
        "|---|---|---|---|",
    ]  # fmt: skip
    md += [f"| {r['policy']} | {r['aug_device']} | {r['img_s']} | {r['cores_for_vit_b16_3090']} |" for r in res]  # fmt: skip
    (RESULTS / "loader.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
