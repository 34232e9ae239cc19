"""Shared test set-up: a per-session cache directory and small thread counts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# One cache per test session (SynthFER is generated once per session, not once per test).
_CACHE = Path(tempfile.mkdtemp(prefix="fer-study-test-cache-"))
os.environ["FER_STUDY_CACHE"] = str(_CACHE)
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found next to the repository ({SHARED})")
    return SHARED


# Headless Chromium as the environment notes run it on this machine: no sandbox (root), no GPU,
# and no background connections (this machine's closed network refuses them).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


@pytest.fixture
def chromium(tmp_path_factory):
    """``chromium(*args)``: the command line of Debian's headless Chromium with ``args``, in a
    fresh profile. Skips with the reason when Chromium is missing; fails under ``CI=true``."""
    exe = next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None,
    )
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("headless Chromium is required under CI=true (apt-get install -y chromium)")
        pytest.skip("Chromium not installed (apt-get install -y chromium); page not opened")

    def command(*args: str) -> list[str]:
        profile = tmp_path_factory.mktemp("chromium-profile")
        return [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]

    return command
