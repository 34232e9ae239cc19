"""Render a :class:`~fer_core.report.tables.Table` as Markdown, LaTeX (booktabs) or HTML.

Display strings use Unicode (``±``, ``↑``, ``↓``, ``✓``, ``–``); LaTeX gets them as math/macros
(``$\\pm$``, ``$\\uparrow$``, ``\\checkmark`` from amssymb) after escaping LaTeX's special
characters, and is produced by pandas' ``Styler.to_latex`` (booktabs rules, ``table``
environment, caption and label), ready to paste into a paper.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from fer_core.report.tables import Table

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_UNICODE = {
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "✓": r"\checkmark",
    "–": "--",
    "≥": r"$\geq$",
    "τ": r"$\tau$",
    "λ": r"$\lambda$",
    "<": r"$<$",
    ">": r"$>$",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in [*_LATEX_SPECIAL, *_LATEX_UNICODE]))


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the report's Unicode symbols to LaTeX."""
    return _LATEX_RE.sub(lambda m: {**_LATEX_SPECIAL, **_LATEX_UNICODE}[m.group(0)], str(text))


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured pipe table; bold cells as ``**text**``; notes below as a paragraph."""
    df = table.df
    esc = [c.replace("|", r"\|") for c in df.columns]
    lines = ["| " + " | ".join(esc) + " |", "|" + "|".join("---" for _ in esc) + "|"]
    for i in range(len(df)):
        cells = []
        for col in df.columns:
            text = str(df[col].iloc[i]).replace("|", r"\|")
            cells.append(f"**{text}**" if table.bold[col].iloc[i] and text else text)
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    if table.notes:
        out += "\n" + "\n".join(table.notes) + "\n"
    return out


def to_latex(table: Table, caption: str | None = None, label: str | None = None) -> str:
    """``Styler.to_latex`` with booktabs rules inside a ``table`` environment; the table's notes
    go under the tabular as a footnote-size paragraph.

    Needs ``\\usepackage{booktabs}`` and ``\\usepackage{amssymb}`` (for ``\\checkmark``).
    """
    df = table.df.copy()
    for i in range(len(df)):
        for j, col in enumerate(df.columns):
            text = latex_escape(df.iat[i, j])
            df.iat[i, j] = rf"\textbf{{{text}}}" if table.bold[col].iloc[i] and text else text
    align = [
        "c" if set(table.df[c]) <= {"✓", ""} and j else "r" if j else "l"
        for j, c in enumerate(table.df.columns)
    ]
    # a column title written as inline math ("$L_{uniform}$") passes through to LaTeX as is
    df.columns = [
        c if len(c) > 2 and c.startswith("$") and c.endswith("$") else latex_escape(c)
        for c in df.columns
    ]
    styler = df.style.hide(axis="index")
    tex = styler.to_latex(
        hrules=True,
        environment="table",
        position_float="centering",
        caption=latex_escape(caption or table.title),
        label=label or f"tab:{table.name}",
        column_format="".join(align),
    )
    if table.notes:
        notes = " ".join(latex_escape(n) for n in table.notes)
        tail = "\\end{table}"
        tex = (
            tex[: tex.rindex(tail)]
            + f"\\par\\smallskip{{\\footnotesize {notes}}}\n"
            + tex[tex.rindex(tail) :]
        )
    return tex


def to_html(table: Table, table_id: str) -> str:
    """An HTML table via ``Styler.to_html`` (cells HTML-escaped; bold cells get
    ``font-weight``), wrapped in ``<div id=table_id>``; the ``<table>`` carries
    ``data-table="<table.name>"``."""
    df = table.df

    def _bold(col: pd.Series) -> list[str]:
        return ["font-weight: bold" if b else "" for b in table.bold[col.name]]

    styler = df.style.hide(axis="index").format(escape="html").apply(_bold, axis=0)
    styler = styler.set_table_attributes(
        f'class="report-table" data-table="{html.escape(table.name)}"'
    )
    body = styler.to_html(table_uuid=re.sub(r"[^A-Za-z0-9_]", "_", table_id))
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    return f'<div id="{html.escape(table_id)}" class="table-block">{body}{notes}</div>'


def to_csv(table: Table) -> str:
    return table.df.to_csv(index=False)
