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


# ---------------------------------------------------------------------------- README and docs/
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_in_the_repository_and_resolve(doc):
    """Every relative link names a file of the repository (and, with #, a heading in it); no
    link leaves the repository through a relative path."""
    text = doc.read_text(encoding="utf-8")
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if ROOT.resolve() not in dest.parents and dest != ROOT.resolve():
            bad.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            bad.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md":
            heads = {_anchor(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(encoding="utf-8"), re.M)}
            if anchor not in heads:
                bad.append(f"{target}: no heading #{anchor}")
    assert not bad, bad


def test_readme_is_short_and_gives_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "pip install . && tcpanalyze analyze samples/" in text
    assert "pip install -e '.[test]' && python -m pytest -q" in text


def test_readme_python_example_runs(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    for i, block in enumerate(python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))):
        exec(compile(block, f"README.md, python block {i + 1}", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out
