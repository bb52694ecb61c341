"""The optional compiled core (Cython build of engine.py and model.py, see setup.py) must
give exactly what the same source gives as plain Python: every captured sample and the
public traces through ``packets --format jsonl`` (with every flag's reason) and ``analyze --json``, once with
the installed package and once with a copy of its ``.py`` sources only."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tcpanalyze
from tcpanalyze import engine, model

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(tcpanalyze.__file__).resolve().parent
COMPILED = not engine.__file__.endswith(".py") and not model.__file__.endswith(".py")

CAPTURES = sorted(str(p) for p in (ROOT / "samples").glob("*.pcap")) + [
    str(ROOT / "tests/data/traces" / n) for n in (
        "wireshark-dtn_tcpclv4_bpv7_transfer.pcapng", "suricata-smb-eicar-overlap-input.pcap",
        "wireshark-grpc_stream_reassembly_sample.pcapng.gz", "zeek-tls1_1.pcap")]
CAPTURES += [str(ROOT / "tests/data/crafted" / n) for n in ("reused_ports.pcap", "zero_window_probe.pcap")]


def _run(args: list[str], pythonpath: str | None, cwd: str) -> str:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    # cwd: a directory without the source tree, which `python -m` would put first on sys.path
    r = subprocess.run([sys.executable, "-m", "tcpanalyze", *args], capture_output=True, text=True, env=env,
                       timeout=300, cwd=cwd)
    assert r.returncode in (0, 1), r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def pure_copy(tmp_path_factory) -> str:
    dest = tmp_path_factory.mktemp("pure")
    shutil.copytree(PKG, dest / "tcpanalyze", ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"))
    probe = subprocess.run([sys.executable, "-c", "import tcpanalyze.engine as e; print(e.__file__)"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(dest)}, cwd=dest)
    assert probe.stdout.strip().endswith("engine.py"), probe.stdout + probe.stderr
    return str(dest)


@pytest.mark.skipif(not COMPILED, reason="the compiled core is not built in this install (pure Python only)")
@pytest.mark.parametrize("capture", CAPTURES, ids=[Path(c).name for c in CAPTURES])
def test_compiled_core_equals_pure_python(capture, pure_copy):
    for args in (["packets", "--format", "jsonl", capture], ["analyze", "--json", capture]):
        compiled = _run(args, None, pure_copy)
        assert compiled.count("\n") > 2
        assert compiled == _run(args, pure_copy, pure_copy), f"{' '.join(args)}: compiled and pure Python differ"


def test_pure_python_needs_no_cython(tmp_path):
    """Without Cython installed, the declarations fall back to a no-op shim."""
    from tcpanalyze import _cyshim

    @_cyshim.locals(x=_cyshim.longlong)
    def f(x):
        return x + 1

    assert f(1) == 2 and _cyshim.compiled is False
