"""A closed connection is summarised a grace period after its last packet and shrinks to a
tombstone (tcpanalyze/tomb.py) for the rest of the linger time: its state is freed, late
packets get the verdicts they got when the connection was kept whole, they are counted in
``late_packets``, a new SYN on its 4-tuple still opens a new stream, and ``--jobs`` gives
the same report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpanalyze import engine as E
from tcpanalyze import parallel as P
from tcpanalyze import tomb
from tcpanalyze.analysis import REUSED_PORTS, RETRANSMISSION_FAMILY
from tcpanalyze.model import ACK, FIN, RST, SYN, Segment
from tcpanalyze.pipeline import analyze_source
from tcpanalyze.session import AnalyzeOptions, analyze_file

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
CLI, SRV = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
CISN, SISN = 1000, 5000


def _c(t, seq, ack, flags, n=0, win=502):
    return (t, True, seq, ack, flags, n, win)


def _s(t, seq, ack, flags, n=0, win=502):
    return (t, False, seq, ack, flags, n, win)


def _closing(t=T0, cisn=CISN, sport=40000):
    """Handshake, 100 bytes each way, the client closes first, last ACK (client in TIME_WAIT)."""
    c, s = cisn, SISN
    return [
        _c(t, c, 0, SYN), _s(t + 1000, s, c + 1, SYN | ACK), _c(t + 2000, c + 1, s + 1, ACK),
        _c(t + 3000, c + 1, s + 1, ACK, 100), _s(t + 4000, s + 1, c + 101, ACK, 100),
        _c(t + 5000, c + 101, s + 101, ACK), _c(t + 6000, c + 101, s + 101, FIN | ACK),
        _s(t + 7000, s + 101, c + 102, FIN | ACK), _c(t + 8000, c + 102, s + 102, ACK),
    ]


def _other(t):
    """A packet of another connection: it moves the capture clock."""
    return (t, None, 7, 0, SYN, 0, 502)


def _segs(spec, sport=40000):
    out = []
    for i, (t, from_cli, seq, ack, flags, n, win) in enumerate(spec, 1):
        if from_cli is None:
            out.append(Segment(i, t, b"\x0a\x00\x00\x09", SRV, 50000 + i, 80, seq, ack, flags, win, 0))
        elif from_cli:
            out.append(Segment(i, t, CLI, SRV, sport, 80, seq, ack, flags, win, n))
        else:
            out.append(Segment(i, t, SRV, CLI, 80, sport, seq, ack, flags, win, n))
    return out


def _verdicts(spec, grace_ns=E.K_GRACE_NS, explain=False):
    """(rows per packet, analyzer, connections handed over) with the given grace."""
    done = []
    a = E.Analyzer(E.Config(grace_ns=grace_ns, explain=explain), on_conn_done=done.append)
    rows = []
    for seg in _segs(spec):
        v = a.feed(seg)
        rows.append((v.conn.stream, v.direction, v.analysis, v.rel_seq, v.rel_ack, v.win, v.ack_rtt, v.acks_frame,
                     v.bytes_in_flight, v.dupack_num, v.dupack_frame, v.reasons))
    return rows, a, done


#: the grace of the engine before tombstones: a closed connection stayed whole for the linger time
WHOLE = E.K_LINGER_NS


def test_retired_connection_frees_its_state():
    spec = _closing() + [_other(T0 + 3 * S)]
    _rows, a, done = _verdicts(spec)
    key = E.flow_key(CLI, 40000, SRV, 80)
    assert key not in a.table.conns and E.reverse_key(key) not in a.table.conns
    assert key in a.table.tombs
    assert [c.stream for c in done] == [0]
    conn = done[0]
    assert conn.done and conn.end_reason == "fin"
    assert all(ent[0] is not conn for ent in a.table.conns.values())
    assert conn not in a.table.closed
    rec = a.table.tombs[key]
    assert type(rec) is bytes and len(rec) == tomb.SIZE_FIXED       # nothing unacked, no SACK
    assert tomb.stream(rec) == 0 and tomb.last_ns(rec) == T0 + 8000
    assert a.live == 2                  # the tombstone still counts, and the other connection


def test_within_the_grace_the_connection_stays_whole():
    spec = _closing() + [_other(T0 + E.K_GRACE_NS // 2)]
    _rows, a, done = _verdicts(spec)
    assert done == [] and not a.table.tombs
    assert E.flow_key(CLI, 40000, SRV, 80) in a.table.conns


LATE = [
    # the server's FIN/ACK again (its retransmission), the client's ACK again, a RST, data
    _s(T0 + 3 * S, SISN + 101, CISN + 102, FIN | ACK), _c(T0 + 3 * S + 1000, CISN + 102, SISN + 102, ACK),
    _c(T0 + 4 * S, CISN + 102, 0, RST), _s(T0 + 5 * S, SISN + 50, CISN + 102, ACK, 20),
]


@pytest.mark.parametrize("explain", [False, True])
def test_late_fin_retransmission_and_rst_get_the_verdicts_of_a_whole_connection(explain):
    spec = _closing() + [_other(T0 + 2 * S)] + LATE
    after, a, done = _verdicts(spec, explain=explain)
    before, b, _ = _verdicts(spec, grace_ns=WHOLE, explain=explain)
    assert len(done) == 1 and a.late_packets == len(LATE) and b.late_packets == 0
    late = slice(len(spec) - len(LATE), None)
    assert after[late] == before[late]
    assert after == before
    flags = [r[2] for r in after[late]]
    assert flags[0] & RETRANSMISSION_FAMILY and flags[3] & RETRANSMISSION_FAMILY, flags
    # the late packets carry the stream of their connection
    assert {r[0] for r in after[late]} == {0}


def test_late_packets_do_not_change_the_emitted_record_and_detectors_skip_them():
    spec = _closing() + [_other(T0 + 2 * S)] + LATE
    _rows, a, done = _verdicts(spec)
    conn = done[0]
    assert conn.flows[0].stats.pkts + conn.flows[1].stats.pkts == 9
    assert conn.frames == 9


def test_tombstone_round_trip_with_unacked_segments_and_sack():
    """What a whole closed connection holds that a late packet reads survives pack/load."""
    spec = _closing()[:-1] + [_s(T0 + 7500, SISN + 101, CISN + 102, ACK, 0), ]
    _rows, a, _ = _verdicts(spec, grace_ns=WHOLE)
    conn = a.table.conns[E.flow_key(CLI, 40000, SRV, 80)][0]
    f = conn.flows[1]
    f.segs.append(E.Unacked(SISN + 90, SISN + 101, 7, T0 + 4000, 1))
    f.sack = [(SISN + 95, SISN + 99)]
    rec = tomb.pack(conn)
    g = E._ghost(conn.key)
    tomb.load(rec, g, E.Unacked)
    for x, y in zip(conn.flows, g.flows):
        for name in ("base_seq", "base_set", "win_scale", "window", "is_first_ack", "nextseq", "nextseqtime",
                     "maxseqtobeacked", "lastack", "lastacktime", "lastnondupack", "dupacknum", "lastsegflags",
                     "segs_disordered", "valid_bif"):
            assert getattr(x, name) == getattr(y, name), name
        assert x.times.fin_next == y.times.fin_next
        assert [(e.seq, e.end, e.frame, e.ts_ns, e.karn) for e in x.segs] == \
            [(e.seq, e.end, e.frame, e.ts_ns, e.karn) for e in y.segs]
        assert (list(x.sack) if x.sack else None) == (list(y.sack) if y.sack else None)
    assert list(g.state) == list(conn.state) and g.stream == conn.stream and g.irtt == conn.irtt
    assert g.ending.tw_start[:2] == conn.ending.tw_start[:2]
    assert g.addr == conn.addr and tuple(g.port) == tuple(conn.port)


def test_port_reuse_after_a_tombstone():
    """A pure SYN with a new ISN 3 s after the close (the client is still in TIME_WAIT): a new
    stream flagged reused_ports, a SYN in TIME_WAIT, as with the connection kept whole."""
    spec = _closing() + [_other(T0 + 2 * S)] + _closing(T0 + 3 * S, cisn=900_000)
    after, a, done = _verdicts(spec)
    before, b, _ = _verdicts(spec, grace_ns=WHOLE)
    assert after == before
    first_new = len(_closing()) + 1
    assert after[first_new][0] == 2 and after[first_new][2] & REUSED_PORTS
    assert a.syn_in_time_wait == b.syn_in_time_wait and len(a.syn_in_time_wait) == 1
    assert a.late_packets == 0
    # what the port-reuse findings read of the connection the SYN replaced
    old, whole = a.previous, b.previous
    assert old.stream == whole.stream == 0 and old.end_reason == whole.end_reason == "fin"
    assert old.zeek.conn_state() == whole.zeek.conn_state() == "SF"
    assert old.ending.tw_start == whole.ending.tw_start
    key = E.flow_key(CLI, 40000, SRV, 80)
    assert key not in a.table.tombs and key in a.table.conns
    a.finish()
    assert [c.stream for c in done] == [0, 1, 2]


def test_tombstones_leave_after_the_linger_time():
    spec = _closing() + [_other(T0 + 2 * S), _other(T0 + E.K_LINGER_NS + 30 * S)]
    _rows, a, _ = _verdicts(spec)
    assert not a.table.tombs
    assert a.live == 2          # the two "other" connections (open), not the tombstone


@pytest.mark.parametrize("name", ["llc.pcap", "Teredo.pcap"])
def test_real_late_packets_same_verdicts(name):
    """Real captures with packets long after the close: every packet's verdict is the one
    the engine gave with the connection kept whole for the linger time."""
    path = TRACES / name

    def run(grace):
        a = E.Analyzer(E.Config(grace_ns=grace), keep_timeline=False, on_conn_done=lambda c: None)
        rows = []

        def on_seg(seg, an):
            v = an.verdict
            rows.append((seg.frame, v.conn.stream, v.direction, v.analysis, v.rel_seq, v.rel_ack, v.win, v.ack_rtt,
                         v.acks_frame, v.bytes_in_flight, v.dupack_num, v.dupack_frame))
        analyze_source(str(path), a, on_segment=on_seg)
        return rows, a.late_packets

    after, late = run(E.K_GRACE_NS)
    before, none = run(WHOLE)
    assert late > 0 and none == 0
    assert after == before


def test_late_packet_counter_in_the_report():
    rep = analyze_file(str(TRACES / "llc.pcap"))
    doc = json.loads(json.dumps(rep.to_dict()))
    assert doc["summary"]["late_packets"] > 1000
    assert doc["files"][0]["summary"]["late_packets"] == doc["summary"]["late_packets"]
    assert doc["summary"]["late_packets"] <= doc["summary"]["tcp_segments"]


@pytest.mark.parametrize("how", ["whole", "fanout"])
def test_jobs_2_identical_with_late_packets(how):
    path = str(TRACES / "llc.pcap")
    opts = AnalyzeOptions()
    one = json.loads(json.dumps(analyze_file(path, opts).to_dict()))
    if how == "whole":
        two = P.merge_parts(path, opts, [P.analyze_part(path, opts, k, 2) for k in range(2)])
    else:
        two = P.analyze_fanout(path, opts, 2, inline=True)
    assert json.loads(json.dumps(two.to_dict())) == one
    assert one["summary"]["late_packets"] > 0


def test_compiled_pack_writes_the_bytes_of_the_plain_one():
    """``tomb.pack`` (C stores when compiled) and ``tomb._pack`` (struct) give the same record,
    for a connection closed by FIN and one reset, in TIME_WAIT or not."""
    spec = _closing() + [_other(T0 + 2 * S)] + LATE
    _rows, a, _ = _verdicts(spec, grace_ns=WHOLE)
    conn = a.table.conns[E.flow_key(CLI, 40000, SRV, 80)][0]
    assert conn.end_reason == "fin" and conn.ending.tw_start is not None
    assert tomb.pack(conn) == tomb._pack(conn)
    g = E._ghost(conn.key)
    tomb.load(tomb.pack(conn), g, E.Unacked)
    assert tomb.pack(g) == tomb.pack(conn)
    store = tomb.TombStore(WHOLE)
    store[conn.key] = tomb.pack(conn)
    assert store.expire(conn.last_ns + WHOLE, WHOLE) == 0 and store[conn.key] == tomb.pack(conn)
    assert store.expire(conn.last_ns + WHOLE + 1, WHOLE) == 1 and conn.key not in store and not store
