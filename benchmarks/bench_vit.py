"""Which CPU-sized ViT learns SynthFER from scratch in 4 epochs and can still be masked (issue 17).

Each candidate is a backbone (``create_backbone`` kwargs) trained by a short loop that mirrors the
default recipe (``fer-study train``): SynthFER's default data (4,000 training images, 48 px), the
plurality vote labels, cross-entropy, AdamW (weight decay 0.05 on every parameter), a
linear warm-up from 0 over 0.5 epochs then cosine to 1e-5 (stepped per update), batch 64,
4 epochs, seed 0, a linear head on the pooled feature; val/uar and val/acc after every epoch.
The loop (not the engine) keeps each candidate to one process with one thread.

Recorded per candidate: val/uar and val/acc per epoch, wall seconds, training img/s, the load
average at the end (the machine is shared: seconds are upper bounds), whether the stem is
token-local (no receptive field crosses a patch boundary: what MAE / MaskFeat need).

Run: ``.venv/bin/python -m benchmarks.bench_vit [--only LABEL ...]`` ->
``benchmarks/results/vit.{json,md}`` (candidates not re-run are kept from the previous file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

RESULTS = Path(__file__).resolve().parent / "results"
EPOCHS = 4

_GAP = {"name": "vit_patch_cpu", "img_size": 48, "in_chans": 1, "pool": "gap"}
_FLAT = {**_GAP, "pool": "flat"}  # conf/model/vit_patch_cpu.yaml
# label -> (create_backbone kwargs, loop kwargs, what the candidate tests)
CANDIDATES: dict[str, tuple[dict, dict, str]] = {
    "hmlp stem, gap, lr 1e-3": (_GAP, {"lr": 1e-3}, "hMLP stem (LayerNorm), mean of the tokens"),
    "hmlp stem, gap, lr 1e-3, sin-cos pos": (
        _GAP,
        {"lr": 1e-3, "sincos": True},
        "suspect: pos-embed (fixed 2-D sin-cos at init instead of N(0, 0.02))",
    ),
    "hmlp stem, gap, lr 1e-3, batch 16": (
        _GAP,
        {"lr": 1e-3, "batch": 16},
        "suspect: too few steps (1,000 instead of 250 in 4 epochs)",
    ),
    "vit_patch_cpu (hmlp, flat), lr 1e-3": (
        _FLAT,
        {"lr": 1e-3},
        "pool=flat: a linear map of the token grid (where, not only which)",
    ),
    "vit_patch_cpu (hmlp, flat), lr 3e-3": (_FLAT, {"lr": 3e-3}, "the same on the recipe's lr"),
}


def _data():
    from omegaconf import OmegaConf

    from fer_core.data.transforms import normalize
    from fer_core.engine.build import build_data, compose

    sp = build_data(OmegaConf.to_container(compose([]).data, resolve=True))
    return sp, normalize(sp.train.images), sp.train.labels, normalize(sp.val.images), sp.val.labels


def run_one(label: str, bb_kw: dict, lr: float, batch: int = 64, sincos: bool = False) -> dict:
    """Train one candidate for ``EPOCHS`` epochs with the default recipe's schedule (module doc)."""
    from torchmetrics.functional.classification import multiclass_recall

    from fer_core.models.backbones import create_backbone, is_token_local
    from fer_core.models.mim import sincos_pos_embed_2d

    sp, xtr, ytr, xva, yva = _data()
    torch.manual_seed(0)
    bb = create_backbone(**bb_kw)
    if sincos:
        with torch.no_grad():
            p = bb.model.num_prefix_tokens
            bb.model.pos_embed[0, p:] = sincos_pos_embed_2d(bb.num_features, bb.grid_size)
    head = nn.Linear(bb.num_features, 7)
    opt = torch.optim.AdamW([*bb.parameters(), *head.parameters()], lr=lr, weight_decay=0.05)
    n = len(ytr)
    per_epoch = n // batch
    total, warm = per_epoch * EPOCHS, int(0.5 * per_epoch)
    g = torch.Generator().manual_seed(0)
    step, uars, accs, losses = 0, [], [], []
    t = time.perf_counter()
    for _ in range(EPOCHS):
        perm = torch.randperm(n, generator=g)
        bb.train()
        run = 0.0
        for i in range(per_epoch):
            idx = perm[i * batch : (i + 1) * batch]
            if step < warm:
                cur = lr * step / warm  # the recipe warms up from 1e-5: no visible difference
            else:
                cur = 1e-5 + 0.5 * (lr - 1e-5) * (
                    1 + math.cos(math.pi * (step - warm) / (total - warm))
                )
            for pg in opt.param_groups:
                pg["lr"] = cur
            loss = F.cross_entropy(head(bb(xtr[idx])), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            run += loss.item()
        bb.eval()
        with torch.no_grad():
            pred = torch.cat(
                [head(bb(xva[j : j + 256])).argmax(1) for j in range(0, len(yva), 256)]
            )
        uars.append(round(multiclass_recall(pred, yva, 7, average="macro").item(), 4))
        accs.append(round((pred == yva).float().mean().item(), 4))
        losses.append(round(run / per_epoch, 4))
        print(label, len(uars), losses[-1], uars[-1], accs[-1], flush=True)
    wall = time.perf_counter() - t
    return {
        "label": label,
        "data_hash": sp.data_hash,
        "val/uar_by_epoch": uars,
        "val/acc_by_epoch": accs,
        "train/loss_by_epoch": losses,
        "wall_s": round(wall, 1),
        "train_img_per_s": round(EPOCHS * per_epoch * batch / wall, 1),
        "load_avg_end": round(os.getloadavg()[0], 2),
        "token_local": bool(is_token_local(bb.model.patch_embed)),
        "params_M": round(sum(p.numel() for p in bb.parameters()) / 1e6, 3),
    }


def _load(v: float | None) -> str:
    return "not logged (10-20 then)" if v is None else f"{v:.1f}"


def _markdown(result: dict) -> str:
    lines = [
        "# CPU-sized ViTs on SynthFER from scratch (bench_vit)",
        "",
        f"Default recipe's schedule, {EPOCHS} epochs, seed 0, SynthFER data hash "
        f"`{result.get('data_hash', '?')}`; chance UAR 0.143 (majority-class val acc 0.367). "
        "One thread per candidate on a machine shared with other jobs (load average at the end "
        "beside each run): seconds are upper bounds.",
        "",
        "| candidate | what it tests | val/uar per epoch | val/acc (last) | train loss (last) | "
        "s | train img/s | load avg | token-local |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"].values():
        lines.append(
            f"| {r['label']} | {r['what']} | {', '.join(f'{v:.3f}' for v in r['val/uar_by_epoch'])} "
            f"| {r['val/acc_by_epoch'][-1]:.3f} | {r['train/loss_by_epoch'][-1]:.3f} | "
            f"{r['wall_s']:.0f} | {r['train_img_per_s']:.0f} | {_load(r['load_avg_end'])} | "
            f"{'yes' if r['token_local'] else 'no'} |"
        )
    lines += ["", "## Conclusion", "", result.get("conclusion", ""), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", help="candidate labels to (re)run; default all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    unknown = set(args.only or []) - set(CANDIDATES)
    if unknown:
        ap.error(f"unknown candidates {sorted(unknown)}; choose from {list(CANDIDATES)}")
    torch.set_num_threads(args.threads)
    previous = args.out / "vit.json"
    result: dict = json.loads(previous.read_text()) if previous.is_file() else {}
    result |= {"torch": torch.__version__, "epochs": EPOCHS, "threads": args.threads}
    runs = result.setdefault("runs", {})
    for label in args.only or list(CANDIDATES):
        bb_kw, kw, what = CANDIDATES[label]
        runs[label] = {**run_one(label, bb_kw, **kw), "what": what}
        result["data_hash"] = runs[label]["data_hash"]
        result["runs"] = {k: runs[k] for k in CANDIDATES if k in runs}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "vit.json").write_text(json.dumps(result, indent=1))
        (args.out / "vit.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
