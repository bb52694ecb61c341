"""One capture read and decoded once, its segments handed to ``--jobs`` workers by connection.

The dispatcher (``dispatch``) reads and decodes every frame, as ``pipeline.run_packets`` does
(the same decoder, decode-error counts, fragment reassembly and checksum verification), and
hands each TCP segment to the owner of its connection: a symmetric hash of the 4-tuple
picks one of ``K_BUCKETS`` buckets, so both directions and every reuse of a 4-tuple land in
the same one, and a lane table (``lane_table``: consecutive ranges of buckets, in
proportion to the lanes' weights) maps the bucket to a lane; a ``Placement`` moves new
connections off that lane to keep the lanes as busy as each other (large connections
the hash put on one lane, a reader slower or faster than its weight said).  A worker's
lane gets the segment as a fixed-size packed record (``REC``, below), which the worker
(``consume``, a slot at a time) turns back into a ``model.Segment`` for its own
``engine.Analyzer``; the dispatcher's own lane, if it has one, is fed the decoded segment
at once.

The capture clock.  A single analyzer moves its clock at every segment (``Analyzer.advance``):
it counts timestamps that go backwards, and when the time reaches ``next_sweep`` it retires
closed connections past their grace and, every ``engine.K_SWEEP_EVERY_NS``, releases tombstones
and idle connections (the first such moment sets ``first_ns``).  The
dispatcher runs the same clock over all segments, so it knows the capture's first and last
time and its backwards count, and at which segments the sweeps happen.  Every record carries
the clock's time *before* its segment (``last_ns``), which the worker gives its analyzer
before feeding the segment, so a worker sees a backwards timestamp and finalizes a connection
with exactly the ``now`` a single process would; a sweep that happens at another worker's
segment is sent to every other worker as a tick record (frame and time), which the worker
applies with ``Analyzer.advance``.  So every worker sweeps at the same frames and times as a
single process would, with the same ``first_ns`` and, at the end, the same ``last_ns``.  Ticks
are rare: one per retirement interval (``engine.K_RETIRE_EVERY_NS``) per worker.

A record (``REC_SIZE`` bytes, native byte order, field offsets in ``_REC``): frame, time,
clock before it, seq, ack, payload length, TSval, TSecr (8-byte), MSS, window scale, window
(4-byte), flags, ports (2-byte), kind, address length, SACK block count (255: no SACK
option), SACK-permitted, truncated (1-byte), the two addresses (16 bytes each) and up to four
SACK blocks (4-byte edges; a TCP header has room for four).

Compiled (Cython, see docs/build.md), records are written and read with C stores and loads;
as plain Python with ``struct``: the same bytes either way (tests/test_fanout.py).
"""
from __future__ import annotations

import struct
import sys
from array import array

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.decode import DecodeState, decode, decode_at, decode_general
from tcpanalyze.engine import K_RETIRE_EVERY_NS, K_SWEEP_EVERY_NS, Analyzer, Verdict
from tcpanalyze.errors import DecodeError
from tcpanalyze.model import Segment
from tcpanalyze.pipeline import K_BATCH, count_checksum, decode_error
from tcpanalyze.reassembly import Reassembler

#: record kinds: a segment to feed, a segment dropped for its bad checksum, a clock tick
K_SEG = 0
K_DROP = 1
K_TICK = 2

#: the record layout (see the module doc); the compiled code uses these offsets as literals
_REC = struct.Struct("=qqqqqqqqiiiHHHBBBBBx16s16s8I")
REC_SIZE = 152
_NO_SACK = 255
_ZERO_SACK = (0,) * 8
#: as pipeline._GOLDEN (owner(): Fibonacci hashing); a C constant when compiled
_GOLDEN = cython.declare(cython.longlong, 0x9E3779B1)


#: the flow hash picks one of K_BUCKETS buckets (_bucket_of has it as a literal); a lane
#: table maps each bucket to its lane
K_BUCKETS = 1024


@cython.cfunc
@cython.inline
@cython.locals(seg=Segment, h=cython.longlong, src=bytes, dst=bytes, a=cython.p_uchar, b=cython.p_uchar)
@cython.returns(cython.longlong)
def _bucket_of(seg):
    """The bucket of a segment's connection: ``pipeline.owner``'s symmetric hash of the
    4-tuple (both ports, the last byte of each address, Fibonacci hashing by ``_GOLDEN``),
    to K_BUCKETS (1024, a literal here: a module constant would be a Python object).
    Compiled: C arithmetic and byte loads only."""
    src = seg.src
    dst = seg.dst
    if cython.compiled:
        a = cython.cast(cython.p_uchar, cython.cast(cython.p_char, src))
        b = cython.cast(cython.p_uchar, cython.cast(cython.p_char, dst))
        h = seg.sport + seg.dport + a[len(src) - 1] + b[len(dst) - 1]
    else:
        h = seg.sport + seg.dport + src[-1] + dst[-1]
    return ((h * _GOLDEN) >> 16) & 1023


def bucket(seg: Segment) -> int:
    return _bucket_of(seg)


def lane_table(weights) -> bytearray:
    """Bucket -> lane for lanes that get the given shares of the connections (``weights``,
    one per lane, any scale): consecutive ranges of buckets, each at least one bucket for a
    lane of positive weight, the rounding left to the last lanes."""
    total = float(sum(weights))
    if len(weights) > 255 or total <= 0 or min(weights) < 0:
        raise ValueError(f"lane weights {weights!r}")
    table = bytearray(K_BUCKETS)
    start = 0
    acc = 0.0
    for lane, w in enumerate(weights):
        acc += w
        stop = K_BUCKETS if lane == len(weights) - 1 else min(K_BUCKETS, int(round(acc / total * K_BUCKETS)))
        if w > 0:
            stop = max(stop, start + 1)
        table[start:stop] = bytes([lane]) * (stop - start)
        start = stop
    return table


def owner(seg: Segment, table) -> int:
    """The lane of a segment's connection under a ``lane_table``."""
    return table[_bucket_of(seg)]


# ---------------------------------------------------------------------------- placement
#: the seen filter: bits of a Bloom filter (1 MiB), two per 4-tuple
K_SEEN_BITS = 1 << 23
#: a lane more than this many segments over its share of the recent segments has its new
#: connections placed on the lane furthest under its share
K_SLACK = 512
#: a worker's share of the segments is its weight plus this much times how far under half
#: full its slots are (``Placement.steer``), and stays at least K_STEER_MIN from 0 and 1
K_STEER_GAIN = 0.4
K_STEER_MIN = 0.02
#: the moved table's first size in slots; it doubles when half full, up to K_MOVED_MAX slots
#: (8 MiB: 512k moved connections), after which no connection is moved
K_MOVED_START = 1 << 12
K_MOVED_MAX = 1 << 20
_M64 = 0xFFFFFFFFFFFFFFFF
#: splitmix64's finalizer constants and 2**64 / golden ratio (C constants when compiled)
_MIX_A = cython.declare(cython.ulonglong, 0xBF58476D1CE4E5B9)
_MIX_B = cython.declare(cython.ulonglong, 0x94D049BB133111EB)
_PORT_MUL = cython.declare(cython.ulonglong, 0x9E3779B97F4A7C15)


@cython.cfunc
@cython.inline
@cython.locals(x=cython.ulonglong)
@cython.returns(cython.ulonglong)
def _mix(x):
    """splitmix64's finalizer: every output bit depends on every input bit."""
    if cython.compiled:
        x ^= x >> 30
        x *= _MIX_A
        x ^= x >> 27
        x *= _MIX_B
        x ^= x >> 31
        return x
    x ^= x >> 30
    x = (x * _MIX_A) & _M64
    x ^= x >> 27
    x = (x * _MIX_B) & _M64
    return x ^ (x >> 31)


@cython.cfunc
@cython.inline
@cython.locals(addr=bytes, port=cython.ulonglong, v=cython.ulonglong, w=cython.ulonglong, a=cython.p_uchar,
               n=cython.Py_ssize_t, i=cython.Py_ssize_t, u=cython.uint)
@cython.returns(cython.ulonglong)
def _end_hash(addr, port):
    """One endpoint's hash: the address as a number in the machine's byte order (a 16-byte
    one as its two 8-byte halves XORed), XORed with the port times ``_PORT_MUL``, mixed.
    Compiled: one or two loads of the address's words."""
    if cython.compiled:
        a = cython.cast(cython.p_uchar, cython.cast(cython.p_char, addr))
        n = len(addr)
        if n == 4:
            memcpy(cython.address(u), a, 4)
            v = u
        elif n == 16:
            memcpy(cython.address(v), a, 8)
            memcpy(cython.address(w), a + 8, 8)
            v ^= w
        else:                               # not an IP address: any consistent value
            v = 0
            for i in range(n):
                v ^= cython.cast(cython.ulonglong, a[i]) << (8 * (i & 7))
        return _mix(v ^ (port * _PORT_MUL))
    v = int.from_bytes(addr, sys.byteorder)
    w = 0
    while v:
        w ^= v & _M64
        v >>= 64
    return _mix(w ^ ((port * _PORT_MUL) & _M64))


@cython.cfunc
@cython.locals(seg=Segment)
@cython.returns(cython.ulonglong)
def _pair_hash(seg):
    """The 64-bit hash of a segment's connection: the same for both directions (the sum
    of the two endpoints' hashes, mixed); the same in both builds."""
    if cython.compiled:
        return _mix(_end_hash(seg.src, seg.sport) + _end_hash(seg.dst, seg.dport))
    return _mix((_end_hash(seg.src, seg.sport) + _end_hash(seg.dst, seg.dport)) & _M64)


def pair_hash(seg: Segment) -> int:
    """The 64-bit hash of a segment's connection (``_pair_hash``)."""
    return _pair_hash(seg)


class Placement:
    """Which lane a segment goes to: the lane table's (``lane_table``) for its bucket (bits
    32-41 of ``pair_hash``; without ``weights``, ``_bucket_of``'s), but a new connection, a
    pure SYN of a 4-tuple never seen before, goes to the lane furthest under its share of
    the recent segments when its table lane is more than ``slack`` over its own.  A few large connections that the hash happened to put on one lane are so made
    up for by placing the many small ones elsewhere.

    The shares start as ``weights``; ``steer`` moves them while the run goes on, by how far
    behind each worker is (the slots it has not yet handed back), so that a worker neither
    waits for records nor keeps the reader waiting for slots, whatever this capture's costs
    of reading and of analysing are.  Which lane a connection gets then depends on timing;
    the report does not (every lane's analyzer sees whole connections and the clock).

    Every segment of a 4-tuple must go to one lane (the lane's analyzer is the only one that
    knows the connection: its late packets, its reuse by a new SYN).  So only a 4-tuple no
    lane has seen is moved, and a moved one is remembered: ``seen``, a Bloom filter of the
    4-tuples seen (``pair_hash``; a false "seen" only leaves a connection on its table lane),
    and ``keys``, an open-addressing table of the moved connections (the hash's top 56 bits,
    the lane in the low byte; 0 is empty), which every segment is looked up in first (so two
    4-tuples of one 56-bit key go to the same lane: consistent, as required).  Neither
    forgets: the seen filter has room for millions of 4-tuples before false "seen"s stop the
    moves, and the moved table stops growing at ``K_MOVED_MAX`` slots (``full``).  Without
    ``weights`` every segment goes to its table lane (``lane_table``'s placement alone).

    ``count``: the recent segments placed per lane, then their total (``steer`` ages them);
    ``moved``: the connections placed off their table lane; ``own``: whether the last lane
    is the reader's own.  ``dispatch`` reads and updates these."""

    def __init__(self, weights=None, table=None, nlanes: int = 0, slack: int = K_SLACK, own: bool = True):
        if table is None:
            table = lane_table(weights)
        self.table = bytearray(table)
        if len(self.table) != K_BUCKETS:
            raise ValueError("a lane table has K_BUCKETS entries")
        nl = len(weights) if weights is not None else max(nlanes, max(self.table) + 1)
        total = float(sum(weights)) if weights is not None else 1.0
        self.share = array("d", [w / total for w in weights] if weights is not None else [0.0] * nl)
        self.weights = list(self.share)
        self.count = array("q", bytes(8 * (nl + 1)))
        self.balance = weights is not None and nl > 1
        self.seen = bytearray(K_SEEN_BITS >> 3 if self.balance else 1)
        self.keys = array("Q", bytes(8 * K_MOVED_START))
        self.slack = slack
        self.moved = 0
        self.full = False
        self.own = own

    def steer(self, k: int, behind: int, slots: int) -> None:
        """Worker ``k`` has ``behind`` of its ``slots`` slots not yet handed back when the
        reader hands it another: its share of new connections is its weight (if not 0) plus
        ``K_STEER_GAIN`` times how far under half full its slots are (a share for each level
        of the backlog: the backlog, which adds up the difference of the two rates, settles
        where the share makes them equal, and neither process waits for the other); the
        reader's own lane (the last) has what the workers leave, or the workers share the
        whole.  The counts age by an eighth, so the shares weigh the recent segments most."""
        share = self.share
        nl = len(share)
        nw = nl - 1 if self.own else nl
        if not self.balance or k >= nw or self.weights[k] <= 0:
            return
        share[k] = min(1.0 - K_STEER_MIN, max(K_STEER_MIN, self.weights[k] + K_STEER_GAIN * (0.5 - behind / slots)))
        work = sum(share[:nw])
        scale = 1.0 / work
        if self.own:
            scale = min(1.0, (1.0 - K_STEER_MIN) / work)
        for i in range(nw):
            share[i] *= scale
        if self.own:
            share[nw] = 1.0 - sum(share[:nw])
        cnt = self.count
        tot = 0
        for i in range(nl):
            cnt[i] -= cnt[i] >> 3
            tot += cnt[i]
        cnt[nl] = tot

    def grow(self) -> None:
        """Double the moved table (rehashing its keys), or mark it full at K_MOVED_MAX slots."""
        old = self.keys
        if 2 * len(old) > K_MOVED_MAX:
            self.full = True
            return
        keys = array("Q", bytes(16 * len(old)))
        for e in old:
            if e:                           # an entry is a pair_hash with the lane in its low byte
                keys[_slot(keys, e)] = e
        self.keys = keys

    def lane_of_key(self, h: int) -> int:
        """The lane a moved connection of ``pair_hash`` ``h`` was given, or -1."""
        e = self.keys[_slot(self.keys, h)]
        return e & 255 if e else -1


# ---------------------------------------------------------------------------- writing records
@cython.cfunc
@cython.locals(mem=cython.uchar[::1], off=cython.Py_ssize_t, kind=cython.longlong, gl=cython.longlong, seg=Segment,
               p=cython.p_uchar, q=cython.p_longlong, i4=cython.p_int, u2=cython.p_ushort, u4=cython.p_uint,
               src=bytes, dst=bytes, n=cython.Py_ssize_t, i=cython.Py_ssize_t, ns=cython.Py_ssize_t,
               a=cython.p_uchar, b=cython.p_uchar)
def _put_seg(mem, off, kind, gl, seg):
    sack = seg.sack
    src = seg.src
    dst = seg.dst
    n = len(src)
    if cython.compiled:
        p = cython.address(mem[off])
        q = cython.cast(cython.p_longlong, p)
        q[0] = seg.frame
        q[1] = seg.ts_ns
        q[2] = gl
        q[3] = seg.seq
        q[4] = seg.ack
        q[5] = seg.paylen
        q[6] = seg.tsval
        q[7] = seg.tsecr
        i4 = cython.cast(cython.p_int, p + 64)
        i4[0] = seg.mss
        i4[1] = seg.wscale
        i4[2] = seg.win
        u2 = cython.cast(cython.p_ushort, p + 76)
        u2[0] = seg.flags
        u2[1] = seg.sport
        u2[2] = seg.dport
        p[82] = kind
        p[83] = n
        p[85] = 1 if seg.sack_perm else 0
        p[86] = 1 if seg.truncated else 0
        a = cython.cast(cython.p_uchar, cython.cast(cython.p_char, src))
        b = cython.cast(cython.p_uchar, cython.cast(cython.p_char, dst))
        for i in range(n):
            p[88 + i] = a[i]
            p[104 + i] = b[i]
        if sack is None:
            p[84] = 255                     # _NO_SACK
        else:
            ns = len(sack)
            if ns > 4:
                raise ValueError("more than four SACK blocks")
            p[84] = ns
            u4 = cython.cast(cython.p_uint, p + 120)
            for i in range(ns):
                u4[2 * i] = sack[i][0]
                u4[2 * i + 1] = sack[i][1]
        return
    if sack is None:
        ns, flat = _NO_SACK, _ZERO_SACK
    else:
        ns = len(sack)
        if ns > 4:
            raise ValueError("more than four SACK blocks")
        flat = [0] * 8
        for i in range(ns):
            flat[2 * i] = sack[i][0]
            flat[2 * i + 1] = sack[i][1]
    _REC.pack_into(mem, off, seg.frame, seg.ts_ns, gl, seg.seq, seg.ack, seg.paylen, seg.tsval, seg.tsecr,
                   seg.mss, seg.wscale, seg.win, seg.flags, seg.sport, seg.dport, kind, n, ns,
                   1 if seg.sack_perm else 0, 1 if seg.truncated else 0, src, dst, *flat)


@cython.cfunc
@cython.locals(mem=cython.uchar[::1], off=cython.Py_ssize_t, frame=cython.longlong, now=cython.longlong,
               gl=cython.longlong, p=cython.p_uchar, q=cython.p_longlong)
def _put_tick(mem, off, frame, now, gl):
    if cython.compiled:
        p = cython.address(mem[off])
        q = cython.cast(cython.p_longlong, p)
        q[0] = frame
        q[1] = now
        q[2] = gl
        p[82] = 2                           # K_TICK
        return
    _REC.pack_into(mem, off, frame, now, gl, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, K_TICK, 0, 0, 0, 0, b"", b"",
                   *_ZERO_SACK)


def prepare(stats, checksums: str) -> None:
    """Set up ``stats`` (a pipeline.RunStats) for a run, as ``pipeline.run_packets`` does: the
    decoder's state with a fragment reassembler, and checksum counters when verifying."""
    st = stats.skipped
    if type(st) is not DecodeState:
        st = DecodeState()
        st.update(stats.skipped)
        stats.skipped = st
    if st.frags is None:
        st.frags = Reassembler()
    st.verify = checksums != "ignore"
    if st.verify and not stats.checksums:
        stats.checksums = {"verified": 0, "good": 0, "bad": 0, "offload": 0, "unverified": 0, "dropped": 0}


@cython.cfunc
@cython.locals(an=Analyzer, seg=Segment, kind=cython.longlong, gl=cython.longlong, notable=cython.bint, v=Verdict)
@cython.returns(cython.longlong)
def _feed_own(an, seg, kind, gl, on_segment, notable):
    """A segment of the dispatcher's own lane, given to ``an`` as ``consume`` gives a
    record's (the clock before it, its frame); 1 if it was fed, 0 if dropped."""
    an.last_ns = gl
    an.cur_frame = seg.frame
    if kind == 1:                           # K_DROP
        an.checksum_error(seg)              # Zeek drops it and marks the history
        return 0
    v = an.feed(seg)
    if on_segment is not None and (not notable or v.analysis or seg.flags & 0x17 != 0x10):
        on_segment(seg, an)
    return 1


@cython.cfunc
@cython.locals(an=Analyzer, frame=cython.longlong, now=cython.longlong, gl=cython.longlong)
def _tick_own(an, frame, now, gl):
    """A clock tick for the dispatcher's own lane, applied as ``consume`` applies one."""
    an.last_ns = gl
    an.cur_frame = frame
    an.advance(now)


@cython.cfunc
@cython.inline
@cython.locals(h=cython.ulonglong, k=cython.ulonglong)
@cython.returns(cython.ulonglong)
def _key(h):
    """The moved table's key of ``pair_hash`` ``h``: its top 56 bits, never 0 (0 is empty)."""
    k = h >> 8
    return k if k else 1


@cython.cfunc
@cython.inline
@cython.locals(keys=cython.ulonglong[::1], h=cython.ulonglong, hk=cython.ulonglong, ent=cython.ulonglong,
               kmask=cython.ulonglong, slot=cython.Py_ssize_t)
@cython.returns(cython.Py_ssize_t)
def _slot(keys, h):
    """The slot of the moved table ``keys`` that holds ``pair_hash`` ``h``'s entry (the key
    in the top 56 bits, the lane in the low byte), or the empty one where it would go."""
    hk = _key(h)
    kmask = len(keys) - 1
    slot = (h >> 24) & kmask
    ent = keys[slot]
    while ent and ent >> 8 != hk:
        slot = (slot + 1) & kmask
        ent = keys[slot]
    return slot


@cython.cfunc
@cython.inline
@cython.locals(seg=Segment, h=cython.ulonglong, tab=cython.uchar[::1], seen=cython.uchar[::1],
               keys=cython.ulonglong[::1], moved=cython.longlong, ent=cython.ulonglong,
               b1=cython.ulonglong, b2=cython.ulonglong)
@cython.returns(cython.longlong)
def _placed(seg, h, tab, seen, keys, moved):
    """The lane of a segment of ``pair_hash`` ``h`` under a balancing ``Placement`` (its
    ``table``, ``seen``, ``keys``, ``moved``): a moved connection's lane, else its bucket's;
    ``-1 - lane`` for a new connection (a pure SYN of a 4-tuple not seen before), which the
    caller may move.  Marks the 4-tuple seen."""
    if moved:
        ent = keys[_slot(keys, h)]
        if ent:
            return ent & 255
    b1 = h & 8388607                        # K_SEEN_BITS - 1
    b2 = (h >> 40) & 8388607
    if seen[b1 >> 3] & (1 << (b1 & 7)) and seen[b2 >> 3] & (1 << (b2 & 7)):
        return tab[(h >> 32) & 1023]        # the bucket: K_BUCKETS - 1
    seen[b1 >> 3] |= 1 << (b1 & 7)
    seen[b2 >> 3] |= 1 << (b2 & 7)
    if seg.flags & 0x17 == 0x02:            # SYN without ACK, RST or FIN
        return -1 - tab[(h >> 32) & 1023]
    return tab[(h >> 32) & 1023]


@cython.cfunc
@cython.locals(k=cython.longlong, h=cython.ulonglong, share=cython.double[::1], cnt=cython.longlong[::1],
               keys=cython.ulonglong[::1], nl=cython.Py_ssize_t, m=cython.Py_ssize_t, j=cython.longlong,
               best=cython.double, d=cython.double, tot=cython.longlong)
@cython.returns(cython.longlong)
def _move(place, k, h):
    """The lane for a new connection of ``pair_hash`` ``h`` whose bucket's lane ``k`` is over
    its share: the lane furthest under its own, remembered in ``place.keys`` (growing it)."""
    share = place.share
    cnt = place.count
    nl = len(share)
    tot = cnt[nl]
    j = k
    best = 0.0
    for m in range(nl):
        d = share[m] * tot - cnt[m]
        if d > best:
            best = d
            j = m
    if j == k:
        return k
    keys = place.keys
    keys[_slot(keys, h)] = (_key(h) << 8) | j
    place.moved += 1
    if 2 * place.moved >= len(keys):
        place.grow()
    return j


def _placement(table, nl: int) -> Placement:
    """``table`` as a ``Placement`` for ``nl`` lanes (a lane table: placed by it alone)."""
    place = table if isinstance(table, Placement) else Placement(table=table, nlanes=nl)
    for lane in place.table:
        if lane >= nl:
            raise ValueError(f"lane table names lane {lane} of {nl}")
    if len(place.count) != nl + 1:
        raise ValueError(f"a placement for {len(place.count) - 1} lanes, not {nl}")
    return place


@cython.cfunc
@cython.locals(nl=cython.Py_ssize_t, k=cython.longlong, j=cython.Py_ssize_t, local=cython.Py_ssize_t,
               pos=cython.longlong[::1], lim=cython.longlong[::1], mem=cython.uchar[::1], o=cython.Py_ssize_t,
               frame=cython.longlong, now=cython.longlong, gl=cython.longlong, an=Analyzer)
def _ticks(mem, pos, lim, flush, k, local, an, frame, now, gl):
    """A sweep of the clock at a segment of lane ``k``: a tick to every other lane."""
    nl = len(pos)
    for j in range(nl):
        if j != k:
            if j == local:
                _tick_own(an, frame, now, gl)
                continue
            o = pos[j]
            if o == lim[j]:
                flush(j)
                o = pos[j]
            _put_tick(mem, o, frame, now, gl)
            pos[j] = o + 152                # REC_SIZE


@cython.locals(nl=cython.longlong, k=cython.longlong, j=cython.longlong, seg=Segment, frames=cython.longlong,
               tcp=cython.longlong, verify=cython.bint, drop=cython.bint, now=cython.longlong, last=cython.longlong,
               nxt=cython.longlong, back=cython.longlong, gl=cython.longlong, sweep=cython.bint,
               nsw=cython.longlong, nrt=cython.longlong,
               started=cython.bint, kind=cython.longlong, o=cython.Py_ssize_t, rec=cython.Py_ssize_t,
               pos=cython.longlong[::1], lim=cython.longlong[::1], mem=cython.uchar[::1],
               tab=cython.uchar[::1], kseg=cython.longlong, kdrop=cython.longlong, n=cython.Py_ssize_t,
               i=cython.Py_ssize_t, r=cython.Py_ssize_t, recs=cython.longlong[::1], window=bytes,
               frame=cython.longlong, lt=cython.longlong, an=Analyzer, local=cython.Py_ssize_t,
               notable=cython.bint, fed=cython.longlong, bal=cython.bint, h=cython.ulonglong,
               keys=cython.ulonglong[::1], seen=cython.uchar[::1], cnt=cython.longlong[::1],
               share=cython.double[::1], slack=cython.double, moved=cython.longlong)
def dispatch(packets, stats, table, mem, pos, lim, flush, drop=False, out=None, own=None, on_segment=None,
             notable_only=False) -> tuple:
    """Decode ``packets`` ((frame, ts_ns, linktype, data, wirelen) tuples, or with ``out`` a
    reader's batches: ``CaptureReader.batches``) into records for the lanes (``len(pos)``;
    ``table``, a ``Placement`` or a lane table, says which lane a segment goes to) and run the
    capture clock; returns ``(first_ns, last_ns, ts_backwards, fed)``, ``fed`` the segments
    fed to ``own``.  Lane ``k``'s next record goes to ``mem[pos[k]:]``; at ``lim[k]``,
    ``flush(k)`` hands the full slot over and sets ``pos[k]``/``lim[k]`` to a free one.
    ``stats`` (a ``pipeline.RunStats`` made ready by ``prepare``) counts as
    ``pipeline.run_packets`` does; ``drop``: a segment with a bad TCP checksum goes to its
    lane as a ``K_DROP`` record.  ``own`` (an ``engine.Analyzer``): the last lane is this
    process's, fed and ticked at once; ``on_segment``, ``notable_only``: as in ``run_packets``."""
    counts = stats.skipped
    verify = counts.verify
    dec = decode_general if verify else decode
    rec = REC_SIZE                          # C copies of the module's constants
    kseg = K_SEG
    kdrop = K_DROP
    nl = len(pos)
    place = _placement(table, nl)
    tab = place.table
    bal = place.balance
    cnt = place.count
    share = place.share
    seen = place.seen
    keys, moved, slack = place.keys, place.moved, place.slack
    an = own
    local = -1 if own is None else nl - 1
    notable = notable_only
    fed = 0
    frames = 0
    tcp = 0
    last = 0
    nxt = 0
    nsw = 0
    nrt = 0
    back = 0
    started = False
    first = None
    n = 1
    frame = 0
    lt = 0
    window = b""
    if out is not None:
        if verify:
            raise ValueError("batches are not checksum-verified: dispatch the frames")
        recs = out
    for pkt in packets:
        if out is not None:
            data, lt, n = pkt
            window = data if type(data) is bytes else bytes(data)
        for i in range(n):
            frames += 1
            try:
                if out is None:
                    frame, ts, lt, data, wirelen = pkt
                    seg = dec(frame, ts, lt, data, counts, wirelen)
                else:                           # the frame where it lies in the read window
                    r = 5 * i
                    frame = recs[r]
                    seg = decode_at(frame, recs[r + 1], lt, window, recs[r + 2], recs[r + 3], counts, recs[r + 4])
            except DecodeError as e:
                decode_error(stats, e, frame, lt)
                continue
            if seg is None:
                continue
            kind = kseg
            if verify and count_checksum(stats.checksums, counts.csum) and drop:
                stats.checksums["dropped"] += 1
                kind = kdrop
            else:
                tcp += 1
            # the capture clock, as Analyzer.advance moves it
            now = seg.ts_ns
            gl = last
            sweep = False
            if now < last:
                back += 1
            else:
                last = now
                if now >= nxt:
                    if not started:
                        started = True
                        first = now
                        nsw = now + K_SWEEP_EVERY_NS
                        nrt = now + K_RETIRE_EVERY_NS
                    else:
                        if now >= nsw:
                            nsw = now + K_SWEEP_EVERY_NS
                        if now >= nrt:
                            nrt = now + K_RETIRE_EVERY_NS
                    nxt = nsw if nsw < nrt else nrt
                    sweep = True
            if bal:                             # see Placement
                h = _pair_hash(seg)
                k = _placed(seg, h, tab, seen, keys, moved)
                if k < 0:                       # a new connection: moved if its lane is over its share
                    k = -1 - k
                    if share[k] * cnt[nl] - cnt[k] < -slack and not place.full:
                        k = _move(place, k, h)
                        keys, moved = place.keys, place.moved
                cnt[k] += 1
                cnt[nl] += 1
            else:
                k = tab[_bucket_of(seg)]
            if k == local:                      # this process's connection: fed at once
                fed += _feed_own(an, seg, kind, gl, on_segment, notable)
            else:
                o = pos[k]
                if o == lim[k]:
                    flush(k)
                    o = pos[k]
                _put_seg(mem, o, kind, gl, seg)
                pos[k] = o + rec
            if sweep:
                _ticks(mem, pos, lim, flush, k, local, an, seg.frame, now, gl)
    stats.frames += frames
    stats.tcp += tcp
    return first, last, back, fed


def frames_of(reader, checksums: str) -> tuple:
    """What ``dispatch`` takes from ``reader``: ``(batches, out)`` when compiled, not verifying
    checksums and the capture has a batch walk (each frame decoded where it lies in the read
    window), else ``(frames, None)``."""
    if cython.compiled and checksums == "ignore":
        out = array("q", bytes(40 * K_BATCH))
        batches = reader.batches(out)
        if batches is not None:
            return batches, out
    return iter(reader), None


def write_record(mem, off: int, kind: int, last_ns: int, seg: Segment) -> None:
    """Write one segment record at ``mem[off:]`` (``dispatch`` does this for every segment)."""
    _put_seg(mem, off, kind, last_ns, seg)


def read_record(mem, off: int) -> Segment:
    """The segment of the record at ``mem[off:]`` (``consume`` does this for every segment)."""
    return _get_seg(mem, off)


# ---------------------------------------------------------------------------- reading records
#: compiled: the last address bytes objects read from records, by the address's last byte
#: (16 slots), handed out again for the same address instead of a new bytes object
_ADDRS = cython.declare(list, [b""] * 16)


@cython.cfunc
@cython.inline
@cython.locals(p=cython.p_uchar, n=cython.Py_ssize_t, slot=cython.Py_ssize_t, a=bytes)
def _addr(p, n):
    """The address of ``n`` bytes at ``p`` as a bytes object: the cached one when it has the
    same bytes (compiled only)."""
    slot = p[n - 1] & 15
    a = _ADDRS[slot]
    if len(a) == n and memcmp(cython.cast(cython.p_char, a), p, n) == 0:
        return a
    a = PyBytes_FromStringAndSize(cython.cast(cython.p_char, p), n)
    _ADDRS[slot] = a
    return a


@cython.cfunc
@cython.locals(mem=cython.uchar[::1], off=cython.Py_ssize_t, seg=Segment, p=cython.p_uchar, q=cython.p_longlong,
               i4=cython.p_int, u2=cython.p_ushort, u4=cython.p_uint, n=cython.Py_ssize_t, ns=cython.Py_ssize_t,
               i=cython.Py_ssize_t)
def _get_seg(mem, off, seg=None):
    """The record's segment; compiled, written into ``seg`` when one is given (a segment
    nothing else holds: see ``consume``)."""
    if cython.compiled:
        p = cython.address(mem[off])
        q = cython.cast(cython.p_longlong, p)
        i4 = cython.cast(cython.p_int, p + 64)
        u2 = cython.cast(cython.p_ushort, p + 76)
        n = p[83]
        if seg is None:
            seg = Segment.__new__(Segment)
        seg.frame = q[0]
        seg.ts_ns = q[1]
        seg.src = _addr(p + 88, n)
        seg.dst = _addr(p + 104, n)
        seg.sport = u2[1]
        seg.dport = u2[2]
        seg.seq = q[3]
        seg.ack = q[4]
        seg.flags = u2[0]
        seg.win = i4[2]
        seg.paylen = q[5]
        seg.mss = i4[0]
        seg.wscale = i4[1]
        seg.sack_perm = True if p[85] else False
        ns = p[84]
        if ns == 255:                       # _NO_SACK
            seg.sack = None
        else:
            u4 = cython.cast(cython.p_uint, p + 120)
            seg.sack = tuple([(u4[2 * i], u4[2 * i + 1]) for i in range(ns)])
        seg.tsval = q[6]
        seg.tsecr = q[7]
        seg.truncated = True if p[86] else False
        return seg
    (frame, ts, _gl, seq, ack, paylen, tsval, tsecr, mss, wscale, win, flags, sport, dport, _kind, n, ns,
     sack_perm, truncated, src, dst, *flat) = _REC.unpack_from(mem, off)
    sack = None if ns == _NO_SACK else tuple([(flat[2 * i], flat[2 * i + 1]) for i in range(ns)])
    return Segment(frame, ts, src[:n], dst[:n], sport, dport, seq, ack, flags, win, paylen, mss, wscale,
                   bool(sack_perm), sack, tsval, tsecr, bool(truncated))


@cython.locals(mem=cython.uchar[::1], start=cython.Py_ssize_t, stop=cython.Py_ssize_t, off=cython.Py_ssize_t,
               an=Analyzer, seg=Segment, v=Verdict, kind=cython.longlong, notable_only=cython.bint,
               fed=cython.longlong, q=cython.p_longlong, p=cython.p_uchar, rec=cython.Py_ssize_t,
               ktick=cython.longlong, kdrop=cython.longlong, spare=Segment)
def consume(mem, start, stop, an, on_segment=None, notable_only=False) -> int:
    """Feed the records in ``mem[start:stop]`` to the analyzer ``an`` (segments, dropped
    segments, clock ticks: see the module doc); returns the number of segments fed.
    ``on_segment`` and ``notable_only`` as in ``pipeline.run_packets``.  Compiled, a
    segment that nothing holds once it has been fed (its reference count) is the next
    record's, instead of a new one."""
    spare = None
    fed = 0
    off = start
    feed = an.feed
    rec = REC_SIZE                          # C copies of the module's constants
    ktick = K_TICK
    kdrop = K_DROP
    while off < stop:
        if cython.compiled:
            p = cython.address(mem[off])
            q = cython.cast(cython.p_longlong, p)
            kind = p[82]
            an.last_ns = q[2]               # the capture's clock before this record's segment
            an.cur_frame = q[0]
            if kind == ktick:
                an.advance(q[1])            # another worker's segment, at which the clock sweeps
                off += rec
                continue
        else:
            frame, now, gl = _HEAD.unpack_from(mem, off)
            kind = mem[off + 82]
            an.last_ns = gl
            an.cur_frame = frame
            if kind == ktick:
                an.advance(now)
                off += rec
                continue
        seg = _get_seg(mem, off, spare)
        spare = None
        off += rec
        if kind == kdrop:
            an.checksum_error(seg)          # Zeek drops it and marks the history
            continue
        fed += 1
        v = feed(seg)
        if on_segment is not None and (not notable_only or v.analysis or seg.flags & 0x17 != 0x10):
            on_segment(seg, an)
        if cython.compiled and Py_REFCNT(seg) == 1:
            spare = seg                     # only this loop holds it
    return fed


_HEAD = struct.Struct("=qqq")


# ---------------------------------------------------------------------------- the merge
@cython.locals(nparts=cython.Py_ssize_t, total=cython.Py_ssize_t, p=cython.Py_ssize_t, g=cython.Py_ssize_t,
               i=cython.Py_ssize_t, best=cython.Py_ssize_t, low=cython.longlong, af=cython.longlong[::1],
               out=cython.longlong[::1], heads=cython.longlong[::1], ends=cython.longlong[::1])
def first_frame_ranks(firsts) -> list:
    """The global stream numbers of a ``--jobs`` merge: per part, local stream -> the rank of
    the connection's first frame over all parts (``firsts``: per part, the first frame of
    each local stream, ascending; equal frames ranked in part order, then in local order),
    as ``array("q")``s.  Compiled: one pass merging the parts' runs; as plain Python: a sort."""
    offs = [0]
    allf = array("q")
    for f in firsts:
        allf.extend(f if type(f) is array else array("q", f))
        offs.append(len(allf))
    nparts = len(offs) - 1
    total = len(allf)
    rank = array("q", bytes(8 * total))
    if total and cython.compiled:
        hd = array("q", offs[:-1])
        en = array("q", offs[1:])
        af = allf
        out = rank
        heads = hd
        ends = en
        for g in range(total):
            best = -1
            low = 0
            for p in range(nparts):
                i = heads[p]
                if i < ends[p] and (best < 0 or af[i] < low):
                    best = p
                    low = af[i]
            out[heads[best]] = g
            heads[best] += 1
    elif total:
        # (first frame, place in the concatenation): the place orders equal frames by part, then stream
        for g, (_ff, i) in enumerate(sorted(zip(allf, range(total)))):
            rank[i] = g
    return [rank[offs[p]:offs[p + 1]] for p in range(nparts)]

@cython.locals(nparts=cython.Py_ssize_t, p=cython.Py_ssize_t, i=cython.Py_ssize_t, n=cython.Py_ssize_t,
               total=cython.longlong, code=cython.longlong, top=cython.longlong, last=cython.longlong,
               cend=cython.longlong, fv=cython.longlong[::1], rv=cython.longlong[::1], out=cython.longlong[::1])
def finalization_keys(ranks, fins, end):
    """Per global stream, its place in the global finalization order as one integer (an
    ``array("q")``): its finalization place (``fins``: per part, per local stream, as
    ``array("q")``; the places from ``end`` on are the end of the input's, after every
    other), then the stream (``ranks``: per part, local -> global stream, as
    ``first_frame_ranks`` gives them).  The keys only order: a place from ``end`` on is
    counted from just after the highest place before it.  None when they do not fit in 64 bits."""
    nparts = len(ranks)
    total = 0
    for p in range(nparts):
        total += len(ranks[p])
    keys = array("q", bytes(8 * total))
    if not total:
        return keys
    cend = end
    top = -1
    last = -1
    for p in range(nparts):
        fv = fins[p]
        for i in range(len(fv)):
            code = fv[i]
            if code < cend:
                if code > top:
                    top = code
            elif code > last:
                last = code
    highest = top if last < 0 else top + 1 + (last - end)
    if (highest + 1) * total >= 1 << 63:
        return None
    out = keys
    for p in range(nparts):
        fv = fins[p]
        rv = ranks[p]
        n = len(fv)
        for i in range(n):
            code = fv[i]
            if code >= cend:
                code = top + 1 + (code - cend)
            out[rv[i]] = code * total + rv[i]
    return keys


@cython.locals(n=cython.Py_ssize_t, i=cython.Py_ssize_t, lo=cython.Py_ssize_t, mid=cython.Py_ssize_t,
               hi=cython.Py_ssize_t, a=cython.Py_ssize_t, b=cython.Py_ssize_t, o=cython.Py_ssize_t,
               width=cython.Py_ssize_t, kv=cython.longlong[::1], sv=cython.longlong[::1], vv=cython.longlong[::1],
               kk=cython.longlong[::1], src=cython.longlong[::1], dst=cython.longlong[::1], t=cython.longlong[::1],
               os=cython.longlong[::1], ov=cython.longlong[::1])
def order_by_keys(keys, streams, values) -> tuple:
    """``streams`` (global streams) and ``values`` (one per stream), both ``array("q")``, in
    the order of ``keys[stream]`` (an ``array("q")`` as ``finalization_keys`` gives; distinct
    for distinct streams), as two new arrays.  Compiled: a merge sort in C."""
    n = len(streams)
    if not cython.compiled:
        order = sorted(range(n), key=lambda j: keys[streams[j]])
        return array("q", [streams[j] for j in order]), array("q", [values[j] for j in order])
    outs = array("q", bytes(8 * n))
    outv = array("q", bytes(8 * n))
    if not n:
        return outs, outv
    kv = keys
    sv = streams
    vv = values
    k2 = array("q", bytes(8 * n))
    kk = k2
    for i in range(n):
        kk[i] = kv[sv[i]]
    one = array("q", range(n))
    two = array("q", bytes(8 * n))
    src = one
    dst = two
    width = 1
    while width < n:                        # bottom-up merge sort of the indices by key
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            a = lo
            b = mid
            o = lo
            while a < mid and b < hi:
                if kk[src[b]] < kk[src[a]]:
                    dst[o] = src[b]
                    b += 1
                else:
                    dst[o] = src[a]
                    a += 1
                o += 1
            while a < mid:
                dst[o] = src[a]
                a += 1
                o += 1
            while b < hi:
                dst[o] = src[b]
                b += 1
                o += 1
            lo += 2 * width
        t = src
        src = dst
        dst = t
        width *= 2
    os = outs
    ov = outv
    for i in range(n):
        os[i] = sv[src[i]]
        ov[i] = vv[src[i]]
    return outs, outv


__all__ = ["REC_SIZE", "K_SEG", "K_DROP", "K_TICK", "K_BUCKETS", "bucket", "lane_table", "owner", "pair_hash",
           "Placement", "prepare", "dispatch", "consume", "write_record",
           "read_record", "first_frame_ranks", "finalization_keys", "order_by_keys"]
