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
