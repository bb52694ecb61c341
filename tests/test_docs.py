"""docs/api.md runs: every ``python`` block is executed in order, in one namespace, from a
directory holding the repository's samples/ (the Parquet files it writes land there)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_api_md_has_examples():
    blocks = python_blocks(API_MD.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    assert any("duckdb.sql" in b and "parquet" in b for b in blocks)


def test_api_md_examples_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pyarrow")
    pytest.importorskip("duckdb")
    (tmp_path / "samples").symlink_to(ROOT / "samples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))      # the blocks that run the CLI in a subprocess
    ns: dict = {"__name__": "api_md"}
    for i, block in enumerate(python_blocks(API_MD.read_text(encoding="utf-8"))):
        exec(compile(block, f"docs/api.md, python block {i + 1}", "exec"), ns)
    assert (tmp_path / "flows.parquet").stat().st_size > 0
    assert "cannot analyze:" in capsys.readouterr().out
