#!/usr/bin/env python3
"""Write the seed corpus of ``fuzz/fuzz_capture.py`` (default ``fuzz/corpus``; < 1 MB).

Seeds (see ``fuzz/harness.py`` for the input layout; the first byte selects the path):

* the first records of small real captures from ``tests/data/traces`` (every format and link
  type they contain: pcap, pcap-ns, pcapng, gzip; Ethernet, NULL, RAW, C-HDLC, SLL, SLL2,
  IPv4), each cut to at most ``--max-len`` bytes, as file, stdin and gzip inputs;
* a crafted pcapng file using every block type (SHB in both byte orders, IDB options,
  EPB, SPB, obsolete PB, NRB, ISB, custom blocks);
* one raw frame per supported link type and per tunnel (GRE, ERSPAN, IP-in-IP, VXLAN,
  Teredo, Geneve, GTP-U, AYIYA, GRE-in-UDP, VXLAN-GPE, Aruba GRE with an A-MSDU, VLAN, QinQ,
  VN-Tag, PBB, FabricPath, PPPoE, MPLS, IPv6 extension headers, TCP options) for the decoder mode.

Usage: ``python fuzz/make_corpus.py [--out DIR] [--max-len 4096]``.  Deterministic: running
it twice writes the same files.  Uses only the standard library.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"

# Captures chosen to cover formats and link types (all small).
CAPTURES = [
    "fin_retransmission.pcap",                              # Ethernet, pcap LE
    "suricata-tcp-protodetect-bailout-input.pcap",          # NULL (BSD loopback)
    "pcapplusplus-one_ipv6_http_stream.pcap",               # RAW, IPv6
    "suricata-decode-chdlc-01-hdlc-http_1tx.pcap",          # Cisco HDLC
    "suricata-security-4710-01-input.pcap",                 # Linux SLL
    "suricata-decode-sll2-01-input.pcap",                   # Linux SLL2
    "suricata-detect-ipopts-input.pcap",                    # LINKTYPE_IPV4, IPv4 options
    "zeek-get-to-ssh-server.pcap",                          # nanosecond pcap
    "zeek-pppoe-over-qinq.pcap",                            # QinQ + PPPoE
    "Teredo.pcap",                                          # Teredo tunnel
    "tcp-badsegments.pcap",                                 # odd TCP segments
    "retransmit-fast009.pcap",                              # retransmissions, dup ACKs
    "missing-syn.pcap",                                     # no handshake
    "pcapplusplus-ldap.pcapng",                             # pcapng, two interfaces
    "wireshark-http-brotli.pcapng",                         # pcapng
    "wireshark-grpc_web.pcapng.gz",                         # gzip pcapng (NULL)
    "zeek-smb_many_open_files_500.pcap.gz",                 # gzip pcap
]

LINKTYPES = sorted((0, 108, 1, 9, 50, 51, 104, 105, 127, 113, 276, 12, 14, 101, 228, 229, 239, 10, 6, 100)) + [3, 147]


# ------------------------------------------------------------------------------ captures
def _records_pcap(data: bytes):
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    p = 24
    while p + 16 <= len(data):
        n = 16 + struct.unpack_from(e + "I", data, p + 8)[0]
        yield data[p:p + n]
        p += n


def _blocks_pcapng(data: bytes):
    p = 0
    e = "<"
    while p + 12 <= len(data):
        if data[p:p + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[p + 8:p + 12] == struct.pack("<I", 0x1A2B3C4D) else ">"
        n = struct.unpack_from(e + "I", data, p + 4)[0]
        if n < 12:
            return
        yield data[p:p + n]
        p += n


def cut_capture(data: bytes, limit: int) -> bytes:
    """The longest prefix made of whole records/blocks that fits in ``limit`` bytes."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        out = b""
        for blk in _blocks_pcapng(data):
            if len(out) + len(blk) <= limit:        # skip blocks that do not fit, keep looking
                out += blk
        return out
    out = data[:24]
    for rec in _records_pcap(data):
        if len(out) + len(rec) > limit:
            break
        out += rec
    return out


# ------------------------------------------------------------------------------ pcapng
def pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def ng_block(e: str, btype: int, body: bytes) -> bytes:
    body = pad4(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def ng_opt(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + pad4(value)


def crafted_pcapng(frame4: bytes, ip4: bytes, ip6: bytes) -> bytes:
    out = b""
    for e in ("<", ">"):
        out += ng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                        + ng_opt(e, 4, b"fuzz") + ng_opt(e, 0, b""))
        out += ng_block(e, 1, struct.pack(e + "HHI", 1, 0, 0) + ng_opt(e, 9, b"\x09")
                        + ng_opt(e, 14, struct.pack(e + "q", 5)) + ng_opt(e, 0, b""))
        out += ng_block(e, 1, struct.pack(e + "HHI", 101, 0, 96) + ng_opt(e, 9, b"\x86") + ng_opt(e, 0, b""))
        out += ng_block(e, 6, struct.pack(e + "IIIII", 0, 1, 2, len(frame4), len(frame4)) + pad4(frame4)
                        + ng_opt(e, 2, struct.pack(e + "I", 1)) + ng_opt(e, 0, b""))
        out += ng_block(e, 6, struct.pack(e + "IIIII", 1, 0, 77, len(ip6), len(ip6) + 100) + pad4(ip6))
        out += ng_block(e, 3, struct.pack(e + "I", len(frame4)) + pad4(frame4))
        out += ng_block(e, 2, struct.pack(e + "HHIIII", 1, 0, 0, 9, len(ip4), len(ip4)) + pad4(ip4))
        out += ng_block(e, 4, struct.pack(e + "HH", 1, 8) + b"\x0a\x00\x00\x01host" + struct.pack(e + "HH", 0, 0))
        out += ng_block(e, 5, struct.pack(e + "III", 0, 1, 2) + ng_opt(e, 4, struct.pack(e + "Q", 3)))
        out += ng_block(e, 0xBAD, struct.pack(e + "I", 32473) + b"custom")
        out += ng_block(e, 10, struct.pack(e + "II", 0x544C534B, 4) + b"keys")
        out += ng_block(e, 0x12345678, b"unknown block type")
    return out


def pcap_file(linktype: int, frames: list[bytes], e: str = "<", ns: bool = False) -> bytes:
    out = struct.pack(e + "IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack(e + "IIII", 1_600_000_000 + i, 1000 * i, len(f), len(f)) + f
    return out


# ------------------------------------------------------------------------------ frames
def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto: int, payload: bytes, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", options=b"") -> bytes:
    hl = 20 + len(options)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), 1, 0x4000, 64, proto, 0, src, dst)
    h += options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ipv6(nh: int, payload: bytes, src=b"\x20\x01" + b"\0" * 13 + b"\x01",
         dst=b"\x20\x01" + b"\0" * 13 + b"\x02") -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, src, dst) + payload


def tcp(sport=40000, dport=80, seq=1000, ack=2000, flags=0x18, win=65535, options=b"", payload=b"") -> bytes:
    options = pad4(options)
    return struct.pack("!HHIIHHHH", sport, dport, seq, ack, ((20 + len(options)) // 4) << 12 | flags, win, 0, 0) \
        + options + payload


def ether(et: int, payload: bytes) -> bytes:
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb" + struct.pack("!H", et) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


OPTS = (b"\x02\x04\x05\xb4" + b"\x01\x03\x03\x07" + b"\x04\x02" + b"\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x00"
        + b"\x01\x01\x05\x0a\x00\x00\x03\xe8\x00\x00\x07\xd0")


def frames() -> list[tuple[int, bytes]]:
    """(link type, frame) seeds for the decoder mode."""
    t = tcp(payload=b"GET / HTTP/1.0\r\n\r\n")
    ts = tcp(flags=0x02, options=OPTS)
    p4 = ipv4(6, t)
    p4o = ipv4(6, ts, options=b"\x83\x07\x04\x0a\x00\x00\x09\x00")       # LSRR option
    p6 = ipv6(6, t)
    p6x = ipv6(0, b"\x3c\x00" + b"\x01\x04\0\0\0\0" + b"\x2c\x00" + b"\x01\x04\0\0\0\0"
               + b"\x06\x00\x00\x00\x00\x00\x00\x01" + ts)                # HBH, DST, FRAG, TCP
    snap = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
    wlan = b"\x08\x02\x00\x00" + b"\x01" * 18 + b"\x00\x00" + snap + p4
    qos = b"\x88\x02\x00\x00" + b"\x01" * 18 + b"\x00\x00" + b"\x00\x00" + snap + p4
    out = [
        (0, struct.pack("<I", 2) + p4), (0, struct.pack("<I", 30) + p6), (108, struct.pack(">I", 24) + p6),
        (1, ether(0x0800, p4)), (1, ether(0x86DD, p6x)), (1, ether(0x0800, p4o)),
        (1, ether(0x8100, b"\x00\x05\x08\x00" + p4)),
        (1, ether(0x88A8, b"\x00\x05\x81\x00" + b"\x00\x06\x88\x64" + b"\x11\x00\x00\x01"
                  + struct.pack("!H", len(p4) + 2) + b"\x00\x21" + p4)),
        (1, ether(0x8847, b"\x00\x01\x00\x40" + b"\x00\x02\x01\x40" + p6)),
        (1, ether(len(snap) + len(p4), snap + p4)),                                   # 802.3 + LLC/SNAP
        (1, ether(0x0800, ipv4(47, b"\x00\x00\x08\x00" + p4))),                       # GRE
        (1, ether(0x0800, ipv4(47, b"\xb0\x00\x08\x00" + b"\0" * 12 + p4))),          # GRE C K S
        (1, ether(0x0800, ipv4(47, b"\x10\x00\x88\xbe" + b"\0" * 4 + b"\x10\x01\x00\x01" + b"\0" * 4
                               + ether(0x0800, p4)))),                                 # ERSPAN II
        (1, ether(0x0800, ipv4(47, b"\x30\x01\x88\x0b" + b"\0\x20\0\1" + b"\0\0\0\1" + b"\xff\x03\x00\x21" + p4))),
        (1, ether(0x0800, ipv4(4, p4))), (1, ether(0x86DD, ipv6(41, p6))), (1, ether(0x86DD, ipv6(4, p4))),
        (1, ether(0x0800, ipv4(17, udp(5000, 4789, b"\x08\x00\x00\x00\x00\x00\x01\x00" + ether(0x0800, p4))))),
        (1, ether(0x0800, ipv4(17, udp(3544, 5000, b"\x00\x00\x0d\x96\xf5\xff\xff\xfe" + p6)))),
        (9, b"\xff\x03\x00\x21" + p4), (9, b"\x57" + p6),
        (50, b"\xff\x03\x00\x57" + p6), (50, b"\x0f\x00\x08\x00" + p4),
        (51, b"\x11\x00\x00\x01" + struct.pack("!H", len(p4) + 2) + b"\x00\x21" + p4),
        (104, b"\x0f\x00\x08\x00" + p4), (104, b"\x8f\x00\x88\x47" + b"\x00\x01\x01\x40" + p4),
        (105, wlan), (105, qos),
        (127, b"\x00\x00\x0c\x00\x02\x00\x00\x00\x00\x00\x00\x00" + wlan),
        (127, b"\x00\x00\x20\x00\x03\x00\x00\x80" + b"\0" * 8 + b"\0" * 8 + b"\x20" + b"\0" * 7   # TSFT, Flags: pad
         + qos[:26] + b"\0\0" + qos[26:]),
        (113, b"\x00\x00\x00\x01\x00\x06" + b"\x01" * 8 + b"\x08\x00" + p4),
        (276, b"\x86\xdd\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x01\x00\x06" + b"\x01" * 8 + p6),
        (12, p4), (14, p6), (101, p4), (101, p6x), (228, p4o), (229, p6),
        (239, b"\x02\x00\x00\x00" + b"\x08\x00\x01\x00" + b"\x00\x00\x00\x00"
         + struct.pack("<HH", 4 + len(p4), 9) + pad4(p4)),
        (3, p4), (147, p4),
        # FDDI, Token Ring (with a routing field), ATM LLC
        (10, b"\x50" + b"\x01" * 12 + snap + p4),
        (6, b"\x10\x40" + b"\x01" * 6 + b"\x81" + b"\x01" * 5 + b"\x04\x30\x00\x10" + snap + p4),
        (100, snap + p4),
        # UDP tunnels: Geneve with an option, GTP-U with an extension header, AYIYA, GRE-in-UDP,
        # VXLAN-GPE, and Geneve / GTP-U found by content on other ports
        (1, ether(0x0800, ipv4(17, udp(5000, 6081, b"\x01\x00\x65\x58\x00\x00\x01\x00" + b"\x01\x02\x03\x00"
                                       + ether(0x0800, p4))))),
        (1, ether(0x0800, ipv4(17, udp(2152, 2152, struct.pack("!BBHIHBB", 0x34, 0xFF, 8 + len(p4), 1, 0, 0, 0x85)
                                       + b"\x01\x00\x09\x00" + p4)))),
        (1, ether(0x0800, ipv4(17, udp(5072, 5072, b"\x41\x52\x11\x29" + b"\0" * 4 + b"\x01" * 16 + b"\x02" * 20
                                       + p6)))),
        (1, ether(0x0800, ipv4(17, udp(5000, 4754, b"\x00\x00\x86\xdd" + p6)))),
        (1, ether(0x0800, ipv4(17, udp(5000, 4790, b"\x0c\x00\x00\x01\x00\x00\x01\x00" + p4)))),
        (1, ether(0x0800, ipv4(17, udp(5000, 7000, b"\x00\x00\x08\x00\x00\x00\x01\x00" + p4)))),
        (1, ether(0x0800, ipv4(17, udp(5000, 7001, struct.pack("!BBHI", 0x30, 0xFF, len(p4), 1) + p4)))),
        # Aruba GRE with an A-MSDU; VN-Tag between VLAN tags; PBB; FabricPath
        (1, ether(0x0800, ipv4(47, b"\x00\x00\x82\x40" + qos[:24] + b"\x80\x00" + b"\x01" * 12
                               + struct.pack("!H", len(snap) + len(p4)) + snap + p4))),
        (1, ether(0x8100, b"\x00\x05\x89\x26" + b"\x80\x05\x00\x33\x81\x00" + b"\x00\x05\x08\x00" + p4)),
        (1, ether(0x88E7, b"\x00\x01\x00\x02" + ether(0x0800, p4))),
        (1, ether(0x8903, b"\x00\x3f" + ether(0x86DD, p6))),
    ]
    return out


# ------------------------------------------------------------------------------ main
def seeds(max_len: int):
    """(name, bytes) of every seed, the selector byte included."""
    limit = max_len - 1
    for name in CAPTURES:
        data = (TRACES / name).read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        cut = cut_capture(data, limit)
        stem = name.replace(".pcapng", "").replace(".pcap", "").replace(".gz", "")
        yield f"file-{stem}", b"\x00" + cut
        yield f"stdin-{stem}", b"\x01" + cut[: limit // 2 + 1]
        if name.endswith(".gz"):
            yield f"gzip-{stem}", b"\x02" + cut
        yield f"tiny-{stem}", b"\x04" + cut
    fl = frames()
    lt_index = {lt: i for i, lt in enumerate(LINKTYPES)}
    for i, (lt, f) in enumerate(fl):
        yield f"frame-{lt}-{i}", bytes([3 | (8 if i % 2 else 0), lt_index[lt], 0, 0]) + f
    eth = [f for lt, f in fl if lt == 1]
    yield "file-crafted-pcapng", b"\x00" + crafted_pcapng(eth[0], fl[0][1][4:], fl[1][1][4:])[:limit]
    yield "gzip-crafted-ethernet", b"\x0a" + pcap_file(1, eth, e=">", ns=True)[:limit]
    yield "file-crafted-ethernet", b"\x08" + pcap_file(1, eth)[:limit]
    # a handshake, data, FIN exchange and a RST on one connection (engine states)
    c, s = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    conv = [(c, s, 40000, 80, 100, 0, 0x02, OPTS, b""), (s, c, 80, 40000, 500, 101, 0x12, OPTS, b""),
            (c, s, 40000, 80, 101, 501, 0x10, b"", b""), (c, s, 40000, 80, 101, 501, 0x18, b"", b"x" * 100),
            (c, s, 40000, 80, 101, 501, 0x18, b"", b"x" * 100), (s, c, 80, 40000, 501, 201, 0x10, b"", b""),
            (s, c, 80, 40000, 501, 201, 0x10, b"", b""), (s, c, 80, 40000, 501, 201, 0x11, b"", b""),
            (c, s, 40000, 80, 201, 502, 0x11, b"", b""), (s, c, 80, 40000, 502, 202, 0x10, b"", b""),
            (c, s, 40000, 80, 202, 0, 0x04, b"", b""), (c, s, 40001, 80, 7, 0, 0x02, b"", b"")]
    pkts = [ether(0x0800, ipv4(6, tcp(sp, dp, sq, ak, fl_, 0 if i == 6 else 1000, op, pl), src=a, dst=b))
            for i, (a, b, sp, dp, sq, ak, fl_, op, pl) in enumerate(conv)]
    yield "file-conversation", b"\x00" + pcap_file(1, pkts)[:limit]
    yield "tiny-conversation", b"\x0c" + pcap_file(1, pkts)[:limit]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "fuzz" / "corpus"))
    ap.add_argument("--max-len", type=int, default=4096)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    n = 0
    for name, data in seeds(args.max_len):
        assert len(data) <= args.max_len, (name, len(data))
        digest = hashlib.sha1(data).hexdigest()[:10]
        (out / f"{name}-{digest}").write_bytes(data)
        total += len(data)
        n += 1
    print(f"{n} seeds, {total} bytes -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
