#!/usr/bin/env python3
"""Merge classic pcap files by timestamp into one (like ``mergecap -F pcap``), streaming.

    python bench/merge_pcap.py OUT.pcap A.pcap B.pcap ...

The inputs must share one link type; the output takes the first input's header (time
resolution and byte order), the other inputs' timestamps are converted to it.  Records with
equal timestamps keep their input order.  Used by bench/make_big_capture.sh, which records one
file per network device.
"""
from __future__ import annotations

import heapq
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from concat_pcap import _records  # noqa: E402


def merge(out: str, inputs: list[str]) -> int:
    heads, streams = [], []
    for path in inputs:
        head, it = _records(path)
        heads.append(head)
        streams.append(it)
    hdr0, e0, tps0, lt0 = heads[0]
    for path, (_h, _e, tps, lt) in zip(inputs, heads):
        if lt != lt0:
            raise SystemExit(f"merge_pcap: {path}: link type {lt} differs from {lt0}")

    def keyed(i, it, tps):
        for ts, caplen, wirelen, data in it:
            yield ts * tps0 // tps, i, caplen, wirelen, data

    rec = struct.Struct(e0 + "IIII")
    n = 0
    with open(out, "wb") as fo:
        fo.write(hdr0)
        buf, size = [], 0
        for t, _i, caplen, wirelen, data in heapq.merge(
                *(keyed(i, it, h[2]) for i, (it, h) in enumerate(zip(streams, heads)))):
            buf.append(rec.pack(t // tps0, t % tps0, caplen, wirelen))
            buf.append(data)
            size += 16 + caplen
            n += 1
            if size >= 8 << 20:
                fo.write(b"".join(buf))
                buf.clear()
                size = 0
        fo.write(b"".join(buf))
    return n


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) < 2:
        raise SystemExit("usage: merge_pcap.py OUT.pcap IN.pcap...")
    n = merge(argv[0], argv[1:])
    print(f"{argv[0]}: {n} packets merged from {len(argv) - 1} files", file=sys.stderr)


if __name__ == "__main__":
    main()
