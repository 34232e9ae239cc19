"""One self-contained ``index.html`` per report, readable offline: plots inlined as base64
``data:`` URIs (one ``<img>`` per plot), every table, the study file, the resolved base config,
the provenance, and the commands that open TensorBoard and optuna-dashboard. No scripts, no
external stylesheets or fonts.
"""

from __future__ import annotations

import base64
import html
import re

import yaml

from fer_core.report.assemble import GLOSSARY, Report, base_config_text, commands
from fer_core.report.collect import report_metrics, titled
from fer_core.report.render import to_html

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       background: #fff; padding: 0 1em; }
h1 { border-bottom: 2px solid #345; }
h2 { margin-top: 1.6em; color: #345; }
table.report-table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
table.report-table th, table.report-table td { border: 1px solid #bbb; padding: 3px 7px;
       text-align: left; white-space: nowrap; }
table.report-table th { background: #e8eef5; }
table.report-table tr:nth-child(even) td { background: #f6f8fa; }
p.note { font-size: 0.85em; color: #555; margin: 0.2em 0 1em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f4f4f4; padding: 0.8em; font-size: 0.85em; white-space: pre-wrap;
      overflow-wrap: anywhere; }
div[id^="table-"] { max-width: 100%; overflow-x: auto; }  /* a wide table scrolls, not the page */
#table-provenance td { white-space: normal; overflow-wrap: anywhere; max-width: 60em; }
dl.glossary { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em;
              font-size: 0.9em; }
dl.glossary dt { font-weight: bold; font-family: monospace; } dl.glossary dd { margin: 0; }
ul.notes li { margin: 0.2em 0; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


def to_html_report(report: Report) -> str:
    """The report as one HTML document string."""
    s = report.study
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(report.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(report.title)}</h1>",
    ]
    if s.get("description"):
        parts.append(f"<p>{esc(str(s['description']).strip())}</p>")
    meta = []
    if s.get("paper"):
        meta.append(f"<li>paper: {esc(str(s['paper']))}</li>")
    meta.append(
        f"<li>metric: {esc(str(s.get('metric', '?')))} ({esc(str(s.get('mode', 'max')))}); "
        f"shown: {esc(', '.join(report_metrics(s)))}</li>"
    )
    parts.append(f"<ul>{''.join(meta)}</ul>")
    terms = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in GLOSSARY)
    parts.append(f'<h2 id="glossary">Glossary</h2><dl class="glossary">{terms}</dl>')
    if report.notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in report.notes)
        parts.append(f'<h2 id="notes">Notes</h2><ul class="notes">{items}</ul>')
    for table in report.tables[:-1]:
        parts.append(f"<h2>{esc(table.title)}</h2>")
        parts.append(to_html(table, f"table-{_slug(table.name)}"))
    for plot in report.plots:
        data = base64.b64encode(plot.png).decode("ascii")
        parts.append(
            f'<figure id="plot-{_slug(plot.name)}"><img alt="{esc(plot.caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(plot.caption)}</figcaption>'
            "</figure>"
        )
    for table in report.tables[-1:]:  # provenance last
        tid = f"table-{_slug(table.name)}"
        parts.append(f"<h2>{esc(table.title)}</h2>")
        parts.append(to_html(table, tid))
    parts.append('<h2 id="live">Live views</h2>')
    for run in report.runs:
        cmds = "\n".join(commands(run))
        parts.append(
            f"<p>{esc(run.label)}:</p><pre>{esc(cmds)}</pre>"
            if run.label
            else f"<pre>{esc(cmds)}</pre>"
        )
    for run in report.runs:
        study_text = run.study_text or yaml.safe_dump(run.study, sort_keys=False)
        parts.append(
            f"<h2>{esc(titled('Study file', run.label, f'{run.run_dir}/study.yaml'))}</h2>"
        )
        parts.append(f"<pre>{esc(study_text)}</pre>")
        parts.append(f"<h2>{esc(titled('Resolved base config', run.label))}</h2>")
        parts.append(f"<pre>{esc(base_config_text(run))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
