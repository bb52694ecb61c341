"""Shared pytest options: ``--update-golden`` rewrites the files in tests/golden/ instead of
comparing against them (review the diff before committing).  The environment variable
``TCPANALYZE_REGEN_GOLDEN=1`` does the same (used by tests/test_ladder.py)."""
from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output instead of comparing")


@pytest.fixture
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden") or os.environ.get("TCPANALYZE_REGEN_GOLDEN"))


def pytest_terminal_summary(terminalreporter):
    """Print the agreement tables the oracle tests computed."""
    try:
        from test_oracle import TABLES
    except ImportError:
        return
    for title, table in TABLES.items():
        terminalreporter.write_sep("-", title)
        terminalreporter.write_line(table)
