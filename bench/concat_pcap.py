#!/usr/bin/env python3
"""Concatenate classic pcap files (or one file N times) into one, shifting timestamps so
each copy starts after the previous one ends (plus ``--gap`` seconds): a file 2x or 4x as
long that keeps the capture's shape, for memory-versus-file-size measurements.

    python bench/concat_pcap.py OUT.pcap IN.pcap --times 4
    python bench/concat_pcap.py OUT.pcap A.pcap B.pcap --gap 1

Inputs must be classic pcap (microsecond or nanosecond, either byte order) with one link
type; the output uses the first input's header.  Streams records in large blocks.
"""
from __future__ import annotations

import argparse
import struct
import sys

_MAGIC = {0xA1B2C3D4: 1_000_000, 0xA1B23C4D: 1_000_000_000}


def _header(fh, name: str):
    hdr = fh.read(24)
    if len(hdr) < 24:
        raise SystemExit(f"{name}: too short for a pcap header")
    for e in "<>":
        magic = struct.unpack(e + "I", hdr[:4])[0]
        if magic in _MAGIC:
            linktype = struct.unpack(e + "I", hdr[20:24])[0] & 0xFFFF
            return hdr, e, _MAGIC[magic], linktype
    raise SystemExit(f"{name}: not a classic pcap file (magic {hdr[:4].hex()})")


def _records(path: str):
    """(header, endianness, ticks per second, linktype) and an iterator of (ts_ticks, caplen, wirelen, data)."""
    fh = open(path, "rb", buffering=1 << 20)
    hdr, e, tps, lt = _header(fh, path)
    rec = struct.Struct(e + "IIII")

    def it():
        with fh:
            read = fh.read
            while True:
                h = read(16)
                if len(h) < 16:
                    return
                sec, frac, caplen, wirelen = rec.unpack(h)
                data = read(caplen)
                if len(data) < caplen:
                    return
                yield sec * tps + frac, caplen, wirelen, data

    return (hdr, e, tps, lt), it()


def span(path: str) -> tuple[int, int, int]:
    """(first, last timestamp in ticks, ticks per second) of a pcap file."""
    (_h, _e, tps, _lt), it = _records(path)
    first = last = None
    for ts, _c, _w, _d in it:
        if first is None:
            first = ts
        last = ts if last is None or ts > last else last
    return first or 0, last or 0, tps


def concat(out: str, inputs: list[str], gap_s: float = 0.0) -> int:
    """Write ``inputs`` one after another into ``out``; returns the number of records."""
    (hdr0, e0, tps0, lt0), _it = _records(inputs[0])
    _it.close()
    rec = struct.Struct(e0 + "IIII")
    n = 0
    offset = 0                  # ticks (output resolution) added to the current input
    prev_end = None
    with open(out, "wb") as fo:
        fo.write(hdr0)
        buf = []
        size = 0
        for path in inputs:
            (_h, _e, tps, lt), it = _records(path)
            if lt != lt0:
                raise SystemExit(f"{path}: link type {lt} differs from {lt0}")
            scale_num, scale_den = tps0, tps
            first = None
            last = 0
            for ts, caplen, wirelen, data in it:
                t = ts * scale_num // scale_den
                if first is None:
                    first = t
                    if prev_end is not None:
                        offset = prev_end + int(gap_s * tps0) - first
                t2 = t + offset
                if t2 > last:
                    last = t2
                buf.append(rec.pack(t2 // tps0, t2 % tps0, caplen, wirelen))
                buf.append(data)
                size += 16 + caplen
                n += 1
                if size >= 8 << 20:
                    fo.write(b"".join(buf))
                    buf.clear()
                    size = 0
            if first is not None:
                prev_end = last + 1
        fo.write(b"".join(buf))
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--times", type=int, default=1, help="repeat the input list this many times")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between the end of one copy and the next")
    a = ap.parse_args(argv)
    n = concat(a.out, list(a.inputs) * a.times, a.gap)
    print(f"{a.out}: {n} packets", file=sys.stderr)
    return n


if __name__ == "__main__":
    main()
