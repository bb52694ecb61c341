"""IP fragment reassembly: the Reassembler's rules, the decoder's fragment path and the
pipeline's counters.

Fragmented frames are made by splitting REAL kernel TCP frames from samples/*.pcap (recorded
between network namespaces, see samples/SOURCES.md) with scapy; the decode of the reassembled
datagram must equal the decode of the original frame.  The real captures are
tests/data/traces/fragmented-syn.pcap (Zeek's) and, once the GTP-U decoder's branch adds it,
gtp1_gn_normal_incl_fragmentation.pcap.
"""
from __future__ import annotations

import csv
import itertools
import json
import logging
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpanalyze.decode import DecodeState, decode
from tcpanalyze.errors import DecodeError
from tcpanalyze.model import Segment
from tcpanalyze.reassembly import FragmentError, Reassembler
from tcpanalyze.sources.pcap import open_capture

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
scapy_all = pytest.importorskip("scapy.all")
from scapy.all import (IP, UDP, Ether, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,  # noqa: E402
                       Raw, fragment, wrpcap)
from scapy.layers.vxlan import VXLAN  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
TRACES = ROOT / "tests" / "data" / "traces"
SEC = 1_000_000_000


# ------------------------------------------------------------------ real frames from the samples
def _frames(name: str):
    return [(fr, ts, lt, bytes(data), wl) for fr, ts, lt, data, wl in open_capture(str(SAMPLES / name))]


def _pick(path: Path, want) -> list[bytes]:
    """Ethernet frames of ``path`` captured whole that ``want(segment)``; a raw-IP capture's
    packets get an Ethernet header."""
    out = []
    for _fr, _ts, lt, data, wl in open_capture(str(path)):
        data = bytes(data)
        if lt == 101:
            data = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02",
                               type=0x86DD if data[0] >> 4 == 6 else 0x0800)) + data
            wl += 14
        seg = decode(1, 0, 1, data, {})
        if seg is not None and len(data) == wl and not seg.truncated and want(seg):   # captured whole
            out.append(data)
    return out


# real kernel TCP from the samples; the IPv6 data segments come from a public capture (the
# samples' IPv6 data frames are cut by the snaplen)
V4_DATA = _pick(SAMPLES / "rst_refused_aborted.pcap", lambda s: s.paylen >= 1000 and len(s.src) == 4)[:3]
V4_SYN = _pick(SAMPLES / "http_small.pcap", lambda s: s.flags & 0x02 and len(s.src) == 4)[:2]
V6_DATA = _pick(TRACES / "pcapplusplus-one_ipv6_http_stream.pcap", lambda s: s.paylen >= 800)[:2]
V6_SYN = _pick(SAMPLES / "timewait_server_close.pcap", lambda s: s.flags & 0x02 and len(s.src) == 16)[:1]


def _same(a: Segment, b: Segment) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in Segment.__slots__ if k not in ("frame", "ts_ns"))


def _run(frames: list[bytes], state: DecodeState | None = None, ts_step: int = 1000):
    """Decode frames in order with one DecodeState; (segments with their frame numbers, state)."""
    st = state if state is not None else DecodeState(Reassembler())
    segs = []
    for i, f in enumerate(frames, 1):
        seg = decode(i, i * ts_step, 1, f, st)
        if seg is not None:
            segs.append(seg)
    return segs, st


def _frag4(frame: bytes, size: int) -> list[bytes]:
    """An Ethernet/IPv4 frame split into IPv4 fragments of ``size`` payload bytes (scapy)."""
    pkt = Ether(frame)
    return [bytes(Ether(src=pkt.src, dst=pkt.dst) / f) for f in fragment(pkt[IP], fragsize=size)]


def _frag6(frame: bytes, size: int, ident: int = 0x1234, exts=()) -> list[bytes]:
    """An Ethernet/IPv6 frame split into IPv6 fragments of ``size`` payload bytes (multiple of 8)."""
    pkt = Ether(frame)
    ip6 = pkt[IPv6]
    nh = ip6.nh
    upper = bytes(ip6.payload)
    out = []
    for off in range(0, len(upper), size):
        chunk = upper[off:off + size]
        more = off + size < len(upper)
        hdr = IPv6(src=ip6.src, dst=ip6.dst, hlim=ip6.hlim, tc=ip6.tc, fl=ip6.fl)
        for e in exts:
            hdr = hdr / e
        hdr = hdr / IPv6ExtHdrFragment(nh=nh, offset=off // 8, m=int(more), id=ident) / Raw(chunk)
        out.append(bytes(Ether(src=pkt.src, dst=pkt.dst, type=0x86DD) / hdr))
    return out


def test_sample_frames_present():
    assert len(V4_DATA) == 3 and len(V4_SYN) == 2 and len(V6_DATA) == 2 and len(V6_SYN) == 1


# ------------------------------------------------------------------ decode of reassembled real frames
@pytest.mark.parametrize("which,size", [(w, n) for w in ("data0", "data1") for n in (8, 16, 24, 200, 512, 1000)]
                         + [("syn", n) for n in (8, 16, 24, 32)])
def test_ipv4_fragments_in_order_equal_the_original(size, which):
    frame = {"data0": V4_DATA[0], "data1": V4_DATA[1], "syn": V4_SYN[0]}[which]
    orig = decode(1, 0, 1, frame, {})
    frags = _frag4(frame, size)
    assert len(frags) >= 2
    segs, st = _run(frags)
    assert len(segs) == 1 and _same(segs[0], orig)
    assert segs[0].frame == len(frags)           # the frame that completed the datagram
    assert st["ip_fragment"] == len(frags) - 1
    assert st.frags.counts["reassembled"] == 1 and not st.frags.table


def test_tiny_first_fragment_holds_less_than_a_tcp_header():
    frags = _frag4(V4_DATA[0], 8)                # 8 bytes: ports and seq only
    assert len(Ether(frags[0])[IP].payload) == 8
    segs, _ = _run(frags)
    assert _same(segs[0], decode(1, 0, 1, V4_DATA[0], {}))


@pytest.mark.parametrize("seed", range(12))
def test_ipv4_fragments_in_any_order(seed):
    rng = random.Random(seed)
    frame = V4_DATA[seed % 3]
    frags = _frag4(frame, rng.choice([8, 64, 296, 480]))
    rng.shuffle(frags)
    segs, st = _run(frags)
    assert len(segs) == 1 and _same(segs[0], decode(1, 0, 1, frame, {}))
    assert segs[0].frame == len(frags)


def test_every_order_of_four_fragments():
    frame = V4_DATA[2]
    frags = _frag4(frame, 376)
    assert len(frags) == 4
    orig = decode(1, 0, 1, frame, {})
    for perm in itertools.permutations(frags):
        segs, _ = _run(list(perm))
        assert len(segs) == 1 and _same(segs[0], orig)


@pytest.mark.parametrize("which,size", [(w, n) for w in ("data0", "data1") for n in (8, 56, 256, 512)]
                         + [("syn", n) for n in (8, 16, 24)])
def test_ipv6_fragments_equal_the_original(size, which):
    frame = {"data0": V6_DATA[0], "data1": V6_DATA[1], "syn": V6_SYN[0]}[which]
    orig = decode(1, 0, 1, frame, {})
    frags = _frag6(frame, size)
    assert len(frags) >= 2
    for order in (frags, frags[::-1], frags[1:] + frags[:1]):
        segs, st = _run(order)
        assert len(segs) == 1 and _same(segs[0], orig)
        assert st.frags.counts["reassembled"] == 1


def test_ipv6_fragment_after_other_extension_headers():
    frame = V6_DATA[0]
    frags = _frag6(frame, 64, exts=(IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt()))
    segs, _ = _run(frags[::-1])
    assert len(segs) == 1 and _same(segs[0], decode(1, 0, 1, frame, {}))


def test_ipv6_atomic_fragment_is_not_held():
    frags = _frag6(V6_DATA[0], 4096)             # offset 0, M = 0 (RFC 6946)
    assert len(frags) == 1
    segs, st = _run(frags)
    assert len(segs) == 1 and st.frags.counts["fragments"] == 0


def test_interleaved_datagrams_of_both_families():
    a = _frag4(V4_DATA[0], 296)
    b = _frag6(V6_DATA[0], 128)
    c = _frag4(V4_SYN[0], 16)
    mixed = [x for trio in itertools.zip_longest(a, b, c) for x in trio if x is not None]
    segs, st = _run(mixed)
    assert len(segs) == 3 and st.frags.counts["reassembled"] == 3 and not st.frags.table
    origs = [decode(1, 0, 1, f, {}) for f in (V4_DATA[0], V6_DATA[0], V4_SYN[0])]
    for o in origs:
        assert any(_same(s, o) for s in segs)


def test_without_reassembly_the_first_fragment_is_decoded_as_before():
    frags = _frag4(V4_DATA[0], 512)
    counts: dict = {}
    seg = decode(1, 0, 1, frags[0], counts)
    orig = decode(1, 0, 1, V4_DATA[0], {})
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags) == (orig.sport, orig.dport, orig.seq, orig.ack, orig.flags)
    assert seg.paylen == 512 - 32                # what the fragment holds after the TCP header
    assert decode(2, 0, 1, frags[1], counts) is None and counts == {"ip_fragment": 1}


# ------------------------------------------------------------------ overlaps (Linux rules)
def test_duplicate_fragment_is_ignored_and_the_first_bytes_win():
    frame = V4_DATA[0]
    frags = _frag4(frame, 296)
    # a copy of fragment 0 whose TCP sequence number is changed: contained in data already held
    forged = Ether(frags[0])
    raw = bytearray(bytes(forged[IP].payload))
    raw[4:8] = b"\xde\xad\xbe\xef"
    forged[IP].remove_payload()
    forged = bytes(forged / Raw(bytes(raw)))
    segs, st = _run([frags[0], forged] + frags[1:])
    assert len(segs) == 1 and _same(segs[0], decode(1, 0, 1, frame, {}))
    assert st.frags.counts["duplicates"] == 1 and st.frags.counts["overlapping"] == 0


def test_exact_retransmitted_fragment_is_a_duplicate():
    frags = _frag4(V4_DATA[1], 200)
    segs, st = _run(frags[:2] + frags[1:2] + frags[2:])
    assert len(segs) == 1 and st.frags.counts["duplicates"] == 1


def _ip4_frag(template: bytes, offset: int, payload: bytes, more: bool) -> bytes:
    pkt = Ether(template)
    ip = pkt[IP]
    f = IP(src=ip.src, dst=ip.dst, id=ip.id, proto=ip.proto, ttl=ip.ttl, frag=offset // 8,
           flags="MF" if more else 0) / Raw(payload)
    return bytes(Ether(src=pkt.src, dst=pkt.dst) / f)


def test_partial_overlap_discards_the_datagram():
    frame = V4_DATA[0]
    upper = bytes(Ether(frame)[IP].payload)
    f0 = _ip4_frag(frame, 0, upper[:400], True)
    f1 = _ip4_frag(frame, 296, upper[296:800], True)      # overlaps 296..400 and goes beyond
    rest = _ip4_frag(frame, 800, upper[800:], False)
    segs, st = _run([f0, f1, rest])
    assert segs == [] and st.frags.counts["overlapping"] == 1
    # what came after the discard starts a new datagram that never completes
    assert len(st.frags.table) == 1
    assert st.frags.finish()["incomplete"] == 1


def test_ipv6_overlap_discards_the_datagram():
    frame = V6_DATA[0]
    frags = _frag6(frame, 64)
    over = _frag6(frame, 128)[0]                              # offset 0..128 over 0..64 + 64..128: contained
    segs, st = _run([frags[0], frags[1], over] + frags[2:])
    assert len(segs) == 1 and st.frags.counts["duplicates"] == 1
    pkt = Ether(frags[0])
    upper = bytes(Ether(frame)[IPv6].payload)
    bad = bytes(Ether(src=pkt.src, dst=pkt.dst, type=0x86DD) / IPv6(src=pkt[IPv6].src, dst=pkt[IPv6].dst)
                / IPv6ExtHdrFragment(nh=6, offset=4, m=1, id=0x1234) / Raw(upper[32:96]))   # 32..96 straddles
    segs, st = _run([frags[0], bad] + frags[1:])
    assert segs == [] and st.frags.counts["overlapping"] == 1


# ------------------------------------------------------------------ outer fragments of a tunnel
def _vxlan(inner: bytes, outer_id: int = 7) -> bytes:
    return bytes(Ether() / IP(src="192.0.2.10", dst="192.0.2.20", id=outer_id) / UDP(sport=40000, dport=4789)
                 / VXLAN(vni=42) / Raw(inner))


@pytest.mark.parametrize("size", [24, 504, 1000])
def test_fragmented_vxlan_datagram_is_decoded_through_the_tunnel(size):
    inner = V4_DATA[0]
    whole = _vxlan(inner)
    orig = decode(1, 0, 1, whole, {})
    assert _same(orig, decode(1, 0, 1, inner, {}))
    frags = _frag4(whole, size)
    for order in (frags, frags[::-1]):
        segs, st = _run(order)
        assert len(segs) == 1 and _same(segs[0], orig)


def test_fragmented_inner_packet_inside_a_tunnel():
    # the inner IPv4 packet is fragmented and each fragment travels in its own VXLAN datagram
    inner_frags = _frag4(V4_DATA[1], 512)
    segs, st = _run([_vxlan(f, outer_id=i) for i, f in enumerate(inner_frags)])
    assert len(segs) == 1 and _same(segs[0], decode(1, 0, 1, V4_DATA[1], {}))


def _gtp_decoded() -> bool:
    """Does this tree decode GTP-U (UDP 2152)?"""
    from scapy.contrib.gtp import GTP_U_Header
    inner = Ether(V4_DATA[0])[IP]
    frame = bytes(Ether() / IP(src="192.0.2.10", dst="192.0.2.20") / UDP(sport=2152, dport=2152)
                  / GTP_U_Header(teid=1) / inner)
    return decode(1, 0, 1, frame, {}) is not None


@pytest.mark.parametrize("size", [64, 512])
def test_fragmented_gtp_u_datagram(size):
    if not _gtp_decoded():
        pytest.skip("this tree has no GTP-U decoder (the encapsulations branch adds it); "
                    "VXLAN covers outer-fragment reassembly here")
    from scapy.contrib.gtp import GTP_U_Header
    inner = Ether(V4_DATA[2])[IP]
    whole = bytes(Ether() / IP(src="192.0.2.10", dst="192.0.2.20", id=99) / UDP(sport=2152, dport=2152)
                  / GTP_U_Header(teid=0x1234) / inner)
    orig = decode(1, 0, 1, whole, {})
    frags = _frag4(whole, size)
    segs, _ = _run(frags[::-1])
    assert len(segs) == 1 and _same(segs[0], orig) and _same(orig, decode(1, 0, 1, V4_DATA[2], {}))


GTP_CAPTURE = TRACES / "gtp1_gn_normal_incl_fragmentation.pcap"


def test_gtp_capture_with_fragmented_outer_datagrams():
    """Zeek's GTP-U capture: every TCP row tshark shows is decoded on the same frame, with
    equal fields; the 4 datagrams whose last fragment is missing from the capture stay
    incomplete (Zeek reports them as 5,760 missed bytes = 4 x 1,440)."""
    if not GTP_CAPTURE.exists() or not _gtp_decoded():
        pytest.skip("the GTP-U capture and decoder come with the encapsulations branch")
    rows = {int(r["frame.number"]): r for r in csv.DictReader(open(str(GTP_CAPTURE) + ".tshark.tsv"), delimiter="\t")}
    st = DecodeState(Reassembler())
    got = {}
    for fr, ts, lt, data, wl in open_capture(str(GTP_CAPTURE)):
        seg = decode(fr, ts, lt, data, st, wl)
        if seg is not None:
            got[fr] = seg
    assert set(got) == set(rows)
    for fr, r in rows.items():
        s = got[fr]
        assert (s.sport, s.dport, s.seq, s.paylen) == (int(r["tcp.srcport"]), int(r["tcp.dstport"]),
                                                       int(r["tcp.seq_raw"]), int(r["tcp.len"]))
    c = st.frags.finish()
    assert (c["reassembled"], c["incomplete"]) == (36, 4)


def test_gtp_capture_connection_equals_zeek():
    """The same capture through the whole analysis: the connection's Zeek fields equal Zeek's
    conn.log (history ShADadfgF: the gap the 4 incomplete datagrams leave; packets counted
    once per reassembled datagram)."""
    expected = Path(str(GTP_CAPTURE) + ".zeek_expected.json")
    if not expected.exists() or not _gtp_decoded():
        pytest.skip("the GTP-U capture, its Zeek baseline and the decoder come with the encapsulations branch")
    from tcpanalyze.session import analyze_file

    (z,) = json.loads(expected.read_text())["expectations"][0]["tcp_conns"]
    (c,) = analyze_file(str(GTP_CAPTURE)).connections
    assert (c["orig_h"], c["orig_p"], c["resp_h"], c["resp_p"]) == (z["id.orig_h"], int(z["id.orig_p"]),
                                                                     z["id.resp_h"], int(z["id.resp_p"]))
    assert (c["conn_state"], c["history"], c["orig_pkts"], c["resp_pkts"]) == (
        z["conn_state"], z["history"], int(z["orig_pkts"]), int(z["resp_pkts"]))


# ------------------------------------------------------------------ the real capture, through the pipeline
def test_fragmented_syn_capture_through_the_pipeline():
    from tcpanalyze.session import analyze_file

    rep = analyze_file(str(TRACES / "fragmented-syn.pcap"))
    f = rep.files[0]
    assert f["tcp_segments"] == 1 and f["skipped"] == {"ip_fragment": 1}
    assert f["ip_fragments"]["fragments"] == 2 and f["ip_fragments"]["reassembled"] == 1
    cq = rep.summary["capture_quality"]
    assert cq["fragments_reassembled"] == 1 and cq["fragments_incomplete"] == 0


def test_capture_without_fragments_reports_nothing_new():
    from tcpanalyze.session import analyze_file

    rep = analyze_file(str(SAMPLES / "http_small.pcap"))
    assert "ip_fragments" not in rep.files[0]
    assert not any(k.startswith("fragments_") for k in rep.summary["capture_quality"])


def test_packets_rows_of_a_fragmented_capture(tmp_path):
    """A real capture with every data segment fragmented (scapy, out of order) gives the
    same per-packet analysis as the original; each row sits on the frame that completed it."""
    from tcpanalyze.engine import Analyzer, Config
    from tcpanalyze.pipeline import analyze_source

    frames = _frames("rst_refused_aborted.pcap")
    out, expect_frame, nfrag = [], {}, 0
    for fr, ts, lt, data, wl in frames:
        seg = decode(fr, ts, lt, data, {})
        pieces = _frag4(data, 64) if seg.paylen and len(data) == wl else [data]
        if len(pieces) > 1:
            pieces = pieces[1:] + pieces[:1]
            nfrag += 1
        for p in pieces:
            out.append((ts, p))
        expect_frame[fr] = len(out)
    pkts = []
    for ts, p in out:
        e = Ether(p)
        e.time = ts / SEC
        pkts.append(e)
    path = tmp_path / "frag.pcap"
    wrpcap(str(path), pkts)

    def rows(capture):
        got = []
        a = Analyzer(Config(), keep_timeline=False)

        def on_seg(seg, an):
            v = an.verdict
            got.append((seg.frame, v.conn.stream, v.rel_seq, v.rel_ack, seg.paylen, seg.flags, v.win, v.analysis))
        stats = analyze_source(str(capture), a, on_segment=on_seg)
        a.finish()
        return got, stats

    base, _ = rows(SAMPLES / "rst_refused_aborted.pcap")
    frag, stats = rows(path)
    assert [r[1:] for r in base] == [r[1:] for r in frag]
    assert [expect_frame[r[0]] for r in base] == [r[0] for r in frag]
    assert stats.fragments["reassembled"] == nfrag > 40
    assert stats.fragments["incomplete"] == 0


# ------------------------------------------------------------------ malformed fragments
def test_malformed_fragments_are_decode_errors_with_offsets():
    frame = V4_DATA[0]
    upper = bytes(Ether(frame)[IP].payload)
    st = DecodeState(Reassembler())
    bad_v4 = _ip4_frag(frame, 65528, upper[:16], False)                 # ends past 65,535
    with pytest.raises(DecodeError) as ei:
        decode(1, 0, 1, bad_v4, st)
    assert ei.value.kind == "bad_ip_fragment" and ei.value.offset == 14 + 6
    pkt = Ether(V6_DATA[0])
    bad_v6 = bytes(Ether(type=0x86DD) / IPv6(src=pkt[IPv6].src, dst=pkt[IPv6].dst)
                   / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=5) / Raw(b"x" * 13))  # M set, 13 bytes
    with pytest.raises(DecodeError) as ei:
        decode(2, 0, 1, bad_v6, st)
    assert ei.value.kind == "bad_ip_fragment" and ei.value.offset == 14 + 40 + 2
    assert st.frags.counts["malformed"] == 2


def test_inconsistent_last_fragment():
    r = Reassembler()
    assert r.add("k", 0, False, 16, False, b"b" * 8) is None          # last fragment: the datagram is 24 bytes
    with pytest.raises(FragmentError):
        r.add("k", 0, False, 16, False, b"b" * 16)                    # a second last fragment, other end
    with pytest.raises(FragmentError):
        r.add("k", 0, False, 16, True, b"c" * 16)                     # data after the last fragment's end
    assert r.add("k", 0, False, 0, True, b"a" * 16, b"H") == (b"H", b"a" * 16 + b"b" * 8)
    r2 = Reassembler()
    r2.add("k", 0, False, 16, True, b"b" * 16, None)
    with pytest.raises(FragmentError):
        r2.add("k", 0, False, 0, False, b"a" * 8)                    # last fragment ending before data held
    assert r2.counts["malformed"] == 1


def test_ipv4_odd_non_last_fragment_is_cut_to_eight_bytes():
    r = Reassembler()
    assert r.add("k", 0, False, 0, True, b"a" * 13, b"H") is None    # keeps 8 bytes
    assert r.add("k", 0, False, 8, False, b"b" * 4, None) == (b"H", b"a" * 8 + b"b" * 4)


def test_fragment_pipeline_counts_errors(tmp_path):
    from tcpanalyze.session import analyze_file

    frame = V4_DATA[0]
    upper = bytes(Ether(frame)[IP].payload)
    pkts = [Ether(_ip4_frag(frame, 65528, upper[:16], False)), Ether(frame)]
    path = tmp_path / "bad.pcap"
    wrpcap(str(path), pkts)
    rep = analyze_file(str(path))
    f = rep.files[0]
    assert f["decode_errors"] == {"bad_ip_fragment": 1}
    assert f["decode_error_examples"]["bad_ip_fragment"][0]["offset"] == 20


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8200), st.booleans(), st.integers(0, 1600), st.integers(0, 3)),
                min_size=1, max_size=12))
def test_random_fragments_never_raise_anything_but_decode_errors(spec):
    frame = V4_DATA[0]
    upper = bytes(Ether(frame)[IP].payload) * 50
    st_ = DecodeState(Reassembler(max_datagrams=4, max_bytes=4000))
    for i, (off8, more, ln, ident) in enumerate(spec):
        pkt = Ether(frame)
        ip = pkt[IP]
        f = IP(src=ip.src, dst=ip.dst, id=ident, proto=6, frag=off8, flags="MF" if more else 0) / Raw(upper[:ln])
        try:
            decode(i, i, 1, bytes(Ether() / f), st_)
        except DecodeError:
            pass
        assert len(st_.frags.table) <= 4 and st_.frags.bytes <= 4000


# ------------------------------------------------------------------ bounds and timeout
def test_memory_is_bounded_by_datagrams_and_bytes():
    r = Reassembler(max_datagrams=10, max_bytes=1 << 30)
    for i in range(1000):
        r.add(("d", i), i, False, 0, True, b"x" * 64, b"H")
        assert len(r.table) <= 10
    assert r.counts["evicted"] == 990
    r = Reassembler(max_datagrams=1 << 20, max_bytes=10_000)
    for i in range(1000):
        r.add(("d", i), i, False, 0, True, b"x" * 1000, b"H")
        assert r.bytes <= 10_000
    assert r.counts["evicted"] == 990 and len(r.table) == 10
    # the oldest go first: the newest datagram still completes
    assert r.add(("d", 999), 1000, False, 1000, False, b"y" * 8) == (b"H", b"x" * 1000 + b"y" * 8)


def test_default_bound_holds_on_a_flood_of_first_fragments():
    frags = [_frag4(V4_DATA[0], 512)[0]] * 1
    st_ = DecodeState(Reassembler())
    base = Ether(frags[0])
    for i in range(6000):
        base[IP].id = i % 65536
        decode(i, i, 1, bytes(base), st_)
    r = st_.frags
    assert len(r.table) <= r.max_datagrams and r.bytes <= r.max_bytes
    assert r.counts["evicted"] == 6000 - len(r.table)


def test_timeout_in_capture_time():
    frags = _frag4(V4_DATA[0], 512)
    st_ = DecodeState(Reassembler())
    assert decode(1, 0, 1, frags[0], st_) is None
    # 31 s of capture time later: the first fragment expired, the rest cannot complete
    for i, f in enumerate(frags[1:], 2):
        assert decode(i, 31 * SEC, 1, f, st_) is None
    c = st_.frags.counts
    assert c["timed_out"] == 1 and c["reassembled"] == 0
    # within the timeout the same fragments complete
    segs, st2 = _run(frags, ts_step=10 * SEC)
    assert len(segs) == 1 and st2.frags.counts["timed_out"] == 0


def test_ipv6_timeout_is_longer():
    frags = _frag6(V6_DATA[0], 128)
    segs, st_ = _run(frags, ts_step=45 * SEC // max(1, len(frags) - 1))
    assert len(segs) == 1
    segs, st_ = _run(frags, ts_step=61 * SEC)
    assert segs == [] and st_.frags.counts["timed_out"] >= 1
