"""``fer-study run studies/ssfer_kappa.yaml`` end to end at a reduced size, then its report.

Two kappas x two label fractions on one seed, one epoch of each of the three stages (recipe
ssfer), a small SynthFER and a one-block ViT; the four rows share one cached MAE stage (the
fraction is not part of its key) and each caches its fine-tuning stage. The report lays the study
out like 004 Table 14: one row per kappa, one column per fraction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from study_cli import (
    report_markdown,
    run_study,
    study_session_fixture,  # noqa: F401 (the module's Ray + cache)
)

SMALL = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=64",
         "data.n_val=16", "data.n_test=16", "data.img_size=32", "model.embed_dim=32",
         "model.depth=1", "model.num_heads=2", "stages.pretrain.method.decoder.depth=1",
         "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2",
         "ablation.factors.kappa.values=[iou,ssim]",
         "ablation.factors.fraction.values=[0.25,0.5]",
         "ablation.baseline=kappa=iou,fraction=0.25"]  # fmt: skip


@pytest.mark.slow
def test_ssfer_kappa_runs_and_reports_one_column_per_fraction(tmp_path: Path, study_session: Path):
    run_dir, trials = run_study("ssfer_kappa", tmp_path, SMALL)
    cache = study_session
    assert sorted(t["row"] for t in trials) == sorted(
        f"kappa={k},fraction={f}" for k in ("iou", "ssim") for f in (0.25, 0.5)
    )
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert len(list(cache.rglob("handoff.pt"))) == 1 + 4  # one MAE stage, four fine-tunings
    text = report_markdown(run_dir, tmp_path)
    header = next(line for line in text.splitlines() if "test/acc 25 %" in line)
    assert "test/acc 50 %" in header and "test/acc 25 % p" in header
    rows = [line for line in text.splitlines() if line.startswith("| kappa=")]
    assert [r.split("|")[1].strip() for r in rows] == ["kappa=iou", "kappa=ssim"]
    assert "Table 14" in text and "One column per labelled fraction (25 %, 50 %)" in text
