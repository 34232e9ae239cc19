"""``fer-study dashboard``: optuna-dashboard on 127.0.0.1 serves the run's study."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from fer_core.tune.dashboard import main, storage_for

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


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
        study.tell(t, 1 - (x - 0.5) ** 2)
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


@pytest.mark.browser
def test_dashboard_screenshot_in_headless_chromium(server, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("headless Chromium (/usr/bin/chromium) is required when CI=true")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    shot = tmp_path / "dashboard.png"
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chrome-profile'}",
            "--window-size=1280,800",
            "--virtual-time-budget=8000",
            f"--screenshot={shot}",
            server + "/dashboard/studies/1",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("chromium did not finish its screenshot in 90 s")
    assert shot.is_file() and shot.stat().st_size > 5000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
