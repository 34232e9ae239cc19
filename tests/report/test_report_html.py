"""The self-contained index.html, opened in headless Chromium (Debian's ``chromium``).

Skips with a reason when Chromium is missing, except under CI=true, where it fails.
"""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser

import pytest
from report_fixtures import SENS_STUDY, sensitivity_rows

from fer_core.report import assemble, build_report, load_runs


def _run_chromium(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


class _DomCounter(HTMLParser):
    """Counts ``<tr>`` per table id and collects ``<img src>``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self.imgs: list[str] = []
        self._table: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("data-table")
            self.rows[self._table] = 0
        elif tag == "tr" and self._table:
            self.rows[self._table] += 1
        elif tag == "img":
            self.imgs.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def test_html_is_self_contained(tmp_path, make_run):
    run = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows())
    (run / "trials").mkdir()  # the trials' logs, as a run has them
    out = build_report([run], formats="html", out_dir=tmp_path / "rep")
    page = (out / "index.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("<img") == 1 and "data:image/png;base64," in page
    assert "tensorboard --logdir" in page and "fer-study dashboard" in page
    assert "method.uniform.tau" in page and "Resolved base config" in page


@pytest.mark.browser
@pytest.mark.slow
def test_html_in_headless_chromium(tmp_path, make_run, chromium):
    a = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows())
    b = make_run(tmp_path / "runs", SENS_STUDY, "paper", "rafdb", sensitivity_rows(0.1))
    report = assemble(load_runs([a, b]))
    out = build_report([a, b], formats="html", out_dir=tmp_path / "rep")
    url = (out / "index.html").resolve().as_uri()

    shot = tmp_path / "shot.png"
    res = _run_chromium(chromium(f"--screenshot={shot}", "--window-size=1280,1600", url))
    assert shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100, "screenshot is blank"
    assert len(img.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20

    dom = _run_chromium(chromium("--dump-dom", url)).stdout
    assert "</html>" in dom
    counter = _DomCounter()
    counter.feed(dom)
    for table in report.tables:
        rows = counter.rows.get(table.name)
        assert rows == len(table.df) + 1, (table.name, counter.rows)  # + the header row
        for cell in table.df.iloc[:, 0]:
            assert str(cell) in dom
    assert len(counter.imgs) == len(report.plots) == 1
    assert all(src.startswith("data:image/png;base64,") for src in counter.imgs)


def _page_width_probe(page: str) -> str:
    """The page plus a script that writes its scroll and viewport widths into the DOM."""
    probe = (
        "<script>document.body.setAttribute('data-widths', "
        "document.documentElement.scrollWidth + ' ' + window.innerWidth);</script>"
    )
    return page.replace("</body>", probe + "</body>")


@pytest.mark.browser
@pytest.mark.slow
def test_no_sideways_scroll_at_1024_px(tmp_path, make_run, chromium):
    """At 1,024 px the page never scrolls sideways: the provenance's one-line JSON wraps and wide
    tables scroll inside their own box."""
    manifest = {
        "git_commit": "0123456789abcdef" * 4,
        "command": "fer-study run studies/sens_demo.yaml "
        + " ".join(f"-o k{i}=v{i}" for i in range(40)),
        "resources": [{"cpu": 1, "gpu": 0.25, "custom": {f"node{i}": 1 for i in range(30)}}],
    }
    run = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows(), manifest)
    out = build_report([run], formats="html", out_dir=tmp_path / "rep")
    probe = tmp_path / "probe.html"
    probe.write_text(_page_width_probe((out / "index.html").read_text()), encoding="utf-8")
    dom = _run_chromium(chromium("--window-size=1024,900", "--dump-dom", probe.resolve().as_uri()))
    widths = dom.stdout.split('data-widths="', 1)[1].split('"', 1)[0]
    scroll, inner = map(int, widths.split())
    assert inner == 1024, widths
    assert scroll <= inner, f"the page scrolls sideways at 1024 px: scrollWidth {scroll}"
