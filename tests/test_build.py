"""The optional compiled core is in use when CI expects it, and never runs stale.

``TCPANALYZE_EXPECT_COMPILED=1`` (CI's compiled run) makes a build that fell back to pure
Python fail here, with the reason the build recorded.  The loader tests run a copy of the
package with its extensions and build record (``tcpanalyze/_compiled.txt``) after changing
a source: the ``.py`` files must run instead, with one line on stderr.
"""
from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from importlib.machinery import ExtensionFileLoader
from pathlib import Path

import pytest

import tcpanalyze
from tcpanalyze import _loader

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(tcpanalyze.__file__).resolve().parent
EXPECT_COMPILED = os.environ.get("TCPANALYZE_EXPECT_COMPILED", "") not in ("", "0")
NOTE = "tcpanalyze: not using the compiled modules ("


def _setup_modules() -> set[str]:
    """The modules setup.py compiles that exist in this tree: its ``COMPILED`` list and every
    module but ``__init__`` of its ``COMPILED_PACKAGES``."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    lists = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
             if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("COMPILED", "COMPILED_PACKAGES")}
    names = list(lists["COMPILED"]) + [f"{pkg}.{p.stem}" for pkg in lists["COMPILED_PACKAGES"]
                                       for p in (PKG / pkg).glob("*.py") if p.stem != "__init__"]
    return {f"tcpanalyze.{m}" for m in names if (PKG / (m.replace(".", "/") + ".py")).exists()}


@pytest.mark.skipif(not EXPECT_COMPILED, reason="TCPANALYZE_EXPECT_COMPILED is not set")
def test_compiled_core_in_use_when_expected():
    assert not _loader.pure_requested(), "TCPANALYZE_PURE and TCPANALYZE_EXPECT_COMPILED are both set"
    compiled = _loader.compiled_modules()
    assert compiled, f"the compiled core was expected but is not in use: {_loader.status()}"
    assert set(compiled) == _setup_modules(), "the build record does not list every module setup.py compiles"
    for name in compiled:
        module = importlib.import_module(name)
        assert isinstance(module.__spec__.loader, ExtensionFileLoader), f"{name} runs from {module.__file__}"


@pytest.mark.skipif(not _loader.pure_requested(), reason="TCPANALYZE_PURE is not set")
def test_pure_run_loads_no_extension():
    assert _loader.compiled_modules() == ()
    for name in _setup_modules():
        module = importlib.import_module(name)
        assert module.__file__.endswith(".py"), module.__file__


needs_compiled = pytest.mark.skipif(not _loader.compiled_modules(),
                                    reason=f"the compiled core is not in use ({_loader.status()})")


@pytest.fixture()
def built_copy(tmp_path) -> Path:
    """A copy of the package with its extensions and build record (times kept)."""
    shutil.copytree(PKG, tmp_path / "tcpanalyze", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _imports(root: Path, **env: str) -> tuple[dict[str, str], list[str]]:
    """Import every compiled module from ``root``: ({module: file}, stderr lines)."""
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    print(name, importlib.import_module(name).__file__)\n")
    environ = {k: v for k, v in os.environ.items() if k != "TCPANALYZE_PURE"}
    r = subprocess.run([sys.executable, "-c", code, *sorted(_setup_modules())], capture_output=True, text=True,
                       cwd=root, env={**environ, "PYTHONPATH": str(root), **env}, timeout=60)
    assert r.returncode == 0, r.stderr
    files = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    return files, r.stderr.splitlines()


def _all_compiled(files: dict[str, str]) -> bool:
    return all(not f.endswith(".py") for f in files.values())


def _all_source(files: dict[str, str]) -> bool:
    return all(f.endswith(".py") for f in files.values())


@needs_compiled
def test_unchanged_copy_runs_compiled(built_copy):
    files, err = _imports(built_copy)
    assert _all_compiled(files) and err == []


@needs_compiled
def test_touched_but_unchanged_source_still_runs_compiled(built_copy):
    os.utime(built_copy / "tcpanalyze" / "engine.py")  # new time, same bytes: the digest decides
    files, err = _imports(built_copy)
    assert _all_compiled(files) and err == []


@needs_compiled
@pytest.mark.parametrize("change", ["edit engine.py", "edit model.pxd", "new state.pxd", "no build record",
                                    "record from another build"])
def test_stale_extension_is_not_used(built_copy, change):
    pkg = built_copy / "tcpanalyze"
    if change == "edit engine.py":
        with open(pkg / "engine.py", "a") as f:
            f.write("\n# edited\n")
    elif change == "edit model.pxd":
        with open(pkg / "model.pxd", "a") as f:
            f.write("\n# edited\n")
    elif change == "new state.pxd":
        (pkg / "state.pxd").write_text("# declarations the extension was not built with\n")
    elif change == "no build record":
        (pkg / _loader.RECORD).unlink()
    else:
        (pkg / _loader.RECORD).write_text("status pure Cython failed\n")
    files, err = _imports(built_copy)
    assert _all_source(files), files
    assert len(err) == 1 and err[0].startswith(NOTE), err


@needs_compiled
def test_pure_requested_at_run_time_loads_sources_silently(built_copy):
    files, err = _imports(built_copy, TCPANALYZE_PURE="1")
    assert _all_source(files) and err == []


def test_import_of_the_package_stays_light():
    """``import tcpanalyze`` reads no build record and imports no compiled module."""
    code = ("import sys, tcpanalyze, tcpanalyze._loader as L\n"
            "assert L._state is None\n"
            "print(sorted(m for m in sys.modules if m.startswith('tcpanalyze')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(PKG.parent)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['tcpanalyze', 'tcpanalyze._loader', 'tcpanalyze._version']"
