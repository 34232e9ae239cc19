"""How hard is SynthFER? Vote statistics, a small CNN and a logistic regression on raw pixels.

Run: ``OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.synthfer_difficulty [--seeds 3] [--epochs 8]``
Writes ``benchmarks/results/synthfer_difficulty.json`` and ``.md`` (numbers quoted in docs/data.md).

- vote statistics on the default train split: how often the plurality vote (the training label)
  is the true generating class, how often the vote-based top-k candidate set contains it;
- a plain-PyTorch small CNN (3 conv blocks, 16-32-64 channels), trained on the vote labels
  for a few epochs, accuracy on test against the vote labels and the true class;
- scikit-learn logistic regression on raw pixels, same labels, same metrics.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fer_core.data import build_splits, dataset_kwargs
from fer_core.data.labels import ferplus_label_mode, vote_candidates

RESULTS = Path(__file__).resolve().parent / "results"


def small_cnn(in_ch: int, num_classes: int) -> nn.Module:
    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)
        )

    return nn.Sequential(
        block(in_ch, 16),
        block(16, 32),
        block(32, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def _x(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def train_cnn(splits, epochs: int, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model = small_cnn(splits.train.images.shape[1], splits.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    x, y = _x(splits.train.images), splits.train.labels
    ok = y >= 0
    x, y = x[ok], y[ok]
    steps = epochs * ((len(y) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            b = perm[i : i + 128]
            xb = x[b]
            flip = torch.rand(len(b), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat(
            [
                model(_x(splits.test.images[i : i + 512])).argmax(1)
                for i in range(0, len(splits.test), 512)
            ]
        )
    return {
        "acc_votes": (pred == splits.test.labels).float().mean().item(),
        "acc_true": (pred == splits.test.true_labels).float().mean().item(),
        "train_s": time.time() - t0,
        "pred": pred,
    }


def logistic(splits, seed: int) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr = splits.train.images.flatten(1).float().numpy()
    xte = splits.test.images.flatten(1).float().numpy()
    sc = StandardScaler().fit(xtr)
    ytr = splits.train.labels.numpy()
    ok = ytr >= 0
    clf = LogisticRegression(C=0.01, max_iter=300, random_state=seed).fit(
        sc.transform(xtr)[ok], ytr[ok]
    )
    pred = torch.from_numpy(clf.predict(sc.transform(xte)))
    return {
        "acc_votes": (pred == splits.test.labels).float().mean().item(),
        "acc_true": (pred == splits.test.true_labels).float().mean().item(),
    }


def vote_stats(ds) -> dict[str, float]:
    y = ds.true_labels
    idx = torch.arange(len(y))
    out = {
        "n": len(y),
        "majority_agrees_with_true": (ds.labels == y).float().mean().item(),
        "per_class_counts": torch.bincount(y, minlength=ds.num_classes).tolist(),
    }
    for k in (1, 2, 3):
        c = vote_candidates(ds.votes, k, ds.num_classes)
        out[f"top{k}_contains_true"] = c[idx, y].float().mean().item()
        out[f"top{k}_mean_set_size"] = c.sum(1).float().mean().item()
    keep, t = ferplus_label_mode(ds.votes, "majority", ds.num_classes)
    out["ferplus_majority_kept"] = keep.float().mean().item()
    out["ferplus_majority_agrees_with_true"] = (t.argmax(1) == y[keep]).float().mean().item()
    out["chance_majority_class"] = (torch.bincount(y).max() / len(y)).item()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument(
        "--true-label-seeds", type=int, default=1, help="CNN runs trained on the true class"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    splits = build_splits("synthfer")
    stats = {"train": vote_stats(splits.train), "test": vote_stats(splits.test)}
    runs = {"cnn": [], "logreg": [], "cnn_on_true_labels": []}
    true_splits = build_splits("synthfer", label_source="true")  # same images, true-class labels
    for seed in range(args.seeds):
        runs["cnn"].append(
            {k: v for k, v in train_cnn(splits, args.epochs, seed).items() if k != "pred"}
        )
        runs["logreg"].append(logistic(splits, seed))
        print(seed, runs["cnn"][-1], runs["logreg"][-1], flush=True)
    for seed in range(args.true_label_seeds):
        r = train_cnn(true_splits, args.epochs, seed)
        r["acc_votes"] = (r.pop("pred") == splits.test.labels).float().mean().item()
        runs["cnn_on_true_labels"].append(r)
        print("true-label CNN", seed, r, flush=True)

    def agg(rows: list[dict], key: str) -> list[float]:
        v = np.array([r[key] for r in rows])
        return [float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0]

    summary = {m: {k: agg(r, k) for k in ("acc_votes", "acc_true")} for m, r in runs.items() if r}
    result = {
        "config": {k: v for k, v in dataset_kwargs("synthfer").items()},
        "epochs": args.epochs,
        "seeds": args.seeds,
        "vote_stats": stats,
        "runs": runs,
        "summary": summary,
        "torch_threads": torch.get_num_threads(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "synthfer_difficulty.json").write_text(json.dumps(result, indent=1))
    tr = stats["test"]
    md = [
        "# SynthFER difficulty (default knobs)",
        "",
        f"Test split, n = {tr['n']}; {args.seeds} seeds (true-label CNN: {args.true_label_seeds}), "
        f"mean +- std (ddof 1); CNN {args.epochs} epochs, batch 128, AdamW + one-cycle, flips; "
        f"{torch.get_num_threads()} threads.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| plurality vote = true class | {tr['majority_agrees_with_true']:.3f} |",
        f"| FERPlus majority rule: rows kept / kept rows = true | {tr['ferplus_majority_kept']:.3f} / {tr['ferplus_majority_agrees_with_true']:.3f} |",
        f"| top-1 / top-2 / top-3 vote candidates contain true | {tr['top1_contains_true']:.3f} / {tr['top2_contains_true']:.3f} / {tr['top3_contains_true']:.3f} |",
        f"| mean candidate set size k=1 / 2 / 3 | {tr['top1_mean_set_size']:.2f} / {tr['top2_mean_set_size']:.2f} / {tr['top3_mean_set_size']:.2f} |",
        f"| majority-class rate (chance) | {tr['chance_majority_class']:.3f} |",
    ]
    names = (
        ("cnn", "small CNN (vote labels)"),
        ("logreg", "logistic regression on raw pixels (vote labels)"),
        ("cnn_on_true_labels", "small CNN trained on the true class"),
    )
    for m, name in names:
        if m not in summary:
            continue
        s = summary[m]
        md.append(
            f"| {name}: test acc vs votes | {s['acc_votes'][0]:.3f} +- {s['acc_votes'][1]:.3f} |"
        )
        md.append(
            f"| {name}: test acc vs true class | {s['acc_true'][0]:.3f} +- {s['acc_true'][1]:.3f} |"
        )
    (args.out / "synthfer_difficulty.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
