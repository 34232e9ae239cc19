"""Memory of two concurrent trials on one decoded-image cache (issue 20): do they share the pages?

Run (the export and the first decode are slow; do them once, niced)::

    fer-study data export synthfer --layout rafdb --out /tmp/raf20k --set n_train=16000 \\
        --set n_val=1000 --set n_test=3000 --set img_size=224
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_memory --root /tmp/raf20k --img-size 224 \\
        --label after [--quick]

It decodes the export once into a private cache (``FER_STUDY_CACHE``, ``--cache``), then for each
case (plain finetune with the carved-out validation, ``trainer.protocol=semi`` with
``trainer.semi.fraction``, ``trainer.protocol=kfold``) starts two trial processes at once. Each
trial runs the trainer's data path with the real code: ``build_data`` -> the protocol's split
(``recipe.stage_data`` / ``recipe.kfold_splits``, fold 0) -> ``BatchMaker`` cutting ``--batches``
augmented training batches of 64 -> one evaluation pass over val and test (``eval_batches``), no
model. Then it reads its own ``/proc/self/smaps_rollup``: USS (Private_Clean + Private_Dirty) and
PSS, against the cache size (the bytes of the decoded image tensors). Each trial's private image
memory is its USS after the data path minus its USS before it loaded any data (imports and config
done); a process that only imports torch and fer_core gives the baseline USS, for reference. ``--label before|after`` names the row; results merge into ``benchmarks/results/memory.json``
and ``memory.md`` (run it on the old tree with ``PYTHONPATH=<old checkout>`` for "before").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "finetune": [],
    "semi": ["trainer.protocol=semi", "trainer.semi.fraction=0.1"],
    "kfold": ["trainer.protocol=kfold", "trainer.kfold.k=5"],
}


def smaps_rollup(pid: int | str = "self") -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` in bytes: rss, pss, uss (private clean + dirty), shared."""
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "kB":
            kb[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return {
        "rss": kb.get("Rss", 0),
        "pss": kb.get("Pss", 0),
        "uss": kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0),
        "shared": kb.get("Shared_Clean", 0) + kb.get("Shared_Dirty", 0),
    }


def _overrides(root: str, img_size: int, case: str) -> list[str]:
    return ["data=rafdb", f"data.root={root}", f"data.img_size={img_size}", "trainer.aug.policy=crop_flip", *CASES[case]]  # fmt: skip


def trial(root: str, img_size: int, case: str, batches: int, hold: Path) -> dict:
    """One trial's data path (module docstring); returns its memory after it ran."""
    import torch

    from fer_core.engine import build, recipe
    from fer_core.engine.batches import BatchMaker, eval_batches
    from fer_core.methods.base import MethodNeeds

    torch.set_num_threads(1)
    cfg = build.compose(_overrides(root, img_size, case))
    (_, scfg), = build.stage_configs(cfg)  # fmt: skip
    s = build.trainer_settings(scfg["trainer"])
    before = smaps_rollup()  # imports done, no data yet
    splits = build.build_data(scfg["data"])
    if s.protocol == "kfold":
        kf = s.kfold
        vf = kf["val_fraction"] if kf["val_fraction"] is not None else scfg["data"]["val_fraction"]
        splits = recipe.kfold_splits(splits, int(kf["k"]), s.seed, float(vf))[0]
    data = recipe.stage_data(splits, s)
    bm = BatchMaker(data.train, MethodNeeds(), s.aug, torch.device("cpu"), data.unlabelled)
    g = torch.Generator().manual_seed(0)
    bm.start_epoch(g)
    perm = torch.randperm(len(data.train), generator=g)
    for i in range(batches):
        bm.make(perm[i * 64 : (i + 1) * 64], g)
    n_eval = 0
    for ds in (data.splits.val, data.splits.test):
        for b in eval_batches(ds, 256, torch.device("cpu")):
            n_eval += len(b["index"])
    mem = {**smaps_rollup(), "uss_before_data": before["uss"]}
    hold.write_text(json.dumps(mem))
    # stay alive until the partner trial has measured too (both hold their pages at once)
    deadline = time.time() + 600
    while not hold.with_suffix(".done").exists() and time.time() < deadline:
        time.sleep(0.2)
    return {**mem, "n_train": len(data.train), "n_eval": n_eval}


def baseline() -> dict:
    import torch  # noqa: F401

    import fer_core.engine.recipe  # noqa: F401

    return smaps_rollup()


def cache_bytes(cache: Path) -> int:
    """The decoded image bytes of the cache entries (the train / test split files)."""
    return sum(p.stat().st_size for p in (cache / "decoded").rglob("*.pt"))


def run_case(args, case: str, env: dict) -> dict:
    holds = [Path(args.cache) / f"hold-{case}-{i}.json" for i in range(2)]
    for h in holds:
        h.unlink(missing_ok=True)
        h.with_suffix(".done").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--root", args.root,
           "--img-size", str(args.img_size), "--batches", str(args.batches), "--cache", args.cache]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*cmd, "--trial", case, "--hold", str(h)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        for h in holds
    ]
    while not all(h.exists() for h in holds):
        if any(p.poll() not in (None, 0) for p in procs):
            raise RuntimeError(f"a {case} trial failed")
        time.sleep(0.5)
    both = [smaps_rollup(p.pid) for p in procs]  # measured while both are alive, by the parent
    for h in holds:
        h.with_suffix(".done").touch()
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"trials": [{**o, "parent_view": m} for o, m in zip(outs, both)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="a RAF-DB-layout export (fer-study data export)")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--batches", type=int, default=20, help="training batches of 64 per trial")
    ap.add_argument("--cache", default="/tmp/bench_memory_cache", help="FER_STUDY_CACHE for it")
    ap.add_argument("--label", default="after", help="the row's name: before | after")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--trial", choices=list(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--hold", help=argparse.SUPPRESS)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.root = str(Path(args.root).resolve())
    os.environ["FER_STUDY_CACHE"] = args.cache
    if args.baseline:
        print(json.dumps(baseline()))
        return 0
    if args.trial:
        print(
            json.dumps(trial(args.root, args.img_size, args.trial, args.batches, Path(args.hold)))
        )
        return 0

    import fer_core

    env = {**os.environ, "FER_STUDY_CACHE": args.cache, "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    # decode once (not timed as a trial): the first trial of the first case would do it otherwise
    subprocess.run([sys.executable, "-c", "import sys; from fer_core.engine import build; "
                    "cfg = build.compose(sys.argv[1:]); (_, c), = build.stage_configs(cfg); build.build_data(c['data'])",
                    *_overrides(args.root, args.img_size, "finetune")], env=env, check=True)  # fmt: skip
    decode_s = time.time() - t0
    base = json.loads(subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--root", args.root, "--baseline", "--cache", args.cache],
                                     env=env, check=True, capture_output=True, text=True).stdout)  # fmt: skip
    size = cache_bytes(Path(args.cache))
    rows = {}
    for case in args.cases:
        r = run_case(args, case, env)
        uss = [t["parent_view"]["uss"] for t in r["trials"]]
        pss = [t["parent_view"]["pss"] for t in r["trials"]]
        # private image memory: what the data path added to each trial's USS
        priv = sum(max(0, u - t["uss_before_data"]) for u, t in zip(uss, r["trials"]))
        rows[case] = {**r, "uss_mb": [round(u / 2**20) for u in uss],
                      "pss_mb": [round(p / 2**20) for p in pss],
                      "private_images_both_mb": round(priv / 2**20),
                      "private_images_both_over_cache": round(priv / size, 3)}  # fmt: skip
        print(case, rows[case]["uss_mb"], rows[case]["pss_mb"], rows[case]["private_images_both_over_cache"], flush=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "memory.json"
    allres = json.loads(path.read_text()) if path.exists() else {}
    allres[args.label] = {
        "fer_core": str(Path(fer_core.__file__).resolve().parent),
        "root": args.root, "img_size": args.img_size, "batches": args.batches,
        "cache_mb": round(size / 2**20), "baseline_uss_mb": round(base["uss"] / 2**20),
        "decode_s": round(decode_s, 1), "loadavg": os.getloadavg(), "cases": rows,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    path.write_text(json.dumps(allres, indent=1))
    write_md(allres)
    return 0


def write_md(allres: dict) -> None:
    md = ["# Memory of two concurrent trials (`benchmarks/bench_memory.py`)", "",
          "Two trial processes at once on one decoded-image cache, each running the trainer's data path "
          "(protocol split, training batches with crop_flip, one pass over val and test; no model). USS = "
          "private memory, PSS = proportional share, read from /proc/<pid>/smaps_rollup while both are "
          "alive. Private image memory = a trial's USS after its data path minus its USS before it loaded "
          "any data. Goal: both trials' private image memory <= 0.2 x the cache size.", "",
          "| code | case | cache MB | trial USS MB | trial PSS MB | private images, both, MB | / cache |",
          "|---|---|---|---|---|---|---|"]  # fmt: skip
    for label, res in allres.items():
        for case, r in res["cases"].items():
            md.append(f"| {label} | {case} | {res['cache_mb']} | {r['uss_mb']} | {r['pss_mb']} | "
                      f"{r['private_images_both_mb']} | {r['private_images_both_over_cache']} |")  # fmt: skip
    md.append("")
    for label, res in allres.items():
        md.append(f"- {label}: {res['when']}, export {res['root']} at {res['img_size']} px, "
                  f"{res['batches']} batches of 64 per trial, baseline USS {res['baseline_uss_mb']} MB, "
                  f"load average {', '.join(f'{x:.1f}' for x in res['loadavg'])}, code {res['fer_core']}.")  # fmt: skip
    (RESULTS / "memory.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
