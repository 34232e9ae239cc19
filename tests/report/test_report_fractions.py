"""Label-fraction tables (004 Tables 13-15 layout): one column per fraction, one row per setting,
each compared with the baseline setting at the same fraction."""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from fer_core.report import assemble, load_runs
from fer_core.report.fractions import fraction_factor, row_layout
from fer_core.report.render import to_markdown

# test/acc per (setting, fraction), three seeds; baseline kappa=iou
VALUES = {
    ("iou", 0.05): [0.60, 0.62, 0.61], ("iou", 0.1): [0.70, 0.71, 0.69],
    ("psnr", 0.05): [0.55, 0.56, 0.54], ("psnr", 0.1): [0.72, 0.74, 0.73],
}  # fmt: skip
STUDY = {
    "name": "frac_demo",
    "metric": "val/acc",
    "mode": "max",
    "base": {"recipe": "ssfer_finetune"},
    "ablation": {
        "design": "factorial",
        "baseline": "kappa=iou,fraction=0.05",
        "factors": {
            "kappa": {"path": "stages.finetune.method.facemix.kappa", "values": ["iou", "psnr"]},
            "fraction": {"path": "stages.finetune.trainer.semi.fraction", "values": [0.05, 0.1]},
        },
    },
    "seeds": [0, 1, 2],
    "reference": {
        "source": "004 Table 10",
        "metric": "test/acc",
        "values": {"rafdb": {"kappa=iou,fraction=0.05": 80.57, "kappa=iou,fraction=0.1": 84.41}},
    },
    "report": {"kind": "ablation", "metrics": ["test/acc"]},
}


def _rows() -> list[dict]:
    out = []
    for cid, ((kappa, frac), vals) in enumerate(VALUES.items()):
        row = f"kappa={kappa},fraction={frac}"
        for seed, v in enumerate(vals):
            out.append({"config_id": cid, "seed": seed, "tune_trial_id": f"t{cid}_{seed}",
                        "optuna_trial": cid, "row": row, "status": "TERMINATED",
                        "param.row": row, "best.test/acc": v, "best.val/acc": v})  # fmt: skip
    return out


def test_layout_from_the_study_file_and_from_expanded_rows():
    assert fraction_factor(STUDY) == ("stages.finetune.trainer.semi.fraction", [0.05, 0.1])
    assert row_layout(STUDY)["kappa=psnr,fraction=0.1"] == ("kappa=psnr", 0.1)
    plain = {**STUDY, "ablation": {"rows": [{"name": "a", "set": {"method.x": 1}},
                                            {"name": "b", "set": {"method.x": 2}}]}}  # fmt: skip
    assert fraction_factor(plain) is None


def test_one_column_per_fraction_compared_at_the_same_fraction(tmp_path, make_run):
    run = make_run(tmp_path / "runs", STUDY, "synth", "rafdb", _rows())
    table = next(t for t in assemble(load_runs([run])).tables if t.name == "fractions")
    assert list(table.df["Row"]) == ["kappa=iou", "kappa=psnr"]
    for frac, label in ((0.05, "5 %"), (0.1, "10 %")):
        base, other = np.array(VALUES[("iou", frac)]), np.array(VALUES[("psnr", frac)])
        cell = table.df[f"test/acc {label}"][1]
        delta = (other.mean() - base.mean()) * 100
        arrow = "↑" if delta > 0 else "↓"
        assert cell == (
            f"{other.mean() * 100:.2f} ± {other.std(ddof=1) * 100:.2f} {arrow} {abs(delta):.2f}"
        )
        p = sps.ttest_ind(other, base, equal_var=False).pvalue  # one comparison: Holm = raw
        assert table.df[f"test/acc {label} p"][1].rstrip("*") == f"{p:.3g}"
        assert bool(table.bold[f"test/acc {label}"][1]) == (p < 0.05)
    assert list(table.df["test/acc 5 % paper"]) == ["80.57", "–"]
    assert list(table.df["test/acc 10 % paper"]) == ["84.41", "–"]
    md = to_markdown(table)
    assert md.splitlines()[0].startswith(
        "| Row | test/acc 5 % | test/acc 5 % p | test/acc 5 % paper |"
    )
