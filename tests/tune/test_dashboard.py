"""``fer-study dashboard``: optuna-dashboard on 127.0.0.1 serves the run's study."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest

from fer_core.tune.dashboard import main, storage_for
from fer_core.tune.runner import describe_study
from fer_core.tune.spec import StudySpec

PAPER = "001 Figs. 6-7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run_dir(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="dash-synth", storage=url, direction="maximize")
    for x in (0.1, 0.5, 0.9):
        t = study.ask()
        t.suggest_float("method.revision.threshold", 0.0, 1.0)
        t.set_user_attr("val/acc per seed", {"0": 0.5, "1": 0.6, "2": 0.55})
        study.tell(t, 1 - (x - 0.5) ** 2)
    spec = StudySpec(name="dash", metric="val/acc", seeds=[0, 1, 2], resolved={"paper": PAPER})
    manifest = {"study_hash": "0123abcd", "command": ["fer-study", "run", "x.yaml"]}
    describe_study(study, spec, manifest)  # what the runner sets on every study it opens
    (tmp_path / "manifest.json").write_text(json.dumps({"storage": url}))
    return tmp_path


@pytest.fixture
def server(run_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fer_core.tune.dashboard", str(run_dir), "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base + "/api/studies", timeout=2)
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            time.sleep(0.3)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_storage_of_a_run_dir(run_dir, tmp_path_factory):
    assert storage_for(run_dir).startswith("sqlite:///")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ValueError, match="RUN_DIR"):
        storage_for(empty)
    assert main([]) == 1


def test_dashboard_serves_the_study(server, tmp_path):
    with urllib.request.urlopen(server + "/api/studies", timeout=10) as resp:
        data = json.loads(resp.read())
    names = [s["study_name"] for s in data["study_summaries"]]
    assert names == ["dash-synth"]
    assert data["study_summaries"][0]["study_id"] >= 1


def test_the_study_names_its_metric_and_attributes(run_dir):
    study = optuna.load_study(study_name="dash-synth", storage=storage_for(run_dir))
    assert study.metric_names == ["val/acc (mean of 3 seeds)"]
    assert study.user_attrs["paper"] == PAPER and study.user_attrs["study_hash"] == "0123abcd"
    assert study.user_attrs["command"] == "fer-study run x.yaml"


@pytest.mark.browser
def test_dashboard_page_names_the_metric_in_headless_chromium(server, tmp_path, chromium):
    """The rendered study page (React, read after its scripts ran) shows the objective's name
    and a study attribute: one Chromium start, ``--dump-dom`` after a virtual-time budget."""
    dom = tmp_path / "dom.html"
    with dom.open("w") as fh:
        proc = subprocess.Popen(
            chromium(
                "--window-size=1280,800",
                "--virtual-time-budget=10000",
                "--dump-dom",
                server + "/dashboard/studies/1",
            ),
            start_new_session=True,
            stdout=fh,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail("chromium did not render the dashboard in 90 s")
    page = dom.read_text(errors="replace")
    assert "val/acc (mean of 3 seeds)" in page
    assert "Objective 0" not in page
    assert "Study User Attributes" in page and PAPER in page
