"""Search-study reports (TPE, CMA-ES, GP, GWO as in 004 Table 16, random): best configurations,
Optuna parameter importances (fANOVA, needs scikit-learn) and Optuna's own plots (optimisation
history, slice, contour, importances) drawn with ``optuna.visualization.matplotlib``, so the
report needs no plotly/CDN and stays self-contained.

The best-configurations table comes from ``trials.csv`` (mean ± std over seeds per
``config_id``); importances and plots come from the Optuna storage (one Optuna trial per
configuration, told the mean of its seeds: INTERFACES.md).
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Sequence

import matplotlib

# Agg (files only) unless the caller already chose a backend for pyplot (e.g. a notebook).
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from fer_core.report import stats  # noqa: E402
from fer_core.report.collect import DONE, RunData, metric_column, report_metrics, titled  # noqa: E402
from fer_core.report.plots import Plot, render  # noqa: E402
from fer_core.report.tables import Table, fmt_num, higher_is_better  # noqa: E402

TOP_K = 10


def best_trials_table(run: RunData, top_k: int = TOP_K, source: str = "best") -> Table:
    """Configurations ranked by the study metric's seed mean; every configuration keeps a row
    count in the notes, and unfinished ones are listed after the finished ones."""
    trials = run.trials
    study = run.study
    metric = str(study.get("metric") or "val/acc")
    shown = list(dict.fromkeys([metric, *report_metrics(study)]))
    params = [c for c in trials.columns if c.startswith("param.")]
    rows = []
    for cid, grp in trials.groupby("config_id", sort=False, dropna=False):
        done = grp[grp["status"] == DONE]
        rec: dict = {"config": str(cid), "seeds": f"{len(done)}/{len(grp)}"}
        if "optuna_trial" in grp and grp["optuna_trial"].notna().any():
            rec["optuna trial"] = str(int(float(grp["optuna_trial"].dropna().iloc[0])))
        for p in params:
            val = grp[p].dropna()
            rec[p.removeprefix("param.")] = _short(val.iloc[0]) if len(val) else ""
        for m in shown:
            col = metric_column(trials, m, source)
            vals = done[col].dropna().astype(float).tolist() if col else []
            s = stats.summarize(vals)
            rec[f"_{m}"] = s.mean
            rec[m] = (
                f"n/a ({_state(grp)})"
                if s.n == 0
                else fmt_num(s.mean, m) + ("" if math.isnan(s.std) else f" ± {fmt_num(s.std, m)}")
            )
        rows.append(rec)
    df = pd.DataFrame(rows)
    notes = [
        f"Ranked by {metric} (mean over seeds, {'higher' if higher_is_better(metric, study) else 'lower'}"
        f" is better); {len(df)} configurations, top {min(top_k, len(df))} shown."
    ]
    if df.empty:
        df = pd.DataFrame({"config": [], "seeds": []})
    else:
        asc = not higher_is_better(metric, study)
        df = df.sort_values(f"_{metric}", ascending=asc, na_position="last").head(top_k)
        df = df.drop(columns=[c for c in df.columns if c.startswith("_")]).reset_index(drop=True)
        df.insert(0, "rank", [str(i + 1) for i in range(len(df))])
    bold = pd.DataFrame(False, index=df.index, columns=df.columns)
    if len(df):
        bold.iloc[0] = True
    return Table(
        f"best_trials_{run.profile}", titled("Best configurations", run.label), df, bold, notes
    )


def _state(grp: pd.DataFrame) -> str:
    statuses = set(grp["status"])
    return next((s.lower() for s in ("RUNNING", "ERROR", "PRUNED") if s in statuses), "pending")


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def load_optuna_study(run: RunData):
    """The run's Optuna study, or None (with the reason in ``run.notes``)."""
    import optuna

    url = run.storage_url
    if url is None:
        run.notes.append(
            "no Optuna storage (optuna.db) found: importances and Optuna plots skipped"
        )
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from fer_core.tune.storage import mask_text, mask_url, open_storage

    try:  # open_storage: a server URL's masked password comes from PGPASSWORD / ~/.pgpass
        return optuna.load_study(study_name=run.optuna_study_name, storage=open_storage(url))
    except Exception as exc:  # a missing study or an unreadable storage must not kill a report
        run.notes.append(
            f"Optuna study {run.optuna_study_name!r} not readable at {mask_url(url)}: "
            + mask_text(str(exc), url)
        )
        return None


def importances_table(run: RunData, study) -> Table | None:
    """fANOVA importances (``optuna.importance.FanovaImportanceEvaluator(seed=0)``)."""
    import optuna

    if study is None:
        return None
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        run.notes.append(
            f"parameter importances need >= 2 complete Optuna trials ({len(complete)})"
        )
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
    except Exception as exc:  # e.g. a single-valued parameter; the report goes on without it
        run.notes.append(f"fANOVA importances failed: {exc}")
        return None
    df = pd.DataFrame(
        {"parameter": list(imp), "importance (fANOVA)": [f"{v:.3f}" for v in imp.values()]}
    )
    bold = pd.DataFrame(False, index=df.index, columns=df.columns)
    return Table(
        f"importances_{run.profile}",
        titled("Parameter importances", run.label),
        df,
        bold,
        [f"fANOVA over {len(complete)} complete Optuna trials (values sum to 1)."],
    )


def optuna_plots(run: RunData, study) -> list[Plot]:
    """Optimisation history, slice, contour (>= 2 parameters) and importances, as PNG + SVG."""
    import optuna
    import optuna.visualization.matplotlib as ovm

    if study is None:
        return []
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        run.notes.append("no complete Optuna trial yet: Optuna plots skipped")
        return []
    n_params = len({p for t in complete for p in t.params})
    jobs = [("history", "Optimisation history", lambda: ovm.plot_optimization_history(study))]
    if n_params:
        jobs.append(("slice", "Slice plot", lambda: ovm.plot_slice(study)))
    if n_params >= 2 and len(complete) >= 2:
        jobs.append(("contour", "Contour plot", lambda: ovm.plot_contour(study)))
    if n_params and len(complete) >= 2:
        ev = optuna.importance.FanovaImportanceEvaluator(seed=0)
        jobs.append(
            (
                "importances",
                "Parameter importances (fANOVA)",
                lambda: ovm.plot_param_importances(study, evaluator=ev),
            )
        )
    plots = []
    for name, caption, fn in jobs:
        # Optuna's plots call plt.style.use("ggplot"): keep that out of the global rcParams.
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("optuna").setLevel(logging.ERROR)
            try:
                ax = fn()
            except Exception as exc:  # one failing Optuna plot must not lose the others
                run.notes.append(f"Optuna {name} plot failed: {exc}")
                continue
            fig = ax.flat[0].figure if hasattr(ax, "flat") else ax.figure
            plots.append(render(fig, f"{name}_{run.profile}", titled(caption, run.label)))
            plt.close(fig)
    return plots


def reference_table(study: dict) -> Table | None:
    """The paper's numbers as printed (``reference.values``: rows = keys, columns = datasets) and
    its stated optimum, for search studies whose configurations do not map onto them."""
    ref = study.get("reference") or {}
    values = {str(d): v for d, v in (ref.get("values") or {}).items() if v is not None}
    opt = ref.get("optimum") if isinstance(ref.get("optimum"), dict) else {}
    if not values and not opt.get("value"):
        return None
    tables = {d: v if isinstance(v, dict) else {"(value)": v} for d, v in values.items()}
    keys = list(dict.fromkeys(str(k) for t in tables.values() for k in t))
    data = {"": keys} | {
        d: [
            next((f"{float(x):.2f}" for k, x in t.items() if str(k) == key and x is not None), "–")
            for key in keys
        ]
        for d, t in tables.items()
    }
    df = pd.DataFrame(data)
    notes = [
        f"{ref.get('source') or 'paper'} ({ref.get('metric') or 'metric'}), percent as printed."
    ]
    if opt.get("value") is not None:
        value = opt["value"]
        text = (
            ", ".join(f"{k} = {v}" for k, v in value.items()) if isinstance(value, dict) else value
        )
        notes.append(f"Paper's optimum: {text}" + (f" ({opt['note']})" if opt.get("note") else ""))
    if ref.get("note"):
        notes.append(f"paper note: {ref['note']}")
    bold = pd.DataFrame(False, index=df.index, columns=df.columns)
    return Table("paper", "The paper's numbers", df, bold, notes)


def search_sections(
    runs: Sequence[RunData], source: str = "best"
) -> tuple[list[Table], list[Plot]]:
    """All tables and plots of a search report, run by run."""
    tables: list[Table] = []
    plots: list[Plot] = []
    paper = reference_table(runs[0].study)
    if paper is not None:
        tables.append(paper)
    for run in runs:
        tables.append(best_trials_table(run, source=source))
        study = load_optuna_study(run)
        imp = importances_table(run, study)
        if imp is not None:
            tables.append(imp)
        plots.extend(optuna_plots(run, study))
    return tables, plots
