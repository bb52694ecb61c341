#!/usr/bin/env python3
"""Where the memory of an ``analyze`` run goes: bytes per connection by part, open and closed.

Runs the analyze session (``ReportBuilder``) over a capture, stops after the last packet
(before the remaining connections are summarised) and walks the flow table: every
connection kept whole (open, or closed within its grace) and every tombstone; each whole
connection's object graph is sized part by part (``sys.getsizeof`` of each object reached,
each object counted once; small ints, interned strings, enum members and None are shared
and not counted).  Then, with ``--tracemalloc``, the allocations still alive at that point
by source file, and the baseline of the imports.

    python bench/memory.py CAPTURE [--tracemalloc]

Numbers depend on the build (pure Python objects or compiled C records): the first line
says which is live (``TCPANALYZE_PURE=1`` forces pure).  The tree this script is in is
measured.  Compiled, tracemalloc counts what the compiled modules allocate under their
Python caller (this script): the by-file list means something in the pure build.
"""
from __future__ import annotations

import argparse
import gc
import resource
import sys
import tracemalloc
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_C_TYPES = ("long long", "bint", "double", "int")


class Sizer:
    """Deep size of object graphs, each object once; shared immutables are free."""

    def __init__(self, compiled: bool):
        self.seen: set[int] = set()
        self.compiled = compiled

    def size(self, obj, fields_of=None) -> int:
        from enum import Enum

        total = 0
        stack = [obj]
        while stack:
            o = stack.pop()
            if o is None or isinstance(o, (bool, Enum)) or id(o) in self.seen:
                continue
            if isinstance(o, int) and -5 <= o <= 256:
                continue
            if isinstance(o, str) and len(o) <= 1:
                continue
            self.seen.add(id(o))
            total += sys.getsizeof(o)
            if isinstance(o, (list, tuple, set, frozenset)):
                stack.extend(o)
            elif isinstance(o, dict):
                stack.extend(o.keys())
                stack.extend(o.values())
            elif isinstance(o, (int, float, str, bytes)):
                continue
            else:
                names = getattr(type(o), "FIELDS", None)
                if names is not None:
                    # compiled, a C-typed field lives inside the record (getsizeof has it)
                    stack.extend(getattr(o, f[0]) for f in names
                                 if not (self.compiled and f[1] in _C_TYPES))
                else:
                    for n in getattr(type(o), "__slots__", ()):
                        if hasattr(o, n):
                            stack.append(getattr(o, n))
                    d = getattr(o, "__dict__", None)
                    if d is not None:
                        stack.append(d)
        return total


#: the parts of a connection, as (name, getter of the objects that make it)
def _parts(conn):
    f0, f1 = conn.flows
    return [
        ("flow table entries (2 keys, 2 tuples)", None),
        ("Conn record + key, addr, port, state", [conn, conn.key, conn.addr, conn.port, conn.state, conn.flows]),
        ("Flow records (sequence analysis)", [f0, f1]),
        ("unacked segments (Flow.segs)", [f0.segs, f1.segs]),
        ("SACK blocks (Flow.sack)", [f0.sack, f1.sack]),
        ("EndpointStats (counters)", [f0.stats, f1.stats]),
        ("EndpointTimes", [f0.times, f1.times]),
        ("EndpointTrack (RTT, window edge, zero window)", [f0.track, f1.track]),
        ("EndpointPerf (+split, turns, holes, RTO waits)", [f0.perf, f1.perf]),
        ("Zeek state (ZeekConn, ZeekTrack)", [conn.zeek, conn.ztrack]),
        ("ending, handshake", [conn.ending, conn.handshake]),
        ("timeline, anomalies, events", [conn.timeline, conn.anomalies, conn.events]),
    ]


def breakdown(table) -> dict:
    """{"open"|"closed": {part: bytes summed}, counts}"""
    import tcpanalyze.engine as E

    compiled = not E.__file__.endswith(".py")

    out = {"open": defaultdict(int), "closed": defaultdict(int)}
    count = {"open": 0, "closed": 0}
    seen_conns = set()
    for key, ent in table.conns.items():
        conn = ent[0]
        which = "open" if conn.end_reason == "open" else "closed"
        # the dict slot (key, value, hash: ~3 words at 2/3 load: ~36 B), the key and the tuple
        out[which]["flow table entries (2 keys, 2 tuples)"] += sys.getsizeof(key) + sys.getsizeof(ent) + 36
        if id(conn) in seen_conns:
            continue
        seen_conns.add(id(conn))
        count[which] += 1
        sz = Sizer(compiled)
        sz.seen.add(id(key))
        for name, objs in _parts(conn):
            if objs is None:
                continue
            if name.startswith("Conn record"):
                # the Conn itself, without the parts listed separately
                n = 0
                for o in objs:
                    if o is conn:
                        sz.seen.add(id(o))
                        n += sys.getsizeof(o)
                    else:
                        n += sz.size(o) if not isinstance(o, tuple) or o is not conn.flows else sys.getsizeof(o)
                        if o is conn.flows:
                            sz.seen.add(id(o))
                out[which][name] += n
                continue
            if name.startswith("Flow records"):
                n = 0
                for f in objs:
                    sz.seen.add(id(f))
                    n += sys.getsizeof(f)
                out[which][name] += n
                continue
            out[which][name] += sum(sz.size(o) for o in objs)
    return {"parts": out, "count": count}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--tracemalloc", action="store_true", help="also allocations by source file (slow)")
    args = ap.parse_args()
    rss0 = _rss_mb()
    if args.tracemalloc:
        tracemalloc.start(1)
    import tcpanalyze._loader as L
    from tcpanalyze.pipeline import analyze_source
    from tcpanalyze.session import AnalyzeOptions, ReportBuilder

    import tcpanalyze.engine as E

    status = f"{L.status()}: {E.__file__}"
    imports = tracemalloc.get_traced_memory()[0] if args.tracemalloc else 0
    rss1 = _rss_mb()
    print(f"build: {status}")
    print(f"peak RSS: interpreter {rss0:.1f} MB, after the imports {rss1:.1f} MB"
          + (f" (traced {imports / 1e6:.1f} MB)" if args.tracemalloc else ""))
    b = ReportBuilder(args.capture, AnalyzeOptions(spill_records=True))
    gc.disable()
    stats = analyze_source(args.capture, b.analyzer, on_segment=b.on_segment, notable_only=True)
    rss2 = _rss_mb()
    table = b.analyzer.table
    res = breakdown(table)
    cnt = res["count"]
    print(f"{stats.tcp} TCP segments; at the last packet: {cnt['open']} open and {cnt['closed']} closed "
          f"connections in the table; peak RSS {rss2:.1f} MB")
    names = [n for n, _ in _parts_names()]
    print(f"{'part':48} {'open B/conn':>12} {'closed B/conn':>14}")
    tot = {"open": 0, "closed": 0}
    for n in names:
        row = []
        for w in ("open", "closed"):
            v = res["parts"][w][n]
            tot[w] += v
            row.append(v / cnt[w] if cnt[w] else 0.0)
        print(f"{n:48} {row[0]:12.0f} {row[1]:14.0f}")
    print(f"{'total':48} {tot['open'] / max(cnt['open'], 1):12.0f} {tot['closed'] / max(cnt['closed'], 1):14.0f}")
    print(f"all connections in the table: {(tot['open'] + tot['closed']) / 1e6:.1f} MB")
    tombs = table.tombs
    if len(tombs):
        # the store (tomb.TombStore): an index of 8-byte slots in memory, the records on disk
        n = len(tombs)
        print(f"tombstones: {n}; in memory the index, {tombs.index_bytes() / 1e6:.2f} MB "
              f"({tombs.index_bytes() / n:.1f} bytes each) and a {len(tombs.wbuf) // 1024} KiB write buffer; "
              f"on disk {tombs.file_bytes() / 1e6:.1f} MB in {len(tombs.order)} generation file(s)")
    if args.tracemalloc:
        snap = tracemalloc.take_snapshot()
        by = defaultdict(int)
        for st in snap.statistics("filename"):
            fn = st.traceback[0].filename
            key = fn.split("tcpanalyze/")[-1] if "tcpanalyze/" in fn else "(other: " + fn.rsplit("/", 1)[-1] + ")"
            by[key] += st.size
        print("allocations alive at the last packet, by the source line's file (traced):")
        for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {k:40} {v / 1e6:8.1f} MB")
        print(f"  {'total':40} {sum(by.values()) / 1e6:8.1f} MB")
    b.build(stats)
    return 0


def _parts_names():
    class _F:
        segs = sack = stats = times = track = perf = None

    class _C:
        flows = (_F(), _F())
        key = addr = port = state = zeek = ztrack = ending = handshake = timeline = anomalies = events = None

    return _parts(_C())


if __name__ == "__main__":
    sys.exit(main())
