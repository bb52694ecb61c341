"""Resource bounds (docs/robustness.md): a hostile or just huge capture runs in
bounded memory and is reported as what it is.

* ``Config.max_connections`` (``--max-connections``): live connections; beyond it the least
  recently active are evicted, counted in ``Analyzer.evicted`` and the report's
  ``capture_quality.evicted``; the cost per new connection stays O(1) amortised.
* ``Config.max_unacked`` (``--max-unacked``): unacked segments remembered per direction.
* ``Config.max_events``: anomalies, window shrinks, reordered-ACK edge retreats, zero-window episodes
  kept per connection.
* ``Thresholds.max_findings_per_kind`` (``--max-findings-per-kind``): findings kept per kind
  (all counted).
* ``Config.linger_ns``: closed connections are released, so a stream of short connections
  keeps the table small without any bound being hit.
* A SYN flood (tens of thousands of half-open connections to one port) is flagged as
  ``syn_flood``, with ``max_connections`` in force or not.

The full-size numbers (300k SYNs) are measured outside the suite; see docs/robustness.md.
"""
from __future__ import annotations

import struct
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
from tcpanalyze import engine as E  # noqa: E402
from tcpanalyze.engine import Analyzer, Config, flow_key  # noqa: E402
from tcpanalyze.model import ACK, FIN, PSH, SYN, Segment  # noqa: E402

SERVER = b"\xc0\x00\x02\x01"            # 192.0.2.1
NS = 1_000_000_000

# --------------------------------------------------------------------------- capture writers
_REC = struct.Struct("<IIII")
# Ethernet (dst, src, type) + IPv4 without options + TCP without options: 54 bytes.
_SYN = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")


def src_of(i: int) -> bytes:
    return bytes((10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))


def write_syn_flood(path: Path, n: int, port: int = 80, step_us: int = 10) -> Path:
    """``n`` SYNs (Ethernet/IPv4/TCP), each from its own address and port, to SERVER:port."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    macs = (b"\x00\x11\x22\x33\x44\x55", b"\x66\x77\x88\x99\xaa\xbb")
    t0 = 1_700_000_000 * 1_000_000
    pack = _SYN.pack
    rec = _REC.pack
    for i in range(n):
        frame = pack(*macs, 0x0800, 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src_of(i), SERVER,
                     1024 + (i * 7) % 60000, port, (i * 2654435761) & 0xFFFFFFFF, 0, 0x50, 0x02, 64240, 0, 0)
        us = t0 + i * step_us
        out.append(rec(us // 1_000_000, us % 1_000_000, 54, 54) + frame)
    path.write_bytes(b"".join(out))
    return path


def syn(i: int, ts: int) -> Segment:
    return Segment(i + 1, ts, src_of(i), SERVER, 1024 + i % 60000, 80, (i * 2654435761) & 0xFFFFFFFF, 0,
                   SYN, 64240, 0, 1460, 7, True)


# --------------------------------------------------------------------------- live connections
def test_max_connections_is_enforced():
    done = []
    a = Analyzer(Config(max_connections=100), keep_timeline=False, on_conn_done=done.append)
    for i in range(5000):
        a.feed(syn(i, NS + i * 1000))
        assert len(a.table) <= 2 * 100, f"{len(a.table) // 2} live connections after {i + 1} SYNs"
    assert a.live_peak <= 100
    a.finish()
    assert a.evicted >= 4900 and a.streams == 5000
    assert len(done) == 5000                                    # evicted ones are summarised too
    assert sum(c.end_reason == "evicted" for c in done) == a.evicted
    # The least recently active go first: the survivors are the newest.
    kept = sorted(c.stream for c in done if c.end_reason != "evicted")
    assert kept == list(range(5000 - len(kept), 5000))


def test_eviction_cost_is_amortised():
    """Every new connection over the bound must not cost a scan of the whole table."""
    def feed(n, bound, budget):
        a = Analyzer(Config(max_connections=bound), keep_timeline=False, on_conn_done=lambda c: None)
        t0 = time.perf_counter()
        for i in range(n):
            a.feed(syn(i, NS + i * 1000))
            if not i & 1023 and time.perf_counter() - t0 > budget:
                pytest.fail(f"{i} SYNs took over {budget:.1f} s with max_connections={bound}")
        return time.perf_counter() - t0

    base = feed(20_000, 10**9, 60)                   # never evicts
    feed(20_000, 2_000, 4 * base + 2)                # evicts 18000 times


def test_memory_does_not_grow_with_the_flood():
    """tracemalloc peak with max_connections=1000: the same for 5k and for 15k SYNs."""
    def peak(n):
        a = Analyzer(Config(max_connections=1000), keep_timeline=False, on_conn_done=lambda c: None)
        tracemalloc.start()
        try:
            for i in range(n):
                a.feed(syn(i, NS + i * 1000))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    p1, p3 = peak(5_000), peak(15_000)
    assert p3 < 1.25 * p1, (p1, p3)
    assert p3 < 1000 * 8 * 1024, f"{p3 / 1e6:.1f} MB for 1000 live connections"


def test_syn_flood_in_bounded_memory_is_flagged(tmp_path, monkeypatch):
    """50k SYNs through the whole `analyze` pipeline with max_connections=10k: the live table
    never exceeds the bound, 40k evictions are counted, and it is reported as a SYN flood."""
    from tcpanalyze.session import AnalyzeOptions, analyze_file

    path = write_syn_flood(tmp_path / "synflood.pcap", 50_000)
    seen = []

    class Recording(Analyzer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append(self)

    monkeypatch.setattr(E, "Analyzer", Recording)
    t0 = time.perf_counter()
    rep = analyze_file(str(path), AnalyzeOptions(engine={"max_connections": 10_000}, keep_connections=10))
    elapsed = time.perf_counter() - t0
    an, = seen
    assert an.live_peak <= 10_000 and an.evicted >= 40_000
    s = rep.summary
    assert s["connections"] == 50_000 and s["conn_states"] == {"S0": 50_000}
    assert s["capture_quality"]["evicted"] == an.evicted
    assert len(rep.connections) == 10
    _assert_syn_flood(rep, 50_000)
    assert elapsed < 60, f"{elapsed:.1f} s"


def test_syn_flood_is_flagged(tmp_path):
    """Without any bound hit: 5000 half-open connections to one port are a SYN flood."""
    from tcpanalyze.session import AnalyzeOptions, analyze_file

    path = write_syn_flood(tmp_path / "synflood.pcap", 5000, port=443)
    rep = analyze_file(str(path), AnalyzeOptions(keep_connections=5))
    assert rep.summary["connections"] == 5000 and rep.summary["conn_states"] == {"S0": 5000}
    _assert_syn_flood(rep, 5000, port=443)
    # Per-connection findings are capped per kind (all counted): see test_findings_are_capped_per_kind.
    hs = rep.summary["findings"]["by_kind"]["handshake"]
    assert hs["total"] == 5000 and hs["reported"] <= 1000


def _assert_syn_flood(rep, n, port=80):
    floods = [f for f in rep.findings if f["kind"] == "syn_flood"]
    assert len(floods) == 1, [f["kind"] for f in rep.findings]
    f = floods[0]
    assert f["host"] == "192.0.2.1" and f["port"] == port and f["severity"] == "error"
    assert f["data"]["unanswered"] == n and f["data"]["sources"] == n


def test_syn_flood_json_command(tmp_path):
    """The same through `tcpanalyze analyze --json` (the acceptance path)."""
    import json

    from tcpanalyze.cli import cli

    path = write_syn_flood(tmp_path / "synflood.pcap", 1500)
    r = CliRunner().invoke(cli, ["analyze", str(path), "--json", "--max-findings-per-kind", "20"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    kinds = [f["kind"] for f in doc["findings"]]
    assert kinds.count("syn_flood") == 1
    assert kinds.count("handshake") == 20
    assert doc["summary"]["findings"]["by_kind"]["handshake"]["total"] == 1500


# --------------------------------------------------------------------------- closed connections
def _short_conn(i: int, t: int) -> list[Segment]:
    """A complete connection (handshake, request, response, FIN both ways): 8 segments."""
    c, s = src_of(i), SERVER
    cp = 1024 + i % 60000
    a, b = 1000, 5000
    ms = 1_000_000
    return [Segment(0, t, c, s, cp, 80, a, 0, SYN, 64240, 0, 1460, 7, True),
            Segment(0, t + ms, s, c, 80, cp, b, a + 1, SYN | ACK, 65160, 0, 1460, 7, True),
            Segment(0, t + 2 * ms, c, s, cp, 80, a + 1, b + 1, ACK, 502, 0),
            Segment(0, t + 3 * ms, c, s, cp, 80, a + 1, b + 1, ACK | PSH, 502, 100),
            Segment(0, t + 4 * ms, s, c, 80, cp, b + 1, a + 101, ACK | PSH, 509, 300),
            Segment(0, t + 5 * ms, c, s, cp, 80, a + 101, b + 301, FIN | ACK, 502, 0),
            Segment(0, t + 6 * ms, s, c, 80, cp, b + 301, a + 102, FIN | ACK, 509, 0),
            Segment(0, t + 7 * ms, c, s, cp, 80, a + 102, b + 302, ACK, 502, 0)]


def test_many_short_connections_are_released():
    """15k short connections, one starting every 40 ms (600 s of capture): closed connections
    are released after the linger time, so the table holds only the last ~linger of them --
    whatever the number of connections, with no bound hit and nothing evicted."""
    done = []
    a = Analyzer(Config(), keep_timeline=False, on_conn_done=done.append)
    n, gap = 15_000, 40_000_000
    frame = 0
    for i in range(n):
        for seg in _short_conn(i, NS + i * gap):
            frame += 1
            seg.frame = frame
            a.feed(seg)
    live_bound = (E.K_LINGER_NS + E.K_SWEEP_EVERY_NS) // gap + 2
    assert a.live_peak <= live_bound, (a.live_peak, live_bound)
    assert a.evicted == 0 and len(done) >= n - live_bound
    a.finish()
    assert len(done) == n and all(c.end_reason == "fin" for c in done)


def test_closed_connections_leave_nothing_behind():
    """After many short connections from distinct clients are released, what the engine still
    holds must not grow with their number (a million tiny connections, bounded memory).  The
    only per-connection residue is 8 bytes of TIME_WAIT start time on a tracked host; hosts
    beyond ``max_tw_hosts`` are folded into a count (the bound is set low here so that a
    test-sized run crosses it)."""
    import gc
    import types

    def deep_size(root) -> int:
        skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
        seen, stack, total = set(), [root], 0
        while stack:
            o = stack.pop()
            if id(o) in seen or isinstance(o, skip):
                continue
            seen.add(id(o))
            total += sys.getsizeof(o)
            stack.extend(gc.get_referents(o))
        return total

    def residual(n):
        a = Analyzer(Config(max_tw_hosts=500), keep_timeline=False, on_conn_done=lambda c: None)
        frame = 0
        for i in range(n):
            for seg in _short_conn(i, NS + i * 40_000_000):
                frame += 1
                seg.frame = frame
                a.feed(seg)
        a.finish()
        return deep_size(a)

    r1, r3 = residual(1000), residual(3000)
    assert (r3 - r1) / 2000 < 100, f"{(r3 - r1) / 2000:.0f} bytes kept per released connection"


def test_time_wait_hosts_fold_beyond_the_bound():
    """Past max_tw_hosts the engine folds the quietest hosts into counts, keeps the busy ones
    exact, and the report says how many it folded."""
    a = Analyzer(Config(max_tw_hosts=100), keep_timeline=False, on_conn_done=lambda c: None)
    frame = 0
    n = 1000
    for i in range(n):
        for seg in _short_conn(i, NS + i * 40_000_000):
            frame += 1
            seg.frame = frame
            a.feed(seg)
    a.finish()
    assert len(a.tw_hosts) <= 100
    assert a.tw_folded_hosts + len(a.tw_hosts) == n
    assert a.tw_folded_periods + sum(len(h.starts) for h in a.tw_hosts.values()) == n
    from tcpanalyze.findings import CaptureFacts, Thresholds, aggregate_findings
    _out, extra = aggregate_findings(CaptureFacts.of(a), Thresholds(), None)
    assert extra["time_wait"]["untracked_hosts"] == a.tw_folded_hosts


# --------------------------------------------------------------------------- per-connection state
def test_max_unacked_bounds_each_direction():
    """A sender whose data is never acknowledged: at most max_unacked segments remembered."""
    a = Analyzer(Config(max_unacked=50), keep_timeline=False)
    c, s = b"\x0a\x00\x00\x01", SERVER
    a.feed(Segment(1, NS, c, s, 40000, 80, 0, 0, SYN, 64240, 0))
    a.feed(Segment(2, NS + 1, s, c, 80, 40000, 7, 1, SYN | ACK, 65535, 0))
    seq = 1
    for i in range(5000):
        conn = a.feed(Segment(3 + i, NS + 10 + i, c, s, 40000, 80, seq, 8, ACK | PSH, 64240, 100)).conn
        seq += 100
        assert len(conn.flows[0].segs) <= 50 and len(conn.flows[1].segs) <= 50
    # ...and the data is still counted in full.
    conn, = a.finish()
    assert conn.flows[0].stats.bytes == 500_000 and conn.flows[0].stats.data_pkts == 5000


def test_disordered_unacked_list_is_not_walked_by_every_ack():
    """5000 unacked segments sent out of order, then 100k ACKs that acknowledge none of them
    (a hostile trace): each ACK must not walk the whole list, and bytes in flight must not
    rescan it for every new segment.  A generous budget: the quadratic version takes minutes."""
    a = Analyzer(Config(max_unacked=5000), keep_timeline=False)
    c, s = b"\x0a\x00\x00\x01", SERVER
    a.feed(Segment(1, NS, c, s, 40000, 80, 0, 0, SYN, 64240, 0))
    a.feed(Segment(2, NS + 1, s, c, 80, 40000, 7, 1, SYN | ACK, 65535, 0))
    frame = 3
    t0 = time.perf_counter()
    for i in range(5000, 0, -1):        # highest first: the list is disordered from the 2nd
        a.feed(Segment(frame, NS + 10 + frame, c, s, 40000, 80, 1 + i * 100, 8, ACK | PSH, 64240, 100))
        frame += 1
    for i in range(100_000):
        a.feed(Segment(frame, NS + 10 + frame, s, c, 80, 40000, 8, 1, ACK, 65535, 0))
        frame += 1
    conn = a.table.conns[flow_key(c, 40000, s, 80)][0]
    f = conn.flows[0]
    assert len(f.segs) == 5000 and f.segs_disordered
    assert f.seg_lo == 101 and f.seg_hi == 500_101
    # now the receiver acknowledges everything: the list empties
    a.feed(Segment(frame, NS + 10 + frame, s, c, 80, 40000, 8, 500_101, ACK, 65535, 0))
    assert not f.segs and not f.segs_disordered
    assert time.perf_counter() - t0 < 30


def test_max_events_bounds_per_connection_lists():
    """Anomalies, window shrinks and zero-window episodes: at most max_events kept each."""
    a = Analyzer(Config(max_events=5), keep_timeline=False)
    c, s = b"\x0a\x00\x00\x01", SERVER
    a.feed(Segment(1, NS, c, s, 40000, 80, 0, 0, SYN, 64240, 0, 1460, 2))
    a.feed(Segment(2, NS + 1, s, c, 80, 40000, 7, 1, SYN | ACK, 65535, 0, 1460, 2))
    a.feed(Segment(3, NS + 2, c, s, 40000, 80, 1, 8, ACK, 64240, 0))
    f = 3
    for i in range(400):
        f += 1
        # the server's window: 65535, then 0 (zero window), then shrinking further (edge retreats)
        a.feed(Segment(f, NS + 10 * f, s, c, 80, 40000, 8, 1, ACK, (65535, 0, 1000 - i, 100)[i % 4], 0))
        f += 1
        # a SYN in ESTABLISHED: an unexpected transition every time
        a.feed(Segment(f, NS + 10 * f, c, s, 40000, 80, 0, 0, SYN, 64240, 0))
    conn, = a.finish()
    assert conn.anomalies is not None and len(conn.anomalies) == 5
    srv = conn.flows[1]
    assert srv.track.zw_episodes is not None and len(srv.track.zw_episodes) == 5
    assert srv.track.shrinks is not None and len(srv.track.shrinks) == 5 and srv.track.shrink_bytes > 0


def test_max_events_bounds_reordered_ack_retreats():
    """Old ACKs arriving late (edge retreats kept apart from shrinks): at most max_events kept."""
    a = Analyzer(Config(max_events=5), keep_timeline=False)
    c, s = b"\x0a\x00\x00\x01", SERVER
    a.feed(Segment(1, NS, c, s, 40000, 80, 0, 0, SYN, 64240, 0, 1460, 2))
    a.feed(Segment(2, NS + 1, s, c, 80, 40000, 7, 1, SYN | ACK, 65535, 0, 1460, 2))
    a.feed(Segment(3, NS + 2, c, s, 40000, 80, 1, 8, ACK, 64240, 0))
    f = 3
    for i in range(400):
        f += 1
        # the client's data, then the server's ACK of it, then an older ACK that arrives late
        a.feed(Segment(f, NS + 10 * f, c, s, 40000, 80, 1 + 1000 * i, 8, ACK, 64240, 1000))
        f += 1
        a.feed(Segment(f, NS + 10 * f, s, c, 80, 40000, 8, 1 + 1000 * (i + 1), ACK, 65535, 0))
        f += 1
        a.feed(Segment(f, NS + 10 * f, s, c, 80, 40000, 8, 1 + 1000 * i + 500, ACK, 65535, 0))
    conn, = a.finish()
    srv = conn.flows[1]
    assert srv.track.reorders is not None and len(srv.track.reorders) == 5
    assert srv.track.reorder_bytes == 400 * 500 and not srv.track.shrinks


def test_findings_are_capped_per_kind(tmp_path):
    """1500 unanswered handshakes, cap 50: 50 findings kept, 1500 counted."""
    from tcpanalyze.findings import Thresholds
    from tcpanalyze.session import AnalyzeOptions, analyze_file

    path = write_syn_flood(tmp_path / "syns.pcap", 1500)
    rep = analyze_file(str(path), AnalyzeOptions(thresholds=Thresholds(max_findings_per_kind=50)))
    hs = rep.summary["findings"]["by_kind"]["handshake"]
    assert hs["total"] == 1500 and hs["reported"] == 50
    assert sum(f["kind"] == "handshake" for f in rep.findings) == 50
    assert rep.summary["findings"]["total"] > rep.summary["findings"]["reported"]


# --------------------------------------------------------------------------- documented surface
def test_bounds_are_documented_and_exposed():
    from tcpanalyze import analysis as A
    from tcpanalyze import findings as F
    from tcpanalyze.cli import cli
    from tcpanalyze.sources import pcap as P

    doc = (ROOT / "docs" / "robustness.md").read_text(encoding="utf-8")
    for name, value in [("K_MAX_CONNECTIONS", E.K_MAX_CONNECTIONS), ("K_MAX_UNACKED", A.K_MAX_UNACKED),
                        ("K_MAX_EVENTS_PER_CONN", E.K_MAX_EVENTS_PER_CONN),
                        ("K_MAX_FINDINGS_PER_KIND", F.K_MAX_FINDINGS_PER_KIND),
                        ("DEFAULT_MAX_RECORD", P.DEFAULT_MAX_RECORD)]:
        assert name in doc, name
        assert f"{value:_}" in doc or f"{value:,}" in doc or str(value) in doc, (name, value)
    for opt in ("--max-connections", "--max-unacked", "--max-findings-per-kind"):
        assert opt in doc
    helptext = CliRunner().invoke(cli, ["analyze", "--help"]).output
    for opt in ("--max-connections", "--max-unacked", "--max-findings-per-kind"):
        assert opt in helptext, opt
    for cmd in ("packets", "flows"):
        helptext = CliRunner().invoke(cli, [cmd, "--help"]).output
        assert "--max-connections" in helptext and "--max-unacked" in helptext


def test_a_file_run_makes_no_reference_cycles_per_packet(tmp_path):
    """Files are analysed with the cyclic collector off (pipeline.gc_tuned): that is only
    sound if the per-packet path frees everything by reference counting.  Whatever cycles a
    run leaves must not grow with the number of packets and connections."""
    import gc
    import subprocess

    from tcpanalyze.pipeline import analyze_source

    garbage = []
    for n in (3_000, 30_000):
        cap = tmp_path / f"gen{n}.pcap"
        subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "bench" / "gen_capture.py"),
                        str(cap), "--packets", str(n), "--conns", str(n // 10), "--seed", "2"],
                       check=True, capture_output=True, timeout=120)
        gc.collect()
        an = Analyzer(Config(), keep_timeline=False)
        assert gc.isenabled()
        analyze_source(str(cap), an, on_segment=lambda seg, a: None)
        assert gc.isenabled()                # switched back on after the run
        an.finish()
        del an
        garbage.append(gc.collect())
    print("cyclic garbage after 3k / 30k packets:", garbage)
    assert garbage[1] <= garbage[0] + 10, garbage


def test_analyze_file_leaves_no_cycle_behind():
    """``analyze_file`` lets go of the engine, the detectors and their findings by reference
    counting: when the cyclic collector comes back on after a file it has the run's objects to
    walk, and none of them may be garbage only it can free (the report builder, its detectors
    and every finding they kept, held by a bound method or a deferred record)."""
    import gc

    from tcpanalyze.session import analyze_file

    cap = Path(__file__).resolve().parents[1] / "samples" / "rst_refused_aborted.pcap"
    gc.collect()
    rep = analyze_file(str(cap))
    assert rep.findings                  # a capture with findings, so there are some to leak
    left = gc.collect()
    assert left <= 5, left
