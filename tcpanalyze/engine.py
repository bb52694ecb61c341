"""The sans-IO analysis engine: decoded segments in, per-packet verdicts and a Report out.

Theory of operation
-------------------
``Analyzer.feed(seg)`` is called once per TCP segment, in capture order.  It

1. finds the connection in the ``FlowTable`` by its directional 4-tuple or opens one,
   numbering streams like Wireshark's ``tcp.stream``, with a new stream when a pure SYN
   arrives on a known 4-tuple with a different ISN (flagged ``reused_ports``); a SYN/ACK
   with another ISN than its direction's base keeps the stream and moves the base;
2. keeps Wireshark's relative sequence bases and window-scale bookkeeping (calculated
   window);
3. runs Wireshark's ``tcp_analyze_sequence_number`` rules in Wireshark's order, one
   function per rule (``_rule_*``, called by ``_analyze``; README section "Agreement with
   Wireshark");
4. keeps the unacked segments, RTT samples (Karn's rule), bytes in flight, window edge and
   zero-window episodes, one function per concern;
5. steps both endpoints' RFC 9293 state machines (``state.py``) and the Zeek history
   (``zeek.py``), and keeps the per-connection counters the detectors need.

``feed`` returns the packet's ``Verdict``: one record per analyzer, refilled by every
call, so it is valid until the next ``feed`` (no result object is allocated per packet).
``finish()`` summarises what is still open and returns the ``Report``.  The clock is the
packet timestamp; nothing here reads the wall clock or does I/O.
"""
from __future__ import annotations

import struct
from array import array
from heapq import heapify, heappop, heappush

try:
    import cython
except ImportError:  # plain Python without Cython installed: the declarations are no-ops
    from tcpanalyze import _cyshim as cython

from tcpanalyze import analysis as A
from tcpanalyze._fields import init, slots
from tcpanalyze.model import ACK, FIN, RST, SYN, Segment, addr_str, endpoint_str
from tcpanalyze.state import TcpState, initial_states
from tcpanalyze.zeek import ZeekConn

if not cython.compiled:     # compiled, engine.pxd cimports them as C functions
    from tcpanalyze.seq import seq_add, seq_delta, seq_dist, seq_dist2, seq_gt, seq_lt, seq_span
    from tcpanalyze.state import event_codes, step_code
    from tcpanalyze.zeek import zeek_update

# analysis bits and TCP flags as C constants when compiled (module globals as plain Python)
_ZWP = cython.declare(cython.longlong, A.ZERO_WINDOW_PROBE)
_ZW = cython.declare(cython.longlong, A.ZERO_WINDOW)
_LOST = cython.declare(cython.longlong, A.LOST_SEGMENT)
_KA = cython.declare(cython.longlong, A.KEEP_ALIVE)
_KA_ACK = cython.declare(cython.longlong, A.KEEP_ALIVE_ACK)
_WUPD = cython.declare(cython.longlong, A.WINDOW_UPDATE)
_WFULL = cython.declare(cython.longlong, A.WINDOW_FULL)
_DUPACK = cython.declare(cython.longlong, A.DUPLICATE_ACK)
_ACKLOST = cython.declare(cython.longlong, A.ACK_LOST_SEGMENT)
_ZWP_ACK = cython.declare(cython.longlong, A.ZERO_WINDOW_PROBE_ACK)
_RTX = cython.declare(cython.longlong, A.RETRANSMISSION)
_FAST = cython.declare(cython.longlong, A.FAST_RETRANSMISSION)
_SPUR = cython.declare(cython.longlong, A.SPURIOUS_RETRANSMISSION)
_OOO = cython.declare(cython.longlong, A.OUT_OF_ORDER)
_REUSED = cython.declare(cython.longlong, A.REUSED_PORTS)
_RTX_FAMILY = cython.declare(cython.longlong, A.RETRANSMISSION_FAMILY)
_SYN = cython.declare(cython.longlong, SYN)
_FIN = cython.declare(cython.longlong, FIN)
_ACK = cython.declare(cython.longlong, ACK)
_RST = cython.declare(cython.longlong, RST)
_SFR = cython.declare(cython.longlong, SYN | FIN | RST)
_SF = cython.declare(cython.longlong, SYN | FIN)
_HALF = cython.declare(cython.longlong, 1 << 31)

# the states feed() compares by identity (C variables when compiled)
_ESTABLISHED = cython.declare(object, TcpState.ESTABLISHED)
_TIME_WAIT = cython.declare(object, TcpState.TIME_WAIT)
_CLOSED = cython.declare(object, TcpState.CLOSED)
_LISTEN = cython.declare(object, TcpState.LISTEN)

#: Default limits (README "Resource bounds").
K_MAX_CONNECTIONS = 1_000_000
K_MAX_EVENTS_PER_CONN = 256
K_LINGER_NS = 120 * 1_000_000_000          # keep a closed connection this long for late packets
K_IDLE_TIMEOUT_NS = 0                       # expire an open connection idle this long (0: never, as Wireshark)
K_SWEEP_EVERY_NS = 10 * 1_000_000_000
#: a closed connection stays whole this long after its last packet, then it is summarised and
#: shrinks to a tombstone (tomb.py) for the rest of the linger time.  Late packets in the
#: test corpora come within 1 s of the connection's last packet but in two captures (16-18 s
#: and 60-120 s late); the grace is a memory bound, not a protocol timer: what a busy
#: server closes in it is held whole (about 5 KB a connection)
K_GRACE_NS = 1_000_000_000
#: how often the clock retires connections past their grace (so one stays whole between
#: K_GRACE_NS and K_GRACE_NS + K_RETIRE_EVERY_NS after its last packet); each retirement
#: takes only the expired ones off a heap ordered by last packet (``FlowTable.retire``)
K_RETIRE_EVERY_NS = 500_000_000
#: How long a connection stays in TIME_WAIT, by the system that holds it (seconds): Linux's
#: TCP_TIMEWAIT_LEN is 60 s, Windows' default TcpTimedWaitDelay 240 s, FreeBSD and macOS
#: 2 x 15 s MSL, RFC 9293 2 x MSL with its MSL of 2 minutes.
TIME_WAIT_PRESETS = {"linux": 60.0, "windows": 240.0, "bsd": 30.0, "rfc": 240.0}
#: the default TIME_WAIT length (``--time-wait``)
K_TIME_WAIT = "linux"
#: the engine measures TIME_WAIT as 2*MSL: the MSL of the default TIME_WAIT length
K_MSL_S = TIME_WAIT_PRESETS[K_TIME_WAIT] / 2


def time_wait_name(seconds: float) -> str | None:
    """The names of ``TIME_WAIT_PRESETS`` whose TIME_WAIT lasts ``seconds`` (``"windows, rfc"``
    for 240 s), or None."""
    names = [name for name, s in TIME_WAIT_PRESETS.items() if s == seconds]
    return ", ".join(names) if names else None
#: hosts whose TIME_WAIT periods are tracked one by one; beyond it the quietest are folded
#: into a count (a million clients each closing once must not cost a record each)
K_MAX_TW_HOSTS = 10_000
#: ports remembered per TIME_WAIT host; beyond it ports seen once (ephemeral) are folded
K_MAX_TW_PORTS = 64
#: Zeek removes a closed, reset or one-sided connection after 5 s without packets (its
#: tcp_close_delay / tcp_reset_delay / tcp_attempt_delay); Zeek-compatible records split there.
K_ZEEK_LINGER_NS = 5 * 1_000_000_000
_ZEEK_LINGER = cython.declare(cython.longlong, K_ZEEK_LINGER_NS)


#: values of Config.checksums
CHECKSUM_MODES = ("ignore", "verify", "drop")


class Config:
    """Knobs of the engine; every default is a named constant the CLI can override."""

    __slots__ = ("fast_rtx_ns", "ooo_ns", "max_unacked", "max_connections", "linger_ns",
                 "idle_timeout_ns", "msl_ns", "explain", "max_events", "max_tw_hosts", "checksums", "grace_ns")

    def __init__(self, *, fast_rtx_ns: int = A.K_FAST_RETRANSMIT_NS, ooo_ns: int = A.K_OOO_DEFAULT_NS,
                 max_unacked: int = A.K_MAX_UNACKED, max_connections: int = K_MAX_CONNECTIONS,
                 linger_ns: int = K_LINGER_NS, idle_timeout_ns: int = K_IDLE_TIMEOUT_NS,
                 msl_s: float = K_MSL_S, explain: bool = False, max_events: int = K_MAX_EVENTS_PER_CONN,
                 max_tw_hosts: int = K_MAX_TW_HOSTS, checksums: str = "ignore", grace_ns: int = K_GRACE_NS):
        self.fast_rtx_ns = fast_rtx_ns
        self.ooo_ns = ooo_ns
        self.max_unacked = max_unacked
        self.max_connections = max_connections
        self.linger_ns = linger_ns
        self.grace_ns = min(grace_ns, linger_ns)
        self.idle_timeout_ns = idle_timeout_ns
        self.msl_ns = int(msl_s * 1e9)
        self.explain = explain
        self.max_events = max_events
        self.max_tw_hosts = max(1, max_tw_hosts)
        if checksums not in CHECKSUM_MODES:
            raise ValueError(f"checksums must be one of {', '.join(CHECKSUM_MODES)}, not {checksums!r}")
        #: TCP checksums: "ignore" (as tshark), "verify" (count bad ones), "drop" (count them and
        #: keep bad segments from the engine, as Zeek without -C); the pipeline applies it
        self.checksums = checksums


class Unacked:
    """One segment its receiver has not acknowledged yet: raw ``seq`` and ``end`` (seq + len,
    + 1 for SYN/FIN), ``frame``, ``ts_ns``, and ``karn`` (the retransmission bits of its
    analysis flags: an ACK of it gives no RTT sample).  A C record when compiled (generated from FIELDS)."""

    FIELDS = (("seq", "long long"), ("end", "long long"), ("frame", "long long"), ("ts_ns", "long long"),
              ("karn", "long long"))
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS, 5)

    def __repr__(self) -> str:
        return f"Unacked(seq={self.seq}, end={self.end}, frame={self.frame}, ts_ns={self.ts_ns}, karn={self.karn})"


@cython.cfunc
@cython.locals(e=Unacked, seq=cython.longlong, end=cython.longlong, frame=cython.longlong,
               ts_ns=cython.longlong, karn=cython.longlong)
def _unacked(seq, end, frame, ts_ns, karn):
    e = Unacked.__new__(Unacked)
    e.seq = seq
    e.end = end
    e.frame = frame
    e.ts_ns = ts_ns
    e.karn = karn
    return e


@cython.locals(e=Unacked, base=cython.longlong, lo=cython.longlong, hi=cython.longlong, r=cython.longlong)
def _span(segs: list, base: int, lo: int, hi: int) -> tuple[int, int]:
    """Lowest start and highest end, relative to ``base``, of ``segs`` and of [lo, hi).
    (A plain loop: Cython 3.3 evaluated ``min(... for e in segs)`` in ``feed`` with the
    wrong ``base``.)"""
    lo = seq_dist(lo, base)
    hi = seq_dist(hi, base)
    for e in segs:
        r = seq_dist(e.seq, base)
        if r < lo:
            lo = r
        r = seq_dist(e.end, base)
        if r > hi:
            hi = r
    return lo, hi


_PORTS = struct.Struct(">HH")


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    """The connection table's key for segments from ``src:sport`` to ``dst:dport``: the
    packed addresses then both ports big-endian (12 bytes for IPv4, 36 for IPv6).  One bytes
    object hashes and compares in C, where a 4-tuple hashed and compared four objects."""
    return src + dst + _PORTS.pack(sport, dport)


def reverse_key(key: bytes) -> bytes:
    """The key of the other direction."""
    n = (len(key) - 4) >> 1
    return key[n:2 * n] + key[:n] + key[2 * n + 2:] + key[2 * n:2 * n + 2]


#: the keys _seg_key made last, by a hash of their bytes: the segments of a flow come close
#: together, so most get the key object an earlier one got, whose hash Python has kept (a new
#: bytes object is hashed again at each lookup) and which the table compares by identity
_KEYS = cython.declare(list, [b""] * 4096)
#: 2**32 / golden ratio, a C constant (Fibonacci hashing of the key's slot: bits 20 to 31)
_FIB32 = cython.declare(cython.ulonglong, 0x9E3779B1)


@cython.cfunc
@cython.locals(seg=Segment, b=cython.uchar[40], p=cython.p_uchar, n=cython.Py_ssize_t, i=cython.Py_ssize_t,
               m=cython.Py_ssize_t, sport=cython.longlong, dport=cython.longlong, h=cython.ulonglong, sb=bytes,
               db=bytes, o=bytes)
def _seg_key(seg):
    """flow_key() of a segment; compiled, built in a C buffer and, when the last key in its
    slot of _KEYS has the same bytes, that key object."""
    if not cython.compiled:
        return seg.src + seg.dst + _PORTS.pack(seg.sport, seg.dport)     # flow_key() without its call
    src = seg.src
    dst = seg.dst
    if type(src) is not bytes or type(dst) is not bytes:
        return flow_key(src, seg.sport, dst, seg.dport)
    sb = cython.cast(bytes, src)
    db = cython.cast(bytes, dst)
    n = len(sb)
    if n > 16 or n < 2 or len(db) != n:
        return flow_key(src, seg.sport, dst, seg.dport)
    p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, sb))
    for i in range(n):
        b[i] = p[i]
    p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, db))
    for i in range(n):
        b[n + i] = p[i]
    sport = seg.sport
    dport = seg.dport
    b[2 * n] = (sport >> 8) & 255
    b[2 * n + 1] = sport & 255
    b[2 * n + 2] = (dport >> 8) & 255
    b[2 * n + 3] = dport & 255
    m = 2 * n + 4
    # Fibonacci hashing of both ports and the last two bytes of each address
    h = ((sport << 16) | dport) ^ (cython.cast(cython.ulonglong, b[n - 2]) << 24) ^ (b[n - 1] << 16) \
        ^ (b[2 * n - 2] << 8) ^ b[2 * n - 1]
    h = ((h * _FIB32) >> 20) & 4095
    o = _KEYS[h]
    if len(o) == m and memcmp(cython.cast(cython.p_char, o), cython.cast(cython.p_char, b), m) == 0:
        return o
    o = cython.cast(cython.p_char, b)[:m]
    _KEYS[h] = o
    return o


def _stream_of(conn: Conn) -> int:
    return conn.stream


def _first(t: tuple):
    return t[0]


class TwHost:
    """TIME_WAIT periods of one host: their start times (8 bytes each), a running count of
    those still within 2*MSL (``lo`` indexes the oldest), the peak, and the same per port.
    A C record when compiled (generated from FIELDS)."""

    FIELDS = (("first_frame", "long long"), ("starts", "object"), ("lo", "long long", 0),
              ("peak", "long long", 0), ("peak_ns", "long long", 0), ("ports", "dict", dict),
              ("folded_ports", "long long", 0))   # TIME_WAIT periods on ports folded away (seen once each)
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS, 2)      # TwHost(first_frame, array("q"))

    @cython.locals(now=cython.longlong, hold=cython.longlong, lo=cython.Py_ssize_t, n=cython.Py_ssize_t,
                   cutoff=cython.longlong)
    def active(self, now: int, hold: int) -> int:
        """Periods still running at ``now`` (a period started at t covers (t, t + hold])."""
        st = self.starts
        lo = self.lo
        n = len(st)
        cutoff = now - hold
        while lo < n and st[lo] <= cutoff:
            lo += 1
        self.lo = lo
        return n - lo


class TwTable:
    """TIME_WAIT periods per host (hosts in the order they first entered TIME_WAIT), bounded
    to ``max_hosts``: past it the tenth of hosts that matter least is folded into
    ``folded_hosts`` / ``folded_periods``.  ``enter`` depends only on its arguments and the
    table, so replaying the same calls in the same order gives the same table (``--jobs``
    workers log their calls and the parent replays them in frame order)."""

    def __init__(self, max_hosts: int, hold_ns: int):
        self.max_hosts = max_hosts
        self.hold = hold_ns                 # 2*MSL
        self.hosts: dict[bytes, TwHost] = {}
        self.folded_hosts = 0
        self.folded_periods = 0

    @cython.locals(h=TwHost, now=cython.longlong, frame=cython.longlong, n=cython.longlong)
    def enter(self, host: bytes, port: int, now: int, frame: int) -> None:
        hosts = self.hosts
        h = hosts.get(host)
        if h is None:
            if len(hosts) >= self.max_hosts:
                self._fold(now)
            h = hosts[host] = TwHost(frame, array("q"))
        h.starts.append(now)
        n = h.active(now, self.hold)
        if n > h.peak:
            h.peak, h.peak_ns = n, now
        ports = h.ports
        ps = ports.get(port)
        if ps is None:
            if len(ports) >= K_MAX_TW_PORTS:
                # ephemeral ports of a client closing first: each seen once; fold them
                for p in [p for p, v in ports.items() if len(v) == 1]:
                    del ports[p]
                    h.folded_ports += 1
                if len(ports) >= K_MAX_TW_PORTS:
                    for p in sorted(ports, key=lambda p: len(ports[p]))[:K_MAX_TW_PORTS // 2]:
                        h.folded_ports += len(ports.pop(p))
            ps = ports[port] = array("q")
        ps.append(now)

    def _fold(self, now: int) -> None:
        """Drop the tenth of tracked hosts that matter least (none in TIME_WAIT now, lowest
        peak, fewest periods, oldest), counting what they held."""
        hold = self.hold
        hosts = self.hosts
        rank = sorted(hosts, key=lambda k: (hosts[k].active(now, hold) > 0, hosts[k].peak,
                                            len(hosts[k].starts), hosts[k].starts[-1]))
        for k in rank[:max(1, len(hosts) // 10)]:
            self.folded_periods += len(hosts.pop(k).starts)
            self.folded_hosts += 1

    @property
    def starts(self) -> dict[bytes, array]:
        """Host -> start times of its TIME_WAIT periods (hosts in first-entry order)."""
        return {k: h.starts for k, h in self.hosts.items()}

    @property
    def port_starts(self) -> dict[tuple[bytes, int], array]:
        """(host, port) -> start times of the TIME_WAIT periods on that port."""
        return {(k, p): v for k, h in self.hosts.items() for p, v in h.ports.items()}

    def active_now(self, now: int) -> list[tuple[int, bytes]]:
        """(connections in TIME_WAIT at ``now``, host) for every tracked host with any."""
        out = []
        for k, h in self.hosts.items():
            n = h.active(now, self.hold)
            if n:
                out.append((n, k))
        return out


class SynRecords:
    """A list of (stream, frame, ts_ns) triples kept in one ``array("q")``: 24 bytes an
    entry where a tuple of three ints in a list takes about 170.  Reads like the list."""

    def __init__(self):
        self.a = array("q")

    def append(self, t: tuple[int, int, int]) -> None:
        self.a.extend(t)

    def __len__(self) -> int:
        return len(self.a) // 3

    def __getitem__(self, i: int) -> tuple[int, int, int]:
        n = len(self.a) // 3
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("SynRecords index out of range")
        a = self.a
        return (a[3 * i], a[3 * i + 1], a[3 * i + 2])

    def __iter__(self):
        a = self.a
        for i in range(0, len(a), 3):
            yield (a[i], a[i + 1], a[i + 2])

    def __eq__(self, other) -> bool:
        if isinstance(other, SynRecords):
            return self.a == other.a
        return list(self) == list(other)

    def __repr__(self) -> str:
        return f"SynRecords({list(self)!r})"


class EndpointStats:
    """What one endpoint sent, counted for the summaries and the detectors: packets, bytes,
    data packets, each analysis flag, SYN/FIN/RST, the largest and the snaplen-truncated
    segments, and data sent after its own FIN."""

    FIELDS = (
        ("pkts", "long long", 0), ("bytes", "long long", 0), ("data_pkts", "long long", 0),
        ("rtx", "long long", 0), ("rtx_bytes", "long long", 0), ("fast_rtx", "long long", 0),
        ("spurious", "long long", 0), ("ooo", "long long", 0), ("lost", "long long", 0),
        ("ack_lost", "long long", 0), ("dupacks", "long long", 0), ("zero_win", "long long", 0),
        ("zwp", "long long", 0), ("keepalive", "long long", 0), ("win_full", "long long", 0),
        ("win_update", "long long", 0), ("syns", "long long", 0), ("fins", "long long", 0),
        ("rsts", "long long", 0), ("mss", "long long", 0), ("max_seg", "long long", 0), ("trunc", "long long", 0),
        ("data_after_fin", "long long", 0),
    )
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class EndpointTimes:
    """When one endpoint sent its first, last and last data segment, and its first FIN
    (with the seq just past it, -1 before any) and first RST."""

    FIELDS = (("first_ns", "long long", 0), ("last_ns", "long long", 0), ("last_data_ns", "long long", 0),
              ("fin_next", "long long", -1), ("fin_frame", "long long", 0), ("fin_ns", "long long", 0),
              ("rst_frame", "long long", 0), ("rst_ns", "long long", 0))
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class EndpointTrack:
    """RTT samples of the segments one endpoint sent, and the receive window it advertised:
    right-edge retreats (window shrinks, and retreats of old segments that arrived after a
    later one) and zero-window episodes."""

    FIELDS = (
        ("rtt_n", "long long", 0), ("rtt_sum", "long long", 0), ("rtt_min", "long long", -1),
        ("rtt_max", "long long", -1),
        ("rtt_samples", "object", None),  # list of (ts_ns, frame, rtt_ns) when the caller keeps them
        ("edge", "long long", -1),        # right edge of the receive window this sender advertised (unwrapped)
        ("shrinks", "object", None),      # list of (frame, ts_ns, retreat_bytes)
        ("shrink_bytes", "long long", 0),
        # SEG.SEQ, SEG.ACK and TSval (-1 without) of the segment that last updated the window
        # (RFC 9293 SND.WL1, SND.WL2)
        ("wl1", "long long", 0), ("wl2", "long long", 0), ("wl_ts", "long long", -1),
        ("reorders", "object", None),     # retreats of old segments: list of (frame, ts_ns, retreat_bytes)
        ("reorder_bytes", "long long", 0),
        ("zw_open", "object", None),      # [start_frame, start_ns, probes] while a zero-window episode is open
        ("zw_episodes", "object", None),  # list of (start_frame, start_ns, end_frame, end_ns, probes)
    )
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class PerfSplit:
    """The time breakdown of one endpoint's transfer, in ns: ``t_*`` the time counted so
    far per cause, up to the last data segment; ``p_*`` the time of the states that ended at
    an ACK since then, added to ``t_*`` by the next data segment (so the time after the last
    data byte never counts)."""

    FIELDS = (
        ("t_rwnd", "long long", 0), ("t_zwnd", "long long", 0), ("t_loss", "long long", 0),
        ("t_app", "long long", 0), ("t_cwnd", "long long", 0),
        ("p_rwnd", "long long", 0), ("p_zwnd", "long long", 0), ("p_loss", "long long", 0),
        ("p_app", "long long", 0), ("p_cwnd", "long long", 0),
    )
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class PerfTurns:
    """Waits from the peer's last data byte to this endpoint's next data segment (think
    times), in ns: how many, their sum, the shortest and longest, and the data segment that
    ended the longest."""

    FIELDS = (
        ("turn_n", "long long", 0), ("turn_sum", "long long", 0), ("turn_min", "long long", -1),
        ("turn_max", "long long", 0), ("turn_max_frame", "long long", 0),
    )
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class EndpointPerf:
    """Where one endpoint's data transfer spent its time, kept per segment and turned into
    throughput, the time breakdown and ``limited_by`` when the connection is summarised
    (``diagnosis.py``, docs/diagnosis.md).  Times are ns; ``state`` is one of the ``_P_*``
    constants, what held the sender at its last data segment or ACK (``mark``); the time in
    it from ``since`` to ``mark`` is counted at the next change of state or data segment
    (``pending``: some ``split.p_*`` is not zero); the breakdown is in ``split``, the think
    times in ``turns``."""

    FIELDS = (
        ("first_ns", "long long", 0), ("last_ns", "long long", 0),     # first and last data segment
        ("first_frame", "long long", 0), ("rwnd_frame", "long long", 0),  # first data; first window-limited
        ("high_rel", "long long", -1),       # end of the highest data, relative to the base seq
        ("unique", "long long", 0),          # bytes of sequence space first sent in this direction
        ("holes", "object", None),           # [lo, hi) below high_rel not seen yet (list, while any)
        ("state", "long long", 0), ("since", "long long", 0), ("mark", "long long", 0),
        ("pending", "bint", False), ("split", "PerfSplit", PerfSplit),
        ("recover", "long long", -1),        # loss recovery lasts until the peer ACKs this raw seq
        ("short", "bint", False),            # the last data segment was shorter than the MSS
        ("rto_n", "long long", 0), ("rto_ns", "long long", 0),
        ("rto_waits", "object", None),       # list of (start_ns, end_ns, frame) when the sender timed out
        ("gap_n", "long long", 0), ("gap_sum", "long long", 0),     # send gaps while cwnd-limited: ns
        ("gap_sq", "long long", 0),          # ... and the sum of their squares in µs²
        ("win_max", "long long", 0),         # largest window the peer advertised while it was the limit
        ("flight_max", "long long", 0),      # most bytes in flight (by the peer's ACKs) after a data segment
        ("turns", "PerfTurns", PerfTurns),
        ("syn_gap", "long long", 0),         # SYN to this side's SYN/ACK (the responder's part of the RTT)
    )
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class Flow:
    """One direction of a connection, i.e. one endpoint as a sender (Wireshark's
    ``tcp_flow_t``): relative numbering, window scale, the unacked segments and Wireshark's
    sequence-analysis state; its counters, times and window/RTT tracking are in ``stats``,
    ``times`` and ``track``."""

    FIELDS = (
        # relative numbering and window
        ("base_seq", "long long", 0), ("base_set", "bint", False),
        ("win_scale", "long long", -1),      # -1 unknown, -2 no scaling negotiated, else the shift
        ("window", "long long", -1),         # last raw window sent (Wireshark starts at G_MAXUINT32)
        ("is_first_ack", "bint", True), ("sack", "object", None),
        # Wireshark's tcp_analyze_seq_flow_info_t
        ("nextseq", "long long", 0),         # 0 means "not seen yet", as in Wireshark
        ("nextseqtime", "long long", 0), ("nextseqframe", "long long", 0), ("maxseqtobeacked", "long long", 0),
        ("lastack", "long long", 0), ("lastacktime", "long long", 0), ("lastnondupack", "long long", 0),
        ("dupacknum", "long long", 0), ("lastsegflags", "long long", 0),
        ("segs", "object", list),            # Unacked records, oldest first
        ("segs_disordered", "bint", False),
        # while segs is disordered: lowest start and highest end over it, relative to base_seq
        # (so neither an ACK that acknowledges nothing nor bytes-in-flight walks the list)
        ("seg_lo", "long long", 0), ("seg_hi", "long long", 0),
        ("valid_bif", "bint", True),
        # Zeek's history letters can no longer change on an ordinary segment
        ("zsettled", "bint", False),
        ("stats", "EndpointStats", EndpointStats), ("times", "EndpointTimes", EndpointTimes),
        ("track", "EndpointTrack", EndpointTrack), ("perf", "EndpointPerf", EndpointPerf),
    )
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class ConnEnding:
    """How a connection ended: who closed first (sent the first FIN, -1 none), who reset it
    and in which pair of states, the unacknowledged bytes the RST discarded, and when an
    endpoint entered TIME_WAIT ((endpoint, ts_ns, frame) or None)."""

    FIELDS = (("tw_start", "object", None), ("close_initiator", "long long", -1), ("reset_by", "long long", -1),
              ("reset_state", "object", None), ("reset_inflight", "long long", 0))
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class HandshakeTrack:
    """The originator's SYNs: time of the latest pure SYN (for the iRTT), frame of the first,
    and the times of all of them (at most 64; None before any)."""

    FIELDS = (("ts_mru_syn", "long long", 0), ("syn_frame", "long long", 0), ("syn_times", "object", None))
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


class ZeekTrack:
    """Zeek's view of the stream: the originator of the current Zeek record, the earlier
    records ((ZeekConn, zorig, first_ns, last_ns) list, or None) and the attempt timer."""

    FIELDS = (("zorig", "long long"), ("zdeadline", "long long"), ("zeek_done", "object", None))
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS, 2)


class Conn:
    """A TCP connection as seen at the capture point: two flows and two endpoint states.

    Flow 0 is the sender of the first captured segment.  ``orig`` is the index of the
    originator (the flow that sent the first SYN; inferred when no SYN was seen).
    """

    # set by __init__ below, which computes them from the first segment
    FIELDS = (("stream", "long long"), ("key", "object"), ("addr", "object"), ("port", "object"),
              ("flows", "tuple"), ("orig", "long long"), ("handshake_seen", "bint"), ("first_ns", "long long"),
              ("last_ns", "long long"), ("first_frame", "long long"), ("last_frame", "long long"),
              ("irtt", "long long"), ("state", "list"), ("inferred", "object"), ("timeline", "object"),
              ("anomalies", "object"), ("zeek", "object"), ("done", "bint"), ("end_reason", "object"),
              ("events", "object"), ("frames", "long long"), ("ending", "ConnEnding"),
              ("handshake", "HandshakeTrack"), ("ztrack", "ZeekTrack"))
    __slots__ = slots(FIELDS)

    def __init__(self, stream: int, seg: Segment, keep_timeline: bool, key: bytes | None = None):
        self.stream = stream
        self.key = _seg_key(seg) if key is None else key     # the caller's flow_key() of seg, if it has it
        self.addr = (seg.src, seg.dst)
        self.port = (seg.sport, seg.dport)
        self.flows = (Flow(), Flow())
        self.first_ns = self.last_ns = seg.ts_ns
        self.first_frame = self.last_frame = seg.frame
        self.irtt = 0
        s0, s1, inferred = initial_states(seg.flags)
        self.state = [s0, s1]
        self.inferred = inferred
        self.timeline = ([], []) if keep_timeline else None
        self.anomalies = None
        flags = seg.flags
        if flags & SYN and not flags & ACK:
            self.orig = 0
            self.handshake_seen = True
        elif flags & SYN:
            self.orig = 1                      # first seen is the SYN/ACK: its receiver opened
            self.handshake_seen = True
        else:
            # No handshake: the side with the lower (likelier server) port is the responder.
            self.orig = 1 if seg.sport < seg.dport and seg.sport < 1024 <= seg.dport else 0
            self.handshake_seen = False
        self.zeek = ZeekConn(orig_is_first_sender=(self.orig == 0))
        self.ztrack = ZeekTrack(self.orig, seg.ts_ns + K_ZEEK_LINGER_NS)
        self.done = False
        self.end_reason = "open"
        self.ending = ConnEnding()
        self.handshake = HandshakeTrack()
        self.events = None              # other per-connection events for the detectors
        self.frames = 0


class FlowTable:
    """The connections by directional 4-tuple (both directions of one connection are keys of
    one dict, so no key is sorted per packet), numbered like Wireshark's ``tcp.stream``:
    0-based, in order of first appearance.  It owns port reuse, the live count and its
    bound (evicting the least recently active), and the release of closed connections:
    ``grace_ns`` after its last packet a closed connection is finalized and replaced by its
    tombstone (``tombs``, a ``tomb.TombStore``: one key -> the ``tomb.pack`` record, on disk
    behind an index in memory), which leaves ``linger_ns``
    after the last packet (idle connections leave after ``idle_timeout_ns``).  A tombstone
    counts as a live connection.  A connection leaves through the ``finalize(conn, reason)``
    passed to the method that releases it (the table keeps no reference to its owner, so the
    two make no reference cycle)."""

    # set by __init__ below; C fields when compiled (no __slots__: one table per analyzer)
    FIELDS = (("conns", "dict"), ("closed", "list"), ("streams", "long long"), ("live", "long long"),
              ("live_peak", "long long"), ("self_conns", "long long"), ("evicted", "long long"),
              ("expired", "long long"), ("max_connections", "long long"), ("linger_ns", "long long"),
              ("idle_timeout_ns", "long long"), ("keep_timeline", "bint"), ("tombs", "object"),
              ("grace_ns", "long long"), ("next_linger", "long long"), ("next_retire", "long long"),
              ("late", "long long"), ("previous", "object"), ("pending", "list"), ("disorder", "bint"))

    def __init__(self, max_connections: int, linger_ns: int, idle_timeout_ns: int, keep_timeline: bool,
                 grace_ns: int = K_GRACE_NS):
        self.conns: dict[bytes, tuple[Conn, int]] = {}      # flow_key() -> (conn, direction)
        self.closed: list[Conn] = []    # connections that reached their end since the last retirement
        #: the closed connections before them, until retired: a heap of (key, stream, conn)
        #: whose key is a last_ns the connection had (its last_ns is never below it, unless a
        #: timestamp went backwards: ``disorder``)
        self.pending: list = []
        self.disorder = False           # a timestamp went backwards since the last retirement
        #: flow_key() of direction 0 -> tomb.pack() record, kept on disk (tomb.TombStore)
        self.tombs = tomb.TombStore(linger_ns)
        self.grace_ns = grace_ns
        self.next_linger = 0            # the analyzer's clock: next release of tombstones and idle ones
        self.next_retire = 0            # ... and next retirement of closed connections past their grace
        self.late = 0                   # segments analysed against a tombstone
        #: the connection (or the one rebuilt from its tombstone) the last SYN that opened a new
        #: stream on a known 4-tuple replaced (the detectors' port-reuse findings read it)
        self.previous = None
        self.streams = 0
        self.live = 0                   # connections in the table
        self.live_peak = 0
        self.self_conns = 0             # connections from an endpoint to itself (one key)
        self.evicted = 0
        self.expired = 0
        self.max_connections = max_connections
        self.linger_ns = linger_ns
        self.idle_timeout_ns = idle_timeout_ns
        self.keep_timeline = keep_timeline

    def __len__(self) -> int:
        return len(self.conns)

    def values(self):
        """(connection, direction) for every key: each connection once with direction 0."""
        return self.conns.values()

    @cython.locals(f=Flow)
    def reused(self, conn: Conn, d: int, seg: Segment) -> bool:
        """A pure SYN (the caller checked) with another ISN than the one this direction
        started with opens a new stream on the 4-tuple (Wireshark 4.0 rule).  A SYN at the
        same ISN stays in the stream and takes the next expected seq back to the highest one
        the peer has to ACK (undoing, say, a RST sent with the seq it was ACKed)."""
        f = conn.flows[d]
        if not f.base_set:
            return False
        if seg.seq != f.base_seq:
            return True
        f.nextseq = f.maxseqtobeacked
        return False

    @cython.locals(f=Flow, e=Unacked)
    def rebased(self, conn: Conn, d: int, seg: Segment) -> bool:
        """A SYN/ACK (the caller checked) whose ISN is not the base an earlier segment of
        this direction set (a RST or data before the handshake, a SYN/ACK with another ISN)
        keeps its stream and restarts the direction's relative numbers at its own seq
        (Wireshark 4.0 rule, flagged ``reused_ports``).  The sequence analysis compares
        absolute numbers, so only what is kept relative to the base moves: the span of
        disordered unacked segments; the peer's window edge, measured against the old
        numbers, starts again."""
        f = conn.flows[d]
        if not f.base_set or seg.seq == f.base_seq:
            return False
        f.base_seq = seg.seq
        if f.segs_disordered:
            e = f.segs[0]
            f.seg_lo, f.seg_hi = _span(f.segs, f.base_seq, e.seq, e.end)
        conn.flows[d ^ 1].track.edge = -1
        return True

    def open(self, seg: Segment, key: bytes, finalize) -> Conn:
        """A new connection, first seen with ``seg`` (sent in direction 0)."""
        conn = Conn(self.streams, seg, self.keep_timeline, key)
        self.streams += 1
        conns = self.conns
        conns[key] = (conn, 0)
        rkey = reverse_key(key)
        if rkey != key:                # a connection from an endpoint to itself has one key
            conns[rkey] = (conn, 1)
            self.live += 1
        else:
            self.live += 1
            self.self_conns += 1
        if self.live > self.max_connections:
            self.evict_oldest(finalize)
        if self.live > self.live_peak:
            self.live_peak = self.live
        return conn

    def reopen(self, old: Conn, seg: Segment, key: bytes, finalize) -> Conn:
        """Port reuse: end ``old`` and open the connection ``seg`` starts on its 4-tuple."""
        self.drop(old)
        finalize(old, None if old.end_reason != "open" else "reused")
        return self.open(seg, key, finalize)

    def drop(self, conn: Conn, rkey=None) -> None:
        """Remove both keys of ``conn`` (if they still lead to it); ``rkey``: its key's reverse,
        when the caller has it."""
        conns = self.conns
        key = conn.key
        if rkey is None:
            rkey = reverse_key(key)
        dropped = False
        if conns.get(key, (None,))[0] is conn:
            del conns[key]
            dropped = True
        if rkey != key and conns.get(rkey, (None,))[0] is conn:
            del conns[rkey]
            dropped = True
        if dropped:
            self.live -= 1

    def evict_oldest(self, finalize) -> None:
        """Over the live-connection bound: drop the least recently active connections (counted).

        One scan evicts the oldest tenth of the table (at least one), so the cost per new
        connection stays amortised O(log n) however long the flood lasts."""
        conns = [(c.last_ns, c) for c, d in self.conns.values() if d == 0]
        if self.tombs:
            conns.extend([(tomb.last_ns(rec), key) for key, rec in self.tombs.items()])
        excess = self.live - self.max_connections
        k = max(excess, len(conns) // 10, 1)
        conns.sort(key=_first)
        for _t, oldest in conns[:k]:
            self.evicted += 1
            if type(oldest) is bytes:
                del self.tombs[oldest]
                self.live -= 1
                continue
            self.drop(oldest)
            finalize(oldest, "evicted" if oldest.end_reason == "open" else None)

    @cython.locals(conn=Conn)
    def _absorb(self) -> None:
        """Move the connections closed since the last retirement onto the heap."""
        pending = self.pending
        for conn in self.closed:
            if not conn.done:
                heappush(pending, (conn.last_ns, conn.stream, conn))
        self.closed = []

    @cython.locals(conn=Conn, now=cython.longlong, limit=cython.longlong)
    def _rebuild(self, now: int, limit: int) -> list:
        """Walk the heap: return the connections idle more than ``limit`` at ``now`` and keep
        the others, keyed by their last_ns."""
        stale = []
        keep = []
        for e in self.pending:
            conn = e[2]
            if conn.done:
                continue
            if now - conn.last_ns > limit:
                stale.append(conn)
            else:
                keep.append((conn.last_ns, conn.stream, conn))
        heapify(keep)
        self.pending = keep
        return stale

    @cython.locals(cutoff=cython.longlong, conn=Conn, now=cython.longlong)
    def past_grace(self, now: int) -> list:
        """The closed connections whose last packet is more than ``grace_ns`` old at ``now``,
        in stream order, taken off the heap.  Only the expired ones are looked at: the heap's
        smallest key is the oldest last packet (a connection whose last_ns moved since it was
        keyed goes back with its new one); after a timestamp went backwards the whole heap is
        walked once."""
        self._absorb()
        if self.disorder:
            self.disorder = False
            stale = self._rebuild(now, self.grace_ns)
        else:
            stale = []
            pending = self.pending
            cutoff = now - self.grace_ns
            while pending and pending[0][0] < cutoff:
                conn = heappop(pending)[2]
                if conn.done:
                    continue
                if conn.last_ns < cutoff:
                    stale.append(conn)
                else:
                    heappush(pending, (conn.last_ns, conn.stream, conn))
        stale.sort(key=_stream_of)
        return stale

    def retire(self, now: int, finalize) -> None:
        """Finalize the closed connections past their grace (``past_grace``, in stream order)
        and keep a tombstone of each in their place."""
        tombs = self.tombs
        for conn in self.past_grace(now):
            rec = tomb.pack(conn)
            key = conn.key
            rkey = reverse_key(key)
            self.drop(conn, rkey)
            finalize(conn, None)
            tombs.put(key, rkey, rec)
            self.live += 1

    def tomb_of(self, key: bytes):
        """(tombstone key, direction) of a segment's key, or None."""
        return self.tombs.find(key, reverse_key(key))

    def _expire_tombs(self, now: int) -> None:
        self.live -= self.tombs.expire(now, self.linger_ns)

    def sweep(self, now: int, finalize) -> None:
        """Release connections closed longer than the linger time or idle past the timeout."""
        stale = []
        if not self.idle_timeout_ns:
            # only closed connections can go: look at those, not the whole table, and release
            # them in stream order (the table's order, as the full walk below)
            self._absorb()
            stale = self._rebuild(now, self.linger_ns)
            stale.sort(key=_stream_of)
            for conn in stale:
                self.drop(conn)
                finalize(conn, None)
            if self.tombs:
                self._expire_tombs(now)
            return
        for conn, d in self.conns.values():
            if d:
                continue
            idle = now - conn.last_ns
            if conn.end_reason != "open":
                if idle > self.linger_ns:
                    stale.append((conn, None))
            elif self.idle_timeout_ns and idle > self.idle_timeout_ns:
                stale.append((conn, "timeout"))
        for conn, reason in stale:
            if reason:
                self.expired += 1
            self.drop(conn)
            finalize(conn, reason)
        self._absorb()
        self._rebuild(now, self.linger_ns)     # only drops the finalized ones: none is past the linger
        if self.tombs:
            self._expire_tombs(now)

    def close_all(self, finalize) -> None:
        """End of input: finalize every connection still in the table and empty it."""
        for conn, d in list(self.conns.values()):
            if d == 0:
                finalize(conn, None)
        self.conns.clear()
        self.closed = []
        self.pending = []
        self.tombs.clear()
        self.live = 0


class Verdict:
    """What the engine concluded about one packet: its connection and direction (index of
    the sending flow), the analysis bits (analysis.py), relative SEQ/ACK, the calculated
    window, the RTT of the segment this ACK acknowledges (-1: none) and that segment's frame
    (0: none), bytes in flight (-1: not computed), the duplicate-ACK number and the frame it
    duplicates, and the reason per flag name (a dict only when ``Config.explain``).

    ``Analyzer.feed`` refills one record per analyzer: read it before the next ``feed``."""

    FIELDS = (("conn", "object", None), ("direction", "long long", 0), ("analysis", "long long", 0),
              ("rel_seq", "long long", 0), ("rel_ack", "long long", 0), ("win", "long long", 0),
              ("ack_rtt", "long long", -1), ("acks_frame", "long long", 0), ("bytes_in_flight", "long long", -1),
              ("dupack_num", "long long", 0), ("dupack_frame", "long long", 0), ("reasons", "object", None))
    __slots__ = slots(FIELDS)
    __init__ = init(FIELDS)


# ---------------------------------------------------------------------- sequence analysis
# Wireshark's tcp_analyze_sequence_number() (epan/dissectors/packet-tcp.c), one function per
# rule, called by Analyzer._analyze in Wireshark's order.  Each rule reads the sender's flow
# ``fwd`` and the receiver's flow ``rev`` as they were before this segment (only the
# duplicate-ACK and ACKed-unseen-segment rules update their own fields), returns its
# analysis bit (0 when it does not fire) and, when ``reasons`` is a dict (Config.explain),
# adds its explanation under its flag name, written by its ``_why_*`` function from the
# values it tested.

@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment)
@cython.returns(cython.longlong)
def _rule_zero_window_probe(fwd, rev, seg, reasons):
    """zero_window_probe: one byte at the next expected seq while the peer's window is 0."""
    if seg.paylen == 1 and seg.seq == fwd.nextseq and rev.window == 0:
        if reasons is not None:
            reasons["zero_window_probe"] = "1 byte at the next expected seq while the peer's window is 0"
        return _ZWP
    return 0


@cython.cfunc
@cython.locals(seg=Segment)
@cython.returns(cython.longlong)
def _rule_zero_window(seg, reasons):
    """zero_window: an advertised window of 0 on a segment without SYN, FIN or RST."""
    if seg.win == 0 and not seg.flags & _SFR:
        if reasons is not None:
            reasons["zero_window"] = "advertised window 0 on a segment without SYN/FIN/RST"
        return _ZW
    return 0


@cython.cfunc
@cython.locals(fwd=Flow, seg=Segment, nextseq=cython.longlong)
@cython.returns(cython.longlong)
def _rule_lost_segment(fwd, seg, reasons):
    """lost_segment: the segment starts beyond the next expected seq (bytes not captured);
    bytes in flight are unknown from here until the peer ACKs again."""
    nextseq = fwd.nextseq
    if nextseq and seg.seq != nextseq and seq_gt(seg.seq, nextseq) and not seg.flags & _RST:
        fwd.valid_bif = False
        if reasons is not None:
            reasons["lost_segment"] = _why_lost_segment(seg.seq, nextseq, fwd.base_seq)
        return _LOST
    return 0


def _why_lost_segment(seq: int, nextseq: int, base: int) -> str:
    return (f"seq {seq_dist(seq, base)} is beyond the next expected {seq_dist(nextseq, base)}: "
            f"{seq_dist(seq, nextseq)} bytes not captured")


@cython.cfunc
@cython.locals(fwd=Flow, seg=Segment, seglen=cython.longlong)
@cython.returns(cython.longlong)
def _rule_keep_alive(fwd, seg, reasons):
    """keep_alive: at most one byte, no SYN/FIN/RST, at the next expected seq - 1."""
    seglen = seg.paylen
    if seglen <= 1 and not seg.flags & _SFR and seg.seq == seq_add(fwd.nextseq, -1):
        if reasons is not None:
            reasons["keep_alive"] = f"{seglen} byte(s) at next expected seq - 1"
        return _KA
    return 0


@cython.cfunc
@cython.locals(fwd=Flow, seg=Segment)
@cython.returns(cython.longlong)
def _rule_window_update(fwd, seg, reasons):
    """window_update (on a segment that repeats seq and ack): a new non-zero window."""
    if seg.win and seg.win != fwd.window:
        if reasons is not None:
            reasons["window_update"] = f"no data, same seq/ack, window {fwd.window} -> {seg.win}"
        return _WUPD
    return 0


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment, end=cython.longlong, sc=cython.longlong, edge=cython.longlong)
@cython.returns(cython.longlong)
def _rule_window_full(fwd, rev, seg, end, reasons):
    """window_full: data that ends (``end``) exactly at the receiver's right edge (its last
    ACK plus its window, scaled once the handshake is over)."""
    if seg.paylen and not seg.flags & _SFR and rev.win_scale != -1:
        sc = 0 if (rev.is_first_ack or rev.win_scale == -2) else rev.win_scale
        edge = rev.lastack + (rev.window << sc)
        if seq_dist(end, edge) == 0:
            if reasons is not None:
                reasons["window_full"] = ("segment ends exactly at the receiver's right edge "
                                          f"(ack + window = {seq_dist(edge, fwd.base_seq)})")
            return _WFULL
    return 0


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment)
@cython.returns(cython.longlong)
def _rule_keep_alive_ack(fwd, rev, seg, reasons):
    """keep_alive_ack (on a segment that repeats seq and ack): the same non-zero window
    after the peer's keep-alive."""
    if seg.win and seg.win == fwd.window and rev.lastsegflags & _KA:
        if reasons is not None:
            reasons["keep_alive_ack"] = "repeats the last ACK and window after the peer's keep-alive"
        return _KA_ACK
    return 0


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment, v=Verdict, dn=cython.longlong)
@cython.returns(cython.longlong)
def _rule_duplicate_ack(fwd, rev, seg, v, reasons):
    """duplicate_ack (on a segment that repeats seq and ack): the same non-zero window, not
    after a keep-alive.  Counts the run (``v.dupack_num``) and names the frame it repeats."""
    if seg.win and seg.win == fwd.window and not rev.lastsegflags & _KA:
        dn = fwd.dupacknum
        dn = 1 if dn == -1 else dn + 1
        fwd.dupacknum = dn
        v.dupack_num = dn
        v.dupack_frame = fwd.lastnondupack
        if reasons is not None:
            reasons["duplicate_ack"] = _why_duplicate_ack(dn, fwd.lastnondupack, seg.win)
        return _DUPACK
    return 0


def _why_duplicate_ack(dn: int, frame: int, win: int) -> str:
    return f"#{dn} of frame {frame}: no data, same seq, ack and window ({win}) as the previous segment"


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment)
@cython.returns(cython.longlong)
def _rule_zero_window_probe_ack(fwd, rev, seg, reasons):
    """zero_window_probe_ack (on a segment that repeats seq and ack): the zero window again
    after the peer's zero-window probe."""
    if seg.win == 0 and fwd.window == 0 and rev.lastsegflags & _ZWP:
        if reasons is not None:
            reasons["zero_window_probe_ack"] = "repeats the zero window after the peer's zero-window probe"
        return _ZWP_ACK
    return 0


@cython.cfunc
@cython.locals(rev=Flow, seg=Segment, ack=cython.longlong, rmax=cython.longlong, rnext=cython.longlong,
               bits=cython.longlong)
@cython.returns(cython.longlong)
def _rule_ack_lost_segment(rev, seg, reasons):
    """ack_lost_segment: the ACK covers data the other direction was never seen sending.

    One flag per gap: when the mark already sits at the peer's next expected seq (the peer
    sent nothing new since), only the first such ACK is flagged until the peer sends again
    (its dupacknum is reset then).  This reproduces tshark 4.0.17 on every oracle file
    (README, "Agreement with Wireshark")."""
    rmax = rev.maxseqtobeacked
    ack = seg.ack
    if not (rmax and seg.flags & _ACK and ack != rmax and seq_gt(ack, rmax)):
        return 0
    bits = 0
    rnext = rev.nextseq
    if rmax != rnext or rev.dupacknum == 0:
        bits = _ACKLOST
        if reasons is not None:
            reasons["ack_lost_segment"] = (f"ACKs {seq_dist(ack, rev.base_seq)}, beyond the highest seq "
                                           f"{seq_dist(rmax, rev.base_seq)} seen from the peer")
    if rmax == rnext:
        rev.dupacknum = -1
    rev.maxseqtobeacked = rnext
    return bits


@cython.cfunc
@cython.locals(conn=Conn, fwd=Flow, rev=Flow, seg=Segment, fast_ns=cython.longlong, ooo_ns=cython.longlong,
               seq=cython.longlong, seglen=cython.longlong, nextseq=cython.longlong, rla=cython.longlong,
               end=cython.longlong, t=cython.longlong, thr=cython.longlong, not_adv=cython.bint)
@cython.returns(cython.longlong)
def _rule_retransmission(conn, fwd, rev, seg, fast_ns, ooo_ns, end, reasons):
    """The retransmission family, for a segment that occupies sequence space (its payload
    ends at ``end``) and is not a keep-alive, in Wireshark's order: spurious_retransmission (every byte already ACKed by
    the receiver), else, when it does not advance the next expected seq,
    fast_retransmission (answering 2+ duplicate ACKs within ``fast_ns``), out_of_order
    (within the iRTT, or ``ooo_ns`` without one, of the highest segment), or retransmission."""
    seq = seg.seq
    seglen = seg.paylen
    nextseq = fwd.nextseq
    not_adv = nextseq != 0 and seq != nextseq and seq_lt(seq, nextseq)
    if not_adv and seglen > 1 and seq_add(nextseq, -1) == seq:
        not_adv = False              # new data right after a zero-window-probe byte
    rla = rev.lastack
    if seglen and rla and seq != rla and not seq_gt(end, rla):   # from rla on, not ACKed yet
        if reasons is not None:
            reasons["spurious_retransmission"] = (f"every byte (up to {seq_dist(end, fwd.base_seq)}) was already "
                                                  f"ACKed by the receiver (ack {seq_dist(rla, fwd.base_seq)})")
        return _SPUR
    if not not_adv:
        return 0
    t = seg.ts_ns - rev.lastacktime
    if rev.dupacknum >= 2 and rla == seq and 0 <= t < fast_ns:
        if reasons is not None:
            reasons["fast_retransmission"] = _why_fast_retransmission(rev.dupacknum, seq_dist(seq, fwd.base_seq),
                                                                      t, fast_ns)
        return _FAST
    t = seg.ts_ns - fwd.nextseqtime
    thr = conn.irtt or ooo_ns
    if 0 <= t < thr and nextseq != seq_add(end, 1 if seg.flags & _SF else 0):
        if reasons is not None:
            reasons["out_of_order"] = _why_out_of_order(seq_dist(seq, fwd.base_seq), seq_dist(nextseq, fwd.base_seq),
                                                        t, "iRTT" if conn.irtt else "default", thr)
        return _OOO
    if reasons is not None:
        reasons["retransmission"] = (f"seq {seq_dist(seq, fwd.base_seq)} below the next expected "
                                     f"{seq_dist(nextseq, fwd.base_seq)}, {t / 1e6:.3f} ms after the highest segment")
    return _RTX


def _why_fast_retransmission(dupacks: int, rel_seq: int, t: int, fast_ns: int) -> str:
    return (f"{dupacks} duplicate ACKs asked for seq {rel_seq}; resent {t / 1e6:.1f} ms after "
            f"the peer's last segment < {fast_ns / 1e6:g} ms")


def _why_out_of_order(rel_seq: int, rel_next: int, t: int, which: str, thr: int) -> str:
    return (f"seq {rel_seq} below the next expected {rel_next}, arrived {t / 1e6:.3f} ms after "
            f"the highest segment < {which} {thr / 1e6:.3f} ms")


# ---------------------------------------------------------------------- per-flow concerns
# Book-keeping that follows the rules, one function per concern (as Zeek's TCP_Endpoint
# and TCPSessionAdapter keep UpdateWindow, update_last_seq ... apart).

@cython.cfunc
@cython.locals(fwd=Flow, seg=Segment, st=EndpointStats, tm=EndpointTimes, seglen=cython.longlong,
               now=cython.longlong)
def _count_sent(fwd, seg):
    """The sender's packet and byte counters and times."""
    st = fwd.stats
    tm = fwd.times
    now = seg.ts_ns
    if not st.pkts:
        tm.first_ns = now
    st.pkts += 1
    tm.last_ns = now
    seglen = seg.paylen
    if seglen:
        st.bytes += seglen
        st.data_pkts += 1
        tm.last_data_ns = now
        if seglen > st.max_seg:
            st.max_seg = seglen
        if seg.truncated:
            st.trunc += 1


@cython.cfunc
@cython.locals(conn=Conn, fwd=Flow, rev=Flow, seg=Segment, flags=cython.longlong, st=cython.longlong,
               now=cython.longlong)
def _relative_bases(conn, fwd, rev, seg):
    """Wireshark's relative sequence bases: the SYN's seq, else seq - 1; the other
    direction's from the first ACK (ack - 1).  An ACK makes the peer's bytes in flight
    computable again.  Also the iRTT: first pure ACK after the latest pure SYN."""
    flags = seg.flags
    if not fwd.base_set:
        fwd.base_seq = seg.seq if flags & _SYN else seq_add(seg.seq, -1)
        fwd.base_set = True
    if flags & _ACK:
        if not rev.base_set:
            rev.base_seq = seq_add(seg.ack, -1)
            rev.base_set = True
        rev.valid_bif = True
    now = seg.ts_ns
    st = flags & (_SYN | _ACK)
    if st == _SYN:
        conn.handshake.ts_mru_syn = now
    elif st == _ACK and conn.handshake.ts_mru_syn and not conn.irtt:
        conn.irtt = now - conn.handshake.ts_mru_syn or 1


@cython.cfunc
@cython.locals(fwd=Flow, seg=Segment, aflags=cython.longlong, max_unacked=cython.longlong, end=cython.longlong,
               seq=cython.longlong, nxt=cython.longlong, flags=cython.longlong, nextseq=cython.longlong,
               r=cython.longlong, base=cython.longlong, e=Unacked)
@cython.returns(cython.longlong)
def _remember_sent(fwd, seg, aflags, max_unacked, end):
    """After the rules: keep the segment while its receiver has not ACKed it (at most
    ``max_unacked``), advance nextseq and maxseqtobeacked, remember window, ACK and flags.
    Returns the seq just past the segment (``end``, past its payload; SYN and FIN count one)."""
    flags = seg.flags
    seq = seg.seq
    nxt = end
    if seg.paylen or flags & _SF:
        if flags & _SF:
            nxt = seq_add(nxt, 1)
        segs = fwd.segs
        if len(segs) < max_unacked:
            if fwd.segs_disordered:
                base = fwd.base_seq
                r = seq_dist(seq, base)
                if r < fwd.seg_lo:
                    fwd.seg_lo = r
                r = seq_dist(nxt, base)
                if r > fwd.seg_hi:
                    fwd.seg_hi = r
            elif segs:
                e = segs[-1]
                if e.end != seq and seq_gt(e.end, seq):
                    fwd.segs_disordered = True
                    fwd.seg_lo, fwd.seg_hi = _span(segs, fwd.base_seq, seq, nxt)
            segs.append(_unacked(seq, nxt, seg.frame, seg.ts_ns, aflags & _RTX_FAMILY))
    nextseq = fwd.nextseq
    # a segment at the next expected seq that occupies sequence space (at most 64 KiB) moves it
    if not nextseq or (nxt != nextseq and (seq == nextseq or seq_gt(nxt, nextseq))):
        if not aflags & _ZWP:
            fwd.nextseq = nxt
            fwd.nextseqframe = seg.frame
            fwd.nextseqtime = seg.ts_ns
    if seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked:
        if not aflags & _ZWP:
            fwd.maxseqtobeacked = fwd.nextseq
    fwd.window = seg.win
    fwd.lastack = seg.ack
    fwd.lastacktime = seg.ts_ns
    fwd.lastsegflags = aflags
    if flags & _ACK and not flags & _SYN:
        fwd.is_first_ack = False
    return nxt


@cython.cfunc
@cython.locals(rev=Flow, seg=Segment, v=Verdict, e=Unacked, ack=cython.longlong, now=cython.longlong,
               karn=cython.longlong, k=cython.longlong, n=cython.longlong, dn=cython.longlong)
def _match_ack(rev, seg, v):
    """The ACK against the other direction's unacked segments (the caller checked there are
    some): drop what it covers, trim a partially ACKed one, and take the RTT of the segment
    it ACKs exactly (``v.ack_rtt``, ``v.acks_frame``; the caller reset them).  Karn's rule:
    no RTT sample from an ACK of retransmitted data.

    Segments in sequence order (the usual case) are walked here: the acked ones are a
    prefix.  Out of order, ``_ack_disordered`` looks at every one."""
    ack = seg.ack
    now = seg.ts_ns
    karn = 0
    if rev.segs_disordered:
        if seq_gt(ack, seq_add(rev.base_seq, rev.seg_lo)):
            karn = _ack_disordered(rev, ack, now, v)
    else:
        rsegs = rev.segs
        k = 0
        n = len(rsegs)
        while k < n:
            e = rsegs[k]
            dn = 0 if ack == e.end else seq_delta(ack, e.end)
            if dn < 0:                     # ack before this segment's end
                break
            if dn == 0 and v.ack_rtt < 0:
                v.ack_rtt = now - e.ts_ns
                v.acks_frame = e.frame
            karn |= e.karn
            k += 1
        if k:
            del rsegs[:k]
        if rsegs:
            e = rsegs[0]
            if ack != e.seq and seq_gt(ack, e.seq):
                e.seq = ack               # partial ACK: trim the acked part
    if v.ack_rtt >= 0 and not karn:
        _rtt_sample(rev, seg, v.ack_rtt)


@cython.cfunc
@cython.locals(rev=Flow, ack=cython.longlong, now=cython.longlong, v=Verdict, e=Unacked, karn=cython.longlong)
@cython.returns(cython.longlong)
def _ack_disordered(rev, ack, now, v):
    """_match_ack over segments out of sequence order (the ACK is past the lowest start):
    every one is looked at.  Returns the retransmission bits of the acked segments."""
    keep = []
    karn = 0
    for e in rev.segs:
        if ack == e.end:
            if v.ack_rtt < 0:
                v.ack_rtt = now - e.ts_ns
                v.acks_frame = e.frame
            karn |= e.karn
            continue
        if seq_gt(ack, e.seq) and not seq_gt(ack, e.end):
            e.seq = ack
            keep.append(e)
        elif seq_gt(e.end, ack):
            keep.append(e)
        else:
            karn |= e.karn
    rev.segs = keep
    if keep:
        _respan(rev)
    else:
        rev.segs_disordered = False
    return karn


@cython.cfunc
@cython.locals(rev=Flow, e=Unacked, base=cython.longlong, lo=cython.longlong, hi=cython.longlong,
               r=cython.longlong, prev=cython.longlong, ordered=cython.bint, i=cython.Py_ssize_t)
def _respan(rev):
    """The span of a disordered flow's unacked segments after an ACK removed some.  When
    the ones left are in sequence order again (each starts at or after the end of the one
    before), the list is an ordered one from here: ``_match_ack`` walks only its acked
    prefix again instead of every segment, and bytes in flight read its ends."""
    segs = rev.segs
    base = rev.base_seq
    e = segs[0]
    lo = seq_dist(e.seq, base)
    hi = prev = seq_dist(e.end, base)
    ordered = True
    for i in range(1, len(segs)):
        e = segs[i]
        r = seq_dist(e.seq, base)
        if r < prev:
            ordered = False
        if r < lo:
            lo = r
        r = seq_dist(e.end, base)
        if r > hi:
            hi = r
        prev = r
    if ordered:
        rev.segs_disordered = False
    else:
        rev.seg_lo = lo
        rev.seg_hi = hi


@cython.cfunc
@cython.locals(rev=Flow, seg=Segment, rtt=cython.longlong, tr=EndpointTrack)
def _rtt_sample(rev, seg, rtt):
    """One RTT sample of the acknowledged direction: count, sum, min, max (and the sample
    itself when the caller keeps them)."""
    tr = rev.track
    tr.rtt_n += 1
    tr.rtt_sum += rtt
    if tr.rtt_min < 0 or rtt < tr.rtt_min:
        tr.rtt_min = rtt
    if rtt > tr.rtt_max:
        tr.rtt_max = rtt
    if tr.rtt_samples is not None:
        tr.rtt_samples.append((seg.ts_ns, seg.frame, rtt))


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment, e=Unacked, f=Unacked, inflight=cython.longlong,
               right=cython.longlong, left=cython.longlong)
@cython.returns(cython.longlong)
def _bytes_in_flight(fwd, rev, seg):
    """Bytes in flight after a data segment (the caller checked there are unacked segments
    and they are computable), payload based: the span of the sender's unacked segments less
    the bytes the receiver SACKed (-1 when not computable)."""
    if fwd.segs_disordered:
        inflight = fwd.seg_hi - fwd.seg_lo
    else:
        segs = fwd.segs
        e = segs[0]
        f = segs[-1]
        inflight = seq_span(e.seq, f.end, fwd.base_seq)
    sack = rev.sack
    if sack:
        for left, right in sack:
            inflight -= seq_dist(right, left)
    if 0 < inflight < 2_000_000_000:
        return inflight - 1 if seg.flags & _SF else inflight
    return -1


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment, v=Verdict, ws=cython.longlong, flags=cython.longlong)
def _verdict_numbers(fwd, rev, seg, v):
    """The verdict's numbers for the packets list: relative SEQ and ACK, the calculated
    window (scaled once the handshake is over) and bytes in flight (-1: none)."""
    flags = seg.flags
    if flags & _ACK:
        v.rel_seq, v.rel_ack = seq_dist2(seg.seq, fwd.base_seq, seg.ack, rev.base_seq)
    else:
        v.rel_seq = seq_dist(seg.seq, fwd.base_seq)
        v.rel_ack = 0
    ws = fwd.win_scale
    v.win = seg.win << ws if ws > 0 and not flags & _SYN else seg.win
    if seg.paylen and fwd.valid_bif and fwd.segs:
        v.bytes_in_flight = _bytes_in_flight(fwd, rev, seg)
    else:
        v.bytes_in_flight = -1


@cython.cfunc
@cython.locals(fwd=Flow, seg=Segment)
def _remember_sack(fwd, seg):
    """The SACK blocks the sender reported last (cleared by an ACK without them)."""
    if seg.sack is not None:
        fwd.sack = seg.sack
    elif fwd.sack is not None and seg.flags & _ACK:
        fwd.sack = None


@cython.cfunc
@cython.locals(conn=Conn, d=cython.longlong, fwd=Flow, rev=Flow, seg=Segment, aflags=cython.longlong)
def _count_analysis(conn, d, fwd, rev, seg, aflags):
    """The sender's counter of each analysis flag; a zero window opens an episode, and a
    probe of it counts in the receiver's open one whatever its length: 1 byte at the next
    seq (zero_window_probe, as BSD and Windows send them) or 0 or 1 byte one below it
    (keep_alive: Linux probes a zero window that way, ``tcp_xmit_probe_skb``); an ACKed
    unseen segment is a content gap in the peer's data for Zeek."""
    if aflags & _RTX_FAMILY:
        fwd.stats.rtx += 1
        fwd.stats.rtx_bytes += seg.paylen
        if aflags & _FAST:
            fwd.stats.fast_rtx += 1
        if aflags & _SPUR:
            fwd.stats.spurious += 1
    if aflags & _OOO:
        fwd.stats.ooo += 1
    if aflags & _LOST:
        fwd.stats.lost += 1
    if aflags & _ACKLOST:
        fwd.stats.ack_lost += 1
        conn.zeek.gap((d ^ 1) == conn.ztrack.zorig)
    if aflags & _DUPACK:
        fwd.stats.dupacks += 1
    if aflags & _ZW:
        fwd.stats.zero_win += 1
        if fwd.track.zw_open is None:
            fwd.track.zw_open = [seg.frame, seg.ts_ns, 0]
    if aflags & _ZWP:
        fwd.stats.zwp += 1
    if aflags & _KA:
        fwd.stats.keepalive += 1
    if aflags & (_ZWP | _KA) and rev.track.zw_open is not None:
        rev.track.zw_open[2] += 1
    if aflags & _WFULL:
        fwd.stats.win_full += 1
    if aflags & _WUPD:
        fwd.stats.win_update += 1


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment, lastack=cython.longlong, window=cython.longlong,
               max_events=cython.longlong, sc=cython.longlong, edge=cython.longlong, old=cython.longlong,
               ds=cython.longlong, da=cython.longlong, older=cython.bint, tr=EndpointTrack)
def _window_edge(fwd, rev, seg, lastack, window, max_events):
    """Right edge of the window the sender advertises, ack + scaled window (RFC 9293
    §3.8.6), when ACK or window changed from the sender's previous segment (``lastack``,
    ``window``): a retreat by at least one scaled unit is a window shrink.

    Only a segment its receiver takes as a window update counts (RFC 9293 §3.10.7.4: SND.WL1
    < SEG.SEQ, or SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK; like Linux's
    tcp_may_update_window, also an ACK beyond SND.WL2, so a retransmission carrying a newer
    ACK is not taken for an old segment). Its receiver ignores the window of a segment whose
    SEQ and ACK are both at or before the last update's, one of them before: a retransmission
    or keep-alive with the same ACK, or, when its ACK is below one already seen, a segment
    sent before that one that arrived after it (reordered on the way). A segment with the
    same SEQ and ACK but an older timestamp (TSval, RFC 7323) was sent before the update too
    (an ACK overtaken by a window update; PAWS, RFC 7323 §5.3, discards it). Such a segment
    neither moves the edge nor counts as a shrink; the retreat of a reordered one is kept
    apart (``reorders``)."""
    flags = seg.flags
    if not (seg.ack != lastack or seg.win != window) or not flags & _ACK or flags & _SFR or fwd.win_scale == -1:
        return
    sc = fwd.win_scale if fwd.win_scale > 0 else 0
    edge = seq_dist(seg.ack, rev.base_seq) + (seg.win << sc)
    tr = fwd.track
    old = tr.edge
    if old >= 0:
        da = 0 if seg.ack == tr.wl2 else seq_delta(seg.ack, tr.wl2)
        if da <= 0:                  # an ACK beyond SND.WL2 is an update: the common case ends here
            ds = 0 if seg.seq == tr.wl1 else seq_delta(seg.seq, tr.wl1)
            if ds <= 0:
                older = da < 0 or (ds == 0 and seg.tsval >= 0 and tr.wl_ts >= 0 and seq_lt(seg.tsval, tr.wl_ts))
                if ds or da or older:
                    if older and edge < old and old - edge >= (1 << sc) and old - edge < _HALF:
                        tr.reorder_bytes += old - edge
                        if tr.reorders is None:
                            tr.reorders = []
                        if len(tr.reorders) < max_events:
                            tr.reorders.append((seg.frame, seg.ts_ns, old - edge))
                    return
    tr.wl1 = seg.seq
    tr.wl2 = seg.ack
    tr.wl_ts = seg.tsval
    if old >= 0 and edge < old and old - edge >= (1 << sc) and old - edge < _HALF:
        tr.shrink_bytes += old - edge
        if tr.shrinks is None:
            tr.shrinks = []
        if len(tr.shrinks) < max_events:
            tr.shrinks.append((seg.frame, seg.ts_ns, old - edge))
    if edge > old:
        tr.edge = edge


# Where a sender's time goes (EndpointPerf): after each data segment it sends and each ACK
# it receives, the state it is in until the next one; the time between two such segments goes
# to the state that held it.  An ACK that leaves the state as it was counts nothing: the time
# of a state is counted when it ends (``_perf_acked``) or at the next data segment.
_P_NONE = cython.declare(cython.longlong, 0)
_P_APP = cython.declare(cython.longlong, 1)    # nothing unacknowledged, or the send buffer ran dry
_P_ZWND = cython.declare(cython.longlong, 2)   # the peer's window is zero
_P_LOSS = cython.declare(cython.longlong, 3)   # a loss is being repaired
_P_RWND = cython.declare(cython.longlong, 4)   # bytes in flight within one MSS of the peer's window
_P_CWND = cython.declare(cython.longlong, 5)   # in flight below the window: the sender's own limit
_RTO_HALF_RTTS = cython.declare(cython.longlong, 3)    # a silence over 3/2 RTT ended by a retransmission
# a wait for the peer's data longer than this is idle time (a protocol timer, a person), not
# the time an application took to answer: no think time
_THINK_MAX_NS = cython.declare(cython.longlong, 10_000_000_000)
# a segment is short (the send buffer ran dry) when it is below the MSS by more than TCP
# options can take (40 bytes): a full segment with timestamps is 12 bytes below it
_TCP_OPTIONS_MAX = cython.declare(cython.longlong, 40)


@cython.cfunc
@cython.locals(w=cython.longlong, sc=cython.longlong)
@cython.returns(cython.longlong)
def _perf_wnd(w, sc):
    """The window ``w`` a peer advertised, scaled by its shift ``sc`` (``Flow.win_scale``);
    half the sequence space when the scale is unknown (no handshake seen), so that the window
    cannot be judged."""
    return w << sc if sc > 0 else (_HALF if sc == -1 else w)


@cython.cfunc
@cython.locals(p=EndpointPerf, f=Flow, peer=Flow, mss=cython.longlong, w=cython.longlong, wnd=cython.longlong,
               la=cython.longlong, flight=cython.longlong)
@cython.returns(cython.longlong)
def _perf_limit(p, f, peer, mss):
    """What holds sender ``f`` back from here on (a ``_P_*`` state), judged from the ACK and
    window ``peer`` sent last (``mss``: the peer's MSS, else ``f``'s largest segment).  Keeps
    the largest flight and the largest window that held it, and ends loss recovery once the
    peer has ACKed past it."""
    if peer.is_first_ack:
        return _P_CWND
    w = peer.window
    if w == 0:
        return _P_ZWND
    la = peer.lastack
    flight = seq_dist(f.nextseq, la)
    if flight == 0 or flight >= _HALF:      # nothing beyond the peer's ACK
        wnd = _perf_wnd(w, peer.win_scale)
        return _P_RWND if wnd < mss else _P_APP     # a window under one MSS holds the sender too
    if p.recover >= 0:
        if seq_gt(p.recover, la):
            return _P_LOSS
        p.recover = -1
    if flight > p.flight_max:
        p.flight_max = flight
    wnd = _perf_wnd(w, peer.win_scale)
    if flight + mss >= wnd:
        if wnd > p.win_max:
            p.win_max = wnd
        return _P_RWND
    if p.short:
        return _P_APP
    return _P_CWND


@cython.cfunc
@cython.locals(f=Flow, peer=Flow, now=cython.longlong, aflags=cython.longlong, p=EndpointPerf, sp=PerfSplit,
               mss=cython.longlong, st=cython.longlong, old=cython.longlong, run=cython.longlong)
def _perf_acked(f, peer, now, aflags):
    """An ACK ``peer`` sent at ``now``, for sender ``f`` once it has sent data: duplicate
    ACKs start loss recovery; then the state from here (``_perf_limit``).  When that is
    another state, the time of the one that ends (``since`` to now) is pending until ``f``'s
    next data segment (``split.p_*``)."""
    p = f.perf
    if not p.first_frame:
        return
    if now < p.mark:
        p.since += now - p.mark             # the clock went back: the state's time so far stays
    p.mark = now
    if aflags & _DUPACK and p.recover < 0:
        p.recover = f.nextseq
    mss = peer.stats.mss
    if not mss:
        mss = f.stats.max_seg
    st = _perf_limit(p, f, peer, mss)
    if st != p.state:
        old = p.state
        run = now - p.since
        sp = p.split
        if old == _P_CWND:                  # the states that end at an ACK, most often first
            sp.p_cwnd += run
        elif old == _P_LOSS:
            sp.p_loss += run
        elif old == _P_APP:
            sp.p_app += run
        elif old == _P_RWND:
            sp.p_rwnd += run
        elif old == _P_ZWND:
            sp.p_zwnd += run
        p.pending = True
        p.since = now
        p.state = st


@cython.cfunc
@cython.locals(sp=PerfSplit, st=cython.longlong, run=cython.longlong)
def _perf_count(sp, st, run):
    """``run`` ns in state ``st`` count in the breakdown."""
    if st == _P_APP:                        # the states in the order of how often they hold
        sp.t_app += run
    elif st == _P_LOSS:
        sp.t_loss += run
    elif st == _P_CWND:
        sp.t_cwnd += run
    elif st == _P_RWND:
        sp.t_rwnd += run
    elif st == _P_ZWND:
        sp.t_zwnd += run


@cython.cfunc
@cython.locals(sp=PerfSplit)
def _perf_flush(sp):
    """The pending time of the states that ended since the last data segment counts."""
    if sp.p_cwnd:
        sp.t_cwnd += sp.p_cwnd
        sp.p_cwnd = 0
    if sp.p_loss:
        sp.t_loss += sp.p_loss
        sp.p_loss = 0
    if sp.p_app:
        sp.t_app += sp.p_app
        sp.p_app = 0
    if sp.p_rwnd:
        sp.t_rwnd += sp.p_rwnd
        sp.p_rwnd = 0
    if sp.p_zwnd:
        sp.t_zwnd += sp.p_zwnd
        sp.p_zwnd = 0


@cython.cfunc
@cython.locals(conn=Conn, fwd=Flow, p=EndpointPerf, seg=Segment, gap=cython.longlong, run=cython.longlong,
               rtt=cython.longlong, sp=PerfSplit)
@cython.returns(cython.longlong)
def _perf_rto(conn, fwd, p, seg, gap, run):
    """A retransmission after a silence of ``gap`` with data unacknowledged: longer than 3/2
    of the mean RTT (the handshake's before any sample) is a retransmission time-out, and the
    silence is loss recovery, whatever state it was counted in (the pending time but a zero
    window's, and ``run``, the time of the current state not counted yet).  Returns what is
    left of ``run`` to count: 0 when the silence was a time-out."""
    rtt = fwd.track.rtt_sum // fwd.track.rtt_n if fwd.track.rtt_n else conn.irtt
    if rtt <= 0 or 2 * gap <= _RTO_HALF_RTTS * rtt:
        return run
    p.rto_n += 1
    p.rto_ns += gap
    sp = p.split
    sp.p_loss += sp.p_rwnd + sp.p_cwnd + sp.p_app + run
    sp.p_rwnd = sp.p_cwnd = sp.p_app = 0
    p.pending = True
    if p.rto_waits is None:
        p.rto_waits = []
    if len(p.rto_waits) < K_MAX_EVENTS_PER_CONN:
        p.rto_waits.append((p.last_ns, seg.ts_ns, seg.frame))
    return 0


@cython.locals(p=EndpointPerf, lo=cython.longlong, hi=cython.longlong, a=cython.longlong, b=cython.longlong)
def _perf_unique(p, lo, hi):
    """Bytes [lo, hi) (relative) that do not follow the highest data: past it, a hole the
    capture has not seen (remembered, at most K_MAX_EVENTS_PER_CONN of them); below it, new
    only where they fill such a hole."""
    if lo > p.high_rel:
        if lo - p.high_rel >= _HALF:
            return                          # far outside the sequence space seen: not data of this flow
        if p.holes is None:
            p.holes = []
        if len(p.holes) < K_MAX_EVENTS_PER_CONN:
            p.holes.append([p.high_rel, lo])
        p.unique += hi - lo
        p.high_rel = hi
        return
    if hi > p.high_rel:
        p.unique += hi - p.high_rel
        p.high_rel = hi
    if p.holes:
        keep = []
        for h in p.holes:
            a = h[0] if h[0] > lo else lo
            b = h[1] if h[1] < hi else hi
            if a < b:
                p.unique += b - a
                if h[0] < a:
                    keep.append([h[0], a])
                if b < h[1]:
                    keep.append([b, h[1]])
            else:
                keep.append(h)
        p.holes = keep


@cython.cfunc
@cython.locals(conn=Conn, fwd=Flow, rev=Flow, seg=Segment, aflags=cython.longlong, p=EndpointPerf,
               now=cython.longlong, run=cython.longlong, gap=cython.longlong, rel=cython.longlong, t=cython.longlong,
               mss=cython.longlong, g=cython.longlong, n=cython.longlong, st=cython.longlong, tu=PerfTurns)
def _perf_sent(conn, fwd, rev, seg, aflags, now, n):
    """A data segment, for its sender's EndpointPerf: a time-out it ends, the wait since the
    peer's last data (a request/response turn), the gaps between segments sent while nothing
    else held the sender; then the time since the previous data segment counts (the time of
    the current state, ``run``, and the pending time of the states that ended: the transfer
    went on); the data's span, loss recovery, and the state from here (``_perf_limit``).
    ``now`` and ``n`` are the segment's time and payload length."""
    p = fwd.perf
    st = p.state
    if now < p.mark:
        p.since += now - p.mark             # the clock went back: the state's time so far stays
    run = now - p.since
    p.since = p.mark = now
    if not p.first_frame:
        p.first_ns = now
        p.first_frame = seg.frame
    elif aflags & _RTX_FAMILY:
        if st != _P_ZWND and seq_gt(fwd.nextseq, rev.lastack):
            run = _perf_rto(conn, fwd, p, seg, now - p.last_ns, run)
    elif st == _P_CWND:
        gap = now - p.last_ns
        g = gap // 1000
        p.gap_n += 1
        p.gap_sum += gap
        p.gap_sq += g * g
    t = rev.perf.last_ns
    if t > p.last_ns and now - t <= _THINK_MAX_NS:
        t = now - t
        tu = p.turns
        tu.turn_n += 1
        tu.turn_sum += t
        if tu.turn_min < 0 or t < tu.turn_min:
            tu.turn_min = t
        if t > tu.turn_max:
            tu.turn_max = t
            tu.turn_max_frame = seg.frame
    if run > 0:
        _perf_count(p.split, st, run)
    if p.pending:
        _perf_flush(p.split)
        p.pending = False
    p.last_ns = now
    rel = seq_dist(seg.seq, fwd.base_seq)
    if rel == p.high_rel or p.high_rel < 0:
        p.unique += n
        p.high_rel = rel + n
    else:
        _perf_unique(p, rel, rel + n)
    mss = rev.stats.mss
    if not mss:
        mss = fwd.stats.max_seg
    p.short = n + _TCP_OPTIONS_MAX < mss
    if aflags & (_RTX | _FAST | _LOST | _OOO):     # below nextseq: resent, or a hole before the capture
        p.recover = fwd.nextseq
    st = _perf_limit(p, fwd, rev, mss)
    p.state = st
    if st == _P_RWND and not p.rwnd_frame:
        p.rwnd_frame = seg.frame


@cython.cfunc
@cython.locals(conn=Conn, d=cython.longlong, fwd=Flow, seg=Segment, nextseq=cython.longlong,
               nxt=cython.longlong, zrtx=cython.bint, flags=cython.longlong, z=ZeekConn, is_orig=cython.bint)
def _zeek_history(conn, d, fwd, seg, nextseq, nxt):
    """Zeek's history letters and conn_state for the segment.  Zeek's retransmission rule
    (update_last_seq): payload that brings no new sequence space past ``nextseq`` (the
    sender's next expected seq before this segment).  Once the letters of an ordinary
    segment can no longer change (``zsettled``), only control, zero-window and
    retransmitted segments are passed on."""
    flags = seg.flags
    zrtx = seg.paylen > 0 and nextseq != 0 and seq_delta(nextseq, nxt) >= 0
    if flags & _SFR or not seg.win or zrtx or not fwd.zsettled:
        z = conn.zeek
        is_orig = d == conn.ztrack.zorig
        fwd.zsettled = zeek_update(z, is_orig, flags, seq_dist(seg.seq, fwd.base_seq), seg.paylen, seg.win, zrtx)


@cython.cfunc
@cython.locals(conn=Conn, fwd=Flow, rev=Flow, seg=Segment, v=Verdict, fast_ns=cython.longlong,
               ooo_ns=cython.longlong, end=cython.longlong, aflags=cython.longlong, seglen=cython.longlong,
               ack=cython.longlong, win=cython.longlong)
@cython.returns(cython.longlong)
def _analyze(conn, fwd, rev, seg, v, reasons, fast_ns, ooo_ns, end):
    """Wireshark's tcp_analyze_sequence_number(): the rules above in its order; returns the
    analysis bits (``v.dupack_num``/``v.dupack_frame`` are set here).  ``end`` is the seq just
    past the segment's payload.

    A rule is called only when the segment passes the first, cheapest part of its own test
    (its length, its window, a sequence or ACK number that differs from the flow's: a
    keep-alive's seq is the next expected one less one), so an ordinary in-order segment
    calls only the rules that can fire on it; the rule still makes its whole test.  The four
    rules on a segment that repeats seq and ack are told apart by the window (a new one:
    window update; zero again: zero-window-probe ACK; the same: keep-alive ACK after the
    peer's keep-alive, else duplicate ACK)."""
    v.dupack_num = 0
    v.dupack_frame = 0
    seglen = seg.paylen
    ack = seg.ack
    win = seg.win
    aflags = 0
    if seglen == 1:
        aflags = _rule_zero_window_probe(fwd, rev, seg, reasons)
    if not aflags:
        if win == 0:
            aflags = _rule_zero_window(seg, reasons)
        if seg.seq != fwd.nextseq:
            aflags |= _rule_lost_segment(fwd, seg, reasons)
            if seglen <= 1:
                aflags |= _rule_keep_alive(fwd, seg, reasons)
        if seglen:
            aflags |= _rule_window_full(fwd, rev, seg, end, reasons)
        elif ack == fwd.lastack and seg.seq == fwd.nextseq and not seg.flags & _SFR:
            # no data and no SYN/FIN/RST, at the next expected seq, with the ACK of the
            # previous segment: the segment repeats seq and ack
            if win != fwd.window:
                aflags |= _rule_window_update(fwd, seg, reasons)
            elif not win:
                aflags |= _rule_zero_window_probe_ack(fwd, rev, seg, reasons)
            elif rev.lastsegflags & _KA:
                aflags |= _rule_keep_alive_ack(fwd, rev, seg, reasons)
            else:
                aflags |= _rule_duplicate_ack(fwd, rev, seg, v, reasons)
    if ack != fwd.lastack:
        # Wireshark's finished_fwd: an ACK that moves ends this direction's duplicate-ACK run
        fwd.lastnondupack = seg.frame
        fwd.dupacknum = 0
    if ack != rev.maxseqtobeacked:
        aflags |= _rule_ack_lost_segment(rev, seg, reasons)
    if (seglen or seg.flags & _SF) and not aflags & _KA:
        aflags |= _rule_retransmission(conn, fwd, rev, seg, fast_ns, ooo_ns, end, reasons)
    return aflags


class Analyzer:
    """Feed segments in capture order; each ``feed`` returns the packet's ``Verdict``; call ``finish()``.

    ``detail=False`` leaves out the verdict's numbers for the packets list (relative SEQ and
    ACK, calculated window, bytes in flight: they stay 0, 0, 0 and -1), for a caller that
    reads only a verdict's connection, direction, analysis bits and ACK RTT.
    ``diagnose=False`` leaves out what the connection summaries need to say what limited a
    transfer (``EndpointPerf``: throughput, the time breakdown, think times), for a caller that
    reports only the verdicts (``packets``, ``compare``)."""

    # set by __init__ below; C fields when compiled, so feed() neither boxes the results nor
    # looks its attributes up in a dictionary (no __slots__: one analyzer per run)
    FIELDS = (("cfg", "object"), ("table", "FlowTable"), ("done", "object"), ("on_conn_done", "object"),
              ("on_sweep", "object"), ("tw", "object"), ("tw_enter", "object"), ("syn_in_time_wait", "object"),
              ("rst_no_conn", "object"), ("first_ns", "object"), ("explain", "bint"), ("keep_timeline", "bint"),
              ("keep_rtt", "bint"), ("max_unacked", "long long"), ("segments", "long long"),
              ("last_ns", "long long"), ("ts_backwards", "long long"), ("next_sweep", "long long"),
              ("cur_frame", "long long"), ("verdict", "Verdict"), ("fast_rtx_ns", "long long"),
              ("ooo_ns", "long long"), ("max_events", "long long"), ("detail", "bint"), ("diagnose", "bint"))

    def __init__(self, config: Config | None = None, *, keep_timeline: bool = True, keep_rtt: bool = False,
                 on_conn_done=None, detail: bool = True, diagnose: bool = True):
        self.cfg = config or Config()
        self.explain = self.cfg.explain
        self.max_unacked = self.cfg.max_unacked
        self.fast_rtx_ns = self.cfg.fast_rtx_ns
        self.ooo_ns = self.cfg.ooo_ns
        self.max_events = self.cfg.max_events
        cfg = self.cfg
        self.table = FlowTable(cfg.max_connections, cfg.linger_ns, cfg.idle_timeout_ns, keep_timeline,
                               getattr(cfg, "grace_ns", K_GRACE_NS))
        self.done: list[Conn] = []
        self.on_conn_done = on_conn_done
        self.keep_timeline = keep_timeline
        self.keep_rtt = keep_rtt
        self.detail = detail
        self.diagnose = diagnose
        self.segments = 0
        self.first_ns = None
        self.last_ns = 0
        self.ts_backwards = 0
        self.next_sweep = 0             # the earlier of the table's next_linger and next_retire
        # TIME_WAIT bookkeeping per host, bounded by cfg.max_tw_hosts (TwTable)
        self.tw = TwTable(self.cfg.max_tw_hosts, self.cfg.msl_ns * 2)
        self.tw_enter = self.tw.enter   # --jobs workers log the calls instead (parallel.py)
        self.on_sweep = None            # on_sweep(True) before a sweep, (False) after (parallel.py)
        self.syn_in_time_wait = SynRecords()      # (stream, frame, ts_ns) of each SYN in TIME_WAIT
        self.rst_no_conn: list[tuple[int, int]] = []
        # frame of the packet being processed, set by the pipeline before it feeds a segment or
        # moves the clock for one (--jobs workers order what happens with it, parallel.py)
        self.cur_frame = 0
        #: the verdict on the last segment fed (refilled by every feed)
        self.verdict = Verdict()

    # ------------------------------------------------------------------ connections
    # the flow table's counters, under the names the report and the findings read
    @property
    def streams(self) -> int:
        return self.table.streams

    @property
    def live(self) -> int:
        return self.table.live

    @property
    def live_peak(self) -> int:
        return self.table.live_peak

    @property
    def evicted(self) -> int:
        return self.table.evicted

    @property
    def expired(self) -> int:
        return self.table.expired

    @property
    def late_packets(self) -> int:
        """Segments that came for a connection already summarised (analysed against its tombstone)."""
        return self.table.late

    @property
    def previous(self):
        """The connection the last SYN that opened a new stream on a known 4-tuple replaced."""
        return self.table.previous

    def _finalize(self, conn: Conn, reason: str | None = None) -> None:
        """Summarise a connection that will get no more packets and release its per-segment state."""
        if conn.done:
            return
        conn.done = True
        if reason:
            conn.end_reason = reason
        for f in conn.flows:
            f.segs = []
            f.segs_disordered = False
            if f.track.zw_open is not None:
                self._close_zero_window(conn, f, None, None)
        if self.on_conn_done is not None:
            # handed over, not kept: the caller summarises it and memory stays O(live connections)
            self.on_conn_done(conn)
        else:
            self.done.append(conn)

    # ------------------------------------------------------------------ the hot path
    @cython.locals(table=FlowTable)
    def advance(self, now: int) -> None:
        """Move the capture clock to ``now`` (a packet's timestamp): count timestamps going
        backwards, every K_RETIRE_EVERY_NS retire closed connections past their grace, and
        every K_SWEEP_EVERY_NS release tombstones past the linger time and expired connections.
        ``feed`` does this for every segment; ``--jobs`` workers call it for the segments
        another worker analyses, so all of them sweep at the same instants."""
        if now < self.last_ns:
            self.ts_backwards += 1
            self.table.disorder = True      # a closed connection's last_ns may go back (FlowTable.retire)
            return
        self.last_ns = now
        if now >= self.next_sweep:
            table = self.table
            if self.first_ns is None:
                self.first_ns = now
                table.next_linger = now + K_SWEEP_EVERY_NS
                table.next_retire = now + K_RETIRE_EVERY_NS
            else:
                linger = now >= table.next_linger
                retire = now >= table.next_retire and (table.closed or table.pending)
                if linger and (table.conns or table.tombs) or retire:
                    hook = self.on_sweep
                    if hook is not None:
                        hook(True)
                    if linger:
                        table.sweep(now, self._finalize)
                    if retire:
                        table.retire(now, self._finalize)
                    if hook is not None:
                        hook(False)
                if linger:
                    table.next_linger = now + K_SWEEP_EVERY_NS
                if now >= table.next_retire:
                    table.next_retire = now + K_RETIRE_EVERY_NS
            self.next_sweep = min(table.next_linger, table.next_retire)

    def checksum_error(self, seg: Segment) -> None:
        """A segment left out for its bad TCP checksum (``--checksums drop``): Zeek drops it
        after looking up its connection and marks the sender's side of the history with
        'C'/'c' (logarithmically: the 1st, 10th, 100th ... time).  The clock moves; a
        segment whose connection is not open yet opens none."""
        self.advance(seg.ts_ns)
        ent = self.table.conns.get(_seg_key(seg))
        if ent is not None:
            conn, d = ent
            conn.zeek.checksum_error(d == conn.ztrack.zorig)

    @cython.locals(seg=Segment, table=FlowTable, conn=Conn, v=Verdict, fwd=Flow, rev=Flow, now=cython.longlong,
                   flags=cython.longlong, aflags=cython.longlong, d=cython.longlong, lastack=cython.longlong,
                   window=cython.longlong, nextseq=cython.longlong, nxt=cython.longlong, ws=cython.longlong,
                   state=list, end=cython.longlong, seglen=cython.longlong, win=cython.longlong, flows=tuple)
    def feed(self, seg: Segment) -> Verdict:
        """Analyse one segment; returns its verdict (``self.verdict``, valid until the next feed)."""
        now = seg.ts_ns
        if now < self.last_ns or now >= self.next_sweep:
            self.advance(now)
        else:
            self.last_ns = now
        self.segments += 1
        flags = seg.flags
        key = _seg_key(seg)
        aflags = 0
        table = self.table
        ent = table.conns.get(key)
        if ent is None:
            if table.tombs:
                ent = table.tomb_of(key)
                if ent is not None:
                    v = self._late(seg, ent[0], ent[1])
                    if v is not None:
                        return v
                    aflags = _REUSED            # a new SYN on the 4-tuple: a new stream
            conn = table.open(seg, key, self._finalize)
            d = 0
        else:
            conn, d = ent
            if flags & _SYN:
                if not flags & _ACK:
                    if table.reused(conn, d, seg):
                        self._reuse(conn, d, seg)
                        conn = table.reopen(conn, seg, key, self._finalize)
                        d = 0
                        aflags = _REUSED
                elif table.rebased(conn, d, seg):
                    aflags = _REUSED
        flows = conn.flows
        fwd = flows[d]
        rev = flows[d ^ 1]
        if now >= conn.ztrack.zdeadline or now - conn.last_ns >= _ZEEK_LINGER:
            self._zeek_timers(conn, d, seg)
        conn.last_ns = now
        conn.last_frame = seg.frame
        conn.frames += 1
        _count_sent(fwd, seg)
        if flags & _SYN or not conn.irtt or not (fwd.base_set and rev.base_set and rev.valid_bif):
            _relative_bases(conn, fwd, rev, seg)
        if flags & _SYN:
            _on_syn(fwd, rev, seg)
            if flags & _ACK and conn.handshake.ts_mru_syn:
                fwd.perf.syn_gap = now - conn.handshake.ts_mru_syn

        # the sender's state before this segment, for the concerns that compare with it
        nextseq = fwd.nextseq
        lastack = fwd.lastack
        window = fwd.window
        v = self.verdict
        reasons = {} if self.explain else None
        seglen = seg.paylen
        win = seg.win
        end = seq_add(seg.seq, seglen) if seglen else seg.seq     # past the payload
        aflags |= _analyze(conn, fwd, rev, seg, v, reasons, self.fast_rtx_ns, self.ooo_ns, end)
        nxt = _remember_sent(fwd, seg, aflags, self.max_unacked, end)
        # Each concern below is called when its first test passes: an ordinary segment skips
        # those with nothing to do (no unacked data to match, no SACK, no change of window).
        v.ack_rtt = -1
        v.acks_frame = 0
        if rev.segs:
            _match_ack(rev, seg, v)
        if self.diagnose:
            if seglen:
                _perf_sent(conn, fwd, rev, seg, aflags, now, seglen)
            if flags & _ACK:
                _perf_acked(rev, fwd, now, aflags)      # an ACK for data the peer sent
        if self.detail:
            _verdict_numbers(fwd, rev, seg, v)
        if seg.sack is not None or fwd.sack is not None:
            _remember_sack(fwd, seg)
        if aflags:
            _count_analysis(conn, d, fwd, rev, seg, aflags)
        if win and fwd.track.zw_open is not None and not flags & _RST:
            self._close_zero_window(conn, fwd, seg.frame, now)
        if seg.ack != lastack or win != window:
            _window_edge(fwd, rev, seg, lastack, window, self.max_events)
        # Endpoint state machines (RFC 9293); an ordinary segment between two ESTABLISHED
        # endpoints changes neither state.
        state = conn.state
        if flags & _SFR or state[0] is not _ESTABLISHED or state[1] is not _ESTABLISHED:
            _step_states(self, conn, d, fwd, rev, seg, nxt, aflags)
        # Zeek's letters: a control or zero-window segment, data that did not move the
        # sender's next seq (a retransmission to Zeek), or a flow whose letters may change
        if flags & _SFR or not win or not fwd.zsettled or (seglen and fwd.nextseq == nextseq):
            _zeek_history(conn, d, fwd, seg, nextseq, nxt)

        v.conn = conn
        v.direction = d
        v.analysis = aflags
        v.reasons = reasons
        return v

    @cython.locals(seg=Segment, table=FlowTable, conn=Conn, v=Verdict, fwd=Flow, rev=Flow, now=cython.longlong,
                   flags=cython.longlong, aflags=cython.longlong, d=cython.longlong, nxt=cython.longlong,
                   end=cython.longlong)
    def _late(self, seg, tkey: bytes, d: int):
        """A segment for a connection already summarised: its verdict from the tombstone under
        ``tkey`` (``d``: the sender's direction), by the same rules as ``feed`` on a minimal
        connection rebuilt from it, whose sequence state goes back into the tombstone.  It
        counts in ``late_packets``, not in the connection's record, and the connection it
        returns in the verdict is that minimal one (``done`` is set: the detectors skip it).
        A pure SYN with a new ISN returns None: the tombstone is gone and the caller opens a
        new connection on the 4-tuple (port reuse, as for a connection kept whole)."""
        table = self.table
        rec = table.tombs[tkey]
        conn = _ghost(tkey)
        tomb.load(rec, conn, Unacked)
        flags = seg.flags
        now = seg.ts_ns
        aflags = 0
        if flags & _SYN:
            if not flags & _ACK:
                if table.reused(conn, d, seg):
                    self._reuse(conn, d, seg)
                    del table.tombs[tkey]
                    table.live -= 1
                    return None
            elif table.rebased(conn, d, seg):
                aflags = _REUSED
        table.late += 1
        fwd = conn.flows[d]
        rev = conn.flows[d ^ 1]
        conn.last_ns = now
        conn.last_frame = seg.frame
        if flags & _SYN or not conn.irtt or not (fwd.base_set and rev.base_set and rev.valid_bif):
            _relative_bases(conn, fwd, rev, seg)
        if flags & _SYN:
            _on_syn(fwd, rev, seg)
        v = self.verdict
        reasons = {} if self.explain else None
        end = seq_add(seg.seq, seg.paylen) if seg.paylen else seg.seq     # past the payload
        aflags |= _analyze(conn, fwd, rev, seg, v, reasons, self.fast_rtx_ns, self.ooo_ns, end)
        nxt = _remember_sent(fwd, seg, aflags, self.max_unacked, end)
        v.ack_rtt = -1
        v.acks_frame = 0
        if rev.segs:
            _match_ack(rev, seg, v)
        if self.detail:
            _verdict_numbers(fwd, rev, seg, v)
        if seg.sack is not None or fwd.sack is not None:
            _remember_sack(fwd, seg)
        _step_states(self, conn, d, fwd, rev, seg, nxt, aflags)
        table.tombs[tkey] = tomb.pack(conn)
        v.conn = conn
        v.direction = d
        v.analysis = aflags
        v.reasons = reasons
        return v

    # ------------------------------------------------------------------ helpers (not per data packet)
    # the TIME_WAIT table's view, under the names the findings and the live view use
    @property
    def tw_hosts(self) -> dict[bytes, TwHost]:
        return self.tw.hosts

    @property
    def tw_folded_hosts(self) -> int:
        return self.tw.folded_hosts

    @property
    def tw_folded_periods(self) -> int:
        return self.tw.folded_periods

    @property
    def tw_starts(self) -> dict[bytes, array]:
        return self.tw.starts

    @property
    def tw_port_starts(self) -> dict[tuple[bytes, int], array]:
        return self.tw.port_starts

    def time_wait_now(self, now: int | None = None) -> list[tuple[int, bytes]]:
        """(connections in TIME_WAIT at ``now``, host) for every tracked host with any."""
        return self.tw.active_now(self.last_ns if now is None else now)

    def _close_zero_window(self, conn: Conn, f: Flow, frame, now) -> None:
        start_frame, start_ns, probes = f.track.zw_open
        f.track.zw_open = None
        if f.track.zw_episodes is None:
            f.track.zw_episodes = []
        if len(f.track.zw_episodes) < self.cfg.max_events:
            f.track.zw_episodes.append((start_frame, start_ns, frame, now, probes))

    def _zeek_timers(self, conn: Conn, d: int, seg: Segment) -> None:
        """Zeek's attempt timer (an attempt still unanswered 5 s after it began) and its close
        and reset delays (5 s quiet after the connection ended): either removes the Zeek
        connection, so this segment starts a new Zeek record."""
        now = seg.ts_ns
        split = False
        if now >= conn.ztrack.zdeadline:
            conn.ztrack.zdeadline = _NEVER
            split = conn.zeek.attempt()
        if not split and now - conn.last_ns >= K_ZEEK_LINGER_NS and conn.zeek.expirable():
            split = True
        if split:
            self._zeek_split(conn, d, seg)

    def _zeek_split(self, conn: Conn, d: int, seg: Segment) -> None:
        """Start a new Zeek record inside this stream (Wireshark keeps one stream; Zeek would log
        a new connection).  Its originator follows Zeek's rule for a first packet."""
        if conn.ztrack.zeek_done is None:
            conn.ztrack.zeek_done = []
        start = conn.ztrack.zeek_done[-1][3] if conn.ztrack.zeek_done else conn.first_ns
        conn.ztrack.zeek_done.append((conn.zeek, conn.ztrack.zorig, start, conn.last_ns))
        flags = seg.flags
        flip = not (flags & SYN and not flags & ACK) and seg.sport < 1024 <= seg.dport
        conn.ztrack.zorig = d ^ 1 if flip else d
        conn.zeek = ZeekConn(orig_is_first_sender=not flip)
        conn.ztrack.zdeadline = seg.ts_ns + K_ZEEK_LINGER_NS
        conn.flows[0].zsettled = conn.flows[1].zsettled = False

    def _reuse(self, old: Conn, d: int, seg: Segment) -> None:
        """A new SYN on the 4-tuple of ``old``: note it when an endpoint is still in TIME_WAIT."""
        self.table.previous = old
        tw = old.ending.tw_start
        if tw is not None and old.state[tw[0]] is _TIME_WAIT and seg.ts_ns - tw[1] < 2 * self.cfg.msl_ns:
            self.syn_in_time_wait.append((old.stream, seg.frame, seg.ts_ns))

    # ------------------------------------------------------------------ end of input
    def finish(self) -> list[Conn]:
        """Summarise every connection still in the table; returns all connections in stream order
        (an empty list when ``on_conn_done`` is set: each connection was handed to it instead)."""
        self.table.close_all(self._finalize)
        self.done.sort(key=lambda c: c.stream)
        return self.done


# ---------------------------------------------------------------------- endpoint states
# The RFC 9293 state machines and the control segments, one function per concern, called by
# ``Analyzer.feed`` for a control segment or while an endpoint is not ESTABLISHED (C
# functions when compiled: no Python call per segment).

@cython.cfunc
@cython.locals(a=Analyzer, conn=Conn, d=cython.longlong, fwd=Flow, rev=Flow, seg=Segment, nxt=cython.longlong,
               aflags=cython.longlong, flags=cython.longlong, r=cython.longlong, acks_fin=cython.bint,
               evs=cython.longlong, state=list, res=tuple)
def _step_states(a, conn, d, fwd, rev, seg, nxt, aflags):
    """Both endpoints' RFC 9293 states after a segment ``d`` sent (``nxt``: the seq just
    past it): transitions, anomalies, the end of the connection, data after a FIN."""
    flags = seg.flags
    if flags & _SFR:
        _control(conn, d, fwd, seg, nxt)
    state = conn.state
    acks_fin = rev.times.fin_next >= 0 and flags & _ACK and seq_delta(seg.ack, rev.times.fin_next) >= 0
    evs = event_codes(flags, acks_fin)
    s0 = state[d]
    res = step_code(s0, evs >> 4)
    s1 = res[0]
    if s1 is not s0:
        _transition(a, conn, d, s0, s1, seg, True)
    elif res[1] is not None:
        _anomaly(a, conn, d, res[1], seg)
    r = d ^ 1
    s0 = state[r]
    res = step_code(s0, evs & 15)
    s1 = res[0]
    if s1 is not s0:
        _transition(a, conn, r, s0, s1, seg, False)
    elif res[1] is not None:
        _anomaly(a, conn, r, res[1], seg)
    s0 = state[0]
    s1 = state[1]
    if (conn.end_reason == "open" and (s0 is _CLOSED or s0 is _TIME_WAIT)       # both endpoints done
            and (s1 is _CLOSED or s1 is _TIME_WAIT)):
        conn.end_reason = "rst" if (conn.flows[0].stats.rsts or conn.flows[1].stats.rsts) else "fin"
        a.table.closed.append(conn)
    if seg.paylen and fwd.times.fin_next >= 0 and not aflags & _RTX_FAMILY and seq_gt(nxt, fwd.times.fin_next):
        fwd.stats.data_after_fin += 1


@cython.cfunc
@cython.locals(fwd=Flow, rev=Flow, seg=Segment, ws=cython.longlong)
def _on_syn(fwd, rev, seg):
    """Window scale and MSS from a SYN or SYN/ACK (Wireshark's verify_tcp_window_scaling)."""
    ws = seg.wscale
    if ws >= 0:
        fwd.win_scale = ws if ws <= 14 else 14
    if fwd.win_scale == -1:
        fwd.win_scale = -2
        rev.win_scale = -2
    elif seg.flags & _ACK and rev.win_scale == -2:
        fwd.win_scale = -2
    if seg.mss > 0:
        fwd.stats.mss = seg.mss


@cython.cfunc
@cython.locals(conn=Conn, d=cython.longlong, fwd=Flow, seg=Segment, nxt=cython.longlong, flags=cython.longlong,
               now=cython.longlong, inflight=cython.longlong, e=Unacked)
def _control(conn, d, fwd, seg, nxt):
    """The sender's SYN, FIN and RST: counters, first times, who closed or reset first."""
    flags = seg.flags
    now = seg.ts_ns
    if flags & _SYN:
        fwd.stats.syns += 1
        if not flags & _ACK and d == conn.orig:
            if conn.handshake.syn_times is None:
                conn.handshake.syn_times = []
                conn.handshake.syn_frame = seg.frame
            if len(conn.handshake.syn_times) < 64:
                conn.handshake.syn_times.append(now)
    if flags & _FIN:
        fwd.stats.fins += 1
        if fwd.times.fin_next < 0:
            fwd.times.fin_next = nxt
            fwd.times.fin_frame = seg.frame
            fwd.times.fin_ns = now
            if conn.ending.close_initiator < 0:
                conn.ending.close_initiator = d
    if flags & _RST:
        fwd.stats.rsts += 1
        if not fwd.times.rst_frame:
            fwd.times.rst_frame = seg.frame
            fwd.times.rst_ns = now
        if conn.ending.reset_by < 0:
            conn.ending.reset_by = d
            conn.ending.reset_state = (conn.state[d], conn.state[d ^ 1])
            # Data the resetting side had sent that was never acknowledged is discarded.
            inflight = 0
            for e in fwd.segs:
                inflight += seq_dist(e.end, e.seq)
            if fwd.segs:
                conn.ending.reset_inflight = inflight


@cython.cfunc
@cython.locals(a=Analyzer, conn=Conn, ep=cython.longlong, seg=Segment, sent=cython.bint)
def _transition(a, conn, ep, s0, s1, seg, sent):
    """Endpoint ``ep`` moves from ``s0`` to ``s1`` (on the timeline when one is kept)."""
    conn.state[ep] = s1
    if conn.timeline is not None:
        conn.timeline[ep].append((seg.ts_ns, seg.frame, s0, s1, seg.flags, seg.paylen, sent))
    if s1 is _TIME_WAIT:
        conn.ending.tw_start = (ep, seg.ts_ns, seg.frame)
        a.tw_enter(conn.addr[ep], conn.port[ep], seg.ts_ns, seg.frame)


@cython.cfunc
@cython.locals(a=Analyzer, conn=Conn, ep=cython.longlong, seg=Segment)
def _anomaly(a, conn, ep, name, seg):
    """A segment endpoint ``ep``'s state machine has no transition for (at most max_events kept)."""
    if conn.anomalies is None:
        conn.anomalies = []
    if len(conn.anomalies) < a.max_events:
        conn.anomalies.append((seg.frame, seg.ts_ns, ep, name))


@cython.locals(conn=Conn, n=cython.Py_ssize_t)
def _ghost(key: bytes) -> Conn:
    """A minimal closed connection for a late packet: its key, addresses and ports from the
    tombstone's key (direction 0), fresh flows and records; ``tomb.load`` fills the rest."""
    conn = Conn.__new__(Conn)
    n = (len(key) - 4) >> 1
    conn.key = key
    conn.addr = (key[:n], key[n:2 * n])
    conn.port = _PORTS.unpack_from(key, 2 * n)
    conn.flows = (Flow(), Flow())
    conn.orig = 0
    conn.handshake_seen = False
    conn.first_ns = conn.last_ns = 0
    conn.first_frame = conn.last_frame = 0
    conn.irtt = 0
    conn.inferred = None
    conn.timeline = None
    conn.anomalies = None
    conn.zeek = None
    conn.ztrack = None
    conn.done = True
    conn.events = None
    conn.frames = 0
    conn.ending = ConnEnding()
    conn.handshake = HandshakeTrack()
    return conn


_NEVER = 1 << 62


def reused_ports_reason(flags: int) -> str:
    """Why a segment with these TCP flags carries ``reused_ports`` (the ``--explain`` text)."""
    if flags & ACK:
        return "a SYN/ACK with another ISN than the earlier segments of its direction: relative numbers restart here"
    return "a SYN with a new ISN on a 4-tuple already seen"


def addr_port(conn: Conn, ep: int) -> str:
    """``addr:port`` of endpoint ``ep`` of a connection (``[addr]:port`` for IPv6)."""
    return endpoint_str(addr_str(conn.addr[ep]), conn.port[ep])


# tombstones (tomb.py) read and write the records above: imported once they are defined
from tcpanalyze import tomb  # noqa: E402

# As plain Python, Analyzer.feed runs with the rules and concerns it calls written into it
# (tcpanalyze/_fuse.py): one Python call per segment instead of one per rule, concern and
# seq.py helper.  Compiled, they are C functions and this does not run.
_FUSE_ENTRIES = ("Analyzer.feed",)
_FUSE_INLINE = ("_seg_key", "_count_sent", "_relative_bases", "_on_syn", "_analyze", "_rule_zero_window_probe",
                "_rule_zero_window", "_rule_lost_segment", "_rule_keep_alive", "_rule_window_full",
                "_rule_window_update", "_rule_zero_window_probe_ack", "_rule_keep_alive_ack",
                "_rule_duplicate_ack", "_rule_ack_lost_segment", "_rule_retransmission", "_remember_sent",
                "_span", "_match_ack", "_ack_disordered", "_respan", "_rtt_sample", "_perf_sent",
                "_perf_wnd", "_perf_limit", "_perf_acked", "_perf_count", "_perf_flush", "_perf_rto", "_verdict_numbers", "_bytes_in_flight", "_remember_sack",
                "_count_analysis", "_window_edge", "_step_states", "_zeek_history", "seq_add", "seq_dist",
                "seq_dist2", "seq_span", "seq_delta", "seq_gt", "seq_lt")
if not cython.compiled:
    from tcpanalyze import _fuse
    _fuse.fuse(globals(), _FUSE_ENTRIES, _FUSE_INLINE, cache=True)
