"""Tombstones: what the engine keeps of a closed connection after its summary was made.

A connection whose two endpoints reached CLOSED or TIME_WAIT is summarised a short grace
period after its last packet (``engine.K_GRACE_NS``) and leaves the flow table; for the rest
of the linger time (``Config.linger_ns``) the table keeps, under one of its keys, one
``bytes`` record with only what a late packet and the TIME_WAIT accounting read:

* the stream number, the time of the last packet, the iRTT and the latest SYN's time, both
  endpoints' states, the end (FIN or RST), when (time and frame) an endpoint entered
  TIME_WAIT, and the Zeek conn_state of its last record (for the port-reuse findings of a
  new connection on its 4-tuple);
* per direction the sequence-analysis state Wireshark's rules read for a late segment:
  relative base, next expected seq and when it was reached, the highest seq to be ACKed,
  the last ACK and window and when they were sent, the window scale, the duplicate-ACK run,
  the analysis bits of the last segment, the first FIN's next seq, the flags that say which
  of these are known; then the segments still unacknowledged (rarely any), the last SACK
  blocks and the span of disordered segments.

``pack(conn)`` makes the record; ``load(record, conn)`` fills the sequence state of a
minimal connection (two fresh flows) that ``Analyzer`` builds for a late packet, runs the
ordinary rules on and packs again.  The layout is private to one run (little-endian,
fixed part first).  Compiled, ``pack`` writes the fixed part (all of it for a connection
with nothing unacknowledged, the usual case) byte by byte from the C records, and
``expired`` reads the last packet time of each tombstone in C: both run once per connection
or per sweep, and their plain versions (``struct``) write and read the same bytes."""
from __future__ import annotations

import struct

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

# engine.py imports this module after its record classes are defined
from tcpanalyze.engine import Conn, Flow
from tcpanalyze.state import TcpState

#: stream, last_ns, irtt, ts_mru_syn, tw_ts, tw_frame, tw endpoint (-1 none), states, end (0 fin,
#: 1 rst), Zeek conn_state (index in _ZSTATES)
_HEAD = struct.Struct("<qqqqqqbBBBB")
#: per direction: base_seq, nextseq, maxseqtobeacked, lastack, fin_next (raw 32-bit seqs),
#: window, dupacknum, nextseqtime, lastacktime, lastnondupack, win_scale, lastsegflags,
#: flag bits, unacked segments, SACK blocks
_FLOW = struct.Struct("<IIIIIiiqqqbHBHB")
_SEG = struct.Struct("<qqqqq")
_PAIR = struct.Struct("<qq")
#: where last_ns sits (the sweep reads only that)
LAST_NS = struct.Struct("<q")
LAST_NS_OFFSET = 8

_BASE_SET, _FIRST_ACK, _DISORDERED, _VALID_BIF, _HAS_FIN = 1, 2, 4, 8, 16
_STATES = tuple(TcpState)
_END = ("fin", "rst")
_ZSTATES = ("", "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
_ZINDEX = {name: i for i, name in enumerate(_ZSTATES)}


class ZeekEnd:
    """The Zeek state of a summarised connection, as far as a tombstone keeps it."""

    __slots__ = ("state",)

    def __init__(self, state: str):
        self.state = state

    def conn_state(self) -> str:
        return self.state

SIZE_FIXED = _HEAD.size + 2 * _FLOW.size


@cython.cfunc
@cython.inline
@cython.locals(p=cython.p_uchar, v=cython.longlong, n=cython.Py_ssize_t, i=cython.Py_ssize_t)
def _w(p, v, n):
    """``n`` bytes of ``v`` (two's complement), little-endian, at ``p``."""
    for i in range(n):
        p[i] = (v >> (8 * i)) & 255


@cython.cfunc
@cython.locals(p=cython.p_uchar, f=Flow, bits=cython.longlong, fin=cython.longlong)
def _w_flow(p, f):
    bits = ((_BASE_SET if f.base_set else 0) | (_FIRST_ACK if f.is_first_ack else 0)
            | (_VALID_BIF if f.valid_bif else 0))
    fin = f.times.fin_next
    if fin >= 0:
        bits |= _HAS_FIN
    else:
        fin = 0
    _w(p, f.base_seq, 4)
    _w(p + 4, f.nextseq, 4)
    _w(p + 8, f.maxseqtobeacked, 4)
    _w(p + 12, f.lastack, 4)
    _w(p + 16, fin, 4)
    _w(p + 20, f.window, 4)
    _w(p + 24, f.dupacknum, 4)
    _w(p + 28, f.nextseqtime, 8)
    _w(p + 36, f.lastacktime, 8)
    _w(p + 44, f.lastnondupack, 8)
    _w(p + 52, f.win_scale, 1)
    _w(p + 53, f.lastsegflags, 2)
    _w(p + 55, bits, 1)
    _w(p + 56, 0, 3)                     # no unacked segments, no SACK blocks


@cython.locals(conn=Conn, f0=Flow, f1=Flow, b=cython.uchar[171], p=cython.p_uchar, tw=tuple)
def pack(conn) -> bytes:
    """The tombstone of a closed connection (read before it is finalized: it still has its
    unacknowledged segments)."""
    if not cython.compiled:
        return _pack(conn)
    f0 = conn.flows[0]
    f1 = conn.flows[1]
    if f0.segs or f1.segs or f0.sack or f1.sack or f0.segs_disordered or f1.segs_disordered:
        return _pack(conn)
    p = cython.address(b[0])
    tw = conn.ending.tw_start
    _w(p, conn.stream, 8)
    _w(p + 8, conn.last_ns, 8)
    _w(p + 16, conn.irtt, 8)
    _w(p + 24, conn.handshake.ts_mru_syn, 8)
    if tw is not None:
        _w(p + 32, tw[1], 8)
        _w(p + 40, tw[2], 8)
        _w(p + 48, tw[0], 1)
    else:
        _w(p + 32, 0, 16)
        _w(p + 48, -1, 1)
    _w(p + 49, int(conn.state[0]), 1)
    _w(p + 50, int(conn.state[1]), 1)
    _w(p + 51, 1 if conn.end_reason == "rst" else 0, 1)
    _w(p + 52, _zstate(conn), 1)
    _w_flow(p + 53, f0)
    _w_flow(p + 112, f1)
    return cython.cast(cython.p_char, p)[:171]


@cython.locals(tombs=dict, rec=bytes, p=cython.p_uchar, t=cython.longlong, now=cython.longlong,
               linger=cython.longlong, i=cython.Py_ssize_t)
def expired(tombs: dict, now: int, linger: int) -> list:
    """The keys of the tombstones whose connection's last packet is more than ``linger`` ago."""
    gone = []
    for key, rec in tombs.items():
        if cython.compiled:
            p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, rec))
            t = 0
            for i in range(8):
                t |= cython.cast(cython.longlong, p[8 + i]) << (8 * i)
        else:
            t = LAST_NS.unpack_from(rec, LAST_NS_OFFSET)[0]
        if now - t > linger:
            gone.append(key)
    return gone


def _zstate(conn) -> int:
    z = conn.zeek
    return _ZINDEX.get(z.conn_state(), 0) if z is not None else 0


def _pack(conn) -> bytes:
    tw = conn.ending.tw_start
    st = conn.state
    parts = [_HEAD.pack(conn.stream, conn.last_ns, conn.irtt, conn.handshake.ts_mru_syn,
                        tw[1] if tw is not None else 0, tw[2] if tw is not None else 0,
                        tw[0] if tw is not None else -1, int(st[0]), int(st[1]),
                        1 if conn.end_reason == "rst" else 0, _zstate(conn))]
    tail = []
    for f in conn.flows:
        bits = ((_BASE_SET if f.base_set else 0) | (_FIRST_ACK if f.is_first_ack else 0)
                | (_DISORDERED if f.segs_disordered else 0) | (_VALID_BIF if f.valid_bif else 0))
        fin_next = f.times.fin_next
        if fin_next >= 0:
            bits |= _HAS_FIN
        segs = f.segs
        sack = f.sack
        parts.append(_FLOW.pack(f.base_seq, f.nextseq, f.maxseqtobeacked, f.lastack, max(fin_next, 0), f.window,
                                f.dupacknum, f.nextseqtime, f.lastacktime, f.lastnondupack, f.win_scale,
                                f.lastsegflags, bits, len(segs), len(sack) if sack else 0))
        for e in segs:
            tail.append(_SEG.pack(e.seq, e.end, e.frame, e.ts_ns, e.karn))
        if sack:
            for left, right in sack:
                tail.append(_PAIR.pack(left, right))
        if f.segs_disordered:
            tail.append(_PAIR.pack(f.seg_lo, f.seg_hi))
    return b"".join(parts + tail)


def last_ns(rec: bytes) -> int:
    """The time of the last packet of the connection a tombstone stands for."""
    return LAST_NS.unpack_from(rec, LAST_NS_OFFSET)[0]


def stream(rec: bytes) -> int:
    return LAST_NS.unpack_from(rec, 0)[0]


def load(rec: bytes, conn, unacked) -> None:
    """Fill ``conn`` (fresh ``flows``, ``ending`` and ``handshake`` records) from a tombstone;
    ``unacked(seq, end, frame, ts_ns, karn)`` makes an unacknowledged-segment record."""
    stream_, last, irtt, ts_syn, tw_ts, tw_frame, tw_ep, s0, s1, end, zs = _HEAD.unpack_from(rec, 0)
    conn.stream = stream_
    conn.last_ns = last
    conn.irtt = irtt
    conn.handshake.ts_mru_syn = ts_syn
    conn.ending.tw_start = (tw_ep, tw_ts, tw_frame) if tw_ep >= 0 else None
    conn.state = [_STATES[s0], _STATES[s1]]
    conn.end_reason = _END[end]
    conn.zeek = ZeekEnd(_ZSTATES[zs])
    off = _HEAD.size
    counts = []
    for f in conn.flows:
        (f.base_seq, f.nextseq, f.maxseqtobeacked, f.lastack, fin_next, f.window, f.dupacknum, f.nextseqtime,
         f.lastacktime, f.lastnondupack, f.win_scale, f.lastsegflags, bits, nsegs, nsack) = _FLOW.unpack_from(rec, off)
        off += _FLOW.size
        f.base_set = bool(bits & _BASE_SET)
        f.is_first_ack = bool(bits & _FIRST_ACK)
        f.segs_disordered = bool(bits & _DISORDERED)
        f.valid_bif = bool(bits & _VALID_BIF)
        f.times.fin_next = fin_next if bits & _HAS_FIN else -1
        counts.append((nsegs, nsack))
    for f, (nsegs, nsack) in zip(conn.flows, counts):
        segs = []
        for _ in range(nsegs):
            segs.append(unacked(*_SEG.unpack_from(rec, off)))
            off += _SEG.size
        f.segs = segs
        if nsack:
            sack = []
            for _ in range(nsack):
                sack.append(_PAIR.unpack_from(rec, off))
                off += _PAIR.size
            f.sack = sack
        if f.segs_disordered:
            f.seg_lo, f.seg_hi = _PAIR.unpack_from(rec, off)
            off += _PAIR.size
