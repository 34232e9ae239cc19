"""``fer-study run studies/ssfer_components.yaml`` end to end at a reduced size, then its report.

Table 10's four rows at one label fraction, one seed, one epoch of each stage, a small SynthFER
and a one-block ViT: the two rows without the EMA teacher run ``ssfer_finetune``, the two with it
run ``ssfer``; all four share one cached MAE stage on a separate label-free SynthFER draw."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_cli import (
    report_markdown,
    run_study,
    study_session_fixture,  # noqa: F401 (the module's Ray + cache)
)

ROWS = (
    '[{name: "baseline,fraction=0.5", set: {recipe: ssfer_finetune, '
    'stages.finetune.method.facemix.enabled: "false", trainer.semi.fraction: 0.5}}, '
    '{name: "facemix,fraction=0.5", set: {recipe: ssfer_finetune, trainer.semi.fraction: 0.5}}, '
    '{name: "ema_teacher,fraction=0.5", set: {recipe: ssfer, '
    'stages.finetune.method.facemix.enabled: "false", trainer.semi.fraction: 0.5}}, '
    '{name: "facemix+ema_teacher,fraction=0.5", set: {recipe: ssfer, trainer.semi.fraction: 0.5}}]'
)
SMALL = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=48",
         "data.n_val=16", "data.n_test=16", "data.img_size=32", "model.embed_dim=32",
         "model.depth=1", "model.num_heads=2", "stages.pretrain.method.decoder.depth=1",
         "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2",
         f"ablation.rows={ROWS}", "ablation.baseline=baseline,fraction=0.5"]  # fmt: skip


@pytest.mark.slow
def test_ssfer_components_runs_the_four_rows_and_reports_them(tmp_path: Path, study_session: Path):
    run_dir, trials = run_study("ssfer_components", tmp_path, SMALL)
    assert sorted(t["row"] for t in trials) == sorted(
        f"{r},fraction=0.5" for r in ("baseline", "facemix", "ema_teacher", "facemix+ema_teacher")
    )
    assert all(t["status"] == "TERMINATED" for t in trials), trials
    # one MAE stage for the four rows; the two three-stage rows cache their fine-tuning stage
    assert len(list((study_session / "stages").rglob("handoff.pt"))) == 3
    text = report_markdown(run_dir, tmp_path)
    assert "Table 10" in text
    for row in ("baseline", "facemix", "ema_teacher", "facemix+ema_teacher"):
        assert f"| {row}" in text, row
