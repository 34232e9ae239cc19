"""GPU-hours of a study profile: the table of ``docs/cluster.md`` ("What the shipped paper
profiles cost"). ``python -m fer_core.tune.cost [FILE ...] [--profile paper]`` prints it.

One stage of one trial costs ``epochs x training images x labelled fraction x views / throughput``
seconds. A stage before a recipe's last runs once per (stage configuration, seed), as the stage
cache does (INTERFACES.md "Caches"); the last stage runs for every trial. Left out: evaluation
passes, the validation hold-out (``data.val_fraction`` makes the count an upper bound), the
unlabelled stream of semi-supervised methods, data loading, and a frozen backbone's cheaper
backward pass (linear probes are counted at the training throughput).
"""

from __future__ import annotations

import argparse
import glob
import sys
from typing import Any

#: Training images/s on one RTX 3090 (AMP, NCHW, PyTorch 1.12, CUDA 11.3), timm's published
#: benchmark ``results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv`` in
#: huggingface/pytorch-image-models (vit_base_patch16_224 batch 192, resnet50 512, resnet18 512).
THROUGHPUT = {"vit_base": 390.86, "resnet50": 826.06, "resnet18": 2764.22}
#: Training images: RAF-DB 12,271 (papers 000 Sec. IV-A, 001 Sec. IV-A, 002 Sec. 4.1); AffectNet-8
#: 287,651 (002 Sec. 4.1); SSFER's unlabelled face images (data=faces) 1.2 million (004 Sec. 4.2).
TRAIN_IMAGES = {"rafdb": 12271, "affectnet": 287651, "faces": 1_200_000}
#: Methods that train on two augmented views of each image.
TWO_VIEWS = {"byol", "simsiam", "moco", "mocov2", "simclr"}


def stage_hours(epochs: int, images: int, views: int, model: str, fraction: float = 1.0) -> float:
    """GPU-hours of one training stage at :data:`THROUGHPUT`."""
    if model not in THROUGHPUT:
        raise ValueError(
            f"model {model!r}: no published throughput here; known: {sorted(THROUGHPUT)}"
        )
    return epochs * images * fraction * views / THROUGHPUT[model] / 3600


def method_views(method: dict[str, Any]) -> int:
    name = method.get("name")
    if name in TWO_VIEWS:
        return 2
    if name == "mimic":
        return 1 if method.get("contrastive") == "none" else 2
    return 1


def study_hours(
    path: str, profile: str = "paper", overrides: list[str] | None = None
) -> dict[str, Any]:
    """GPU-hours of every trial of ``path``'s ``profile`` (its ``--dry-run`` plan, with the
    ``-o`` ``overrides``), each trial's stages composed as the trainer composes them."""
    from omegaconf import OmegaConf

    from fer_core.engine.build import compose, stage_configs
    from fer_core.engine.stages import stage_key
    from fer_core.study import load_study, plan_trials

    plan = plan_trials(load_study(path, profile, list(overrides or []), check_knobs=False))
    cached: set[str] = set()
    total = cached_h = 0.0
    used: set[tuple[str, str]] = set()
    for trial in plan.trials:
        stages = stage_configs(compose(list(trial.overrides)))
        key = ""  # the stage cache's own keys (engine/stages.py: knobs a stage ignores drop out)
        for k, (_, cfg) in enumerate(stages):
            c = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
            seeded = {**c, "trainer": {**c["trainer"], "seed": trial.seed}}  # as the trainable does
            key = stage_key(seeded, key)
            last = k == len(stages) - 1
            if not last:
                if key in cached:
                    continue
                cached.add(key)
            t, d, model = c["trainer"], c["data"]["name"], c["model"]["name"]
            semi = t.get("protocol") == "semi"
            fraction = float((t.get("semi") or {}).get("fraction", 1.0)) if semi else 1.0
            if d not in TRAIN_IMAGES:
                raise ValueError(f"{path}: dataset {d!r} has no training-set size here")
            h = stage_hours(int(t["epochs"]), TRAIN_IMAGES[d], method_views(c["method"]), model,
                            fraction)  # fmt: skip
            total += h
            cached_h += 0.0 if last else h
            used.add((model, d))
    return {
        "study": path,
        "trials": plan.n_trials,
        "seeds": len(plan.seeds),
        "models": sorted(used),
        "cached_runs": len(cached),
        "cached_h": cached_h,
        "gpu_h": total,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_core.tune.cost", description=__doc__)
    p.add_argument("files", nargs="*", help="study files (default studies/*.yaml)")
    p.add_argument("--profile", default="paper")
    args = p.parse_args(argv)
    files = args.files or sorted(glob.glob("studies/*.yaml"))
    print("| study | trials (configs x seeds) | model / data | cached stages, h (runs) | GPU-h |")
    print("|---|---|---|---|---|")
    total = 0.0
    for f in files:
        r = study_hours(f, args.profile)
        total += r["gpu_h"]
        n, s = r["trials"], r["seeds"]
        models = ", ".join(f"{m} / {d}" for m, d in r["models"])
        cached = f"{r['cached_h']:.1f} ({r['cached_runs']})" if r["cached_runs"] else "-"
        name = f.rsplit("/", 1)[-1].removesuffix(".yaml")
        print(f"| `{name}` | {n // s} x {s} = {n} | {models} | {cached} | {r['gpu_h']:.1f} |",
              flush=True)  # fmt: skip
    print(f"| **all** | | | | **{total:.1f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
