#!/usr/bin/env python3
"""K copies of a recording in one file, each copy's client seen as a different host: K times
the connections in the same time span.

    python bench/replicate_pcap.py OUT.pcap IN.pcap --copies 4 --client 10.201.0.10 \\
        --client fd00:201::10 [--once-port 5001] [--stagger 1.0]

Copy k (0 .. K-1) replaces every ``--client`` address (as source or destination, IPv4 or IPv6
over Ethernet) by the address whose last byte is k higher, and adjusts the IPv4 header and TCP
checksums for it (RFC 1624 incremental update: a checksum that was right stays right, one left
to the NIC by checksum offload stays as it was recorded); copy 0 is the recording itself.
Copy k is shifted by k * stagger / K seconds so the copies' connection openings interleave
instead of landing on the same microsecond.  Packets with a port in ``--once-port`` (bulk
uploads) are kept in copy 0 only.  The copies are merged by time into OUT (classic pcap,
the input's header).  Used by bench/make_big_capture.sh --scale K.
"""
from __future__ import annotations

import argparse
import heapq
import ipaddress
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from concat_pcap import _records  # noqa: E402


def _csum_add(c: int, old: int, new: int) -> int:
    """Checksum field ``c`` after one 16-bit word of the summed data changed old -> new."""
    s = (~c & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _rewriter(clients4: list[bytes], clients6: list[bytes], k: int, once_ports: set[int]):
    """A function frame -> new frame (or None to leave the packet out of copy k)."""
    map4 = {a: a[:-1] + bytes([(a[-1] + k) & 0xFF]) for a in clients4}
    map6 = {a: a[:-1] + bytes([(a[-1] + k) & 0xFF]) for a in clients6}

    def ports_ok(data: bytes, off: int) -> bool:
        if not once_ports or k == 0 or len(data) < off + 4:
            return True
        sp, dp = struct.unpack_from("!HH", data, off)
        return sp not in once_ports and dp not in once_ports

    def rw(data: bytes):
        if len(data) < 14:
            return data
        et = (data[12] << 8) | data[13]
        if et == 0x0800 and len(data) >= 34:
            ihl = (data[14] & 15) * 4
            proto = data[23]
            tcp = 14 + ihl
            if proto == 6 and not ports_ok(data, tcp):
                return None
            if k == 0:
                return data
            src, dst = data[26:30], data[30:34]
            if src not in map4 and dst not in map4:
                return data
            b = bytearray(data)
            for pos, a in ((26, src), (30, dst)):
                n = map4.get(a)
                if n is None:
                    continue
                old, new = struct.unpack_from("!H", a, 2)[0], struct.unpack_from("!H", n, 2)[0]
                b[pos:pos + 4] = n
                hc = struct.unpack_from("!H", b, 24)[0]
                struct.pack_into("!H", b, 24, _csum_add(hc, old, new))
                frag = struct.unpack_from("!H", b, 20)[0] & 0x1FFF
                if proto == 6 and frag == 0 and len(b) >= tcp + 18:
                    tc = struct.unpack_from("!H", b, tcp + 16)[0]
                    struct.pack_into("!H", b, tcp + 16, _csum_add(tc, old, new))
            return bytes(b)
        if et == 0x86DD and len(data) >= 54:
            nh = data[20]
            tcp = 54
            if nh == 6 and not ports_ok(data, tcp):
                return None
            if k == 0:
                return data
            src, dst = data[22:38], data[38:54]
            if src not in map6 and dst not in map6:
                return data
            b = bytearray(data)
            for pos, a in ((22, src), (38, dst)):
                n = map6.get(a)
                if n is None:
                    continue
                old, new = struct.unpack_from("!H", a, 14)[0], struct.unpack_from("!H", n, 14)[0]
                b[pos:pos + 16] = n
                if nh == 6 and len(b) >= tcp + 18:
                    tc = struct.unpack_from("!H", b, tcp + 16)[0]
                    struct.pack_into("!H", b, tcp + 16, _csum_add(tc, old, new))
            return bytes(b)
        return data

    return rw


def replicate(out: str, src: str, copies: int, clients: list[str], once_ports: set[int],
              stagger: float) -> int:
    c4 = [ipaddress.ip_address(a).packed for a in clients if ipaddress.ip_address(a).version == 4]
    c6 = [ipaddress.ip_address(a).packed for a in clients if ipaddress.ip_address(a).version == 6]
    (hdr, e, tps, lt), first = _records(src)
    first.close()
    if lt != 1:
        raise SystemExit(f"replicate_pcap: {src}: link type {lt}, only Ethernet (1) is rewritten")

    def copy(k: int):
        _head, it = _records(src)
        rw = _rewriter(c4, c6, k, once_ports)
        shift = int(k * stagger / copies * tps)
        for ts, caplen, wirelen, data in it:
            d = rw(data)
            if d is not None:
                yield ts + shift, k, wirelen, d

    rec = struct.Struct(e + "IIII")
    n = 0
    with open(out, "wb") as fo:
        fo.write(hdr)
        buf, size = [], 0
        for t, _k, wirelen, data in heapq.merge(*(copy(k) for k in range(copies))):
            buf.append(rec.pack(t // tps, t % tps, len(data), wirelen))
            buf.append(data)
            size += 16 + len(data)
            n += 1
            if size >= 8 << 20:
                fo.write(b"".join(buf))
                buf.clear()
                size = 0
        fo.write(b"".join(buf))
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("src")
    ap.add_argument("--copies", type=int, required=True)
    ap.add_argument("--client", action="append", required=True, help="client address to vary (IPv4 or IPv6)")
    ap.add_argument("--once-port", type=int, action="append", default=[], help="keep this port's packets once")
    ap.add_argument("--stagger", type=float, default=1.0, help="copy k starts k*STAGGER/K s later (default 1)")
    a = ap.parse_args(argv)
    if a.copies < 1:
        ap.error("--copies must be >= 1")
    n = replicate(a.out, a.src, a.copies, a.client, set(a.once_port), a.stagger)
    print(f"{a.out}: {n} packets in {a.copies} copies", file=sys.stderr)


if __name__ == "__main__":
    main()
