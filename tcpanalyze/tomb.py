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
with nothing unacknowledged, the usual case) byte by byte from the C records; its plain
version (``struct``) writes the same bytes.

``TombStore`` keeps the records of a flow table out of the Python heap: in temporary files
behind an index of 8-byte slots (see the class).  Compiled, its index and its write buffer
are read and written through C pointers, and its sweep reads each entry's last packet time
in C; the plain versions use ``struct`` on the same bytes."""
from __future__ import annotations

import os
import struct
import tempfile

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

# engine.py imports this module after its record classes are defined
from tcpanalyze.engine import Conn, Flow, reverse_key
from tcpanalyze.errors import OutputError
from tcpanalyze.state import TcpState

#: stream, last_ns, irtt, ts_mru_syn, tw_ts, tw_frame, tw endpoint (-1 none), states, end (0 fin,
#: 1 rst), Zeek conn_state (index in _ZSTATES)
_HEAD = struct.Struct("<qqqqqqbBBBB")
#: per direction: base_seq, nextseq, maxseqtobeacked, lastack, fin_next (raw 32-bit seqs),
#: window, dupacknum, nextseqtime, lastacktime, lastnondupack, win_scale, lastsegflags,
#: flag bits, unacked segments, SACK blocks
_FLOW = struct.Struct("<IIIIIiiqqqbHBHB")
#: the fixed part: the head and both directions in one (no padding with "<")
_FIXED = struct.Struct("<qqqqqqbBBBB" + 2 * "IIIIIiiqqqbHBHB")
_SEG = struct.Struct("<qqqqq")
_PAIR = struct.Struct("<qq")
#: where last_ns sits (the sweep reads only that)
LAST_NS = struct.Struct("<q")
LAST_NS_OFFSET = 8

_BASE_SET = cython.declare(cython.longlong, 1)
_FIRST_ACK = cython.declare(cython.longlong, 2)
_DISORDERED = cython.declare(cython.longlong, 4)
_VALID_BIF = cython.declare(cython.longlong, 8)
_HAS_FIN = cython.declare(cython.longlong, 16)
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

SIZE_FIXED = _HEAD.size + 2 * _FLOW.size     # == _FIXED.size


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


def _zstate(conn) -> int:
    z = conn.zeek
    return _ZINDEX.get(z.conn_state(), 0) if z is not None else 0


def _flow_bits(f) -> int:
    """A direction's flag bits (``_BASE_SET`` ...) in a tombstone."""
    return ((_BASE_SET if f.base_set else 0) | (_FIRST_ACK if f.is_first_ack else 0)
            | (_DISORDERED if f.segs_disordered else 0) | (_VALID_BIF if f.valid_bif else 0)
            | (_HAS_FIN if f.times.fin_next >= 0 else 0))


def _pack(conn) -> bytes:
    tw = conn.ending.tw_start
    st = conn.state
    f0, f1 = conn.flows
    z = conn.zeek
    zs = _ZINDEX.get(z.conn_state(), 0) if z is not None else 0
    b0 = _flow_bits(f0)
    b1 = _flow_bits(f1)
    fixed = _FIXED.pack(
        conn.stream, conn.last_ns, conn.irtt, conn.handshake.ts_mru_syn, tw[1] if tw is not None else 0,
        tw[2] if tw is not None else 0, tw[0] if tw is not None else -1, int(st[0]), int(st[1]),
        1 if conn.end_reason == "rst" else 0, zs,
        f0.base_seq, f0.nextseq, f0.maxseqtobeacked, f0.lastack, max(f0.times.fin_next, 0), f0.window,
        f0.dupacknum, f0.nextseqtime, f0.lastacktime, f0.lastnondupack, f0.win_scale, f0.lastsegflags, b0,
        len(f0.segs), len(f0.sack) if f0.sack else 0,
        f1.base_seq, f1.nextseq, f1.maxseqtobeacked, f1.lastack, max(f1.times.fin_next, 0), f1.window,
        f1.dupacknum, f1.nextseqtime, f1.lastacktime, f1.lastnondupack, f1.win_scale, f1.lastsegflags, b1,
        len(f1.segs), len(f1.sack) if f1.sack else 0)
    if not (f0.segs or f1.segs or f0.sack or f1.sack or f0.segs_disordered or f1.segs_disordered):
        return fixed
    parts = [fixed]
    for f in (f0, f1):
        for e in f.segs:
            parts.append(_SEG.pack(e.seq, e.end, e.frame, e.ts_ns, e.karn))
        if f.sack:
            for left, right in f.sack:
                parts.append(_PAIR.pack(left, right))
        if f.segs_disordered:
            parts.append(_PAIR.pack(f.seg_lo, f.seg_hi))
    return b"".join(parts)


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


# ----------------------------------------------------------------- the store
# Index: _NSUB sub-tables of 8-byte slots (linear probing, backward-shift deletion), each slot
# (fingerprint << 32) | locator, 0 when empty.  The fingerprint is 31 bits (33-63) of the hash
# of the lesser of the key and its reverse (``engine.reverse_key``), the same for both
# directions of a connection, so one probe answers for both; its top 8 bits choose the
# sub-table, the other 23 the home slot (scaled to the sub-table's size), so a sub-table grows
# or shrinks from its slots alone.  The locator is the
# generation (7 bits) and the entry's offset in its file in 8-byte units (25 bits).
_NSUB = cython.declare(cython.longlong, 256)
_SUB_SHIFT = cython.declare(cython.longlong, 23)
_LOW = cython.declare(cython.longlong, (1 << 23) - 1)
_FP_MASK = cython.declare(cython.longlong, (1 << 31) - 1)
_LOC_MASK = cython.declare(cython.longlong, (1 << 32) - 1)
_GEN_SHIFT = cython.declare(cython.longlong, 25)
_OFF_MASK = cython.declare(cython.longlong, (1 << 25) - 1)
_NGEN = cython.declare(cython.longlong, 128)
#: bytes one generation file holds at most (its offsets in 8-byte units fit 25 bits)
_GEN_MAX = cython.declare(cython.longlong, 8 << 25)
_MIN_CAP = cython.declare(cython.longlong, 8)
_NEVER = cython.declare(cython.longlong, (1 << 63) - 1)
#: per generation, in ``TombStore.gens``: bytes in its file, live entries, the earliest last
#: packet time among them (a lower bound), the capture time it started
_G = cython.declare(cython.longlong, 4)
_Q = struct.Struct("<q")
#: an entry of a generation file: its size (a multiple of 8), the record's length, its
#: insertion number (the order of a dict's keys, which eviction keeps), the hash the key and
#: its reverse share (``_hash2``) and the key's length; then the key and the record
_ENTRY = struct.Struct("<iiqqi4x")
_HDR = cython.declare(cython.longlong, 32)
_PAD = bytes(8)
_LAST_AT = cython.declare(cython.longlong, LAST_NS_OFFSET)
#: the write buffer of the newest generation
K_WRITE_BUF = 1 << 16
#: bytes read at once when a sweep walks a generation file
K_SCAN_READ = 1 << 20
#: a generation of tombstones lasts at least one sweep and at most 1/32 of the linger time
K_GEN_SPAN_NS = 10 * 1_000_000_000


class TombStore:
    """The tombstones of a flow table: key (``flow_key`` of direction 0) -> ``pack`` record,
    used like a dict (``in``, ``[]``, ``del``, ``len``, ``items`` in insertion order), but
    with the records outside the Python heap.

    The records go, in the order they are stored, into temporary files (unlinked at once,
    where ``tempfile`` puts them, like the ``--json`` spill), one per *generation*: a new
    generation starts at a sweep once the newest is ``span_ns`` old.  In memory there is only
    an index of 8-byte slots (about 11 bytes per tombstone, see the comment above) and the
    newest generation's 64 KiB write buffer.  A key missing from the index costs no read: a
    lookup reads the file only when a slot's 31-bit fingerprint matches (the tombstone is
    there, or once in about 10,000 misses).  A key and its reverse have the same fingerprint:
    ``find`` looks for a segment's key in both directions with one probe.  ``expire`` walks
    only the generations that may hold a tombstone past the linger time, and a generation
    whose tombstones are all gone (expired, replaced by a newer record, removed) closes its
    file: tombstones expire in about the order they were stored, so the files on disk hold
    about the linger time's tombstones."""

    FIELDS = (("subs", "list"), ("counts", "bytearray"), ("n", "long long"), ("seq", "long long"),
              ("files", "list"), ("gens", "bytearray"), ("order", "list"), ("cur", "long long"),
              ("wbuf", "bytearray"), ("wn", "long long"), ("span_ns", "long long"), ("reads", "long long"),
              ("cloc", "long long"), ("cent", "object"))

    def __init__(self, linger_ns: int = 0):
        self.span_ns = max(K_GEN_SPAN_NS, linger_ns // 32)
        self.files = [None] * _NGEN
        self.gens = bytearray(8 * _G * _NGEN)
        self.wbuf = bytearray(K_WRITE_BUF)
        self.reads = 0                  # entries read back (a test counts them)
        self._reset()

    def _reset(self) -> None:
        self.subs = [bytearray(8 * _MIN_CAP) for _ in range(_NSUB)]
        self.counts = bytearray(8 * _NSUB)
        self.n = 0
        self.seq = 0
        self.order = []                 # live generations, oldest first
        self.cur = -1
        self.wn = 0
        self.cloc = 0
        self.cent = None

    def __len__(self) -> int:
        return self.n

    @cython.locals(h=cython.longlong, i=cython.Py_ssize_t)
    def __contains__(self, key) -> bool:
        h = _hash2(key, reverse_key(key))
        i = _find(self, key, h)
        return i >= 0

    def __getitem__(self, key):
        rec = self.get(key)
        if rec is None:
            raise KeyError(key)
        return rec

    @cython.locals(i=cython.Py_ssize_t, h=cython.longlong, s=cython.longlong, ent=bytes)
    def get(self, key, default=None):
        h = _hash2(key, reverse_key(key))
        i = _find(self, key, h)
        if i < 0:
            return default
        s = _ld(self.subs[((h >> 33) & _FP_MASK) >> _SUB_SHIFT], i)
        ent = _read(self, s & _LOC_MASK)
        return _record(ent)

    @cython.locals(h=cython.longlong, fp=cython.longlong, t=bytearray, cap=cython.Py_ssize_t,
                   i=cython.Py_ssize_t, s=cython.longlong, d=cython.longlong, k=bytes)
    def find(self, key, rkey):
        """``(key, 0)`` when ``key`` is stored, else ``(rkey, 1)`` when ``rkey`` (its reverse)
        is, else None: one probe, the two share their fingerprint."""
        h = _hash2(key, rkey)
        fp = (h >> 33) & _FP_MASK
        t = self.subs[fp >> _SUB_SHIFT]
        cap = len(t) >> 3
        i = _home(fp, cap)
        d = -1
        while True:
            s = _ld(t, i)
            if s == 0:
                break
            if (s >> 32) == fp:
                k = _key_of(_read(self, s & _LOC_MASK))
                if k == key:
                    d = 0
                    break
                if k == rkey:
                    d = 1               # the key itself may still come further on
            i += 1
            if i == cap:
                i = 0
        if d < 0:
            return None
        if d == 0:
            return key, 0
        return rkey, 1

    @cython.locals(h=cython.longlong)
    def put(self, key, rkey, rec) -> None:
        """``self[key] = rec`` for a caller that has ``key``'s reverse ``rkey`` at hand."""
        h = _hash2(key, rkey)
        _put(self, key, h, rec)

    @cython.locals(h=cython.longlong)
    def __setitem__(self, key, rec) -> None:
        h = _hash2(key, reverse_key(key))
        _put(self, key, h, rec)

    @cython.locals(i=cython.Py_ssize_t, h=cython.longlong, sub=cython.Py_ssize_t, s=cython.longlong)
    def __delitem__(self, key) -> None:
        h = _hash2(key, reverse_key(key))
        i = _find(self, key, h)
        if i < 0:
            raise KeyError(key)
        sub = ((h >> 33) & _FP_MASK) >> _SUB_SHIFT
        s = _ld(self.subs[sub], i)
        _gen_add(self, (s & _LOC_MASK) >> _GEN_SHIFT, 1, -1)
        _delete(self, sub, i)
        self.n -= 1

    def items(self) -> list:
        """(key, record) of every tombstone, in the order the keys were first stored."""
        out = []
        for gid in list(self.order):
            _walk(self, gid, 0, out)
        out.sort(key=_first)
        return [(k, r) for _s, k, r in out]

    def keys(self) -> list:
        return [k for k, _r in self.items()]

    @cython.locals(now=cython.longlong, linger=cython.longlong, cutoff=cython.longlong, gone=cython.longlong,
                   gid=cython.longlong)
    def expire(self, now: int, linger: int) -> int:
        """Remove the tombstones whose connection's last packet is more than ``linger``
        before ``now``; returns how many.  Starts a new generation when the newest is
        ``span_ns`` old."""
        cutoff = now - linger
        gone = 0
        for gid in list(self.order):
            if _ld(self.gens, gid * _G + 2) < cutoff:
                gone += _walk(self, gid, cutoff, None)
        self.n -= gone
        if self.n == 0:
            self.clear()
            return gone
        for gid in list(self.order):
            if gid != self.cur and _ld(self.gens, gid * _G + 1) == 0:
                _drop_gen(self, gid)
        if self.cur >= 0 and now - _ld(self.gens, self.cur * _G + 3) >= self.span_ns:
            _new_gen(self, now)
        return gone

    def clear(self) -> None:
        """Forget every tombstone and close the files."""
        for gid in list(self.order):
            _drop_gen(self, gid)
        self._reset()

    def close(self) -> None:
        self.clear()

    def index_bytes(self) -> int:
        """Bytes of the index (the slots)."""
        return sum(len(t) for t in self.subs) + len(self.counts)

    def file_bytes(self) -> int:
        """Bytes of the tombstones' entries on disk and in the write buffer (live or not)."""
        return sum(_ld(self.gens, gid * _G) - 8 for gid in self.order) + self.wn


def _first(t):
    return t[0]


@cython.cfunc
@cython.inline
@cython.locals(b=bytearray, i=cython.Py_ssize_t)
def _ld(b, i) -> cython.longlong:
    if cython.compiled:
        return cython.cast(cython.p_longlong, PyByteArray_AS_STRING(b))[i]
    return _Q.unpack_from(b, i << 3)[0]


@cython.cfunc
@cython.inline
@cython.locals(b=bytearray, i=cython.Py_ssize_t, v=cython.longlong)
def _st(b, i, v) -> cython.int:
    if cython.compiled:
        cython.cast(cython.p_longlong, PyByteArray_AS_STRING(b))[i] = v
    else:
        _Q.pack_into(b, i << 3, v)
    return 0


@cython.cfunc
@cython.inline
@cython.locals(key=bytes, rkey=bytes, h=cython.longlong)
def _hash2(key, rkey) -> cython.longlong:
    """The hash of the lesser of a key and its reverse: the same for both."""
    if key <= rkey:
        h = hash(key)
    else:
        h = hash(rkey)
    return h


@cython.cfunc
@cython.inline
@cython.locals(fp=cython.longlong, cap=cython.longlong)
def _home(fp, cap) -> cython.Py_ssize_t:
    return ((fp & _LOW) * cap) >> _SUB_SHIFT


@cython.cfunc
@cython.locals(st=TombStore, h=cython.longlong, fp=cython.longlong, t=bytearray, cap=cython.Py_ssize_t,
               i=cython.Py_ssize_t, s=cython.longlong)
def _find(st, key, h) -> cython.Py_ssize_t:
    """The slot of ``key`` (whose ``_hash2`` is ``h``) in its sub-table, or -1."""
    fp = (h >> 33) & _FP_MASK
    t = st.subs[fp >> _SUB_SHIFT]
    cap = len(t) >> 3
    i = _home(fp, cap)
    while True:
        s = _ld(t, i)
        if s == 0:
            i = -1
            break
        if (s >> 32) == fp and _key_of(_read(st, s & _LOC_MASK)) == key:
            break
        i += 1
        if i == cap:
            i = 0
    return i


@cython.cfunc
@cython.locals(st=TombStore, t=bytearray, cap=cython.Py_ssize_t, i=cython.Py_ssize_t, s=cython.longlong,
               fp=cython.longlong, v=cython.longlong)
def _find_slot(st, s) -> cython.Py_ssize_t:
    """The slot holding exactly ``s`` (fingerprint and locator), or -1: whether an entry of a
    file is the key's current record."""
    fp = s >> 32
    t = st.subs[fp >> _SUB_SHIFT]
    cap = len(t) >> 3
    i = _home(fp, cap)
    while True:
        v = _ld(t, i)
        if v == s:
            break
        if v == 0:
            i = -1
            break
        i += 1
        if i == cap:
            i = 0
    return i


@cython.cfunc
@cython.locals(st=TombStore, sub=cython.Py_ssize_t, s=cython.longlong, t=bytearray, cap=cython.Py_ssize_t,
               c=cython.longlong, i=cython.Py_ssize_t, v=cython.longlong)
def _insert(st, sub, s) -> cython.int:
    t = st.subs[sub]
    cap = len(t) >> 3
    c = _ld(st.counts, sub)
    c += 1
    if c * 4 > cap * 3:
        t = _resize(st, sub, cap + (cap >> 1))
        cap = len(t) >> 3
    i = _home(s >> 32, cap)
    while True:
        v = _ld(t, i)
        if v == 0:
            break
        i += 1
        if i == cap:
            i = 0
    _st(t, i, s)
    _st(st.counts, sub, c)
    return 0


@cython.cfunc
@cython.locals(st=TombStore, sub=cython.Py_ssize_t, i=cython.Py_ssize_t, t=bytearray, cap=cython.Py_ssize_t,
               j=cython.Py_ssize_t, k=cython.Py_ssize_t, s=cython.longlong, c=cython.longlong)
def _delete(st, sub, i) -> cython.int:
    """Empty slot ``i`` of sub-table ``sub``, moving back the entries after it that probed
    past it (linear probing's deletion, no markers)."""
    t = st.subs[sub]
    cap = len(t) >> 3
    j = i
    while True:
        j += 1
        if j == cap:
            j = 0
        s = _ld(t, j)
        if s == 0:
            break
        k = _home(s >> 32, cap)
        # leave it if its home is cyclically in (i, j]
        if (k > i and k <= j) if i <= j else (k > i or k <= j):
            continue
        _st(t, i, s)
        i = j
    _st(t, i, 0)
    c = _ld(st.counts, sub)
    c -= 1
    _st(st.counts, sub, c)
    if cap > _MIN_CAP and c * 8 < cap:
        _resize(st, sub, cap >> 1)
    return 0


@cython.cfunc
@cython.locals(st=TombStore, sub=cython.Py_ssize_t, cap=cython.Py_ssize_t, old=bytearray, t=bytearray,
               n=cython.Py_ssize_t, j=cython.Py_ssize_t, i=cython.Py_ssize_t, s=cython.longlong, v=cython.longlong)
def _resize(st, sub, cap) -> bytearray:
    if cap < _MIN_CAP:
        cap = _MIN_CAP
    old = st.subs[sub]
    t = bytearray(cap * 8)
    n = len(old) >> 3
    for j in range(n):
        s = _ld(old, j)
        if s != 0:
            i = _home(s >> 32, cap)
            while True:
                v = _ld(t, i)
                if v == 0:
                    break
                i += 1
                if i == cap:
                    i = 0
            _st(t, i, s)
    st.subs[sub] = t
    return t


@cython.cfunc
@cython.locals(st=TombStore, gid=cython.longlong, k=cython.longlong, d=cython.longlong, v=cython.longlong)
def _gen_add(st, gid, k, d) -> cython.int:
    v = _ld(st.gens, gid * _G + k)
    _st(st.gens, gid * _G + k, v + d)
    return 0


@cython.cfunc
@cython.locals(st=TombStore, loc=cython.longlong, gid=cython.longlong, off=cython.longlong,
               flushed=cython.longlong, a=cython.Py_ssize_t, n=cython.Py_ssize_t, ent=bytes, fd=cython.int)
def _read(st, loc) -> bytes:
    """The entry at ``loc`` (from the write buffer or the file; the last one read is kept)."""
    if loc == st.cloc and st.cent is not None:
        return st.cent
    gid = loc >> _GEN_SHIFT
    off = (loc & _OFF_MASK) << 3
    flushed = _ld(st.gens, gid * _G)
    if gid == st.cur and off >= flushed:
        a = off - flushed
        n = _ENTRY.unpack_from(st.wbuf, a)[0]
        ent = bytes(st.wbuf[a:a + n])
    else:
        fd = st.files[gid].fileno()
        ent = os.pread(fd, 256, off)
        n = _ENTRY.unpack_from(ent, 0)[0]
        if n > len(ent):
            ent = os.pread(fd, n, off)
    st.reads += 1
    st.cloc = loc
    st.cent = ent
    return ent


@cython.cfunc
@cython.inline
@cython.locals(ent=bytes)
def _key_of(ent) -> bytes:
    return ent[_HDR:_HDR + _ENTRY.unpack_from(ent, 0)[4]]


def _record(ent: bytes) -> bytes:
    _size, rl, _seq, _h, kl = _ENTRY.unpack_from(ent, 0)
    return ent[_HDR + kl:_HDR + kl + rl]


@cython.cfunc
@cython.locals(st=TombStore, h=cython.longlong, fp=cython.longlong, i=cython.Py_ssize_t, old=cython.longlong,
               seq=cython.longlong, loc=cython.longlong)
def _put(st, key: bytes, h, rec: bytes) -> cython.int:
    """Store ``rec`` under ``key`` (whose ``_hash2`` is ``h``)."""
    fp = (h >> 33) & _FP_MASK
    i = _find(st, key, h)
    if i >= 0:
        # a newer record of a stored key: it keeps the key's place in the order
        old = _ld(st.subs[fp >> _SUB_SHIFT], i)
        old &= _LOC_MASK
        seq = _ENTRY.unpack_from(_read(st, old), 0)[2]
        _gen_add(st, old >> _GEN_SHIFT, 1, -1)
        loc = _append(st, key, h, rec, seq)
        _st(st.subs[fp >> _SUB_SHIFT], i, (fp << 32) | loc)
        return 0
    seq = st.seq
    st.seq += 1
    loc = _append(st, key, h, rec, seq)
    _insert(st, fp >> _SUB_SHIFT, (fp << 32) | loc)
    st.n += 1
    return 0


@cython.cfunc
@cython.locals(st=TombStore, kl=cython.Py_ssize_t, rl=cython.Py_ssize_t, size=cython.Py_ssize_t,
               seq=cython.longlong, h=cython.longlong, t=cython.longlong, off=cython.longlong,
               p=cython.p_char, g=cython.Py_ssize_t, w=cython.Py_ssize_t, used=cython.longlong,
               low=cython.longlong)
def _append(st, key: bytes, h, rec: bytes, seq) -> cython.longlong:
    """Write an entry into the newest generation; returns its locator."""
    kl = len(key)
    rl = len(rec)
    size = (_HDR + kl + rl + 7) & ~7
    if cython.compiled:
        p = cython.cast(cython.p_char, rec)
        t = cython.cast(cython.p_longlong, p + _LAST_AT)[0]
    else:
        t = LAST_NS.unpack_from(rec, LAST_NS_OFFSET)[0]
    if st.cur < 0:
        _new_gen(st, t)
    g = st.cur * _G
    used = _ld(st.gens, g)                  # the generation's bytes on disk
    if used + st.wn + size > _GEN_MAX:
        _new_gen(st, t)
        g = st.cur * _G
        used = _ld(st.gens, g)
    if st.wn + size > len(st.wbuf):
        _flush(st)
        used = _ld(st.gens, g)
        if size > len(st.wbuf):
            st.wbuf = bytearray(size)
    w = st.wn
    off = used + w
    if cython.compiled:
        p = PyByteArray_AS_STRING(st.wbuf) + w
        cython.cast(cython.p_int, p)[0] = size
        cython.cast(cython.p_int, p + 4)[0] = rl
        cython.cast(cython.p_longlong, p + 8)[0] = seq
        cython.cast(cython.p_longlong, p + 16)[0] = h
        cython.cast(cython.p_longlong, p + 24)[0] = kl
        memcpy(p + _HDR, cython.cast(cython.p_char, key), kl)
        memcpy(p + _HDR + kl, cython.cast(cython.p_char, rec), rl)
        memset(p + _HDR + kl + rl, 0, size - _HDR - kl - rl)
    else:
        st.wbuf[w:w + size] = b"".join((_ENTRY.pack(size, rl, seq, h, kl), key, rec, _PAD[:size - _HDR - kl - rl]))
    st.wn = w + size
    _gen_add(st, st.cur, 1, 1)
    low = _ld(st.gens, g + 2)
    if t < low:
        _st(st.gens, g + 2, t)
    return (st.cur << _GEN_SHIFT) | (off >> 3)


@cython.cfunc
@cython.locals(st=TombStore, done=cython.Py_ssize_t, off=cython.longlong, fd=cython.int)
def _flush(st) -> cython.int:
    """The write buffer into the newest generation's file."""
    if st.wn == 0:
        return 0
    fd = st.files[st.cur].fileno()
    off = _ld(st.gens, st.cur * _G)
    with memoryview(st.wbuf) as whole:
        view = whole[:st.wn]
        done = 0
        try:
            while done < st.wn:
                done += os.pwrite(fd, view[done:], off + done)
        except OSError as e:
            raise OutputError.temporary(e) from None
        view.release()
    _st(st.gens, st.cur * _G, off + st.wn)
    st.wn = 0
    return 0


@cython.cfunc
@cython.locals(st=TombStore, t=cython.longlong, gid=cython.longlong, k=cython.longlong)
def _new_gen(st, t) -> cython.int:
    """Start a generation (at capture time ``t``) with a new file."""
    if st.cur >= 0:
        _flush(st)
    for k in range(1, _NGEN + 1):
        gid = (st.cur + k) % _NGEN
        if st.files[gid] is None:
            break
    else:
        raise OverflowError(f"more than {_NGEN} generations of tombstones")
    try:
        st.files[gid] = tempfile.TemporaryFile(prefix="tcpanalyze-tombs-")
    except OSError as e:
        raise OutputError.temporary(e) from None
    _st(st.gens, gid * _G, 8)          # offset 0 is no entry's: a slot is never 0
    _st(st.gens, gid * _G + 1, 0)
    _st(st.gens, gid * _G + 2, _NEVER)
    _st(st.gens, gid * _G + 3, t)
    st.cur = gid
    st.order.append(gid)
    return 0


@cython.cfunc
@cython.locals(st=TombStore, gid=cython.longlong)
def _drop_gen(st, gid) -> cython.int:
    f = st.files[gid]
    st.files[gid] = None
    st.order.remove(gid)
    if gid == st.cur:
        st.cur = -1
        st.wn = 0
    if (st.cloc >> _GEN_SHIFT) == gid:
        st.cent = None
    if f is not None:
        f.close()
    return 0


@cython.cfunc
@cython.locals(st=TombStore, gid=cython.longlong, cutoff=cython.longlong, end=cython.longlong,
               off=cython.longlong, low=cython.longlong, gone=cython.longlong, a=cython.Py_ssize_t,
               m=cython.Py_ssize_t, size=cython.Py_ssize_t, rl=cython.Py_ssize_t, kl=cython.Py_ssize_t,
               h=cython.longlong, t=cython.longlong, seq=cython.longlong, s=cython.longlong,
               i=cython.Py_ssize_t, fd=cython.int, chunk=bytes, p=cython.p_char, fp=cython.longlong,
               want=cython.Py_ssize_t)
def _walk(st, gid, cutoff, out) -> cython.longlong:
    """Walk generation ``gid``'s entries: with ``out`` (a list), append (insertion number,
    key, record) of each current one; else remove those whose last packet time is before
    ``cutoff`` and return how many (the generation's time bound is made exact)."""
    if gid == st.cur:
        _flush(st)
    fd = st.files[gid].fileno()
    end = _ld(st.gens, gid * _G)
    off = 8
    low = _NEVER
    gone = 0
    want = K_SCAN_READ
    while off < end:
        chunk = os.pread(fd, min(want, end - off), off)
        m = len(chunk)
        if m < _HDR:
            break
        a = 0
        while a + _HDR <= m:
            if cython.compiled:
                p = cython.cast(cython.p_char, chunk) + a
                size = cython.cast(cython.p_int, p)[0]
                rl = cython.cast(cython.p_int, p + 4)[0]
                seq = cython.cast(cython.p_longlong, p + 8)[0]
                h = cython.cast(cython.p_longlong, p + 16)[0]
                kl = cython.cast(cython.p_longlong, p + 24)[0]
            else:
                size, rl, seq, h, kl = _ENTRY.unpack_from(chunk, a)
            if a + size > m:
                break
            if cython.compiled:
                t = cython.cast(cython.p_longlong, p + _HDR + kl + _LAST_AT)[0]
            else:
                t = LAST_NS.unpack_from(chunk, a + _HDR + kl + LAST_NS_OFFSET)[0]
            fp = (h >> 33) & _FP_MASK
            s = (fp << 32) | (gid << _GEN_SHIFT) | ((off + a) >> 3)
            i = _find_slot(st, s)
            if i >= 0:
                if out is not None:
                    out.append((seq, chunk[a + _HDR:a + _HDR + kl], chunk[a + _HDR + kl:a + _HDR + kl + rl]))
                elif t < cutoff:
                    _delete(st, fp >> _SUB_SHIFT, i)
                    gone += 1
                elif t < low:
                    low = t
            a += size
        if a == 0:                      # an entry longer than the read: read it whole
            want = _ENTRY.unpack_from(chunk, 0)[0]
            continue
        want = K_SCAN_READ
        off += a
    if out is None:
        _st(st.gens, gid * _G + 2, low)
        _gen_add(st, gid, 1, -gone)
    return gone


# As plain Python, the store's methods (and ``_pack``) run with the index functions they call
# written into them (tcpanalyze/_fuse.py): a lookup or a store is one Python call, not one per
# slot read.
# Compiled, these are C functions and this does not run.
_FUSE_ENTRIES = ("TombStore.find", "TombStore.put", "TombStore.__contains__", "TombStore.get",
                 "TombStore.__setitem__", "TombStore.__delitem__", "_walk", "_resize", "_pack")
_FUSE_INLINE = ("_flow_bits", "_ld", "_st", "_hash2", "_home", "_gen_add", "_find", "_find_slot", "_insert",
                "_delete", "_put", "_append")
if not cython.compiled:
    from tcpanalyze import _fuse
    _fuse.fuse(globals(), _FUSE_ENTRIES, _FUSE_INLINE, cache=True)
    pack = _pack        # what pack runs as plain Python, without its call
