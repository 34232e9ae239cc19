"""Fixtures of the report tests (the helpers live in report_fixtures.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from report_fixtures import write_run


@pytest.fixture
def make_run() -> Callable[..., Path]:
    """``make_run(root, study, profile, dataset, rows)`` -> a run directory (see write_run)."""
    return write_run
