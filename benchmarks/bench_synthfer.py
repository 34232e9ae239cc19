"""SynthFER generation speed (target: >= 1,000 images/s at 48 px on 2 cores) and cache-hit time.

Run: ``.venv/bin/python -m benchmarks.bench_synthfer`` -> ``benchmarks/results/bench_synthfer.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
CASES = [(48, 1), (48, 3), (96, 3)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="images per measurement")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ["FER_STUDY_CACHE"] = tempfile.mkdtemp(prefix="bench-synthfer-")
    import inspect

    from fer_core.data import build_splits
    from fer_core.data.synthfer import generate_split
    from fer_core.data.synthfer_dataset import build_synthfer  # noqa: F401 (defaults below)

    defaults = {k: p.default for k, p in inspect.signature(build_synthfer).parameters.items()}
    knobs = {k: defaults[k] for k in ("seed", "num_classes", "ambiguity", "intensity_floor", "occlusion_rate", "imbalance",
                                      "annotator_noise", "unknown_rate", "num_annotators", "label_source")}  # fmt: skip
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size, ch in CASES:
            n = args.n if size <= 48 else args.n // 4
            generate_split("train", 256, img_size=size, channels=ch, **knobs)  # warm-up
            t = time.perf_counter()
            generate_split("train", n, img_size=size, channels=ch, **knobs)
            dt = time.perf_counter() - t
            rows.append(
                {
                    "threads": threads,
                    "img_size": size,
                    "channels": ch,
                    "n": n,
                    "seconds": dt,
                    "img_per_s": n / dt,
                }
            )
            print(rows[-1], flush=True)
    torch.set_num_threads(max(args.threads))
    t = time.perf_counter()
    build_splits("synthfer")
    cold = time.perf_counter() - t
    t = time.perf_counter()
    build_splits("synthfer")
    warm = time.perf_counter() - t
    result = {
        "rows": rows,
        "default_build_cold_s": cold,
        "default_build_cached_s": warm,
        "cpu_count": os.cpu_count(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_synthfer.json").write_text(json.dumps(result, indent=1))
    md = [
        "# SynthFER generation speed",
        "",
        "| threads | size | channels | images/s |",
        "|---|---|---|---|",
    ]
    md += [
        f"| {r['threads']} | {r['img_size']} | {r['channels']} | {r['img_per_s']:.0f} |"
        for r in rows
    ]
    md += ["", f"Default dataset (train+val+test = 5,600 images at 48 px): first build {cold:.2f} s "
           f"(generate + write the cache), cached load {warm * 1000:.1f} ms (memory-mapped)."]  # fmt: skip
    (args.out / "bench_synthfer.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
