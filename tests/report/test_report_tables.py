"""Ablation and sensitivity tables from results built here with known values."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
from report_fixtures import (
    ABLATION_STUDY,
    ABLATION_VALUES,
    SENS_STUDY,
    SENS_X,
    ablation_rows,
    sensitivity_rows,
)
from scipy import stats as sps

from fer_core.report import assemble, load_run, load_runs
from fer_core.report.collect import run_of, series_name
from fer_core.report.design import ablation_rows as study_rows
from fer_core.report.render import to_latex, to_markdown
from fer_core.report.stats import holm
from fer_core.report.tables import Table


def _ablation(tmp_path, make_run, rows=None, study=ABLATION_STUDY):
    run = make_run(tmp_path / "runs", study, "synth", "synthfer", rows or ablation_rows())
    return assemble(load_runs([run]))


def test_ablation_stats_equal_scipy(tmp_path, make_run):
    report = _ablation(tmp_path, make_run)
    cells = report.stats
    for metric, idx in (("test/acc", 0), ("test/uar", 1)):
        col = cells[cells["metric"] == metric].set_index("key")
        base = ABLATION_VALUES["full"][idx]
        raw = {}
        for row, values in ABLATION_VALUES.items():
            vals = values[idx]
            assert col.loc[row, "mean"] == pytest.approx(np.mean(vals), abs=1e-12)
            assert col.loc[row, "std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
            assert col.loc[row, "delta"] == pytest.approx(np.mean(vals) - np.mean(base), abs=1e-12)
            if row != "full":
                raw[row] = sps.ttest_ind(vals, base, equal_var=False).pvalue
                assert col.loc[row, "p_welch"] == pytest.approx(raw[row])
        adjusted = dict(zip(raw, holm(list(raw.values()))))
        for row, p in adjusted.items():
            assert col.loc[row, "p_welch_holm"] == pytest.approx(p)
            assert bool(col.loc[row, "significant"]) == (p < 0.05)
        assert col["p_mwu"].isna().all()  # 3 seeds: no Mann-Whitney U
        assert np.isnan(col.loc["vanilla", "paper"])  # synthfer has no paper number


def test_ablation_display_markdown(tmp_path, make_run):
    report = _ablation(tmp_path, make_run)
    table = next(t for t in report.tables if t.name == "ablation")
    assert list(table.df["Row"]) == ["vanilla", "decoder", "full"]  # study order
    assert list(table.df["Decoder"]) == ["", "✓", "✓"]
    assert list(table.df["L_uniform"]) == ["", "", "✓"]
    md = to_markdown(table)
    lines = md.splitlines()
    assert lines[0] == (
        "| Row | Decoder | L_uniform | test/acc | test/acc p | test/uar | test/uar p | paper rafdb |"
    )
    acc, base = ABLATION_VALUES["vanilla"][0], ABLATION_VALUES["full"][0]
    mean, std = np.mean(acc) * 100, np.std(acc, ddof=1) * 100
    delta = (np.mean(base) - np.mean(acc)) * 100
    assert f"**{mean:.2f} ± {std:.2f} ↓ {delta:.2f}**" in lines[2]
    assert lines[2].endswith("| 90.35 ↓ 1.70 |")
    assert lines[4].startswith("| full | ✓ | ✓ | 88.10 ± 0.26 | – |")
    assert "Holm" in md and "Welch" in md


def test_paper_only_rows_are_listed_as_not_available(tmp_path, make_run):
    # 001 Table VII prints MoCo and SimMIM rows that fer-study cannot run: they appear last, with
    # the paper's numbers (and its difference to the baseline) and "not available" in ours
    study = copy.deepcopy(ABLATION_STUDY)
    study["reference"]["values"]["rafdb"] = {"MoCo": 88.59, **study["reference"]["values"]["rafdb"]}
    table = next(
        t for t in _ablation(tmp_path, make_run, study=study).tables if t.name == "ablation"
    )
    assert list(table.df["Row"]) == ["vanilla", "decoder", "full", "MoCo"]
    moco = table.df.iloc[3]
    assert moco["Decoder"] == "" and moco["test/acc"] == "not available"
    assert moco["paper rafdb"] == "88.59 ↓ 3.46"  # 88.59 - 92.05 (the paper's full row)
    assert any("not available: MoCo" in n for n in table.notes)


def test_ablation_latex_is_balanced_booktabs(tmp_path, make_run):
    report = _ablation(tmp_path, make_run)
    tex = to_latex(next(t for t in report.tables if t.name == "ablation"))
    begins = re.findall(r"\\begin\{(\w+)\}", tex)
    ends = re.findall(r"\\end\{(\w+)\}", tex)
    assert sorted(begins) == sorted(ends) == ["table", "tabular"]
    assert tex.index(r"\begin{tabular}") < tex.index(r"\end{tabular}") < tex.index(r"\end{table}")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    stripped = tex.replace(r"\{", "").replace(r"\}", "")
    depth = 0
    for ch in stripped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert r"L\_uniform" in tex and r"\checkmark" in tex and r"$\pm$" in tex
    assert r"$\downarrow$" in tex and "±" not in tex and "✓" not in tex
    body = tex[tex.index(r"\midrule") : tex.index(r"\bottomrule")]
    assert all(line.count("&") == 7 for line in body.splitlines()[1:] if line.strip())


def test_partial_study_marks_missing_cells(tmp_path, make_run):
    drop = {("decoder", 0), ("decoder", 1), ("decoder", 2), ("vanilla", 2)}
    rows = ablation_rows(drop=drop)
    rows[-1]["status"] = "RUNNING"  # full, seed 2 still running
    rows[-1].pop("best.test/acc")
    report = _ablation(tmp_path, make_run, rows=rows)
    table = next(t for t in report.tables if t.name == "ablation")
    assert list(table.df["Row"]) == ["vanilla", "decoder", "full"]  # nothing dropped
    col = list(table.df["test/acc"])
    assert col[1] == "n/a (pending)"
    assert col[0].endswith("(2/3 seeds)") and col[2].endswith("(2/3 seeds)")
    assert any("Partial study" in n for n in report.notes)
    runs = next(t for t in report.tables if t.name == "runs")
    assert runs.df.loc[0, "state"] == "partial" and runs.df.loc[0, "running"] == "1"


def test_rows_missing_from_trials_are_pending(tmp_path, make_run):
    rows = [r for r in ablation_rows() if r["row"] != "decoder"]
    report = _ablation(tmp_path, make_run, rows=rows)
    table = next(t for t in report.tables if t.name == "ablation")
    assert table.df.set_index("Row").loc["decoder", "test/uar"] == "n/a (pending)"


def test_mannwhitney_with_five_seeds(tmp_path, make_run):
    values = {
        "vanilla": ([0.80, 0.81, 0.82, 0.805, 0.815], [0.7] * 5),
        "full": ([0.86, 0.87, 0.865, 0.875, 0.88], [0.8] * 5),
    }
    study = {
        **ABLATION_STUDY,
        "seeds": 5,
        "ablation": {
            "baseline": "full",
            "rows": [
                {"name": "vanilla", "set": {"method.decoder.enabled": False}},
                {"name": "full", "set": {}},
            ],
        },
    }
    report = _ablation(tmp_path, make_run, rows=ablation_rows(values), study=study)
    cell = report.stats.set_index(["metric", "key"]).loc[("test/acc", "vanilla")]
    expected = sps.mannwhitneyu(values["vanilla"][0], values["full"][0], alternative="two-sided")
    assert cell["p_mwu"] == pytest.approx(expected.pvalue)
    assert cell["p_mwu_holm"] == pytest.approx(expected.pvalue)  # one comparison: Holm = raw
    table = next(t for t in report.tables if t.name == "ablation")
    assert "test/acc p(U)" in table.df.columns


def test_several_runs_combine(tmp_path, make_run):
    a = make_run(tmp_path / "runs", ABLATION_STUDY, "synth", "synthfer", ablation_rows())
    b = make_run(tmp_path / "runs", ABLATION_STUDY, "paper", "rafdb", ablation_rows())
    report = assemble(load_runs([a, b]))
    table = next(t for t in report.tables if t.name == "ablation")
    cols = list(table.df.columns)
    for title in ("synthfer test/acc", "rafdb test/acc", "synthfer test/uar", "rafdb test/uar"):
        assert title in cols
    # the paper's RAF-DB numbers sit beside our RAF-DB column; no extra "paper rafdb" column
    assert cols.index("rafdb test/acc paper") == cols.index("rafdb test/acc p") + 1
    assert "paper rafdb" not in cols
    assert set(report.stats["run"]) == {"synthfer", "rafdb"}
    paper = report.stats.set_index(["run", "metric", "key"])["paper"]
    assert paper[("rafdb", "test/acc", "decoder")] == 91.29


def test_factor_designs_expand_like_the_schema():
    study = {
        "ablation": {
            "factors": {
                "dec": "method.decoder.enabled",
                "k": {"path": "labels.k", "values": [2, 3, 4]},
            }
        }
    }
    rows = study_rows(study)
    assert [n for n, _ in rows] == ["baseline", "no_dec", "k=3", "k=4"]
    assert rows[1][1] == {"method.decoder.enabled": False, "labels.k": 2}
    study["ablation"]["design"] = "factorial"
    names = [n for n, _ in study_rows(study)]
    assert len(names) == 6 and names[0] == "dec=on,k=2"
    study["report"] = {"rows": ["dec=off,k=4", "dec=on,k=2"]}
    assert [n for n, _ in study_rows(study)] == ["dec=off,k=4", "dec=on,k=2"]


def test_sensitivity_table_and_best(tmp_path, make_run):
    run = make_run(tmp_path / "runs", SENS_STUDY, "paper", "rafdb", sensitivity_rows())
    report = assemble(load_runs([run]))
    table = next(t for t in report.tables if t.name == "sensitivity")
    assert list(table.df["method.uniform.tau"]) == ["0.001", "0.005", "0.01"]
    assert list(table.df["test/acc paper"]) == ["92.35", "91.78", "91.52"]
    # bold: the best (0.001) and what Welch + Holm cannot tell from it at 2 seeds
    vals = {x: [0.80 - 3.0 * x + 0.004 * s for s in (0, 1)] for x in SENS_X}
    raw = [sps.ttest_ind(vals[x], vals[0.001], equal_var=False).pvalue for x in SENS_X[1:]]
    tied = [p >= 0.05 for p in holm(raw)]
    assert list(table.bold["test/acc"]) == [True, *tied]
    assert tied == [True, False]  # 0.005 is within noise of the best at n = 2, 0.01 is not
    assert "n = 2 seeds per cell" in table.notes[0] and "Welch" in table.notes[0]
    assert any("report.baseline" in n for n in table.notes)  # no baseline: no test, and it says so
    assert "test/acc p" not in table.df.columns
    accs = [0.80 - 3.0 * 0.001 + 0.004 * s for s in (0, 1)]
    assert (
        table.df["test/acc"][0] == f"{np.mean(accs) * 100:.2f} ± {np.std(accs, ddof=1) * 100:.2f}"
    )
    final = assemble(load_runs([run]), source="final").stats
    assert final["mean"].iloc[0] == pytest.approx(np.mean(accs) - 0.01)


def test_bad_source_and_mixed_kinds(tmp_path, make_run):
    a = make_run(tmp_path / "runs", ABLATION_STUDY, "synth", "synthfer", ablation_rows())
    with pytest.raises(ValueError, match="source"):
        assemble(load_runs([a]), source="last")
    s = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows())
    with pytest.raises(ValueError, match="report.kind"):
        load_runs([a, s])


def test_latex_escapes_names():
    from fer_core.report.render import latex_escape

    assert latex_escape("a_b & 5% #1 ~x^2 {y} \\z") == (
        r"a\_b \& 5\% \#1 \textasciitilde{}x\textasciicircum{}2 \{y\} \textbackslash{}z"
    )
    assert latex_escape("88.1 ± 0.2 ↑ 0.1 ✓ p < 0.05") == (
        r"88.1 $\pm$ 0.2 $\uparrow$ 0.1 \checkmark p $<$ 0.05"
    )
    table = Table(
        "t",
        "T",
        pd.DataFrame({"$L_{u}$": ["✓"], "a_b": ["x"]}),
        pd.DataFrame({"$L_{u}$": [False], "a_b": [True]}),
    )
    tex = to_latex(table)
    assert "$L_{u}$ & a\\_b" in tex and r"\checkmark & \textbf{x}" in tex


GRID_2D = {"method.uniform.tau": {"grid": [0.001, 0.01]}, "sched.warmup_epochs": {"grid": [0, 1]}}


def grid_2d_rows(configs: list[tuple], seeds: tuple, acc) -> list[dict]:
    """Finished trials of a tau x warm-up grid: ``acc(tau, warmup, seed)`` as test/acc."""
    return [
        {
            "config_id": c,
            "seed": s,
            "status": "TERMINATED",
            "param.method.uniform.tau": t,
            "param.sched.warmup_epochs": w,
            "best.test/acc": acc(t, w, s),
        }
        for c, (t, w) in enumerate(configs)
        for s in seeds
    ]


def test_two_dimensional_grid_gives_one_series_per_other_value(tmp_path, make_run):
    study = {
        **SENS_STUDY,
        "space": GRID_2D,
        "reference": {
            "metric": "test/acc",
            "values": {"synthfer": 90.0},
            "optimum": {"value": {"method.uniform.tau": 0.01}, "note": "best"},
        },
    }
    # (0.01, 1) never ran
    rows = grid_2d_rows([(0.001, 0), (0.001, 1), (0.01, 0)], (0, 1),
                        lambda t, w, s: 0.5 + 0.1 * w + t + 0.001 * s)  # fmt: skip
    report = assemble(load_runs([make_run(tmp_path / "runs", study, "synth", "synthfer", rows)]))
    cells = report.stats.set_index(["run", "key"])
    assert cells.loc[("synthfer · warmup_epochs=1", 0.001), "mean"] == pytest.approx(0.6015)
    assert cells.loc[("synthfer · warmup_epochs=1", 0.01), "state"] == "pending"
    assert cells.loc[("synthfer · warmup_epochs=0", 0.01), "n"] == 2
    # a single paper number goes to the stated optimum (a dict entry for this knob)
    assert cells.loc[("synthfer · warmup_epochs=0", 0.01), "paper"] == 90.0
    table = next(t for t in report.tables if t.name == "sensitivity")
    assert [c for c in table.df.columns if c.endswith("paper")] == [
        "synthfer · warmup_epochs=0 paper"
    ]
    assert any("optimum" in n and "0.01" in n for n in table.notes)
    assert "paper's optimum 0.01" in report.plots[0].svg.decode()


def test_an_unlabelled_run_s_series_are_named_by_their_values_alone(tmp_path, make_run):
    """A curated report's one run has no label: its 2-D grid's lines read ``warmup_epochs=0``,
    not `` · warmup_epochs=0``, and each is still tested against ``report.baseline``."""
    study = {**SENS_STUDY, "space": GRID_2D, "report": {**SENS_STUDY["report"], "baseline": 0.001}}
    rows = grid_2d_rows([(0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)], (0, 1, 2),
                        lambda t, w, s: 0.5 + 0.1 * w + 10 * t + 0.003 * s)  # fmt: skip
    run = load_run(make_run(tmp_path / "runs", study, "synth", "synthfer", rows))
    assert run.label == ""
    report = assemble([run])
    assert sorted(set(report.stats["run"])) == ["warmup_epochs=0", "warmup_epochs=1"]
    tested = report.stats[report.stats["key"] == 0.01]
    assert tested["p_welch"].notna().all()  # run_of() finds the unlabelled run's baseline
    table = next(t for t in report.tables if t.name == "sensitivity")
    assert {"warmup_epochs=0", "warmup_epochs=1 p"} <= set(table.df.columns)
    svg = report.plots[0].svg.decode()
    assert "ours: warmup_epochs=0" in svg and "ours:  ·" not in svg


def test_series_names_and_their_runs():
    assert series_name("synthfer", "warmup_epochs=0") == "synthfer · warmup_epochs=0"
    assert series_name("", "warmup_epochs=0") == "warmup_epochs=0"
    assert series_name("synthfer", "") == "synthfer"
    assert run_of("warmup_epochs=0", [""]) == ""
    assert run_of("rafdb · lr=0.1", ["raf", "rafdb"]) == "rafdb"
    assert run_of("rafdb (paper) · w=1", ["rafdb (synth)", "rafdb (paper)"]) == "rafdb (paper)"


@pytest.mark.parametrize("design", ["one_factor", "factorial"])
def test_factor_expansion_matches_the_study_schema(design):
    schema = pytest.importorskip("fer_core.study.schema")  # re-exports Ablation
    abl = {
        "factors": {"dec": "method.decoder.enabled", "k": {"path": "labels.k", "values": [2, 3]}},
        "design": design,
    }
    theirs = schema.Ablation.model_validate(abl)
    assert study_rows({"ablation": abl}) == [(r.name, r.set) for r in theirs.expanded_rows()]


def test_errors_and_selection_on_test_are_reported(tmp_path, make_run):
    study = {**SENS_STUDY, "base": {"data.val_fraction": 0}}
    rows = sensitivity_rows()
    for r in rows[:2]:  # both seeds of tau = 0.001 failed
        r["status"] = "ERROR"
    report = assemble(load_runs([make_run(tmp_path / "runs", study, "synth", "synthfer", rows)]))
    table = next(t for t in report.tables if t.name == "sensitivity")
    assert table.df["test/acc"][0] == "n/a (error)"
    assert any("val_fraction = 0" in n and "test set" in n for n in report.notes)


def test_sensitivity_baseline_is_tested_with_welch_and_holm(tmp_path, make_run):
    study = copy.deepcopy(SENS_STUDY)
    study["report"]["baseline"] = 0.005
    run = make_run(tmp_path / "runs", study, "paper", "rafdb", sensitivity_rows(seeds=3))
    report = assemble(load_runs([run]))
    table = next(t for t in report.tables if t.name == "sensitivity")
    vals = {x: [0.80 - 3.0 * x + 0.004 * s for s in (0, 1, 2)] for x in SENS_X}
    raw = [sps.ttest_ind(vals[x], vals[0.005], equal_var=False).pvalue for x in (0.001, 0.01)]
    adj = holm(raw)
    cells = report.stats.set_index("key")
    assert cells.loc[0.001, "p_welch_holm"] == pytest.approx(adj[0])
    assert cells.loc[0.01, "p_welch_holm"] == pytest.approx(adj[1])
    assert np.isnan(cells.loc[0.005, "p_welch_holm"])  # the baseline itself
    assert cells.loc[0.001, "delta"] == pytest.approx(np.mean(vals[0.001]) - np.mean(vals[0.005]))
    assert list(table.df["test/acc p"])[1] == "–"
    assert table.df["test/acc"][0].endswith(f"↑ {abs(-3.0 * (0.001 - 0.005)) * 100:.2f}")
    assert any("report.baseline" in n and "Welch" in n for n in table.notes)
    assert "n = 3 seeds per cell" in table.notes[0]


def test_a_one_row_table_says_there_is_nothing_to_compare(tmp_path, make_run):
    """A seed-variance study (003 Table VIII: one configuration, many seeds) has one row: its
    notes say there is no baseline and no test, and its paper note promises no difference."""
    study = {**ABLATION_STUDY, "ablation": {"baseline": "full", "rows": [{"name": "full", "set": {}}]},
             "reference": {"source": "003 Table VIII", "metric": "test/acc",
                           "values": {"rafdb": {"full": 92.15}}}}  # fmt: skip
    rows = ablation_rows({"full": ABLATION_VALUES["full"]})
    table = next(
        t for t in _ablation(tmp_path, make_run, rows, study).tables if t.name == "ablation"
    )
    assert list(table.df["Row"]) == ["full"]
    assert "one row: no baseline" in table.notes[0] and "Welch" not in table.notes[0]
    assert not any("difference to the baseline" in n for n in table.notes), table.notes
    many = next(t for t in _ablation(tmp_path / "b", make_run).tables if t.name == "ablation")
    assert "Welch" in many.notes[0] and "difference to the baseline row" in many.notes[1]
