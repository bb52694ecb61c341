"""bench/pure_before.py times this tree's pure build on the work the build before the redesign
did; these check that its variants change what they say and nothing else."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "pure_before.py"
SAMPLE = ROOT / "samples" / "lossy_bulk.pcap"


def _analyze_json(variant: str, capture: Path) -> bytes:
    env = dict(os.environ, TCPANALYZE_PURE="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run([sys.executable, str(SCRIPT), "--child", variant, "--tree", str(ROOT), "--",
                        "analyze", "--json", str(capture)], env=env, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return p.stdout


#: what the transfer diagnosis fills in a connection record (per direction, and for the connection)
DIAG_SIDE = ("time", "transfer_s", "limited_by", "limited_by_reason", "throughput_bps", "goodput_bps",
             "data_bytes", "rto_waits")
DIAG_CONN = ("server_think", "client_think")


def _strip(conn: dict) -> dict:
    out = {k: v for k, v in conn.items() if k not in DIAG_CONN}
    for side in ("orig", "resp"):
        out[side] = {k: v for k, v in conn[side].items() if k not in DIAG_SIDE}
    return out


def test_no_diagnosis_leaves_out_the_diagnosis_only():
    full = json.loads(_analyze_json("full", SAMPLE))["connections"]
    nodiag = json.loads(_analyze_json("no-diagnosis", SAMPLE))["connections"]
    resp = full[0]["resp"]
    assert resp["limited_by"] and resp["time"]["loss_recovery"] > 0 and resp["rto_waits"]
    for side in ("orig", "resp"):
        assert nodiag[0][side]["limited_by"] is None and nodiag[0][side]["time"] is None
        assert nodiag[0][side]["rto_waits"] == []
    # the rest of every record (counters, flags, states, history) is the same
    assert [_strip(c) for c in full] == [_strip(c) for c in nodiag]


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory) -> Path:
    """300 connections over 284 s of capture time, more than the 120 s linger: closed
    connections pass the linger time before the capture ends."""
    out = tmp_path_factory.mktemp("pure_before") / "long.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(out), "--conns", "300",
                    "--conn-rate", "1", "--seed", "5"], check=True, capture_output=True, timeout=120)
    return out


def test_same_work_keeps_connections_whole_without_tombstones(long_capture):
    # the same report as without the diagnosis (no packet of this capture comes after a
    # connection's grace); the child fails if a tombstone is stored, so the patched retire ran
    assert _analyze_json("same-work", long_capture) == _analyze_json("no-diagnosis", long_capture)


@pytest.mark.parametrize("retire", ["patched", "as shipped"])
def test_tombstones_of_the_long_capture(long_capture, retire):
    # what makes the test above mean something: with the linger time as the grace but the
    # engine's own retire, closed connections of this capture leave tombstones (so the
    # guard in same-work would fire); with the patched retire none is stored
    env = dict(os.environ, TCPANALYZE_PURE="1")
    env.pop("PYTHONPATH", None)
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
sys.path.insert(0, {str(ROOT / "bench")!r})
from tcpanalyze import engine, tomb
shipped, put = engine.FlowTable.retire, tomb.TombStore.put
import pure_before
pure_before.patch("same-work")
if {retire == "as shipped"!r}:
    engine.FlowTable.retire = shipped
n = [0]
def counting(self, *a):
    n[0] += 1
    return put(self, *a)
tomb.TombStore.put = counting
import tcpanalyze
tcpanalyze.analyze([{str(long_capture)!r}])
print(n[0])
"""
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    if retire == "as shipped":
        assert int(p.stdout) > 0
    else:
        assert int(p.stdout) == 0
