"""The method contract's example (``methods/base.py`` docstring) runs as written."""

from __future__ import annotations

import doctest

import fer_core.methods.base as base


def test_the_example_method_in_the_contract_docstring_runs():
    result = doctest.testmod(base, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 8 and result.failed == 0
