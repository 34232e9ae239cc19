"""The shipped studies' ablation tables end to end at a reduced size: ``fer-study run`` then
``fer-study report`` (in this process, ``study_cli``), one Ray session and stage cache for all.

Every study runs one seed, one epoch per stage and a small SynthFER; each test checks the rows
its table needs, what the stage cache holds after its run (hand-offs written by this run) and
that the report shows the rows beside the paper's numbers:

- ``ssl_protocols``: 24 rows (five self-supervised baselines and SimFLE x linear / semi 1 % / semi 10 % / fine-tune) on one seed, one epoch per stage, a small SynthFER; the four rows of a method share one cached pre-training (SimFLE's with FaceMAE at the rows' own synth size). The report's table holds every row, the paper's Table 1 numbers beside them and the CE-from-scratch reference row (its own run).
- ``simfle_components``: Table 3's four rows (GFL only, semantic + direct, random + distil, SimFLE) on one seed, one pre-training step and one probe epoch each, on 32 SynthFER images; every row pre-trains its own backbone. The report's table holds every row and the paper's Table 3 numbers beside them.
- ``mimic_components``: Six rows (supervised / MIM pre-training x CE / SCL / MSCL) on one seed, one epoch, a small SynthFER; the three MIM rows share one cached MAE stage. The report's table holds every row and the paper's Table II numbers beside them.
- ``xl_components``: 003 Table IV's eight rows (MSR / CLFM / CLBS on and off) on one seed, one epoch, a small SynthFER: every module on and each one off train through the real trainer and Ray Tune; each row reports exactly its modules' losses; the report's table holds every row and the paper's numbers.
- ``ssfer_components``: Table 10's four rows at one label fraction, one seed, one epoch of each stage, a small SynthFER and a one-block ViT: the two rows without the EMA teacher run ``ssfer_finetune``, the two with it run ``ssfer``; all four share one cached MAE stage on a separate label-free SynthFER draw.
- ``ssfer_kappa``: Two kappas x two label fractions on one seed, one epoch of each of the three stages (recipe ssfer), a small SynthFER and a one-block ViT; the four rows share one cached MAE stage (the fraction is not part of its key) and each caches its fine-tuning stage. The report lays the study out like 004 Table 14: one row per kappa, one column per fraction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from study_cli import (
    report_markdown,
    run_study,
    study_session_fixture,  # noqa: F401 (the module's Ray + cache)
)

pytestmark = pytest.mark.slow


def _handoffs(cache: Path) -> set[Path]:
    return set(cache.rglob("handoff.pt"))


def _new(cache: Path, before: set[Path]) -> list[Path]:
    """The stage hand-offs written since ``before`` (this test's run; the cache is shared)."""
    return sorted(_handoffs(cache) - before)


# --------------------------------------------------------------------------- ssl_protocols
SMALL_SSL_PROTOCOLS = ["seeds=[0]", "trainer.epochs=1", "stages.pretrain.trainer.epochs=1",
         "stages.pretrain.trainer.batch_size=32", "stages.pretrain.method.proj.hidden_dim=32",
         "data.n_train=32", "data.n_val=32", "data.n_test=32", "data.img_size=32"]  # fmt: skip
METHODS_SSL_PROTOCOLS = ["byol", "simsiam", "moco", "mocov2", "simclr", "simfle"]
ROWS_SSL_PROTOCOLS = [
    f"{m}-{p}" for m in METHODS_SSL_PROTOCOLS for p in ("linear", "semi1", "semi10", "finetune")
]


def test_ssl_protocols_runs_and_reports_table_1(tmp_path: Path, study_session: Path):
    before = _handoffs(study_session)
    run_dir, trials = run_study("ssl_protocols", tmp_path, SMALL_SSL_PROTOCOLS)
    assert sorted(t["row"] for t in trials) == sorted(ROWS_SSL_PROTOCOLS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one pre-training per method (its four rows share it); the fine-tuning rows also cache
    # their linear stage (backbone + head)
    handoffs = [torch.load(p, weights_only=True) for p in _new(study_session, before)]
    assert sorted(sorted(h) for h in handoffs) == [["backbone"]] * 6 + [["backbone", "head"]] * 6
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS_SSL_PROTOCOLS:
        assert row in text
    assert "41.64" in text and "45.11" in text  # the paper's AN-8 numbers beside the rows
    assert "44.01" in text and "52.61" in text  # SimFLE's own row of Table 1
    assert "CE from scratch, all labels" in text  # report.reference: its own run, one row
    ref = (run_dir / "reference" / "trials.csv").read_text().splitlines()
    assert len(ref) == 2 and "TERMINATED" in ref[1], ref


# --------------------------------------------------------------------------- simfle_components
SMALL_SIMFLE_COMPONENTS = ["seeds=[0]", "trainer.epochs=1", "stages.pretrain.trainer.epochs=1",
         "stages.pretrain.trainer.batch_size=32", "stages.pretrain.method.proj.hidden_dim=32",
         "stages.pretrain.method.pred.hidden_dim=32", "stages.pretrain.method.distil.hidden_dim=32",
         "stages.pretrain.method.decoder.depth=1", "stages.pretrain.method.decoder.dim=32",
         "stages.pretrain.method.decoder.heads=2", "data.n_train=32", "data.n_val=32",
         "data.n_test=32"]  # fmt: skip
ROWS_SIMFLE_COMPONENTS = ["gfl-only", "semantic-direct", "random-distil", "simfle"]


def test_simfle_components_runs_and_reports_table_3(tmp_path: Path, study_session: Path):
    before = _handoffs(study_session)
    run_dir, trials = run_study("simfle_components", tmp_path, SMALL_SIMFLE_COMPONENTS)
    assert sorted(t["row"] for t in trials) == sorted(ROWS_SIMFLE_COMPONENTS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one pre-training per row, each handing on its backbone only
    handoffs = [torch.load(p, weights_only=True) for p in _new(study_session, before)]
    assert sorted(sorted(h) for h in handoffs) == [["backbone"]] * 4
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS_SIMFLE_COMPONENTS:
        assert row in text
    assert "41.64" in text and "44.01" in text  # the paper's AffectNet-8 numbers beside the rows
    assert "CE from scratch, all labels" in text  # report.reference, a row of its own run


# --------------------------------------------------------------------------- mimic_components
SMALL_MIMIC_COMPONENTS = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=32", "data.n_train=96",
         "data.n_val=48", "data.n_test=48", "data.img_size=32"]  # fmt: skip
ROWS_MIMIC_COMPONENTS = [
    "supervised+ce",
    "supervised+scl",
    "supervised+mscl",
    "mim+ce",
    "mim+scl",
    "mim+mscl",
]


def test_mimic_components_runs_and_reports_table_ii(tmp_path: Path, study_session: Path):
    before = _handoffs(study_session)
    run_dir, trials = run_study("mimic_components", tmp_path, SMALL_MIMIC_COMPONENTS)
    assert sorted(t["row"] for t in trials) == sorted(ROWS_MIMIC_COMPONENTS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one MAE pre-training for the three MIM rows of the seed (cached hand-off)
    assert len(list(_new(study_session, before))) == 1
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS_MIMIC_COMPONENTS:
        assert row in text
    assert "89.02" in text and "87.33" in text  # the paper's RAF-DB numbers beside the rows


# --------------------------------------------------------------------------- xl_components
SMALL_XL_COMPONENTS = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=48",
         "data.n_val=16", "data.n_test=16", "data.img_size=32"]  # fmt: skip
ROWS_XL_COMPONENTS = [
    "baseline",
    "clbs",
    "clfm",
    "clfm+clbs",
    "msr",
    "msr+clbs",
    "msr+clfm",
    "msr+clfm+clbs",
]


def test_xl_components_runs_and_reports_table_iv(tmp_path: Path, study_session: Path):
    run_dir, rows = run_study("xl_components", tmp_path, SMALL_XL_COMPONENTS)
    trials = {t["row"]: t for t in rows}
    assert sorted(trials) == sorted(ROWS_XL_COMPONENTS)
    for row, t in trials.items():
        assert t["status"] == "TERMINATED", (row, t["error"])
        assert 0.0 <= float(t["best.test/acc"]) <= 1.0
        on = set(row.split("+")) - {"baseline"}
        for module, metric in (("clfm", "train/clfm"), ("clbs", "train/clbs"), ("msr", "msr/mu1")):
            assert bool(t.get(f"final.{metric}")) == (module in on), (row, metric)
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS_XL_COMPONENTS:
        assert row in text
    assert "92.21" in text and "85.78" in text  # the paper's RAF-DB numbers beside the rows


# --------------------------------------------------------------------------- ssfer_components
ROWS_SSFER_COMPONENTS = (
    '[{name: "baseline,fraction=0.5", set: {recipe: ssfer_finetune, '
    'stages.finetune.method.facemix.enabled: "false", trainer.semi.fraction: 0.5}}, '
    '{name: "facemix,fraction=0.5", set: {recipe: ssfer_finetune, trainer.semi.fraction: 0.5}}, '
    '{name: "ema_teacher,fraction=0.5", set: {recipe: ssfer, '
    'stages.finetune.method.facemix.enabled: "false", trainer.semi.fraction: 0.5}}, '
    '{name: "facemix+ema_teacher,fraction=0.5", set: {recipe: ssfer, trainer.semi.fraction: 0.5}}]'
)
SMALL_SSFER_COMPONENTS = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=48",
         "data.n_val=16", "data.n_test=16", "data.img_size=32", "model.embed_dim=32",
         "model.depth=1", "model.num_heads=2", "stages.pretrain.method.decoder.depth=1",
         "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2",
         f"ablation.rows={ROWS_SSFER_COMPONENTS}", "ablation.baseline=baseline,fraction=0.5"]  # fmt: skip


def test_ssfer_components_runs_the_four_rows_and_reports_them(tmp_path: Path, study_session: Path):
    before = _handoffs(study_session)
    run_dir, trials = run_study("ssfer_components", tmp_path, SMALL_SSFER_COMPONENTS)
    assert sorted(t["row"] for t in trials) == sorted(
        f"{r},fraction=0.5" for r in ("baseline", "facemix", "ema_teacher", "facemix+ema_teacher")
    )
    assert all(t["status"] == "TERMINATED" for t in trials), trials
    # one MAE stage for the four rows; the two three-stage rows cache their fine-tuning stage
    assert len(list(_new(study_session, before))) == 3
    text = report_markdown(run_dir, tmp_path)
    assert "Table 10" in text
    for row in ("baseline", "facemix", "ema_teacher", "facemix+ema_teacher"):
        assert f"| {row}" in text, row


# --------------------------------------------------------------------------- ssfer_kappa
SMALL_SSFER_KAPPA = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=64",
         "data.n_val=16", "data.n_test=16", "data.img_size=32", "model.embed_dim=32",
         "model.depth=1", "model.num_heads=2", "stages.pretrain.method.decoder.depth=1",
         "stages.pretrain.method.decoder.dim=32", "stages.pretrain.method.decoder.heads=2",
         "ablation.factors.kappa.values=[iou,ssim]",
         "ablation.factors.fraction.values=[0.25,0.5]",
         "ablation.baseline=kappa=iou,fraction=0.25"]  # fmt: skip


def test_ssfer_kappa_runs_and_reports_one_column_per_fraction(tmp_path: Path, study_session: Path):
    before = _handoffs(study_session)
    run_dir, trials = run_study("ssfer_kappa", tmp_path, SMALL_SSFER_KAPPA)
    assert sorted(t["row"] for t in trials) == sorted(
        f"kappa={k},fraction={f}" for k in ("iou", "ssim") for f in (0.25, 0.5)
    )
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert len(list(_new(study_session, before))) == 1 + 4  # one MAE stage, four fine-tunings
    text = report_markdown(run_dir, tmp_path)
    header = next(line for line in text.splitlines() if "test/acc 25 %" in line)
    assert "test/acc 50 %" in header and "test/acc 25 % p" in header
    rows = [line for line in text.splitlines() if line.startswith("| kappa=")]
    assert [r.split("|")[1].strip() for r in rows] == ["kappa=iou", "kappa=ssim"]
    assert "Table 14" in text and "One column per labelled fraction (25 %, 50 %)" in text
