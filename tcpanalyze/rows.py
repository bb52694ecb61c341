"""The TSV rows of ``tcpanalyze packets``: the per-segment text, formatted and buffered.

Kept out of the command module so it compiles with the core (setup.py; types in
``rows.pxd``).  Compiled, a row reads the segment's and the verdict's fields as C fields
and is written digit by digit into a C buffer that becomes one ``str`` per flush: no
Python int, no format call and no string per row.  As plain Python the row is an f-string
of the same text (tests/test_compiled.py checks they agree).
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.analysis import _NAMES_CACHE, analysis_str
from tcpanalyze.engine import Analyzer, Conn, Verdict
from tcpanalyze.model import _FLAG_STR_CACHE, Segment, addr_str, flag_str

COLUMNS = ("frame", "time", "stream", "src", "sport", "dst", "dport", "seq", "ack", "len", "flags", "win",
           "analysis", "ack_rtt", "bytes_in_flight", "dup_ack_num")


class TsvRows:
    """Callable as ``on_segment(seg, analyzer)``: appends the segment's row, writes every
    ``flush_at`` rows.  ``wanted(seg, conn)`` (optional) filters rows; ``absolute`` prints
    raw SEQ/ACK.  ``drop(conn)`` forgets a finished connection's cached row middle.
    ``relative``: the time column counts seconds since ``t0`` (nanoseconds since the epoch),
    or since the first segment when ``t0`` is None."""

    def __init__(self, write, absolute: bool = False, wanted=None, flush_at: int = 2048,
                 relative: bool = False, t0=None):
        self.write = write
        self.absolute = absolute
        self.wanted = wanted
        self.flush_at = flush_at
        self.buf = []
        # per connection, the row's constant middle for each direction: "stream, src,
        # sport, dst, dport" (str; bytes when compiled, copied into the C buffer)
        self.middles = {}
        self.flag_text = {}             # compiled: TCP flags -> their letters, as bytes
        self.analysis_text = {}         # compiled: analysis bits -> names, as bytes
        self.cn = 0
        # 0: times since the epoch; 1: since t0; 2: since the first segment (t0 set by it)
        self.rel = 0 if not relative else (2 if t0 is None else 1)
        self.t0 = t0 if t0 is not None else 0

    def header(self) -> None:
        self.write("\t".join(COLUMNS) + "\n")

    def drop(self, conn) -> None:
        self.middles.pop(conn, None)

    def flush(self) -> None:
        if cython.compiled:
            if self.cn:
                self.write(cython.cast(cython.p_char, self.cbuf)[:self.cn].decode("ascii"))
                self.cn = 0
        elif self.buf:
            self.write("".join(self.buf))
            self.buf.clear()

    @cython.locals(seg=Segment, a=Analyzer, v=Verdict, conn=Conn, flags=cython.longlong, s=cython.longlong,
                   k=cython.longlong, rtt=cython.longlong, bif=cython.longlong, ns=cython.longlong,
                   sec=cython.longlong, frac=cython.longlong, af=cython.longlong, dn=cython.longlong,
                   d=cython.longlong, out=cython.p_char, n=cython.Py_ssize_t, neg=cython.bint)
    def __call__(self, seg, a) -> None:
        v = a.verdict
        conn = v.conn
        if self.rel == 2:
            self.t0 = seg.ts_ns
            self.rel = 1
        if self.wanted is not None and not self.wanted(seg, conn):
            return
        flags = seg.flags
        if self.absolute:
            s = seg.seq
            k = seg.ack if flags & 0x10 else 0
        else:
            s = v.rel_seq
            k = v.rel_ack
        d = v.direction
        mid = self.middles.get(conn)
        if mid is None:
            src = addr_str(seg.src)
            dst = addr_str(seg.dst)
            one = f"{conn.stream}\t{src}\t{seg.sport}\t{dst}\t{seg.dport}"
            other = f"{conn.stream}\t{dst}\t{seg.dport}\t{src}\t{seg.sport}"
            if cython.compiled:
                one = one.encode("ascii")
                other = other.encode("ascii")
            mid = (one, other) if d == 0 else (other, one)
            if not getattr(conn, "done", False):    # (a late packet's connection is made for it alone)
                self.middles[conn] = mid
        af = v.analysis
        ns = seg.ts_ns
        neg = False
        if self.rel:
            ns -= self.t0
            if ns < 0:                  # a timestamp before the first one (the clock went back)
                neg = True
                ns = -ns
        sec = ns // 1_000_000_000
        frac = ns - sec * 1_000_000_000
        rtt = v.ack_rtt
        bif = v.bytes_in_flight
        dn = v.dupack_num
        if cython.compiled:
            fs = self.flag_text.get(flags)
            if fs is None:
                fs = self.flag_text[flags] = flag_str(flags).encode("ascii")
            an = b""
            if af:
                an = self.analysis_text.get(af)
                if an is None:
                    an = self.analysis_text[af] = analysis_str(af).encode("ascii")
            mb = mid[d]
            # flush while a row still fits: the buffer is rows.pxd's 64 KiB; besides the middle
            # and the analysis names a row has ten numbers and the flag letters, < 512 bytes
            if self.cn + len(mb) + len(an) + 512 > 65536:
                self.flush()
            out = self.cbuf
            n = self.cn
            n = _put_int(out, n, seg.frame)
            out[n] = 9
            if neg:
                n += 1
                out[n] = 45                                 # "-"
            n = _put_int(out, n + 1, sec)
            out[n] = 46                                     # "."
            n = _put_digits(out, n + 1, frac, 9)
            out[n] = 9
            n = _put_bytes(out, n + 1, mb)
            out[n] = 9
            n = _put_int(out, n + 1, s)
            out[n] = 9
            n = _put_int(out, n + 1, k)
            out[n] = 9
            n = _put_int(out, n + 1, seg.paylen)
            out[n] = 9
            n = _put_bytes(out, n + 1, fs)
            out[n] = 9
            n = _put_int(out, n + 1, v.win)
            out[n] = 9
            n = _put_bytes(out, n + 1, an)
            out[n] = 9
            n += 1
            if rtt >= 0:                                    # seconds with 9 decimals
                n = _put_int(out, n, rtt // 1_000_000_000)
                out[n] = 46
                n = _put_digits(out, n + 1, rtt % 1_000_000_000, 9)
            out[n] = 9
            n += 1
            if bif >= 0:
                n = _put_int(out, n, bif)
            out[n] = 9
            n += 1
            if dn:
                n = _put_int(out, n, dn)
            out[n] = 10
            self.cn = n + 1
            return
        fs = _FLAG_STR_CACHE.get(flags)
        if fs is None:
            fs = flag_str(flags)
        an = ""
        if af:
            an = _NAMES_CACHE.get(af)
            if an is None:
                an = analysis_str(af)
        self.buf.append(f"{seg.frame}\t{'-' if neg else ''}{sec}.{frac:09d}\t{mid[d]}\t{s}\t{k}\t{seg.paylen}\t{fs}\t{v.win}\t{an}\t"
                        f"{'' if rtt < 0 else '%.9f' % (rtt / 1e9)}\t{'' if bif < 0 else bif}\t"
                        f"{dn if dn else ''}\n")
        if len(self.buf) >= self.flush_at:
            self.flush()


# Compiled only: text into the C row buffer, each returning the position after what it wrote.

@cython.cfunc
@cython.cdivision(True)
@cython.locals(out=cython.p_char, n=cython.Py_ssize_t, v=cython.longlong, i=cython.Py_ssize_t,
               j=cython.Py_ssize_t, c=cython.char)
@cython.returns(cython.Py_ssize_t)
@cython.exceptval(check=False)
def _put_int(out, n, v):
    """``v`` in decimal."""
    if v < 0:
        out[n] = 45                                         # "-"
        n += 1
        v = -v
    i = n
    while True:
        out[i] = 48 + v % 10
        v = v // 10
        i += 1
        if v == 0:
            break
    j = i - 1
    while n < j:                                            # the digits came out reversed
        c = out[n]
        out[n] = out[j]
        out[j] = c
        n += 1
        j -= 1
    return i


@cython.cfunc
@cython.cdivision(True)
@cython.locals(out=cython.p_char, n=cython.Py_ssize_t, v=cython.longlong, width=cython.Py_ssize_t,
               i=cython.Py_ssize_t)
@cython.returns(cython.Py_ssize_t)
@cython.exceptval(check=False)
def _put_digits(out, n, v, width):
    """``0 <= v < 10**width`` as exactly ``width`` digits (zero-padded)."""
    i = n + width - 1
    while i >= n:
        out[i] = 48 + v % 10
        v = v // 10
        i -= 1
    return n + width


@cython.cfunc
@cython.locals(out=cython.p_char, n=cython.Py_ssize_t, b=bytes, p=cython.p_char, i=cython.Py_ssize_t,
               m=cython.Py_ssize_t)
@cython.returns(cython.Py_ssize_t)
@cython.exceptval(check=False)
def _put_bytes(out, n, b):
    p = b
    m = len(b)
    for i in range(m):
        out[n + i] = p[i]
    return n + m
