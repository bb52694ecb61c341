#!/usr/bin/env python3
"""How often a connection gets packets after it closed (both endpoints CLOSED or TIME_WAIT).

The engine keeps a closed connection whole for a grace period (engine.K_GRACE_NS) after its
last packet, then summarises it and keeps its tombstone for the rest of the linger time
(engine.K_LINGER_NS); a packet after the grace is analysed against the tombstone and counted
in ``late_packets``, not in the connection's summary.  This runs the engine with the grace
as long as the linger time (every closed connection kept whole) and counts, per capture, the
closed connections that got packets after they closed, how many, and the longest gap
between the connection's last packet before and the late one (a SYN that reuses the 4-tuple
opens a new connection and is not late): the packets a shorter grace turns into late ones.

    python bench/late_packets.py CAPTURE...

It runs the pure-Python engine (it wraps ``Analyzer.feed``, which a compiled analyzer does
not allow).
"""
from __future__ import annotations

import os
import sys

os.environ["TCPANALYZE_PURE"] = "1"

from tcpanalyze import engine as E
from tcpanalyze.errors import SourceError
from tcpanalyze.pipeline import analyze_source


def late_packets(path: str) -> tuple[int, int, int, float]:
    """(closed connections, those with late packets, late packets, longest gap in s)"""
    a = E.Analyzer(E.Config(grace_ns=E.K_LINGER_NS), keep_timeline=False, detail=False)
    late: dict[int, list] = {}
    feed = a.feed

    def counting_feed(seg):
        a.advance(seg.ts_ns)            # the sweep feed would run first
        ent = a.table.conns.get(E._seg_key(seg))
        if ent is not None and ent[0].end_reason in ("fin", "rst"):
            conn, d = ent
            f = conn.flows[d]
            new_isn = seg.flags & 0x12 == 0x02 and f.base_set and seg.seq != f.base_seq
            if not new_isn:
                e = late.setdefault(conn.stream, [0, 0])
                e[0] += 1
                e[1] = max(e[1], seg.ts_ns - conn.last_ns)
        return feed(seg)

    a.feed = counting_feed
    analyze_source(path, a)
    conns = a.finish()
    closed = sum(1 for c in conns if c.end_reason in ("fin", "rst") or c.stream in late)
    return closed, len(late), sum(e[0] for e in late.values()), max((e[1] for e in late.values()), default=0) / 1e9


def main() -> int:
    tot = [0, 0, 0]
    for path in sys.argv[1:]:
        try:
            closed, n, pkts, gap = late_packets(path)
        except (SourceError, OSError):
            continue
        tot[0] += closed
        tot[1] += n
        tot[2] += pkts
        if n:
            print(f"{os.path.basename(path)}: {n} of {closed} closed connections got {pkts} late packet(s); "
                  f"longest gap {gap:.3f} s")
    print(f"total: {tot[1]} of {tot[0]} closed connections got {tot[2]} late packet(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
