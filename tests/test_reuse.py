"""The relative-sequence and port-reuse rule, against tshark 4.0.17 on real captures.

A SYN/ACK whose ISN is not the base its direction already has (a RST or data forged before the
handshake, a second SYN/ACK from a restarted listener) keeps its stream, is flagged
``reused_ports`` and restarts that direction's relative numbers; a pure SYN with a new ISN on a
known 4-tuple opens a new stream.  The captures in tests/data/real are real kernel TCP recorded
by tests/data/real/make_real.sh (SOURCES.md there); each has its tshark oracle.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from oracle import FIELDS, capture_of, load_oracle, oracle_files, our_rows
from tcpanalyze import api
from tcpanalyze.engine import Analyzer, Config, _span
from tcpanalyze.model import Segment

REAL = Path(__file__).resolve().parent / "data" / "real"
ORACLES = oracle_files(REAL)


def test_the_captures_are_present():
    assert {p.name for p in ORACLES} >= {
        "inject_before_synack.pcap.tshark.tsv", "synack_new_isn.pcap.tshark.tsv", "syn_new_isn.pcap.tshark.tsv",
        "tcp_fast_open.pcap.tshark.tsv", "tcp_fast_open_client.pcap.tshark.tsv"}


def _oracle_rows(tsv: Path) -> list[dict]:
    with open(tsv, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_the_captures_show_every_case():
    """What the captures were recorded for, read from tshark's own verdicts."""
    synack = syn = tfo = 0
    for tsv in ORACLES:
        for r in _oracle_rows(tsv):
            kind = int(r["tcp.flags"], 16) & 0x12
            if r["tcp.analysis.reused_ports"]:
                synack += kind == 0x12
                syn += kind == 0x02
            tfo += kind == 0x02 and int(r["tcp.len"]) > 0
    assert synack >= 8, "SYN/ACKs that restart the relative numbers"
    assert syn >= 3, "SYNs with a new ISN on a known 4-tuple"
    assert tfo >= 4, "TCP Fast Open SYNs with data"


@pytest.mark.parametrize("tsv", ORACLES, ids=lambda p: p.name[: -len(".tshark.tsv")])
def test_rows_and_flags_equal_tshark(tsv):
    """Every row tshark decodes: stream, seq, ack, len, flags, window and every analysis flag equal."""
    oracle = load_oracle(tsv)
    ours = our_rows(capture_of(tsv))
    assert oracle, tsv
    diffs = []
    for fr, o in oracle.items():
        u = ours.get(fr)
        if u is None:
            diffs.append((fr, "missing"))
            continue
        for f in FIELDS:
            if f == "ack" and not o["flags"] & 0x10:
                continue
            if o[f] != u[f]:
                diffs.append((fr, f, o[f], u[f]))
        if o["analysis"] != u["analysis"]:
            diffs.append((fr, "analysis", sorted(o["analysis"]), sorted(u["analysis"])))
    assert not diffs, diffs[:10]


def test_a_rebased_synack_keeps_its_stream_and_says_why():
    cap = REAL / "inject_before_synack.pcap"
    pkts = list(api.packets(cap, explain=True))
    rebased = [p for p in pkts if "reused_ports" in p.analysis]
    assert len(rebased) == 6
    for p in rebased:
        assert p.seq == 0
        assert "relative numbers restart" in p.reasons["reused_ports"]
    assert len({p.stream for p in pkts}) == len({p.stream for p in rebased})   # one stream per connection


def test_port_reuse_finding_only_for_a_new_stream():
    kinds = [f.kind for f in api.analyze(REAL / "inject_before_synack.pcap").findings]
    assert "port_reuse" not in kinds
    kinds = [f.kind for f in api.analyze(REAL / "syn_new_isn.pcap").findings]
    assert kinds.count("port_reuse") == 3


def _seg(frame, src, sport, dst, dport, flags, seq, ack=0, paylen=0):
    return Segment(frame, 1_000_000_000 + frame * 1_000_000, src, dst, sport, dport, seq, ack, flags, 1000, paylen)


def test_rebase_moves_the_disordered_span():
    """Data from the server arrives out of order before its SYN/ACK: the span of the unacked
    segments, kept relative to the base, follows the new base."""
    c, s = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    a = Analyzer(Config(), keep_timeline=False)
    a.feed(_seg(1, c, 40000, s, 80, 0x02, 1000))
    a.feed(_seg(2, s, 80, c, 40000, 0x10, 9_000_100, 1001, 10))
    a.feed(_seg(3, s, 80, c, 40000, 0x10, 9_000_050, 1001, 10))
    v = a.feed(_seg(4, s, 80, c, 40000, 0x12, 5000, 1001))
    assert v.analysis and v.rel_seq == 0 and v.conn.stream == 0
    f = v.conn.flows[v.direction]
    assert f.base_seq == 5000 and f.segs_disordered
    e = f.segs[0]
    assert (f.seg_lo, f.seg_hi) == _span(f.segs, 5000, e.seq, e.end)
    v = a.feed(_seg(5, s, 80, c, 40000, 0x10, 5001, 1001, 20))
    assert v.rel_seq == 1


def test_a_syn_at_the_same_isn_takes_nextseq_back():
    """tshark 4.0.17 on this sequence (checked with tshark): the SYN again at the ISN sets the
    next expected seq back to the highest one the peer has to ACK, so the data at that seq
    after it is no retransmission; the SYN itself is out_of_order; one stream throughout."""
    c, s = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    a = Analyzer(Config(), keep_timeline=False)
    names = []
    for seg in (_seg(1, c, 40000, s, 80, 0x02, 1000), _seg(2, s, 80, c, 40000, 0x12, 5000, 1001),
                _seg(3, c, 40000, s, 80, 0x10, 1001, 5001), _seg(4, c, 40000, s, 80, 0x18, 1001, 5001, 10),
                _seg(5, c, 40000, s, 80, 0x18, 1100, 5001, 10), _seg(6, c, 40000, s, 80, 0x02, 1000),
                _seg(7, c, 40000, s, 80, 0x18, 1011, 5001, 10)):
        v = a.feed(seg)
        names.append((v.conn.stream, v.analysis))
    from tcpanalyze.analysis import LOST_SEGMENT, OUT_OF_ORDER
    assert names == [(0, 0), (0, 0), (0, 0), (0, 0), (0, LOST_SEGMENT), (0, OUT_OF_ORDER), (0, 0)]
