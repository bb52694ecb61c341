"""The public modules pass ``mypy --strict`` (skipped when mypy is not installed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ["tcpanalyze/__init__.py", "tcpanalyze/api.py", "tcpanalyze/session.py"]


def test_py_typed_marker():
    assert (ROOT / "tcpanalyze" / "py.typed").is_file()


def test_public_modules_pass_mypy_strict():
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental", "--cache-dir=/dev/null",
                        *PUBLIC], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
