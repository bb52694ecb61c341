"""The package's import graph follows its layers: nothing imports a module of a higher layer.

Every ``import`` statement of every module is read with ``ast`` (module level and inside
functions alike, so a function-level import cannot hide an upward dependency), and each
module of the package must be listed in ``LAYERS``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "tcpanalyze"

#: lowest first; a module may import modules of its own layer or of lower ones
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"tcpanalyze._version", "tcpanalyze._loader", "tcpanalyze._cyshim", "tcpanalyze._fields", "tcpanalyze._fuse", "tcpanalyze._inline", "tcpanalyze.model",
              "tcpanalyze.errors", "tcpanalyze.jsontext",
              "tcpanalyze.seq", "tcpanalyze.analysis"}),
    ("sources", {"tcpanalyze.sources", "tcpanalyze.sources.pcap", "tcpanalyze.sources.live",
                 "tcpanalyze.sources.remote"}),
    ("decode", {"tcpanalyze.decode", "tcpanalyze.reassembly"}),
    ("engine", {"tcpanalyze.state", "tcpanalyze.zeek", "tcpanalyze.engine", "tcpanalyze.pipeline", "tcpanalyze.fanout",
                "tcpanalyze.rows", "tcpanalyze.summary", "tcpanalyze.diagnosis", "tcpanalyze.tomb"}),
    ("findings", {"tcpanalyze.findings", "tcpanalyze.policy", "tcpanalyze.schema"}
     | {f"tcpanalyze.findings.{p.stem}" for p in (PKG / "findings").glob("*.py") if p.stem != "__init__"}),
    ("session", {"tcpanalyze.session", "tcpanalyze.records", "tcpanalyze.parallel", "tcpanalyze.dask",
                 "tcpanalyze.api", "tcpanalyze.parquet", "tcpanalyze"}),
    ("report", {"tcpanalyze.report", "tcpanalyze.report.ci", "tcpanalyze.report.console",
                "tcpanalyze.report.flows_table", "tcpanalyze.report.jsonout", "tcpanalyze.report.ladder",
                "tcpanalyze.report.liveview", "tcpanalyze.report.plots", "tcpanalyze.report.progress",
                "tcpanalyze.report.richout", "tcpanalyze.report.html", "tcpanalyze.report.htmldata",
                "tcpanalyze.report.htmlpage"}),
    ("commands", {"tcpanalyze.commands", "tcpanalyze.cli", "tcpanalyze.__main__"}
     | {f"tcpanalyze.commands.{p.stem}" for p in (PKG / "commands").glob("*.py") if p.stem != "__init__"}),
]
LEVEL = {mod: i for i, (_name, mods) in enumerate(LAYERS) for mod in mods}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imported_modules(path: Path, name: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every tcpanalyze module the file imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((node.lineno, sub if sub in known else target))
    return [(line, mod) for line, mod in out if mod == "tcpanalyze" or mod.startswith("tcpanalyze.")]


def upward_imports(modules: dict[str, Path]) -> list[str]:
    known = set(modules)
    bad = []
    for name, path in modules.items():
        for line, target in imported_modules(path, name, known):
            # "import tcpanalyze.x.y" names the deepest module this package has
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if LEVEL[target] > LEVEL[name]:
                bad.append(f"{name} ({LAYERS[LEVEL[name]][0]}) imports {target} ({LAYERS[LEVEL[target]][0]}) "
                           f"at {path.name}:{line}")
    return bad


def test_every_module_has_a_layer():
    missing = sorted(set(package_modules()) - set(LEVEL))
    assert not missing, f"add these modules to a layer of tests/test_layers.py: {missing}"


def test_nothing_imports_upward():
    bad = upward_imports(package_modules())
    assert not bad, "\n".join(bad)


def test_an_upward_import_is_caught(tmp_path):
    """The checker sees an upward import even inside a function."""
    mods = package_modules()
    fake = tmp_path / "findings.py"
    fake.write_text("def f():\n    from tcpanalyze.report import console\n", encoding="utf-8")
    mods["tcpanalyze.findings"] = fake
    assert upward_imports(mods) == ["tcpanalyze.findings (findings) imports tcpanalyze.report.console (report) "
                                    "at findings.py:2"]


@pytest.mark.parametrize("core", ["tcpanalyze.findings", "tcpanalyze.policy"])
def test_findings_and_policy_never_import_report(core):
    mods = package_modules()
    targets = {t for _l, t in imported_modules(mods[core], core, set(mods))}
    assert not {t for t in targets if t.startswith(("tcpanalyze.report", "tcpanalyze.session"))}
