"""Sensitivity plots (PNG + SVG) and search-study sections (best trials, fANOVA, Optuna plots)."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from report_fixtures import SENS_STUDY, sensitivity_rows, write_search_run

from fer_core.report import assemble, load_runs
from fer_core.report.cells import cell_stats
from fer_core.report.plots import (
    crossed_bars,
    inside_axes,
    is_log_scaled,
    place_clear_of_bars,
    sensitivity_figure,
)


def test_log_axis_only_for_log_scaled_knobs():
    study = {"space": {"a": {"loguniform": [1e-4, 1e-1]}, "b": {"grid": [1, 1000]}}}
    assert is_log_scaled(study, "a", [1e-4, 1e-2])
    assert not is_log_scaled(study, "b", [1, 1000])
    assert is_log_scaled({"space": "search_spaces/x.yaml#a"}, "a", [1e-4, 1e-1])
    assert not is_log_scaled({}, "a", ["gap", "token"])


def test_sensitivity_plot_has_lines_paper_and_best(tmp_path, make_run):
    a = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows())
    b = make_run(tmp_path / "runs", SENS_STUDY, "paper", "rafdb", sensitivity_rows(0.1))
    report = assemble(load_runs([a, b]))
    (plot,) = report.plots
    assert plot.png.startswith(b"\x89PNG") and len(plot.png) > 5000
    svg = plot.svg.decode()
    for text in (
        "ours: synthfer",
        "ours: rafdb",
        "paper: rafdb",
        "paper's optimum 0.001",
        "best 79.90",
        "best 89.90",
        "test/acc (%)",
    ):
        assert text in svg, text


def test_categorical_sensitivity(tmp_path, make_run):
    study = {
        **SENS_STUDY,
        "space": {"method.proj.head": {"choice": ["none", "linear", "dense"]}},
        "reference": {"metric": "test/acc", "values": {"rafdb": {"none": 87.68, "dense": 89.02}}},
        "report": {"kind": "sensitivity", "x": "method.proj.head", "metrics": ["test/acc"]},
    }
    rows = [
        {
            "config_id": i,
            "seed": 0,
            "status": "TERMINATED",
            "param.method.proj.head": h,
            "best.test/acc": 0.8 + 0.01 * i,
        }
        for i, h in enumerate(["none", "linear"])
    ]
    report = assemble(load_runs([make_run(tmp_path / "runs", study, "paper", "rafdb", rows)]))
    table = next(t for t in report.tables if t.name == "sensitivity")
    assert list(table.df["method.proj.head"]) == ["none", "linear", "dense"]
    assert table.df["test/acc"][2] == "n/a (pending)"
    assert "dense" in report.plots[0].svg.decode()


def test_search_report(tmp_path):
    run = write_search_run(tmp_path / "runs")
    report = assemble(load_runs([run]))
    names = [t.name for t in report.tables]
    assert names == ["runs", "best_trials_synth", "importances_synth", "provenance"]
    best = report.tables[1].df
    means = [float(v.split(" ± ")[0]) for v in best["val/acc"]]
    assert means == sorted(means, reverse=True) and list(best["rank"])[0] == "1"
    imp = report.tables[2].df
    assert set(imp["parameter"]) == {"optim.lr", "method.uniform.tau"}
    assert abs(sum(float(v) for v in imp["importance (fANOVA)"]) - 1.0) < 0.01
    assert {p.name for p in report.plots} == {
        "history_synth",
        "slice_synth",
        "contour_synth",
        "importances_synth",
    }


def test_search_without_storage_still_reports(tmp_path):
    run = write_search_run(tmp_path / "runs", n_configs=3)
    (run / "optuna.db").unlink()
    report = assemble(load_runs([run]))
    assert report.plots == []
    assert any("no Optuna storage" in n for n in report.notes)
    assert len(report.tables[1].df) == 3


def test_labels_clear_of_error_bars_and_readable_legend(tmp_path, make_run):
    a = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows())
    b = make_run(tmp_path / "runs", SENS_STUDY, "paper", "rafdb", sensitivity_rows(0.1))
    report = assemble(load_runs([a, b]))
    fig, caption = sensitivity_figure(report.runs, cell_stats(report.runs, "sensitivity"))
    assert "n = 2 seeds per cell" in caption and "Welch" in caption
    (ax,) = fig.axes
    labels = [t for t in ax.texts if t.get_text().startswith("best")]
    assert len(labels) == 2
    for t in labels:
        assert not crossed_bars(ax, t), t.get_text()
        assert inside_axes(ax, t), t.get_text()
        assert t.get_fontsize() >= 9
    (legend,) = fig.legends  # one legend for the figure, below the axes: it covers no data
    assert ax.get_legend() is None
    assert all(t.get_fontsize() >= 9 for t in legend.get_texts())
    box, frame = legend.get_window_extent(), ax.get_window_extent()
    assert box.y1 <= frame.y0, (box, frame)  # under the axes, not over them
    texts = [t.get_text() for t in legend.get_texts()]
    assert "ours: synthfer" in texts and "ours: rafdb" in texts
    assert any(s.startswith("paper: rafdb") for s in texts), texts


def test_label_moves_below_when_a_bar_crosses_above():
    fig = Figure(figsize=(3, 3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.errorbar([0.0, 0.05, 1.0], [50.0, 60.0, 40.0], yerr=[1.0, 9.0, 1.0], marker="o")
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(30, 80)
    fig.draw_without_rendering()
    # the best at x = 0 sits under a neighbour's tall bar: above it would cross, below it does not
    ann = place_clear_of_bars(ax, "best 50.00", 0.0, 50.0, 1.0, "C0")
    assert ann.get_va() == "top" and not crossed_bars(ax, ann)
    free = place_clear_of_bars(ax, "best 40.00", 1.0, 40.0, 1.0, "C0")
    assert free.get_va() == "bottom" and not crossed_bars(ax, free)


def test_label_at_the_right_edge_stays_inside_the_axes():
    fig = Figure(figsize=(3, 3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.errorbar([0.0, 0.5, 1.0], [40.0, 45.0, 50.0], yerr=[1.0, 1.0, 1.0], marker="o")
    ax.set_xlim(-0.02, 1.02)  # the right-most point sits at the axes' edge
    ax.set_ylim(30, 60)
    fig.draw_without_rendering()
    ann = place_clear_of_bars(ax, "best 50.00", 1.0, 50.0, 1.0, "C0")
    assert inside_axes(ax, ann) and not crossed_bars(ax, ann)
    assert ann.get_ha() == "right" and ann.get_va() == "bottom"
    left = place_clear_of_bars(ax, "best 40.00", 0.0, 40.0, 1.0, "C0")
    assert inside_axes(ax, left) and left.get_ha() == "left"
    middle = place_clear_of_bars(ax, "best 45.00", 0.5, 45.0, 1.0, "C0")
    assert middle.get_ha() == "center" and middle.get_va() == "bottom"
