"""``fer-study data``: export SynthFER in a real layout, check a real dataset's layout, list.

fer-study data export synthfer --layout rafdb --out DIR [--set n_train=500 ...]
fer-study data check rafdb --root /data/RAF-DB
fer-study data list
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import yaml
from PIL import Image

EPILOG = """examples:
  fer-study data export synthfer --layout ferplus --out /tmp/synth-ferplus
  fer-study data export synthfer --layout rafdb --out /tmp/synth-raf --set n_train=500 --set seed=3
  fer-study data check ferplus --root /tmp/synth-ferplus
  fer-study data check rafdb --root /data/RAF-DB     (counts per class and split, bad files)
  fer-study data list                                 (datasets and their knobs)"""


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_export(args: argparse.Namespace) -> int:
    from fer_core.data.export import export_synthfer

    if args.dataset != "synthfer":
        print(f"error: only synthfer can be exported, got {args.dataset!r}", file=sys.stderr)
        return 2
    report = export_synthfer(args.layout, Path(args.out), **_parse_sets(args.set))
    print(
        json.dumps(
            {"layout": args.layout, "out": str(Path(args.out).resolve()), "splits": report},
            indent=1,
        )
    )
    return 0


def check_layout(name: str, root: str, verify: bool = True) -> dict:
    """Parse ``name``'s annotations under ``root``; count per split and class; find bad files."""
    from fer_core.data import LAYOUTS
    from fer_core.data.base import CLASS_NAMES

    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset layout {name!r}; allowed: {', '.join(sorted(LAYOUTS))}")
    recs = LAYOUTS[name].parse(root)
    result: dict = {
        "dataset": name,
        "root": str(Path(root).resolve()),
        "splits": {},
        "missing": [],
        "unreadable": [],
    }
    for split, rec in recs.items():
        counts = Counter(int(c) for c in rec.labels.tolist())
        result["splits"][split] = {
            "n": len(rec.paths),
            "per_class": {CLASS_NAMES[c] if c >= 0 else "none": counts[c] for c in sorted(counts)},
        }
        for p in rec.paths:
            if not p.is_file():
                result["missing"].append(str(p))
            elif verify:
                try:
                    with Image.open(p) as im:
                        im.verify()
                except Exception as exc:  # PIL raises many types
                    result["unreadable"].append(f"{p}: {type(exc).__name__}: {exc}")
    return result


def data_options() -> dict[str, str]:
    """``train data=<option>`` -> the dataset (layout) it reads, from ``conf/data/*.yaml``
    (``affectnet7`` and ``affectnet8`` both read ``affectnet``)."""
    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf" / "data"
    out = {}
    for f in sorted(conf.glob("*.yaml")):
        out[f.stem] = str((yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("name", f.stem))
    return out


def layout_name(name: str) -> str:
    """A ``data check`` name: a layout as it is, or a ``train data=`` option mapped to its
    layout with a note on stderr (``affectnet7`` -> ``affectnet``)."""
    from fer_core.data import LAYOUTS

    option = data_options().get(name)
    if name not in LAYOUTS and option and option != name:
        print(f"note: data={name} reads the {option!r} layout; checking {option}", file=sys.stderr)
        return option
    return name


def cmd_check(args: argparse.Namespace) -> int:
    try:
        res = check_layout(layout_name(args.dataset), args.root, verify=not args.no_verify)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{res['dataset']} at {res['root']}")
        for split, s in res["splits"].items():
            per = ", ".join(f"{k} {v}" for k, v in s["per_class"].items())
            print(f"  {split:5s} {s['n']:7d}  ({per})")
        for kind in ("missing", "unreadable"):
            items = res[kind]
            print(f"  {kind}: {len(items)}")
            for line in items[:20]:
                print(f"    {line}")
            if len(items) > 20:
                print(f"    ... and {len(items) - 20} more")
    return 1 if res["missing"] or res["unreadable"] else 0


def cmd_list(args: argparse.Namespace) -> int:  # noqa: ARG001
    from fer_core.data import dataset_kwargs, list_datasets

    options = data_options()
    for name in list_datasets():
        kw = ", ".join(f"{k}={v!r}" for k, v in dataset_kwargs(name).items())
        train = " | ".join(f"data={o}" for o, n in options.items() if n == name) or "-"
        print(f"{name} (train: {train}): {kw}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from fer_core.data.export import LAYOUTS as EXPORT_LAYOUTS

    parser = argparse.ArgumentParser(
        prog="fer-study data",
        description="Export SynthFER in a real dataset's layout; check a real dataset's layout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", metavar="{export,check,list}")
    p = sub.add_parser("export", help="write SynthFER in a real dataset's on-disk layout")
    p.add_argument("dataset", choices=["synthfer"])
    p.add_argument("--layout", required=True, choices=EXPORT_LAYOUTS)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SynthFER knob (repeatable)",
    )
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser(
        "check", help="verify a dataset's layout: counts per class and split, bad files"
    )
    p.add_argument(
        "dataset", help="rafdb | ferplus | affectnet (or affectnet7 | affectnet8) | sfew | folder"
    )
    p.add_argument("--root", required=True, help="the dataset folder")
    p.add_argument("--no-verify", action="store_true", help="only check that files exist (faster)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("list", help="list datasets and their knobs (defaults)")
    p.set_defaults(fn=cmd_list)
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    try:
        return int(args.fn(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
