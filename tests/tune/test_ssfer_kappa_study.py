"""``fer-study run studies/ssfer_kappa.yaml`` end to end at a reduced size, then its report.

Two kappas x two label fractions on one seed, one epoch of each stage, a small SynthFER and a
one-block ViT; the four rows share one cached MAE stage (the fraction is a fine-tuning knob). The
report lays the study out like 004 Table 14: one row per kappa, one column per fraction.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_core.cli import main

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "studies" / "ssfer_kappa.yaml"
SMALL = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=64",
         "data.n_val=16", "data.n_test=16", "data.img_size=32", "model.embed_dim=32",
         "model.depth=1", "model.num_heads=2", "stages.pretrain.method.decoder.depth=1",
         "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2",
         "ablation.factors.kappa.values=[iou,ssim]",
         "ablation.factors.fraction.values=[0.25,0.5]",
         "ablation.baseline=kappa=iou,fraction=0.25"]  # fmt: skip


@pytest.mark.slow
def test_ssfer_kappa_runs_and_reports_one_column_per_fraction(tmp_path: Path, capsys):
    run_dir, cache = tmp_path / "ssfer_kappa-synth", tmp_path / "cache"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", FER_STUDY_CACHE=str(cache))
    small = [a for ov in SMALL for a in ("-o", ov)]
    out = subprocess.run(
        [sys.executable, "-m", "fer_core.cli", "run", str(STUDY), "--run-dir", str(run_dir),
         "--num-cpus", "2", *small],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600, start_new_session=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with (run_dir / "trials.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert sorted(t["row"] for t in trials) == sorted(
        f"kappa={k},fraction={f}" for k in ("iou", "ssim") for f in (0.25, 0.5)
    )
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert len(list(cache.rglob("handoff.pt"))) == 1  # one MAE stage for the four rows
    assert main(["report", str(run_dir), "--format", "md", "--out", str(tmp_path / "rep")]) == 0
    text = "\n".join(p.read_text() for p in (tmp_path / "rep").rglob("*.md"))
    header = next(line for line in text.splitlines() if "test/acc 25 %" in line)
    assert "test/acc 50 %" in header and "test/acc 25 % p" in header
    rows = [line for line in text.splitlines() if line.startswith("| kappa=")]
    assert [r.split("|")[1].strip() for r in rows] == ["kappa=iou", "kappa=ssim"]
    assert "Table 14" in text and "One column per labelled fraction (25 %, 50 %)" in text
