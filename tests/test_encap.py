"""Encapsulations: real captures against tshark and Zeek, and variants built around real segments.

Part 1 -- real third-party captures (tests/data/traces, see SOURCES.md) that hide TCP inside a
tunnel, a shim or an old link type: every TCP row of the tshark 4.0.17 oracle is decoded with
equal stream, seq, ack, len, flags and window, and Zeek's conn.log entries (conn_state,
history, originator) agree.  Where a capture needs something outside the decoder the test
says exactly which rows and why (IP fragment reassembly, a snap length that cuts a TCP header,
Zeek run in bare mode).

Part 2 -- variants the captures do not show (other ports, option lengths, extension headers,
nesting depths, IPv6 inside): frames built with scapy around REAL kernel TCP segments, the
IP packets of samples/http_small.pcap (IPv4) and samples/handshake_variety.pcap (IPv6),
recorded with tcpdump between network namespaces (samples/make_samples.sh).  Each wrapped
frame must decode to exactly the segment of the original frame.

Part 3 -- malformed and truncated encapsulation headers: a Segment, a counted skip or a
DecodeError with an offset inside the frame; never another exception.
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.gtp_v2 import GTPHeader as GTPv2Header
from scapy.contrib.mpls import MPLS
from scapy.layers.dot11 import Dot11, Dot11QoS
from scapy.layers.inet import GRE, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from tcpanalyze import decode as decmod
from tcpanalyze.decode import decode
from tcpanalyze.engine import Analyzer, Config
from tcpanalyze.errors import DecodeError, TruncatedError
from tcpanalyze.pipeline import analyze_source
from tcpanalyze.sources.pcap import open_capture
from tcpanalyze.summary import summarize

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"
sys.path.insert(0, str(ROOT / "tests"))
from oracle import FIELDS, load_oracle, our_rows  # noqa: E402

# ======================================================================================
# Part 1: real captures
# ======================================================================================

GTP_FRAG = "gtp1_gn_normal_incl_fragmentation.pcap"
CAPTURES = ["tcpdump-geneve.pcap", GTP_FRAG, "ayiya3.pcap", "gre-over-udp-4754.pcap", "pbb.pcap",
            "vntag_vlan_sandwich_clean.pcap", "cisco-fabric-path.pcap", "llc.pcap", "gre-aruba-amsdu.pcap"]

#: llc.pcap: RSTs on one 4-tuple for hours, up to 420 s apart.  The engine releases a closed
#: connection 120 s after its last packet (Config.linger_ns), so a later RST opens a new
#: stream where tshark keeps one; with a linger that spans the capture the streams agree.
LONG_LINGER = {"llc.pcap": Config(linger_ns=10 ** 15)}

#: vntag_vlan_sandwich_clean.pcap: its one frame's TCP header (40 bytes) is cut at 22 bytes
#: by the snap length; tshark shows the fixed fields, tcpanalyze reports truncated_tcp (and
#: Zeek counts no packet for the connection it logs).
TRUNCATED = {"vntag_vlan_sandwich_clean.pcap": {1: ("truncated_tcp", 48)}}


def _frames(path: Path):
    with open_capture(str(path)) as r:
        return list(r)


def _outer_fragment_frames(name: str) -> set[int]:
    """Frames of ``name`` whose outer IPv4 header is a fragment (MF set or an offset)."""
    out = set()
    for fr, _ts, lt, data, _wl in _frames(TRACES / name):
        if lt == 1 and data[12:14] == b"\x08\x00" and struct.unpack_from("!H", data, 20)[0] & 0x3FFF:
            out.add(fr)
    return out


def _compare(name: str, frames: set[int] | None = None) -> tuple[list, list]:
    """(missing frames, field differences) of ``name`` against its oracle, optionally only ``frames``."""
    oracle = load_oracle(TRACES / (name + ".tshark.tsv"))
    ours = our_rows(TRACES / name, LONG_LINGER.get(name))
    missing, diffs = [], []
    for fr, o in oracle.items():
        if frames is not None and fr not in frames:
            continue
        u = ours.get(fr)
        if u is None:
            missing.append(fr)
            continue
        for f in FIELDS:
            if f == "ack" and not (o["flags"] or 0) & 0x10:
                continue        # no ACK bit: tshark shows the raw field, tcpanalyze 0
            if o[f] is not None and o[f] != u[f]:
                diffs.append((fr, f, o[f], u[f]))
    return missing, diffs


@pytest.mark.parametrize("name", [n for n in CAPTURES if n != GTP_FRAG and n not in TRUNCATED])
def test_capture_matches_tshark(name):
    missing, diffs = _compare(name)
    assert load_oracle(TRACES / (name + ".tshark.tsv"))
    assert missing == [] and diffs == []


def _gtp_rows_needing_reassembly() -> set[int]:
    """Oracle rows of the GTP capture that tshark shows at a frame completing a fragmented
    outer datagram (the TCP segment is in the reassembled payload)."""
    frag = _outer_fragment_frames(GTP_FRAG)
    return set(load_oracle(TRACES / (GTP_FRAG + ".tshark.tsv"))) & frag


def test_gtp_rows_outside_fragments_match_tshark():
    need = _gtp_rows_needing_reassembly()
    rows = set(load_oracle(TRACES / (GTP_FRAG + ".tshark.tsv")))
    assert len(need) == 36 and len(rows - need) == 32
    missing, diffs = _compare(GTP_FRAG, rows - need)
    assert missing == [] and diffs == []


def test_gtp_rows_in_fragmented_datagrams_match_tshark():
    missing, diffs = _compare(GTP_FRAG, _gtp_rows_needing_reassembly())
    assert missing == [] and diffs == []


def test_gtp_analysis_flags_match_tshark():
    oracle = load_oracle(TRACES / (GTP_FRAG + ".tshark.tsv"))
    ours = our_rows(TRACES / GTP_FRAG)
    assert all(fr in ours and ours[fr]["analysis"] == o["analysis"] for fr, o in oracle.items())


def test_truncated_tcp_header_behind_vntag_and_vlans():
    """The VN-Tag/VLAN sandwich is walked to the TCP header (offset 48 = Ethernet 14, VLAN
    4, VN-Tag 6, VLAN 4, IPv4 20), whose options the snap length cut."""
    name = "vntag_vlan_sandwich_clean.pcap"
    oracle = load_oracle(TRACES / (name + ".tshark.tsv"))
    assert set(oracle) == set(TRUNCATED[name])
    for fr, ts, lt, data, wl in _frames(TRACES / name):
        with pytest.raises(TruncatedError) as ei:
            decmod._decode_general(fr, ts, lt, data, {}, wl)
        assert (ei.value.kind, ei.value.offset) == TRUNCATED[name][fr]
        # the same frame with the missing option bytes present decodes to tshark's row
        whole = data + b"\x01" * (ei.value.offset + 40 - len(data))
        seg = decode(fr, ts, lt, whole, {}, 0)
        o = oracle[fr]
        assert (seg.sport, seg.dport, seg.flags, seg.win, seg.paylen) == (o["sport"], o["dport"], o["flags"], o["win"], 0)


def test_llc_streams_split_by_the_default_linger():
    """The difference LONG_LINGER removes, pinned: with the default 120 s linger the streams
    differ from tshark's exactly at RSTs that come more than 120 s after the previous one."""
    name = "llc.pcap"
    oracle = load_oracle(TRACES / (name + ".tshark.tsv"))
    ours = our_rows(TRACES / name)
    frames = _frames(TRACES / name)
    gaps = 0
    prev = None
    for fr, ts, *_ in frames:
        if prev is not None and ts - prev > Config().linger_ns:
            gaps += 1
        prev = ts
        assert ours[fr]["stream"] == gaps and oracle[fr]["stream"] == 0
    assert gaps > 0


# -- Zeek conn.log entries --------------------------------------------------------------------

def _zeek_entries(name: str) -> list[dict]:
    doc = json.loads((TRACES / (name + ".zeek_expected.json")).read_text())
    return [c for e in doc["expectations"] if e["kind"] == "conn" for c in e["tcp_conns"]]


def _our_conns(name: str) -> list[dict]:
    a = Analyzer(LONG_LINGER.get(name) or Config())
    analyze_source(str(TRACES / name), a)
    out = []
    for c in a.finish():
        rec = summarize(c)
        out.extend(rec.get("zeek") or [rec])
    return out


def _pair(z: dict, ours: list[dict], used: dict) -> dict | None:
    key = frozenset([(z["id.orig_h"], int(z["id.orig_p"])), (z["id.resp_h"], int(z["id.resp_p"]))])
    cands = [r for r in ours if frozenset([(r["orig_h"], r["orig_p"]), (r["resp_h"], r["resp_p"])]) == key]
    if not cands:
        return None
    i = used.get(key, 0)
    used[key] = i + 1
    return cands[min(i, len(cands) - 1)]


ZEEK_EQUAL = ["ayiya3.pcap", "gre-over-udp-4754.pcap", "pbb.pcap", "cisco-fabric-path.pcap", "llc.pcap"]


@pytest.mark.parametrize("name", ZEEK_EQUAL)
def test_zeek_conns_equal(name):
    expected = _zeek_entries(name)
    ours = _our_conns(name)
    used: dict = {}
    assert expected
    for z in expected:
        r = _pair(z, ours, used)
        assert r is not None, z
        assert (r["conn_state"], r["history"], r["orig_h"], r["orig_p"]) == \
            (z["conn_state"], z["history"], z["id.orig_h"], int(z["id.orig_p"])), z


def test_zeek_aruba_amsdu_bare_mode():
    """Zeek ran in bare mode (-b): no likely_server_ports, so it keeps the sender of the
    first data packet (port 443) as originator: history D.  tcpanalyze follows Zeek's default
    scripts, where 443 is a server port: the roles flip (^) and the same packet is d."""
    (z,) = _zeek_entries("gre-aruba-amsdu.pcap")
    (r,) = _our_conns("gre-aruba-amsdu.pcap")
    assert (z["conn_state"], z["history"], z["id.orig_p"]) == ("OTH", "D", "443")
    assert (r["conn_state"], r["history"], r["resp_p"], r["resp_h"]) == ("OTH", "^d", 443, z["id.orig_h"])


def test_zeek_gtp_conn_equal():
    (z,) = _zeek_entries(GTP_FRAG)
    r = _pair(z, _our_conns(GTP_FRAG), {})
    assert (r["conn_state"], r["history"]) == (z["conn_state"], z["history"])


# ======================================================================================
# Part 2: variants around real kernel segments
# ======================================================================================

def _real_packets():
    """(IP packet bytes, Segment of the original Ethernet frame) of real kernel TCP."""
    out = []
    for name in ("http_small.pcap", "handshake_variety.pcap"):
        for fr, ts, lt, data, wl in _frames(ROOT / "samples" / name):
            seg = decode(fr, ts, lt, data, {}, wl)
            if seg is not None and data[12:14] in (b"\x08\x00", b"\x86\xdd"):
                out.append((data[14:], seg))
    return out


REAL = _real_packets()
REAL4 = [(p, s) for p, s in REAL if p[0] >> 4 == 4]
REAL6 = [(p, s) for p, s in REAL if p[0] >> 4 == 6]
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
OUTER = IP(src="192.0.2.1", dst="192.0.2.2")


def _key(seg):
    return (seg.src, seg.dst, seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.win, seg.paylen,
            seg.mss, seg.wscale, seg.sack_perm, seg.sack, seg.tsval, seg.tsecr, seg.truncated)


def _fix(frame: bytes) -> bytes:
    """Set the outer IPv4/IPv6 and UDP length fields of an Ethernet frame to its size (the
    frames are assembled from scapy headers and raw payload bytes)."""
    f = bytearray(frame)
    if f[12:14] == b"\x08\x00":
        ihl = (f[14] & 0xF) * 4
        struct.pack_into("!H", f, 16, len(f) - 14)
        if f[23] == 17:
            struct.pack_into("!H", f, 14 + ihl + 4, len(f) - 14 - ihl)
    elif f[12:14] == b"\x86\xdd":
        struct.pack_into("!H", f, 18, len(f) - 54)
        if f[20] == 17:
            struct.pack_into("!H", f, 58, len(f) - 54)
    return bytes(f)


def _check(frame: bytes, seg, linktype: int = 1):
    counts: dict = {}
    frame = _fix(bytes(frame)) if linktype == 1 else bytes(frame)
    got = decmod._decode_general(7, 0, linktype, bytes(frame), counts, len(frame))
    assert got is not None, counts
    assert _key(got) == _key(seg)
    assert decode(7, 0, linktype, bytes(frame), {}, len(frame)) is not None


def _skipped(frame: bytes, reason: str, linktype: int = 1):
    counts: dict = {}
    frame = _fix(bytes(frame)) if linktype == 1 else bytes(frame)
    assert decmod._decode_general(7, 0, linktype, bytes(frame), counts, len(frame)) is None
    assert counts == {reason: 1}


def _inner_eth(pkt: bytes) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b", type=0x0800 if pkt[0] >> 4 == 4 else 0x86DD)) + pkt


def test_real_segments_present():
    assert len(REAL4) >= 10 and len(REAL6) >= 4


# -- Geneve ----------------------------------------------------------------------------

def _geneve_opts(total: int) -> list:
    """Options filling ``total`` bytes (a multiple of 4, at most 252): lengths vary."""
    opts, left, i = [], total, 0
    while left:
        data = min(left - 4, 4 * (i % 5))
        opts.append(GeneveOptions(classid=0x0100 + i, type=i, data=b"\xab" * data))
        left -= 4 + data
        i += 1
    return opts


@pytest.mark.parametrize("optlen", [0, 4, 8, 12, 36, 124, 252])
@pytest.mark.parametrize("port", [6081, 7000, 49152])
def test_geneve_options_and_ports(optlen, port):
    """Geneve with options of several lengths, on 6081 and (by content) on other ports."""
    for pkt, seg in REAL4[:4] + REAL6[:2]:
        g = GENEVE(vni=0x1234, proto=0x6558, options=_geneve_opts(optlen))
        frame = ETH / OUTER / UDP(sport=33333, dport=port) / g / _inner_eth(pkt)
        raw = bytes(frame)
        assert raw[14 + 20 + 8] & 0x3F == optlen // 4
        _check(raw, seg)


@pytest.mark.parametrize("proto", [0x0800, 0x86DD])
def test_geneve_carrying_ip(proto):
    for pkt, seg in (REAL4 if proto == 0x0800 else REAL6)[:3]:
        for port in (6081, 40000):
            _check(bytes(ETH / OUTER / UDP(sport=1234, dport=port) / GENEVE(proto=proto, options=_geneve_opts(8))) + pkt,
                   seg)


def test_geneve_not_by_content():
    pkt, seg = REAL4[3]
    base = bytes(ETH / OUTER / UDP(sport=1234, dport=40000) / GENEVE(proto=0x6558, options=_geneve_opts(8))
                 / _inner_eth(pkt))
    g = 14 + 20 + 8
    bad_opt = bytearray(base)
    bad_opt[g + 8 + 3] = 0x1F                   # the first option claims 124 bytes: does not tile
    ver1 = bytearray(base)
    ver1[g] |= 0x40                             # version 1
    extra = bytes(base) + b"\0\0\0\0"           # the inner packet does not fill the datagram
    for f in (bad_opt, ver1):
        _skipped(fix_udp(bytes(f)), "non_tcp")
    _skipped(fix_udp(extra), "non_tcp")
    # on its port a version-1 header is not parsed either
    on_port = bytearray(base)
    on_port[14 + 20 + 2:14 + 20 + 4] = struct.pack("!H", 6081)
    on_port[g] |= 0x40
    _skipped(bytes(on_port), "non_tcp")


def fix_udp(frame: bytes) -> bytes:
    """Rewrite the outer IPv4 total length and UDP length to the frame's size."""
    f = bytearray(frame)
    struct.pack_into("!H", f, 16, len(f) - 14)
    struct.pack_into("!H", f, 14 + 20 + 4, len(f) - 34)
    return bytes(f)


# -- GTP ------------------------------------------------------------------------------

def _gtpu(pkt: bytes, **kw) -> bytes:
    return bytes(GTP_U_Header(teid=0x1001, gtp_type=255, **kw) / Raw(pkt))


@pytest.mark.parametrize("port", [(2152, 2152), (40000, 2152), (2152, 40000), (5000, 6000)])
def test_gtpu_ports(port):
    """GTP-U on 2152 (either side) and on other ports by content; IPv4 and IPv6 users."""
    for pkt, seg in REAL4[:3] + REAL6[:2]:
        _check(bytes(ETH / OUTER / UDP(sport=port[0], dport=port[1])) + _gtpu(pkt), seg)


def _ext(kind: int, body: bytes, nxt: int) -> bytes:
    """A GTP-U extension header: length (4-byte words), body, next type."""
    assert (len(body) + 2) % 4 == 0
    return bytes([(len(body) + 2) // 4]) + body + bytes([nxt])


@pytest.mark.parametrize("chain", [
    [],                                                     # S bit only: sequence number, no extension
    [(0x85, b"\x00\x09")],                                  # PDU session container, 4 bytes
    [(0x85, b"\x10\x09" + b"\0" * 4)],                      # PDU session container, 8 bytes
    [(0x40, b"\x08\x68"), (0x85, b"\x00\x01"), (0xC0, b"\x01\x02\x03\x04\x05\x06")],  # UDP port, PSC, PDCP
])
@pytest.mark.parametrize("port", [2152, 40000])
def test_gtpu_extension_headers(chain, port):
    for pkt, seg in REAL4[:3] + REAL6[:1]:
        body = b""
        for i, (kind, ext) in enumerate(chain):
            body += _ext(kind, ext, chain[i + 1][0] if i + 1 < len(chain) else 0)
        first = chain[0][0] if chain else 0
        flags = 0x30 | (0x04 if chain else 0x02)
        hdr = struct.pack("!BBHIHBB", flags, 0xFF, 4 + len(body) + len(pkt), 0x1001, 7, 0, first)
        _check(bytes(ETH / OUTER / UDP(sport=2152 if port == 2152 else 1111, dport=port)) + hdr + body + pkt, seg)
    # the scapy layer builds the same PDU session container chain
    pkt, seg = REAL4[0]
    g = GTP_U_Header(teid=1, gtp_type=255, E=1, next_ex=0x85) / GTPPDUSessionContainer(type=0, QFI=9, NextExtHdr=0) / Raw(pkt)
    _check(bytes(ETH / OUTER / UDP(sport=2152, dport=2152)) + bytes(g), seg)


def test_gtp_control_messages_are_not_user_packets():
    """GTPv2-C (its own port 2123 and others), GTPv1-C echo, GTP' and end markers: counted, no
    TCP read out of them even when their bytes happen to contain an IP header."""
    pkt, _ = REAL4[3]
    v2 = bytes(GTPv2Header(gtp_type=32, T=1, teid=5, seq=9)) + pkt       # create session request
    for sport, dport in ((2123, 2123), (2152, 2152), (40000, 40001)):
        _skipped(fix_udp(bytes(ETH / OUTER / UDP(sport=sport, dport=dport)) + v2), "non_tcp")
    echo = struct.pack("!BBHIHBB", 0x32, 1, 4, 0, 1, 0, 0)                 # GTPv1-C echo request
    _skipped(bytes(ETH / OUTER / UDP(sport=2123, dport=2123)) + echo, "non_tcp")
    marker = struct.pack("!BBHI", 0x30, 254, 0, 7)                          # end marker
    _skipped(bytes(ETH / OUTER / UDP(sport=2152, dport=2152)) + marker, "non_tcp")
    gtp_prime = struct.pack("!BBHH", 0x0E, 0xFF, len(pkt), 0) + pkt        # PT = 0
    _skipped(bytes(ETH / OUTER / UDP(sport=2152, dport=2152)) + gtp_prime, "non_tcp")
    # off its port a G-PDU whose length field does not end the datagram is not GTP
    bad = bytearray(_gtpu(pkt))
    struct.pack_into("!H", bad, 2, len(pkt) + 1)
    _skipped(bytes(ETH / OUTER / UDP(sport=40000, dport=40001)) + bytes(bad), "non_tcp")


def test_gtp_on_a_rebuilt_udp_payload():
    """``_udp_payload`` takes a UDP payload (e.g. a datagram rebuilt from IP fragments) and
    its ports: the GTP-U packet in it decodes like in a whole frame."""
    for pkt, seg in REAL4[:3]:
        payload = _gtpu(pkt, S=1, seq=3)
        for ports in ((2152, 2152), (3000, 3001)):
            counts: dict = {}
            got = decmod._udp_payload(7, 0, payload, 0, len(payload), len(payload), 1, counts, *ports)
            assert _key(got) == _key(seg)
            got = decmod._gtp(7, 0, payload, 0, len(payload), len(payload), 1, counts)
            assert _key(got) == _key(seg) and counts == {}


# -- AYIYA, GRE-in-UDP, MPLS-in-UDP, VXLAN(-GPE), LISP, L2TP -----------------------------

def _ayiya(pkt: bytes, nh: int) -> bytes:
    # id len 2^4 = 16 bytes (an IPv6 address), id type 1; SHA-1 signature (5 words), hash 2;
    # auth method 1, opcode 1 (forward); next header; epoch
    return bytes([0x41, 0x52, 0x11, nh]) + struct.pack("!I", 1234) + b"\x20\x01" + b"\0" * 14 + b"\x5a" * 20 + pkt


@pytest.mark.parametrize("ports", [(5072, 5072), (40000, 5072), (40000, 40002)])
def test_ayiya(ports):
    for pkt, seg in REAL6[:2] + REAL4[:2]:
        nh = 41 if pkt[0] >> 4 == 6 else 4
        _check(bytes(ETH / OUTER / UDP(sport=ports[0], dport=ports[1])) + _ayiya(pkt, nh), seg)
    pkt, _ = REAL6[0]
    heartbeat = bytearray(_ayiya(pkt, 41))
    heartbeat[2] = 0x10                          # opcode 0: no packet
    _skipped(bytes(ETH / OUTER / UDP(sport=5072, dport=5072)) + bytes(heartbeat), "non_tcp")


@pytest.mark.parametrize("key", [False, True])
def test_gre_in_udp(key):
    """GRE-in-UDP (4754) carrying IPv6 and IPv4, with and without a GRE key."""
    for pkt, seg in REAL6[:3] + REAL4[:2]:
        g = GRE(proto=0x86DD if pkt[0] >> 4 == 6 else 0x0800, key_present=int(key), key=77 if key else None)
        _check(bytes(ETH / OUTER / UDP(sport=50000, dport=4754) / g) + pkt, seg)
        # and over an IPv6 outer header
        _check(bytes(Ether(type=0x86DD) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=50000, dport=4754)
                     / g) + pkt, seg)


def test_mpls_in_udp_and_gre():
    for pkt, seg in REAL4[:2] + REAL6[:2]:
        labels = bytes(MPLS(label=100, s=0) / MPLS(label=200, s=1))
        _check(bytes(ETH / OUTER / UDP(sport=50000, dport=6635)) + labels + pkt, seg)
        _check(bytes(ETH / OUTER / GRE(proto=0x8847)) + labels + pkt, seg)


@pytest.mark.parametrize("port", [4789, 8472, 40000])
def test_vxlan_ports(port):
    """VXLAN on 4789, and by content on Linux's 8472 and elsewhere; the inner frame VLAN-tagged too."""
    for pkt, seg in REAL4[:2] + REAL6[:1]:
        inner = _inner_eth(pkt)
        _check(bytes(ETH / OUTER / UDP(sport=33000, dport=port) / VXLAN(vni=42, flags=0x08)) + inner, seg)
        tagged = inner[:12] + b"\x81\x00\x00\x05" + inner[12:]
        _check(bytes(ETH / OUTER / UDP(sport=33000, dport=port) / VXLAN(vni=42, flags=0x08)) + tagged, seg)


def test_vxlan_gpe_next_protocols():
    for pkt, seg in REAL4[:2] + REAL6[:1]:
        v = 0x86DD if pkt[0] >> 4 == 6 else 0x0800
        for nxt, payload in ((1 if v == 0x0800 else 2, pkt), (3, _inner_eth(pkt)), (5, bytes(MPLS(label=9, s=1)) + pkt)):
            hdr = struct.pack("!BHB", 0x0C, 0, nxt) + b"\0\0\x2a\0"
            _check(bytes(ETH / OUTER / UDP(sport=1, dport=4790)) + hdr + payload, seg)
        # next protocol NSH: service path header, next protocol IPv4/IPv6
        nsh = struct.pack("!HBB", 0x0FC6, 0x02, 1 if v == 0x0800 else 2) + struct.pack("!I", 0x00010AFF) + b"\0" * 16
        _check(bytes(ETH / OUTER / UDP(sport=1, dport=4790)) + struct.pack("!BHB", 0x0C, 0, 4) + b"\0\0\x2a\0"
               + nsh + pkt, seg)
        _check(bytes(Ether(type=0x894F)) + nsh + pkt, seg)


def test_lisp_and_l2tp():
    for pkt, seg in REAL4[:2] + REAL6[:1]:
        _check(bytes(ETH / OUTER / UDP(sport=4341, dport=4341)) + b"\x80\0\0\x01\0\0\0\x01" + pkt, seg)
        ppp = b"\xff\x03" + (b"\x00\x21" if pkt[0] >> 4 == 4 else b"\x00\x57") + pkt
        # L2TPv2 data: with length and sequence numbers; and with an offset pad
        l2tp = struct.pack("!HHHHHH", 0x4802, 16 + len(ppp), 1, 2, 0, 0) + b"\0\0\0\0"
        _check(bytes(ETH / OUTER / UDP(sport=1701, dport=1701)) + l2tp[:12] + ppp, seg)
        off = struct.pack("!HHHH", 0x0202, 1, 2, 3) + b"\xee\xee\xee" + ppp
        _check(bytes(ETH / OUTER / UDP(sport=1701, dport=1701)) + off[:8] + b"\xee\xee\xee" + ppp, seg)
    control = struct.pack("!HHHHHH", 0xC802, 12, 1, 0, 0, 0)
    _skipped(bytes(ETH / OUTER / UDP(sport=1701, dport=1701)) + control, "non_tcp")


# -- GRE payloads: ERSPAN, Aruba, WCCP --------------------------------------------------------

def test_erspan_types():
    """ERSPAN I (GRE without sequence number, no header), II, III with and without the
    platform-specific sub-header."""
    for pkt, seg in REAL4[:2] + REAL6[:2]:
        inner = _inner_eth(pkt)
        _check(bytes(ETH / OUTER / GRE(proto=0x88BE)) + inner, seg)                             # type I
        _check(bytes(ETH / OUTER / GRE(proto=0x88BE, seqnum_present=1, sequence_number=5)
                     / ERSPAN_II(session_id=7)) + inner, seg)                                  # type II
        _check(bytes(ETH / OUTER / GRE(proto=0x22EB, seqnum_present=1, sequence_number=5)
                     / ERSPAN_III(session_id=7, o=0)) + inner, seg)                           # type III
        _check(bytes(ETH / OUTER / GRE(proto=0x22EB, seqnum_present=1, sequence_number=5)
                     / ERSPAN_III(session_id=7, o=1) / ERSPAN_PlatformSpecific(platf_id=3)) + inner, seg)


def _wlan_qos(payload: bytes, amsdu: bool) -> bytes:
    return bytes(Dot11(type=2, subtype=8, FCfield=2, addr1="02:00:00:00:00:01", addr2="02:00:00:00:00:02",
                       addr3="02:00:00:00:00:03") / Dot11QoS(A_MSDU_Present=int(amsdu))) + payload


def _snap(pkt: bytes) -> bytes:
    return bytes(LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800 if pkt[0] >> 4 == 4 else 0x86DD)) + pkt


def _subframe(msdu: bytes, last: bool) -> bytes:
    sub = b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + struct.pack("!H", len(msdu)) + msdu
    return sub if last else sub + b"\0" * (-len(sub) % 4)


@pytest.mark.parametrize("pt", [0x8200, 0x8240, 0x8370])
def test_aruba_gre(pt):
    """Aruba GRE protocol types carrying 802.11: a plain QoS data frame, an A-MSDU whose first
    subframe holds the segment, and one whose first subframe is not IP (ARP)."""
    arp = bytes(LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0806)) + b"\0" * 28
    for pkt, seg in REAL4[:3] + REAL6[:1]:
        gre = bytes(ETH / OUTER / GRE(proto=pt))
        _check(gre + _wlan_qos(_snap(pkt), False), seg)
        _check(gre + _wlan_qos(_subframe(_snap(pkt), False) + _subframe(_snap(REAL4[5][0]), True), True), seg)
        _check(gre + _wlan_qos(_subframe(arp, False) + _subframe(_snap(pkt), True), True), seg)
    _skipped(bytes(ETH / OUTER / GRE(proto=0x8240)) + _wlan_qos(_subframe(arp, True), True), "non_ip")
    _skipped(bytes(ETH / OUTER / GRE(proto=0x8248)) + _wlan_qos(_snap(REAL4[0][0]), False), "non_ip")


def test_wccp_gre():
    for pkt, seg in REAL4[:2]:
        _check(bytes(ETH / OUTER / GRE(proto=0x883E)) + pkt, seg)
        _check(bytes(ETH / OUTER / GRE(proto=0x883E)) + b"\x00\x00\x00\x05" + pkt, seg)


# -- Layer-2 shims: VN-Tag/VLAN nesting, PBB, FabricPath, E-TAG, CMD --------------------------

def _vntag(et: int) -> bytes:
    return b"\x89\x26" + b"\x80\x05\x00\x33" + struct.pack("!H", et)


@pytest.mark.parametrize("layers", [
    "N", "VN", "NV", "VNV", "VVNV", "VNVN", "NNNV", "VNVNVNV",
])
def test_vntag_vlan_nesting(layers):
    """VN-Tag (N) and 802.1Q (V) tags in any order and depth; the innermost one says IP."""
    for pkt, seg in REAL4[:2] + REAL6[:1]:
        et = 0x0800 if pkt[0] >> 4 == 4 else 0x86DD
        tags = b""
        for i, t in enumerate(layers):
            nxt = {"N": 0x8926, "V": 0x8100}[layers[i + 1]] if i + 1 < len(layers) else et
            tags += (b"\x80\x05\x00\x33" if t == "N" else b"\x00\x0a") + struct.pack("!H", nxt)
        first = {"N": 0x8926, "V": 0x8100}[layers[0]]
        _check(b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01" + struct.pack("!H", first) + tags + pkt, seg)


def test_shim_nesting_is_bounded():
    pkt, _ = REAL4[0]
    tags = b"".join(b"\x80\x05\x00\x33\x89\x26" for _ in range(40)) + b"\x80\x05\x00\x33\x08\x00"
    with pytest.raises(DecodeError) as ei:
        decmod._decode_general(1, 0, 1, b"\0" * 12 + b"\x89\x26" + tags + pkt, {}, 0)
    assert ei.value.kind == "tunnel_depth" and 14 < ei.value.offset < 14 + len(tags)


@pytest.mark.parametrize("inner_vlan", [False, True])
def test_pbb_fabricpath_etag_cmd(inner_vlan):
    for pkt, seg in REAL4[:2] + REAL6[:1]:
        inner = _inner_eth(pkt)
        if inner_vlan:
            inner = inner[:12] + b"\x81\x00\x00\x64" + inner[12:]
        # PBB: B-VLAN tag, I-TAG (PCP, I-SID), customer frame
        _check(bytes(Ether(type=0x88A8)) + b"\x00\x0a\x88\xe7" + b"\x00\x01\x00\x02" + inner, seg)
        _check(bytes(Ether(type=0x88E7)) + b"\x00\x01\x00\x02" + inner, seg)
        # FabricPath: outer addresses, 0x8903, FTAG/TTL, the original frame
        _check(b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x89\x03\x00\x3f" + inner, seg)
        # 802.1BR E-TAG and Cisco MetaData: a fixed tag, then the next ethertype
        et = inner[12:14]
        _check(inner[:12] + b"\x89\x3f" + b"\x00\x00\x10\x05\x00\x00" + et + inner[14:], seg)
        _check(inner[:12] + b"\x89\x09" + b"\x01\x01\x00\x01\x00\x10" + et + inner[14:], seg)


# -- Link types: FDDI, Token Ring, ATM LLC; LLC over 802.3 -----------------------------------

def test_fddi_token_ring_atm():
    for pkt, seg in REAL4[:3] + REAL6[:1]:
        snap = _snap(pkt)
        _check(b"\x50" + b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + snap, seg, 10)           # FDDI async LLC
        _check(b"\x10\x40" + b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + snap, seg, 6)        # Token Ring
        _check(b"\x10\x40" + b"\x02\0\0\0\0\x02" + b"\x82\0\0\0\0\x01" + b"\x06\x30\x00\x10\x00\x20" + snap,
               seg, 6)                                                                         # with a route
        _check(snap, seg, 100)                                                                  # ATM RFC 1483
    _skipped(b"\x41" + b"\0" * 12 + _snap(REAL4[0][0]), "non_ip", 10)                        # SMT frame
    _skipped(b"\x10\x00" + b"\0" * 12 + _snap(REAL4[0][0]), "non_ip", 6)                     # MAC frame


def test_llc_over_802_3():
    for pkt, seg in REAL4[:3] + REAL6[:1]:
        snap = _snap(pkt)
        _check(bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=len(snap))) + snap, seg)
        # padded to the minimum frame length: the 802.3 length excludes the padding
        _check(bytes(Ether(type=len(snap))) + snap + b"\0" * 30, seg)
        # bridged Ethernet in SNAP (OUI 00-80-C2, PID 7) over 802.3 in VXLAN-less ATM style
        bridged = b"\xaa\xaa\x03\x00\x80\xc2\x00\x07" + _inner_eth(pkt)
        _check(bridged, seg, 100)
    for pkt, seg in REAL4[:2]:
        sap_ip = b"\x06\x06\x03" + pkt                                 # LLC SAP 06: IPv4 directly
        _check(bytes(Ether(type=len(sap_ip))) + sap_ip, seg)


# ======================================================================================
# Part 3: malformed and truncated headers
# ======================================================================================

def _variants():
    pkt, _ = REAL4[5]
    pkt6, _ = REAL6[0]
    inner = _inner_eth(pkt)
    wlan = _wlan_qos(_subframe(_snap(pkt), False) + _subframe(_snap(pkt), True), True)
    ext = _ext(0x85, b"\x00\x09", 0)
    return [
        (1, bytes(ETH / OUTER / UDP(sport=1, dport=6081) / GENEVE(proto=0x6558, options=_geneve_opts(36))) + inner),
        (1, bytes(ETH / OUTER / UDP(sport=1, dport=2152)) + struct.pack("!BBHIHBB", 0x34, 0xFF, 8 + len(pkt), 1, 0, 0,
                                                                         0x85) + ext + pkt),
        (1, bytes(ETH / OUTER / UDP(sport=5072, dport=5072)) + _ayiya(pkt6, 41)),
        (1, bytes(ETH / OUTER / UDP(sport=1, dport=4754) / GRE(proto=0x86DD)) + pkt6),
        (1, bytes(ETH / OUTER / UDP(sport=1, dport=1701)) + struct.pack("!HHHH", 0x0202, 1, 2, 3) + b"\xee\xee\xee"
         + b"\xff\x03\x00\x21" + pkt),
        (1, bytes(ETH / OUTER / UDP(sport=1, dport=4790)) + struct.pack("!BHB", 0x0C, 0, 4) + b"\0\0\x2a\0"
         + struct.pack("!HBB", 0x0FC6, 0x02, 1) + b"\0" * 20 + pkt),
        (1, bytes(ETH / OUTER / GRE(proto=0x22EB, seqnum_present=1) / ERSPAN_III(o=1) / ERSPAN_PlatformSpecific())
         + inner),
        (1, bytes(ETH / OUTER / GRE(proto=0x8240)) + wlan),
        (1, b"\0" * 12 + b"\x81\x00\x00\x0a" + _vntag(0x8100) + b"\x00\x0a\x88\xe7" + b"\0\0\0\1" + inner),
        (1, b"\0" * 12 + b"\x89\x03\x00\x3f" + inner),
        (10, b"\x50" + b"\0" * 12 + _snap(pkt)),
        (6, b"\x10\x40" + b"\0" * 6 + b"\x80" + b"\0" * 5 + b"\x04\x30\x00\x10" + _snap(pkt)),
    ]


VARIANTS = [(lt, _fix(f) if lt == 1 else f) for lt, f in _variants()]


@pytest.mark.parametrize("idx", range(len(VARIANTS)))
def test_truncated_encapsulations(idx):
    """Every prefix of each encapsulated frame: a (truncated) Segment, a counted skip or a
    DecodeError whose offset lies inside the frame -- never another exception."""
    lt, frame = VARIANTS[idx]
    assert decmod._decode_general(1, 0, lt, frame, {}, len(frame)) is not None
    kinds = set()
    for n in range(len(frame)):
        counts: dict = {}
        try:
            seg = decmod._decode_general(1, 0, lt, frame[:n], counts, len(frame))
        except DecodeError as e:
            assert 0 <= e.offset <= n, (n, e)
            kinds.add(e.kind)
            continue
        assert seg is not None or sum(counts.values()) == 1, (n, counts)
    assert kinds and all(k.startswith(("truncated", "bad_")) for k in kinds), kinds


@pytest.mark.parametrize("idx", range(len(VARIANTS)))
def test_corrupted_encapsulation_bytes(idx):
    """Each header byte set to 0x00, 0xFF and its bit complement: no exception but DecodeError."""
    lt, frame = VARIANTS[idx]
    for i in range(min(len(frame), 120)):
        for v in (0, 0xFF, frame[i] ^ 0xFF):
            f = bytearray(frame)
            f[i] = v
            for wl in (0, len(f)):
                counts: dict = {}
                try:
                    decmod._decode_general(1, 0, lt, bytes(f), counts, wl)
                except DecodeError as e:
                    assert 0 <= e.offset <= len(f)


def test_malformed_counted_by_the_pipeline(tmp_path):
    """Through the reader and pipeline: a cut Geneve header and a zero-length GTP extension
    header are counted as errors with their offsets, the good frame still analysed."""
    pkt, _ = REAL4[0]
    good = bytes(ETH / OUTER / UDP(sport=1, dport=6081) / GENEVE(proto=0x6558, options=_geneve_opts(8))) + _inner_eth(pkt)
    cut = good[:14 + 20 + 8 + 10]
    zero_ext = bytes(ETH / OUTER / UDP(sport=2152, dport=2152)) + struct.pack("!BBHIHBB", 0x34, 0xFF, 8 + len(pkt), 1,
                                                                                0, 0, 0x85) + b"\x00\x00\x00\x00" + pkt
    path = tmp_path / "bad.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate((_fix(good), cut, _fix(zero_ext))):
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(fr), len(fr)) + fr)
    a = Analyzer()
    stats = analyze_source(str(path), a)
    a.finish()
    assert stats.tcp == 1
    assert stats.errors == {"truncated_geneve": 1, "bad_gtp_extension": 1}
    # Geneve header at 42 (Ethernet 14, IPv4 20, UDP 8); the GTP extension header at 54
    # (GTP header 8, sequence/N-PDU/next type 4)
    assert stats.error_examples["truncated_geneve"] == [(2, 42, "Geneve options of 8 bytes not captured")]
    assert stats.error_examples["bad_gtp_extension"][0][:2] == (3, 54)
