"""``tcpanalyze compare``: Wireshark's own analysis side by side with ours."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpanalyze.cli import cli

TRACES = Path(__file__).resolve().parent / "data" / "traces"
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)")


@needs_tshark
def test_compare_agrees_on_a_real_lossy_transfer():
    r = CliRunner().invoke(cli, ["compare", str(SAMPLES / "lossy_bulk.pcap"), "--json"])
    doc = json.loads(r.output)
    assert r.exit_code == 0, doc
    assert doc["rows_all_flags_equal"] == doc["frames"] > 4000
    assert doc["flags"]["fast_retransmission"]["both"] > 10


@needs_tshark
def test_compare_lists_disagreements_with_reasons():
    # zeek-fuzz-72 is a fuzzed capture where a handful of verdicts differ: exit 1, frames listed.
    r = CliRunner().invoke(cli, ["compare", str(TRACES / "zeek-fuzz-72.pcap")])
    assert r.exit_code == 1
    assert "frame " in r.output and "wireshark=" in r.output


def test_compare_without_tshark_is_exit_3(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = CliRunner().invoke(cli, ["compare", str(TRACES / "pop3.pcap")])
    assert r.exit_code == 3
    assert "tshark is not installed" in (r.output + (r.stderr if hasattr(r, "stderr") else ""))
