"""Augmentation throughput (issue 13/14): named policies (``fer_core.data.augment``) against
the replaced ``transforms.BatchAugment`` (kept below as the baseline) (weak = crop + flip, strong = + per-image torchvision
RandAugment), in images/s on batches of uint8 images with face boxes.

Every row is timed in the same run, interleaved over repeats (median), so the ratios compare like
with like on a shared machine. Run: ``OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.bench_aug``
-> ``benchmarks/results/aug.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

from fer_core.data.transforms import normalize, random_crop_flip

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = ((1, 48), (3, 224))  # (channels, px): SynthFER / FER2013-like grey, and paper-size RGB
POLICIES = ("none", "crop_flip", "weak", "strong", "simclr", "erase")
BASELINE = {"crop_flip": "weak", "strong": "strong"}  # the BatchAugment policy each compares to


class BatchAugment:  # the replaced fer_core.data.transforms.BatchAugment, kept as the baseline
    """A policy applied to uint8 batches: ``aug(images, generator, boxes) -> (float images, boxes)``.

    Output images are normalised float [N, C, H, W].
    """

    def __init__(
        self,
        policy: str = "weak",
        crop_pad: int = 4,
        flip: bool = True,
        randaug_n: int = 2,
        randaug_m: int = 9,
    ) -> None:
        if policy not in ("none", "weak", "strong"):
            raise ValueError(f"policy must be one of none, weak, strong, got {policy!r}")
        if int(crop_pad) < 0:
            raise ValueError(f"trainer.aug.crop_pad must be >= 0, got {crop_pad!r}")
        self.policy = policy
        self.crop_pad = int(crop_pad)
        self.flip = bool(flip)
        self.randaug = (
            v2.RandAugment(num_ops=int(randaug_n), magnitude=int(randaug_m))
            if policy == "strong"
            else None
        )

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        boxes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images.dtype != torch.uint8:
            raise ValueError(f"BatchAugment expects uint8 images, got {images.dtype}")
        if self.policy != "none":
            images, boxes = random_crop_flip(images, generator, self.crop_pad, self.flip, boxes)
        if self.randaug is not None:
            # RandAugment draws from torch's global RNG: seed it from our generator (repeatable).
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            images = torch.stack([self.randaug(img) for img in images])
            torch.random.set_rng_state(state)
        return normalize(images), boxes


def _time(fn, images, boxes, batches: int) -> float:
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    for _ in range(batches):
        fn(images, g, boxes)
    return batches * len(images) / (time.perf_counter() - t)


def measure(channels: int, px: int, batch: int, batches: int, repeats: int) -> list[dict]:
    from fer_core.data.augment import load_policy

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, channels, px, px), generator=g, dtype=torch.uint8)
    boxes = torch.tensor([px * 0.2, px * 0.2, px * 0.8, px * 0.8]).repeat(batch, 1)
    fns = {f"BatchAugment {p}": BatchAugment(p) for p in ("weak", "strong")}
    fns |= {f"policy {p}": load_policy(p) for p in POLICIES}
    for fn in fns.values():
        fn(images, g, boxes)  # warm-up
    speeds: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            speeds[k].append(_time(fn, images, boxes, batches))
    med = {k: statistics.median(v) for k, v in speeds.items()}
    rows = []
    for k, v in med.items():
        base = BASELINE.get(k.removeprefix("policy "))
        ref = med.get(f"BatchAugment {base}") if k.startswith("policy ") and base else None
        rows.append({"channels": channels, "px": px, "batch": batch, "impl": k,
                     "img_per_s": v, "img_per_s_repeats": speeds[k],
                     "baseline": f"BatchAugment {base}" if ref else None,
                     "ratio_to_baseline": v / ref if ref else None})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs=2, default=[10, 1], help="per repeat, 48 / 224 px")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for (c, px), nb in zip(SHAPES, args.batches):
        rows += measure(c, px, args.batch, nb, args.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"rows": rows, "threads": args.threads, "repeats": args.repeats,
              "batches_per_repeat": dict(zip(("48px", "224px"), args.batches)),
              "cpu_count": os.cpu_count(), "loadavg_1m": load,
              "torch": torch.__version__}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "aug.json").write_text(json.dumps(result, indent=1))
    md = [
        "# Augmentation throughput",
        "",
        f"{args.threads} threads, batch {args.batch}, uint8 images with face boxes, median of "
        f"{args.repeats} interleaved repeats ({args.batches[0]} / {args.batches[1]} batches each at "
        f"48 / 224 px); 1-min load average at the end: {load}. Ratio: the named policy's images/s "
        "over the BatchAugment policy it replaces (crop_flip vs weak, strong vs strong; the new "
        "weak and strong use a random resized crop, today's a padded crop).",
        "",
        "| image | implementation | img/s | vs | ratio |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "" if r["ratio_to_baseline"] is None else f"{r['ratio_to_baseline']:.2f}"
        md.append(f"| {r['channels']}x{r['px']} | {r['impl']} | {r['img_per_s']:.0f} "
                  f"| {r['baseline'] or ''} | {ratio} |")  # fmt: skip
    (args.out / "aug.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
