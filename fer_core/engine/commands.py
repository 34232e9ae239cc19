"""``fer-study train [--cfg job] [--run-dir DIR] key=value ...``: compose, print or train one recipe."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

USAGE = """examples:
  fer-study train                                   SynthFER + CPU ResNet + cross-entropy (~30 s)
  fer-study train model=resnet_tiny_cpu trainer.epochs=3 sched.lr=3e-4
  fer-study train --cfg job method=pll              print the resolved config, do not train
  fer-study train recipe=mae_finetune stages.pretrain.trainer.epochs=2 stages.finetune.method.label_smoothing=0.1
  fer-study train recipe=maskfeat_pll trainer.epochs=2 --cfg job
  fer-study train model=vit_tiny_cpu stages.pretrain.method=mae stages.finetune.method=ce
                                                    ad-hoc stages, in the order named (MAE needs a ViT)
  fer-study train trainer.resume=runs/<dir>/checkpoints   continue a run exactly

groups: data, model, method, optim, sched, trainer (options: fer_core/conf/<group>/*.yaml)
recipes: recipe=<preset> (fer_core/conf/recipe/*.yaml): ordered stages, each naming its method,
  protocol and what it takes from an earlier stage (init_from: backbone, head, teacher, samples);
  top-level overrides apply to every stage unless the stage sets its own; stages.<stage>.* wins.
Each epoch line shows every metric the stage's method reports (Method.reported_metrics())."""


def main(argv: list[str] | None = None) -> int:
    from omegaconf import OmegaConf

    from fer_core.engine.build import ConfigError, compose

    p = argparse.ArgumentParser(
        prog="fer-study train", description="Train one recipe (Hydra overrides: key=value ...).",
        epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--cfg", choices=["job", "all"], help="print the resolved config and exit")
    p.add_argument("--run-dir", help="run directory (default trainer.run_dir or runs/train-<time>)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.epochs=3")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = compose(args.overrides)
    except ConfigError as e:
        print(f"fer-study train: {e}", file=sys.stderr)
        return 2
    if args.cfg:
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
    from fer_core.engine.recipe import run_recipe

    run_dir = args.run_dir or cfg.trainer.run_dir or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(run_dir).expanduser().resolve()
    t0 = time.time()

    def report(stage: str, epoch: int, metrics: dict, _ckpt) -> bool:
        shown = {k: round(v, 4) for k, v in metrics.items()}
        print(
            f"[{time.time() - t0:6.1f}s] {stage} epoch {epoch + 1}: {json.dumps(shown)}", flush=True
        )
        return True

    try:
        result = run_recipe(cfg, run_dir, on_epoch_end=report)
    except (ConfigError, ValueError) as e:
        print(f"fer-study train: {e}", file=sys.stderr)
        return 2
    final = {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("test/")}
    print(f"done in {time.time() - t0:.1f}s; test: {json.dumps(final)}")
    print(f"run directory: {run_dir} (tensorboard --logdir {run_dir})")
    return 0
