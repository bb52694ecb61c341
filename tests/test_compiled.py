"""The optional compiled core (Cython build of the per-packet modules, see setup.py) must
give exactly what the same source gives as plain Python: every captured sample and the
public traces through ``packets`` (TSV rows), ``packets --format jsonl`` (with every flag's
reason) and ``analyze --json``, once with the installed package and once with a copy of its
``.py`` sources only."""
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
CAPTURES += [str(ROOT / "tests/data/real" / n) for n in ("inject_before_synack.pcap", "synack_new_isn.pcap")]


def _run(args: list[str], pythonpath: str | None, cwd: str) -> str:
    """``python -m tcpanalyze`` from the installed package (pythonpath None; ``cwd`` must then
    hold no ``tcpanalyze`` directory, since ``-m`` puts it first on sys.path) or from the
    sources in ``pythonpath``.  Asserts which one it ran (the installed package runs its
    ``.py`` files too when it is not compiled or ``TCPANALYZE_PURE`` is set)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    code = ("import sys, runpy, tcpanalyze.engine as e; sys.stderr.write('ENGINE=' + e.__file__ + '\\n'); "
            "sys.argv = ['tcpanalyze'] + sys.argv[1:]; runpy.run_module('tcpanalyze', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                       timeout=300, cwd=cwd)
    assert r.returncode in (0, 1), r.stderr
    engine_file = r.stderr.split("ENGINE=", 1)[1].split("\n", 1)[0]
    assert engine_file.endswith(".py") == (bool(pythonpath) or not COMPILED), engine_file
    return r.stdout


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """A working directory with no source tree in it."""
    return tmp_path_factory.mktemp("elsewhere")


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
def test_compiled_core_equals_pure_python(capture, pure_copy, elsewhere):
    # the TSV rows too: compiled, they are written digit by digit into a C buffer (rows.py)
    for args in (["packets", "--format", "jsonl", capture], ["packets", capture], ["analyze", "--json", capture]):
        compiled = _run(args, None, str(elsewhere))
        assert compiled.count("\n") > 2
        assert compiled == _run(args, pure_copy, pure_copy), f"{' '.join(args)}: compiled and pure Python differ"


@pytest.mark.skipif(not COMPILED, reason="the compiled core is not built in this install (pure Python only)")
def test_compiled_core_equals_pure_python_on_lossy_generated_traffic(pure_copy, elsewhere, tmp_path):
    """Many connections with loss and fast retransmissions (out-of-order unacked lists): the
    sample traces never made the compiled ``feed`` take the path where Cython evaluated a
    generator expression wrongly (bytes in flight after a fast retransmission)."""
    cap = tmp_path / "lossy.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(cap), "--packets", "20000",
                    "--conns", "12000", "--seed", "1"], check=True, capture_output=True, timeout=120)
    for args in (["packets", "--format", "jsonl", str(cap)], ["packets", str(cap)], ["packets", "--absolute", str(cap)],
                 ["analyze", "--json", str(cap)]):
        compiled = _run(args, None, str(elsewhere))
        assert compiled == _run(args, pure_copy, pure_copy), f"{' '.join(args)}: compiled and pure Python differ"


def test_pure_python_needs_no_cython(tmp_path, pure_copy):
    """Without Cython installed, the declarations fall back to a no-op shim, and the plain
    sources give the installed package's output."""
    from tcpanalyze import _cyshim

    @_cyshim.locals(x=_cyshim.longlong)
    def f(x):
        return x + 1

    assert f(1) == 2 and _cyshim.compiled is False
    capture = str(ROOT / "samples" / "lossy_bulk.pcap")
    code = ("import sys, runpy; sys.modules['cython'] = None; import tcpanalyze.decode as d; "
            "assert d.cython.__name__ == 'tcpanalyze._cyshim', d.cython; "
            "sys.argv = ['tcpanalyze'] + sys.argv[1:]; runpy.run_module('tcpanalyze', run_name='__main__')")
    for args in (["packets", capture], ["analyze", "--json", capture]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                           cwd=pure_copy, env={**os.environ, "PYTHONPATH": pure_copy})
        assert r.returncode == 0, r.stderr
        assert r.stdout == _run(args, None, str(tmp_path)), f"{' '.join(args)}: no-Cython run differs"
