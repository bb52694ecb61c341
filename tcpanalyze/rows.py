"""The TSV rows of ``tcpanalyze packets``: the per-segment text, formatted and buffered.

Kept out of the command module so it compiles with the core (setup.py; types in
``rows.pxd``): a row then reads the segment's and the analyzer's results as C fields and
formats integers without making Python ints.  As plain Python it is the same code.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.analysis import _NAMES_CACHE, analysis_str
from tcpanalyze.engine import Analyzer, Conn
from tcpanalyze.model import _FLAG_STR_CACHE, Segment, addr_str, flag_str

COLUMNS = ("frame", "time", "stream", "src", "sport", "dst", "dport", "seq", "ack", "len", "flags", "win",
           "analysis", "ack_rtt", "bytes_in_flight", "dup_ack_num")


class TsvRows:
    """Callable as ``on_segment(seg, analyzer)``: appends the segment's row, writes every
    ``flush_at`` rows.  ``wanted(seg, conn)`` (optional) filters rows; ``absolute`` prints
    raw SEQ/ACK.  ``drop(conn)`` forgets a finished connection's cached row middle."""

    def __init__(self, write, absolute: bool = False, wanted=None, flush_at: int = 2048):
        self.write = write
        self.absolute = absolute
        self.wanted = wanted
        self.flush_at = flush_at
        self.buf = []
        # per connection, the row's constant middle for each direction: "stream, src,
        # sport, dst, dport"
        self.middles = {}

    def header(self) -> None:
        self.write("\t".join(COLUMNS) + "\n")

    def drop(self, conn) -> None:
        self.middles.pop(conn, None)

    def flush(self) -> None:
        if self.buf:
            self.write("".join(self.buf))
            self.buf.clear()

    @cython.locals(seg=Segment, a=Analyzer, conn=Conn, flags=cython.longlong, s=cython.longlong,
                   k=cython.longlong, rtt=cython.longlong, bif=cython.longlong, ns=cython.longlong,
                   sec=cython.longlong, frac=cython.longlong, af=cython.longlong, dn=cython.longlong,
                   d=cython.longlong)
    def __call__(self, seg, a) -> None:
        conn = a.r_conn
        if self.wanted is not None and not self.wanted(seg, conn):
            return
        flags = seg.flags
        if self.absolute:
            s = seg.seq
            k = seg.ack if flags & 0x10 else 0
        else:
            s = a.r_rel_seq
            k = a.r_rel_ack
        d = a.r_dir
        mid = self.middles.get(conn)
        if mid is None:
            src = addr_str(seg.src)
            dst = addr_str(seg.dst)
            one = f"{conn.stream}\t{src}\t{seg.sport}\t{dst}\t{seg.dport}"
            other = f"{conn.stream}\t{dst}\t{seg.dport}\t{src}\t{seg.sport}"
            mid = (one, other) if d == 0 else (other, one)
            self.middles[conn] = mid
        fs = _FLAG_STR_CACHE.get(flags)
        if fs is None:
            fs = flag_str(flags)
        af = a.r_flags
        an = ""
        if af:
            an = _NAMES_CACHE.get(af)
            if an is None:
                an = analysis_str(af)
        ns = seg.ts_ns
        sec = ns // 1_000_000_000
        frac = ns - sec * 1_000_000_000
        rtt = a.r_ack_rtt
        bif = a.r_bif
        dn = a.r_dupack_num
        self.buf.append(f"{seg.frame}\t{sec}.{frac:09d}\t{mid[d]}\t{s}\t{k}\t{seg.paylen}\t{fs}\t{a.r_win}\t{an}\t"
                        f"{'' if rtt < 0 else '%.9f' % (rtt / 1e9)}\t{'' if bif < 0 else bif}\t"
                        f"{dn if dn else ''}\n")
        if len(self.buf) >= self.flush_at:
            self.flush()
