"""Masked-image pre-training on SynthFER: cost per epoch and the 10 %-label fine-tuning benefit.

Two parts (issue 5's closing note):

- ``speed``: training-step throughput of MAE (MAE's default 8 x 512 decoder and a light 2 x 128
  one), MaskFeat and supervised CE on the CPU-sized ViT at SynthFER's 48 px, 1 channel, batch 64,
  and the implied seconds per pre-training epoch over SynthFER's 4,000 training images.
- ``compare``: fine-tuning (``method=ce``, ``trainer.protocol=semi``, 10 % of the labels) from
  scratch vs from an MAE encoder vs from a MaskFeat encoder (both pre-trained label-free on the whole
  training split, once, through the trainer's cached pre-training stage), over several seeds.

Run: ``OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.bench_mim`` ->
``benchmarks/results/bench_mim.{json,md}``. On a shared machine the timings are upper bounds.
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

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_IMAGES = 4000  # SynthFER's default n_train


def _step(method, opt, batch: dict, ctx) -> None:
    out = method.training_step(batch, ctx)
    opt.zero_grad()
    out.loss.backward()
    opt.step()


def speed(threads: int, steps: int, batch: int) -> list[dict]:
    from fer_core.methods import StepContext, create_method
    from fer_core.models.backbones import create_backbone

    torch.set_num_threads(threads)
    cases = {
        "mae (decoder 8x512)": ("mae", {}),
        "mae (decoder 2x128)": (
            "mae",
            {"decoder_depth": 2, "decoder_dim": 128, "decoder_heads": 4},
        ),
        "maskfeat": ("maskfeat", {}),
        "ce (supervised)": ("ce", {}),
    }
    rows = []
    for label, (name, kw) in cases.items():
        torch.manual_seed(0)
        bb = create_backbone(
            "vit_tiny_cpu",
            img_size=48,
            in_chans=1,
            patch_size=8,
            embed_dim=96,
            depth=4,
            num_heads=3,
            mlp_ratio=2.0,
        )  # fmt: skip  (conf/model/vit_tiny_cpu.yaml)
        m = create_method(name, bb, 7, **kw)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        batch_d = {
            "image": torch.randn(batch, 1, 48, 48),
            "label": torch.randint(0, 7, (batch,)),
            "index": torch.arange(batch),
        }
        ctx = StepContext(0, 0, 0, 1, 1, torch.device("cpu"), torch.Generator().manual_seed(0))
        _step(m, opt, batch_d, ctx)  # warm-up
        t = time.perf_counter()
        for _ in range(steps):
            _step(m, opt, batch_d, ctx)
        dt = (time.perf_counter() - t) / steps
        rows.append(
            {
                "case": label,
                "threads": threads,
                "batch": batch,
                "s_per_step": dt,
                "img_per_s": batch / dt,
                "s_per_epoch_4000": TRAIN_IMAGES / (batch / dt),
                "params_M": sum(p.numel() for p in m.parameters()) / 1e6,
            }
        )
        print(rows[-1], flush=True)
    return rows


def compare(
    seeds: list[int],
    pre_epochs: int,
    ft_epochs: int,
    fraction: float,
    extra: list[str],
    ft_batch: int = 16,
) -> list[dict]:
    from fer_core.engine.build import compose
    from fer_core.engine.recipe import run_recipe

    common = [
        "trainer.progress=false",
        f"trainer.threads={torch.get_num_threads()}",
        *extra,
    ]
    pretrain = {
        "scratch": [],
        "mae": [
            "stages.pretrain.method=mae",
            "stages.pretrain.method.decoder.depth=2",
            "stages.pretrain.method.decoder.dim=128",
            "stages.pretrain.method.decoder.heads=4",
            f"stages.pretrain.trainer.epochs={pre_epochs}",
            "stages.pretrain.sched.lr=1e-3",
        ],
        "maskfeat": [
            "stages.pretrain.method=maskfeat",
            f"stages.pretrain.trainer.epochs={pre_epochs}",
            "stages.pretrain.sched.lr=1e-3",
        ],
    }
    rows = []
    out_root = Path(tempfile.mkdtemp(prefix="bench-mim-runs-"))
    for init, pre in pretrain.items():
        for seed in seeds:
            ft = [
                "stages.finetune.method=ce",
                "stages.finetune.trainer.protocol=semi",
                f"stages.finetune.trainer.semi.fraction={fraction}",
                f"stages.finetune.trainer.epochs={ft_epochs}",
                f"stages.finetune.trainer.seed={seed}",
                f"stages.finetune.trainer.batch_size={ft_batch}",
            ]
            # stages run in the order first named: pre-training before fine-tuning
            cfg = compose(common + pre + ft)
            assert list(cfg.stages)[-1] == "finetune", list(cfg.stages)
            t = time.perf_counter()
            res = run_recipe(cfg, out_root / f"{init}-{seed}")
            wall = time.perf_counter() - t
            pre_hist = [h for h in res.history if h["stage"] == "pretrain"]
            rows.append(
                {
                    "init": init,
                    "seed": seed,
                    "wall_s": wall,
                    "mim_loss_first": pre_hist[0]["mim/loss"] if pre_hist else None,
                    "mim_loss_last": pre_hist[-1]["mim/loss"] if pre_hist else None,
                    **{k: res.metrics[k] for k in ("test/acc", "test/uar", "test/acc_true")},
                }
            )
            print(rows[-1], flush=True)
    return rows


def _markdown(result: dict) -> str:
    lines = ["# Masked-image pre-training on SynthFER (bench_mim)", ""]
    lines += [f"Machine: {result['machine']}", ""]
    if result.get("speed"):
        lines += ["## Training-step cost (48 px, 1 channel, vit_tiny_cpu)", ""]
        lines += ["| case | threads | batch | img/s | s per epoch (4,000 images) | params (M) |"]
        lines += ["|---|---|---|---|---|---|"]
        for r in result["speed"]:
            lines.append(
                f"| {r['case']} | {r['threads']} | {r['batch']} | {r['img_per_s']:.0f} | "
                f"{r['s_per_epoch_4000']:.1f} | {r['params_M']:.2f} |"
            )
        lines.append("")
    if result.get("compare"):
        c = result["compare_settings"]
        lines += [
            f"## Fine-tuning with {c['fraction']:.0%} of the labels (ce, protocol semi, "
            f"{c['ft_epochs']} epochs, batch {c.get('ft_batch')}; pre-training {c['pre_epochs']} epochs on all training images)",
            "",
            f"Overrides: `{' '.join(c.get('overrides') or []) or 'none'}`",
            "",
            "| init | seeds | test/acc mean | sd | test/uar mean | sd | mim/loss first -> last |",
            "|---|---|---|---|---|---|---|",
        ]
        for init in dict.fromkeys(r["init"] for r in result["compare"]):
            rs = [r for r in result["compare"] if r["init"] == init]
            acc = [r["test/acc"] for r in rs]
            uar = [r["test/uar"] for r in rs]
            sd = statistics.stdev if len(rs) > 1 else (lambda v: float("nan"))
            ml = (
                f"{rs[0]['mim_loss_first']:.4f} -> {rs[0]['mim_loss_last']:.4f}"
                if rs[0]["mim_loss_first"] is not None
                else "-"
            )
            lines.append(
                f"| {init} | {len(rs)} | {100 * statistics.fmean(acc):.2f} | {100 * sd(acc):.2f} | "
                f"{100 * statistics.fmean(uar):.2f} | {100 * sd(uar):.2f} | {ml} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["speed", "compare"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pre-epochs", type=int, default=6)
    ap.add_argument("--ft-epochs", type=int, default=20)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--ft-batch", type=int, default=16, help="fine-tuning batch size")
    ap.add_argument(
        "-o", "--override", action="append", default=[],
        help="trainer overrides for every compare run (e.g. data.n_train=1200 model.depth=2)",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ.setdefault("FER_STUDY_CACHE", tempfile.mkdtemp(prefix="bench-mim-cache-"))
    torch.set_num_threads(args.threads)
    previous = args.out / "bench_mim.json"  # parts not re-measured are kept
    result: dict = json.loads(previous.read_text()) if previous.is_file() else {}
    result |= {
        "machine": f"{os.cpu_count()} CPU cores visible, torch threads {args.threads}; "
        "shared with other jobs while measured (timings are upper bounds); load average "
        f"{os.getloadavg()[0]:.1f} at the start",
        "torch": torch.__version__,
    }
    if "speed" in args.parts:
        result["speed"] = speed(args.threads, args.steps, args.batch)
    if "compare" in args.parts:
        result["compare_settings"] = {
            "seeds": args.seeds,
            "pre_epochs": args.pre_epochs,
            "ft_epochs": args.ft_epochs,
            "fraction": args.fraction,
            "overrides": args.override,
            "ft_batch": args.ft_batch,
        }
        result["compare"] = compare(
            args.seeds, args.pre_epochs, args.ft_epochs, args.fraction, args.override, args.ft_batch
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_mim.json").write_text(json.dumps(result, indent=1))
    (args.out / "bench_mim.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
