"""No false alarm: the public traces raise no ``stall`` or ``receiver_limited`` warning where
a person reading the time-sequence graph would not.  Each trace's time-sequence graph
(``tcpanalyze plot --kind tseq``) was read: 206_example_b stalls (the server resends one
segment with RTO back-off to a client that no longer answers, then resets), and so does the
TLS server of zeek-pppoe-over-qinq (it resends after silences of 1.2 and 2.4 s).  Silences
the capture cannot show (a 15-year clock step in pcapplusplus-Ftp, a month in
pcapplusplus-ldap, the fuzzed sequence numbers of zeek-fuzz-72) are info with cause
"capture", not warnings."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_findings import run

TRACES = Path(__file__).parent / "data" / "traces"

#: (trace, kind) -> the streams where the graph shows it
EXPECTED = {("206_example_b.pcap", "stall"): {0}, ("zeek-pppoe-over-qinq.pcap", "stall"): {0}}


def _traces():
    return [p for p in sorted(TRACES.iterdir()) if p.suffix in (".pcap", ".pcapng", ".cap")]


@pytest.mark.parametrize("path", _traces(), ids=lambda p: p.name)
def test_no_stall_or_receiver_limited_warning(path):
    doc = run(path)
    for kind in ("stall", "receiver_limited"):
        got = {f["stream"] for f in doc["findings"] if f["kind"] == kind and f["severity"] != "info"}
        assert got == EXPECTED.get((path.name, kind), set()), (kind, got)


def test_the_traces_are_there():
    assert len(_traces()) >= 30
