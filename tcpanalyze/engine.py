"""The sans-IO analysis engine: decoded segments in, per-packet verdicts and a Report out.

Theory of operation
-------------------
``Analyzer.feed(seg)`` is called once per TCP segment, in capture order.  It

1. finds the connection by its directional 4-tuple (both directions are keys of one dict,
   so no sorting per packet) or creates one, numbering streams like Wireshark's
   ``tcp.stream``: 0-based, in order of first appearance, with a new stream when a pure SYN
   arrives on a known 4-tuple with a different ISN (flagged ``reused_ports``);
2. keeps Wireshark's relative sequence bases and window-scale bookkeeping (calculated
   window);
3. runs Wireshark's ``tcp_analyze_sequence_number`` rules in Wireshark's order (see
   ``_analyze`` below and the README section "Agreement with Wireshark");
4. steps both endpoints' RFC 9293 state machines (``state.py``) and the Zeek history
   (``zeek.py``), and keeps the per-connection counters the detectors need.

``feed`` returns the packet's ``Verdict``: one record per analyzer, refilled by every
call, so it is valid until the next ``feed`` (no result object is allocated per packet).  ``finish()`` summarises what is still open and
returns the ``Report``.  The clock is the packet timestamp; nothing here reads the wall
clock or does I/O.
"""
from __future__ import annotations

import struct
from array import array

try:
    import cython
except ImportError:  # plain Python without Cython installed: the declarations are no-ops
    from tcpanalyze import _cyshim as cython

from tcpanalyze import analysis as A
from tcpanalyze.model import ACK, FIN, RST, SYN, Segment, addr_str
from tcpanalyze.state import TcpState, classify, initial_states, step
from tcpanalyze.zeek import ZeekConn

MASK = 0xFFFFFFFF
HALF = 0x80000000

_ZWP = A.ZERO_WINDOW_PROBE
_ZW = A.ZERO_WINDOW
_LOST = A.LOST_SEGMENT
_KA = A.KEEP_ALIVE
_KA_ACK = A.KEEP_ALIVE_ACK
_WUPD = A.WINDOW_UPDATE
_WFULL = A.WINDOW_FULL
_DUPACK = A.DUPLICATE_ACK
_ACKLOST = A.ACK_LOST_SEGMENT
_ZWP_ACK = A.ZERO_WINDOW_PROBE_ACK
_RTX = A.RETRANSMISSION
_FAST = A.FAST_RETRANSMISSION
_SPUR = A.SPURIOUS_RETRANSMISSION
_OOO = A.OUT_OF_ORDER
_RTX_FAMILY = A.RETRANSMISSION_FAMILY
_SFR = SYN | FIN | RST
_SF = SYN | FIN

_ESTABLISHED = TcpState.ESTABLISHED
_TIME_WAIT = TcpState.TIME_WAIT
_CLOSED = TcpState.CLOSED
_LISTEN = TcpState.LISTEN

#: Default limits (issue 10; README "Resource bounds").
K_MAX_CONNECTIONS = 1_000_000
K_MAX_EVENTS_PER_CONN = 256
K_LINGER_NS = 120 * 1_000_000_000          # keep a closed connection this long for late packets
K_IDLE_TIMEOUT_NS = 0                       # expire an open connection idle this long (0: never, as Wireshark)
K_SWEEP_EVERY_NS = 10 * 1_000_000_000
K_MSL_S = 60.0
#: hosts whose TIME_WAIT periods are tracked one by one; beyond it the quietest are folded
#: into a count (a million clients each closing once must not cost a record each)
K_MAX_TW_HOSTS = 10_000
#: ports remembered per TIME_WAIT host; beyond it ports seen once (ephemeral) are folded
K_MAX_TW_PORTS = 64
#: Zeek removes a closed, reset or one-sided connection after 5 s without packets (its
#: tcp_close_delay / tcp_reset_delay / tcp_attempt_delay); Zeek-compatible records split there.
K_ZEEK_LINGER_NS = 5 * 1_000_000_000


class Config:
    """Knobs of the engine; every default is a named constant the CLI can override."""

    __slots__ = ("fast_rtx_ns", "ooo_ns", "max_unacked", "max_connections", "linger_ns",
                 "idle_timeout_ns", "msl_ns", "explain", "max_events", "max_tw_hosts")

    def __init__(self, *, fast_rtx_ns: int = A.K_FAST_RETRANSMIT_NS, ooo_ns: int = A.K_OOO_DEFAULT_NS,
                 max_unacked: int = A.K_MAX_UNACKED, max_connections: int = K_MAX_CONNECTIONS,
                 linger_ns: int = K_LINGER_NS, idle_timeout_ns: int = K_IDLE_TIMEOUT_NS,
                 msl_s: float = K_MSL_S, explain: bool = False, max_events: int = K_MAX_EVENTS_PER_CONN,
                 max_tw_hosts: int = K_MAX_TW_HOSTS):
        self.fast_rtx_ns = fast_rtx_ns
        self.ooo_ns = ooo_ns
        self.max_unacked = max_unacked
        self.max_connections = max_connections
        self.linger_ns = linger_ns
        self.idle_timeout_ns = idle_timeout_ns
        self.msl_ns = int(msl_s * 1e9)
        self.explain = explain
        self.max_events = max_events
        self.max_tw_hosts = max(1, max_tw_hosts)


class Unacked:
    """One segment its receiver has not acknowledged yet: raw ``seq`` and ``end`` (seq + len,
    + 1 for SYN/FIN), ``frame``, ``ts_ns``, and ``karn`` (the retransmission bits of its
    analysis flags: an ACK of it gives no RTT sample).  A C record when compiled (engine.pxd)."""

    __slots__ = ("seq", "end", "frame", "ts_ns", "karn")

    def __init__(self, seq: int, end: int, frame: int, ts_ns: int, karn: int):
        self.seq = seq
        self.end = end
        self.frame = frame
        self.ts_ns = ts_ns
        self.karn = karn

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


@cython.locals(e=Unacked)
def _span(segs: list, base: int, lo: int, hi: int) -> tuple[int, int]:
    """Lowest start and highest end, relative to ``base``, of ``segs`` and of [lo, hi).
    (A plain loop: Cython 3.3 evaluated ``min(... for e in segs)`` in ``feed`` with the
    wrong ``base``.)"""
    lo = (lo - base) & MASK
    hi = (hi - base) & MASK
    for e in segs:
        r = (e.seq - base) & MASK
        if r < lo:
            lo = r
        r = (e.end - base) & MASK
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


@cython.cfunc
@cython.locals(seg=Segment, b=cython.uchar[40], p=cython.p_uchar, n=cython.Py_ssize_t, i=cython.Py_ssize_t,
               sport=cython.longlong, dport=cython.longlong)
def _seg_key(seg):
    """flow_key() of a segment; compiled, built in a C buffer (one bytes object, no concatenation)."""
    if not cython.compiled:
        return flow_key(seg.src, seg.sport, seg.dst, seg.dport)
    src = seg.src
    dst = seg.dst
    n = len(src)
    if n > 16 or len(dst) != n:
        return flow_key(src, seg.sport, dst, seg.dport)
    p = src
    for i in range(n):
        b[i] = p[i]
    p = dst
    for i in range(n):
        b[n + i] = p[i]
    sport = seg.sport
    dport = seg.dport
    b[2 * n] = (sport >> 8) & 255
    b[2 * n + 1] = sport & 255
    b[2 * n + 2] = (dport >> 8) & 255
    b[2 * n + 3] = dport & 255
    return cython.cast(cython.p_char, b)[:2 * n + 4]


def _stream_of(conn: Conn) -> int:
    return conn.stream


class TwHost:
    """TIME_WAIT periods of one host: their start times (8 bytes each), a running count of
    those still within 2*MSL (``lo`` indexes the oldest), the peak, and the same per port."""

    __slots__ = ("starts", "lo", "peak", "peak_ns", "ports", "folded_ports", "first_frame")

    def __init__(self, first_frame: int = 0):
        self.first_frame = first_frame
        self.starts = array("q")
        self.lo = 0
        self.peak = 0
        self.peak_ns = 0
        self.ports: dict[int, array] = {}
        self.folded_ports = 0           # TIME_WAIT periods on ports folded away (seen once each)

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

    def enter(self, host: bytes, port: int, now: int, frame: int) -> None:
        hosts = self.hosts
        h = hosts.get(host)
        if h is None:
            if len(hosts) >= self.max_hosts:
                self._fold(now)
            h = hosts[host] = TwHost(frame)
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


class Flow:
    """One direction of a connection: what its sender has sent (Wireshark's ``tcp_flow_t``)."""

    __slots__ = (
        # relative numbering and window
        "base_seq", "base_set", "saw_syn", "win_scale", "window", "is_first_ack", "mss", "sack",
        # Wireshark's tcp_analyze_seq_flow_info_t
        "nextseq", "nextseqtime", "nextseqframe", "maxseqtobeacked", "lastack", "lastacktime",
        "lastnondupack", "dupacknum", "lastsegflags", "segs", "segs_disordered", "seg_lo", "seg_hi",
        "valid_bif",
        # counters for summaries and detectors
        "pkts", "bytes", "data_pkts", "first_ns", "last_ns", "rtx", "rtx_bytes", "fast_rtx", "spurious",
        "ooo", "lost", "ack_lost", "dupacks", "zero_win", "zwp", "keepalive", "win_full", "win_update",
        "syns", "fins", "rsts", "fin_next", "fin_frame", "fin_ns", "rst_frame", "rst_ns",
        "rtt_n", "rtt_sum", "rtt_min", "rtt_max", "rtt_samples",
        "edge", "shrinks", "shrink_bytes", "zw_open", "zw_episodes", "max_seg", "trunc",
        "data_after_fin", "last_data_ns", "zsettled",
    )

    def __init__(self):
        self.base_seq = 0
        self.base_set = False
        self.saw_syn = False
        self.win_scale = -1          # -1 unknown, -2 no scaling negotiated, else the shift
        self.window = -1             # last raw window sent (Wireshark starts at G_MAXUINT32)
        self.is_first_ack = True
        self.mss = 0
        self.sack = None
        self.nextseq = 0             # 0 means "not seen yet", as in Wireshark
        self.nextseqtime = 0
        self.nextseqframe = 0
        self.maxseqtobeacked = 0
        self.lastack = 0
        self.lastacktime = 0
        self.lastnondupack = 0
        self.dupacknum = 0
        self.lastsegflags = 0
        self.segs = []               # Unacked records, oldest first
        self.segs_disordered = False
        # while segs is disordered: lowest start and highest end over it, relative to base_seq
        # (so neither an ACK that acknowledges nothing nor bytes-in-flight walks the list)
        self.seg_lo = 0
        self.seg_hi = 0
        self.valid_bif = True
        self.pkts = self.bytes = self.data_pkts = 0
        self.first_ns = self.last_ns = 0
        self.rtx = self.rtx_bytes = self.fast_rtx = self.spurious = self.ooo = self.lost = self.ack_lost = 0
        self.dupacks = self.zero_win = self.zwp = self.keepalive = self.win_full = self.win_update = 0
        self.syns = self.fins = self.rsts = 0
        self.fin_next = -1
        self.fin_frame = self.fin_ns = self.rst_frame = self.rst_ns = 0
        self.rtt_n = self.rtt_sum = 0
        self.rtt_min = self.rtt_max = -1
        self.rtt_samples = None      # list of (ts_ns, frame, rtt_ns) when the caller keeps them
        self.edge = -1               # right edge of the receive window this sender advertised (unwrapped)
        self.shrinks = None          # list of (frame, ts_ns, retreat_bytes)
        self.shrink_bytes = 0
        self.zw_open = None          # [start_frame, start_ns, probes] while a zero-window episode is open
        self.zw_episodes = None      # list of (start_frame, start_ns, end_frame, end_ns, probes)
        self.max_seg = 0
        self.trunc = 0
        self.data_after_fin = 0
        self.last_data_ns = 0
        self.zsettled = False


class Conn:
    """A TCP connection as seen at the capture point: two flows and two endpoint states.

    Flow 0 is the sender of the first captured segment.  ``orig`` is the index of the
    originator (the flow that sent the first SYN; inferred when no SYN was seen).
    """

    __slots__ = ("stream", "key", "addr", "port", "flows", "orig", "handshake_seen", "first_ns", "last_ns",
                 "first_frame", "last_frame", "irtt", "ts_mru_syn", "syn_frame", "state", "inferred", "timeline",
                 "anomalies", "zeek", "done", "end_reason", "tw_start", "close_initiator", "reset_by",
                 "reset_state", "reset_inflight", "syn_times", "events", "frames", "zorig", "zeek_done", "zdeadline")

    def __init__(self, stream: int, seg: Segment, keep_timeline: bool):
        self.stream = stream
        self.key = flow_key(seg.src, seg.sport, seg.dst, seg.dport)
        self.addr = (seg.src, seg.dst)
        self.port = (seg.sport, seg.dport)
        self.flows = (Flow(), Flow())
        self.first_ns = self.last_ns = seg.ts_ns
        self.first_frame = self.last_frame = seg.frame
        self.irtt = 0
        self.ts_mru_syn = 0
        self.syn_frame = 0
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
        self.zorig = self.orig          # Zeek's originator for the current Zeek record
        self.zeek_done = None           # earlier Zeek records of this stream: (ZeekConn, zorig, first_ns, last_ns)
        self.zdeadline = seg.ts_ns + K_ZEEK_LINGER_NS   # Zeek's attempt timer for the current record
        self.done = False
        self.end_reason = "open"
        self.tw_start = None            # (endpoint index, ts_ns, frame) when it entered TIME_WAIT
        self.close_initiator = -1
        self.reset_by = -1
        self.reset_state = None
        self.reset_inflight = 0
        self.syn_times = None           # SYN retransmission times (ns) of the originator
        self.events = None              # other per-connection events for the detectors
        self.frames = 0


class Verdict:
    """What the engine concluded about one packet: its connection and direction (index of
    the sending flow), the analysis bits (analysis.py), relative SEQ/ACK, the calculated
    window, the RTT of the segment this ACK acknowledges (-1: none) and that segment's frame
    (0: none), bytes in flight (-1: not computed), the duplicate-ACK number and the frame it
    duplicates, and the reason per flag name (a dict only when ``Config.explain``).

    ``Analyzer.feed`` refills one record per analyzer: read it before the next ``feed``."""

    __slots__ = ("conn", "direction", "analysis", "rel_seq", "rel_ack", "win", "ack_rtt", "acks_frame",
                 "bytes_in_flight", "dupack_num", "dupack_frame", "reasons")

    def __init__(self):
        self.conn = None
        self.direction = 0
        self.analysis = 0
        self.rel_seq = 0
        self.rel_ack = 0
        self.win = 0
        self.ack_rtt = -1
        self.acks_frame = 0
        self.bytes_in_flight = -1
        self.dupack_num = 0
        self.dupack_frame = 0
        self.reasons = None


class Analyzer:
    """Feed segments in capture order; each ``feed`` returns the packet's ``Verdict``; call ``finish()``."""

    def __init__(self, config: Config | None = None, *, keep_timeline: bool = True, keep_rtt: bool = False,
                 on_conn_done=None):
        self.cfg = config or Config()
        self.explain = self.cfg.explain
        self.max_unacked = self.cfg.max_unacked
        self.table: dict[bytes, tuple[Conn, int]] = {}      # flow_key() -> (conn, direction)
        self.closed: list[Conn] = []    # connections that reached their end, until released
        self.streams = 0
        self.done: list[Conn] = []
        self.on_conn_done = on_conn_done
        self.keep_timeline = keep_timeline
        self.keep_rtt = keep_rtt
        self.segments = 0
        self.first_ns = None
        self.last_ns = 0
        self.ts_backwards = 0
        self.evicted = 0
        self.expired = 0
        self.next_sweep = 0
        self.live_peak = 0
        self.live = 0                   # connections in the table
        self.self_conns = 0             # connections from an endpoint to itself (one key)
        # TIME_WAIT bookkeeping per host, bounded by cfg.max_tw_hosts (TwTable)
        self.tw = TwTable(self.cfg.max_tw_hosts, self.cfg.msl_ns * 2)
        self.tw_enter = self.tw.enter   # --jobs workers log the calls instead (parallel.py)
        self.on_sweep = None            # on_sweep(True) before a sweep, (False) after (parallel.py)
        self.syn_in_time_wait: list[tuple[int, int, int]] = []   # (stream, frame, ts_ns)
        self.rst_no_conn: list[tuple[int, int]] = []
        # frame of the packet being processed, set by the pipeline before it feeds a segment or
        # moves the clock for one (--jobs workers order what happens with it, parallel.py)
        self.cur_frame = 0
        #: the verdict on the last segment fed (refilled by every feed)
        self.verdict = Verdict()

    # ------------------------------------------------------------------ connections
    def _new_conn(self, seg: Segment, key: bytes) -> Conn:
        conn = Conn(self.streams, seg, self.keep_timeline)
        self.streams += 1
        table = self.table
        table[key] = (conn, 0)
        rkey = reverse_key(key)
        if rkey != key:                # a connection from an endpoint to itself has one key
            table[rkey] = (conn, 1)
            self.live += 1
        else:
            self.live += 1
            self.self_conns += 1
        if self.live > self.cfg.max_connections:
            self._evict_oldest()
        if self.live > self.live_peak:
            self.live_peak = self.live
        return conn

    def _drop(self, conn: Conn) -> None:
        table = self.table
        key = conn.key
        rkey = reverse_key(key)
        dropped = False
        if table.get(key, (None,))[0] is conn:
            del table[key]
            dropped = True
        if rkey != key and table.get(rkey, (None,))[0] is conn:
            del table[rkey]
            dropped = True
        if dropped:
            self.live -= 1

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
            if f.zw_open is not None:
                self._close_zero_window(conn, f, None, None)
        if self.on_conn_done is not None:
            # handed over, not kept: the caller summarises it and memory stays O(live connections)
            self.on_conn_done(conn)
        else:
            self.done.append(conn)

    def _evict_oldest(self) -> None:
        """Over the live-connection bound: drop the least recently active connections (counted).

        One scan evicts the oldest tenth of the table (at least one), so the cost per new
        connection stays amortised O(log n) however long the flood lasts."""
        conns = [c for c, d in self.table.values() if d == 0]
        excess = self.live - self.cfg.max_connections
        k = max(excess, len(conns) // 10, 1)
        conns.sort(key=lambda c: c.last_ns)
        for oldest in conns[:k]:
            self.evicted += 1
            self._drop(oldest)
            self._finalize(oldest, "evicted" if oldest.end_reason == "open" else None)

    def _sweep(self, now: int) -> None:
        """Release connections closed longer than the linger time or idle past the timeout."""
        cfg = self.cfg
        stale = []
        if not cfg.idle_timeout_ns:
            # only closed connections can go: look at those, not the whole table, and release
            # them in stream order (the table's order, as the full walk below)
            keep = []
            for conn in self.closed:
                if conn.done:
                    continue
                if now - conn.last_ns > cfg.linger_ns:
                    stale.append(conn)
                else:
                    keep.append(conn)
            self.closed = keep
            stale.sort(key=_stream_of)
            for conn in stale:
                self._drop(conn)
                self._finalize(conn)
            return
        for conn, d in self.table.values():
            if d:
                continue
            idle = now - conn.last_ns
            if conn.end_reason != "open":
                if idle > cfg.linger_ns:
                    stale.append((conn, None))
            elif cfg.idle_timeout_ns and idle > cfg.idle_timeout_ns:
                stale.append((conn, "timeout"))
        for conn, reason in stale:
            if reason:
                self.expired += 1
            self._drop(conn)
            self._finalize(conn, reason)
        self.closed = [c for c in self.closed if not c.done]

    # ------------------------------------------------------------------ the hot path
    def advance(self, now: int) -> None:
        """Move the capture clock to ``now`` (a packet's timestamp): count timestamps going
        backwards, and every K_SWEEP_EVERY_NS release lingering and expired connections.
        ``feed`` does this for every segment; ``--jobs`` workers call it for the segments
        another worker analyses, so all of them sweep at the same instants."""
        if now < self.last_ns:
            self.ts_backwards += 1
            return
        self.last_ns = now
        if now >= self.next_sweep:
            if self.first_ns is None:
                self.first_ns = now
            elif self.table:
                hook = self.on_sweep
                if hook is not None:
                    hook(True)
                self._sweep(now)
                if hook is not None:
                    hook(False)
            self.next_sweep = now + K_SWEEP_EVERY_NS

    @cython.locals(seg=Segment, conn=Conn, v=Verdict, fwd=Flow, rev=Flow, f=Flow, e=Unacked,
                   now=cython.longlong, flags=cython.longlong, seq=cython.longlong,
                   ack=cython.longlong, seglen=cython.longlong, win=cython.longlong,
                   frame=cython.longlong, aflags=cython.longlong, d=cython.longlong,
                   nextseq_f=cython.longlong, lastack_f=cython.longlong, win_f=cython.longlong,
                   dupack_num=cython.longlong, dupack_frame=cython.longlong, rmax=cython.longlong,
                   rnext=cython.longlong, rla=cython.longlong, end=cython.longlong,
                   t=cython.longlong, t2=cython.longlong, thr=cython.longlong, nxt=cython.longlong,
                   ack_rtt=cython.longlong, acks_frame=cython.longlong, k=cython.longlong,
                   n=cython.longlong, karn=cython.longlong, dn=cython.longlong, sc=cython.longlong,
                   rb=cython.longlong, edge=cython.longlong, old=cython.longlong,
                   bif=cython.longlong, lo=cython.longlong, hi=cython.longlong,
                   inflight=cython.longlong, base=cython.longlong, r=cython.longlong,
                   dn2=cython.longlong, ws=cython.longlong, st=cython.longlong,
                   k_mask=cython.longlong, k_half=cython.longlong, k_ack=cython.longlong, k_syn=cython.longlong,
                   k_rst=cython.longlong, k_sf=cython.longlong, k_sfr=cython.longlong, k_rtxf=cython.longlong,
                   k_rtx=cython.longlong, k_fast=cython.longlong, k_spur=cython.longlong, k_ooo=cython.longlong,
                   k_lost=cython.longlong, k_acklost=cython.longlong, k_dupack=cython.longlong,
                   k_zw=cython.longlong, k_zwp=cython.longlong, k_zwp_ack=cython.longlong, k_ka=cython.longlong,
                   k_ka_ack=cython.longlong, k_wupd=cython.longlong, k_wfull=cython.longlong,
                   k_linger=cython.longlong)
    def feed(self, seg: Segment) -> Verdict:  # noqa: C901 - one function on purpose: it is the hot path
        """Analyse one segment; returns its verdict (``self.verdict``, valid until the next feed)."""
        # module constants as (C-typed, when compiled) locals: the compiled feed then does
        # its sequence arithmetic and flag tests in C instead of on Python ints
        k_mask = MASK; k_half = HALF; k_ack = ACK; k_syn = SYN; k_rst = RST  # noqa: E702
        k_sf = _SF; k_sfr = _SFR; k_rtxf = _RTX_FAMILY; k_rtx = _RTX; k_fast = _FAST  # noqa: E702
        k_spur = _SPUR; k_ooo = _OOO; k_lost = _LOST; k_acklost = _ACKLOST; k_dupack = _DUPACK  # noqa: E702
        k_zw = _ZW; k_zwp = _ZWP; k_zwp_ack = _ZWP_ACK; k_ka = _KA; k_ka_ack = _KA_ACK  # noqa: E702
        k_wupd = _WUPD; k_wfull = _WFULL; k_linger = K_ZEEK_LINGER_NS  # noqa: E702
        now = seg.ts_ns
        if now < self.last_ns or now >= self.next_sweep:
            self.advance(now)
        else:
            self.last_ns = now
        self.segments += 1
        flags = seg.flags
        seq = seg.seq
        ack = seg.ack
        seglen = seg.paylen
        win = seg.win
        frame = seg.frame
        key = _seg_key(seg)
        aflags = 0
        ent = self.table.get(key)
        if ent is None:
            conn = self._new_conn(seg, key)
            d = 0
        else:
            conn, d = ent
            # A new stream on a known 4-tuple: a pure SYN with another ISN (Wireshark 4.0 rule).
            if flags & (k_syn | k_ack) == k_syn:
                f = conn.flows[d]
                if f.base_set and seq != f.base_seq:
                    self._reuse(conn, d, seg)
                    self._drop(conn)
                    self._finalize(conn, None if conn.end_reason != "open" else "reused")
                    conn = self._new_conn(seg, key)
                    d = 0
                    aflags = A.REUSED_PORTS
        fwd = conn.flows[d]
        rev = conn.flows[d ^ 1]
        if now >= conn.zdeadline or now - conn.last_ns >= k_linger:
            self._zeek_timers(conn, d, seg)
        conn.last_ns = now
        conn.last_frame = frame
        conn.frames += 1
        if not fwd.pkts:
            fwd.first_ns = now
        fwd.pkts += 1
        fwd.last_ns = now
        if seglen:
            fwd.bytes += seglen
            fwd.data_pkts += 1
            fwd.last_data_ns = now
            if seglen > fwd.max_seg:
                fwd.max_seg = seglen
            if seg.truncated:
                fwd.trunc += 1

        # Relative sequence bases (Wireshark: SYN's seq, else seq-1; the reverse from the first ACK).
        if not fwd.base_set:
            fwd.base_seq = seq if flags & k_syn else (seq - 1) & k_mask
            fwd.base_set = True
        if flags & k_ack:
            if not rev.base_set:
                rev.base_seq = (ack - 1) & k_mask
                rev.base_set = True
            rev.valid_bif = True
        if flags & k_syn:
            self._on_syn(conn, d, fwd, rev, seg)
        st = flags & (k_syn | k_ack)
        if st == k_syn:
            conn.ts_mru_syn = now
        elif st == k_ack and conn.ts_mru_syn and not conn.irtt:
            conn.irtt = now - conn.ts_mru_syn or 1

        # ---- Wireshark tcp_analyze_sequence_number(), in its order -------------------
        ex = self.explain
        reasons = {} if ex else None
        nextseq_f = fwd.nextseq
        lastack_f = fwd.lastack
        win_f = fwd.window
        noctl = not flags & k_sfr
        dupack_num = 0
        dupack_frame = 0
        if seglen == 1 and seq == nextseq_f and rev.window == 0:
            aflags |= k_zwp
            if ex:
                reasons["zero_window_probe"] = "1 byte at the next expected seq while the peer's window is 0"
        else:
            if win == 0 and noctl:
                aflags |= k_zw
                if ex:
                    reasons["zero_window"] = "advertised window 0 on a segment without SYN/FIN/RST"
            if nextseq_f and 0 < ((seq - nextseq_f) & k_mask) < k_half and not flags & k_rst:
                aflags |= k_lost
                fwd.valid_bif = False
                if ex:
                    reasons["lost_segment"] = (f"seq {(seq - fwd.base_seq) & MASK} is beyond the next expected "
                                               f"{(nextseq_f - fwd.base_seq) & MASK}: {(seq - nextseq_f) & MASK} bytes not captured")
            if seglen <= 1 and noctl and seq == (nextseq_f - 1) & k_mask:
                aflags |= k_ka
                if ex:
                    reasons["keep_alive"] = f"{seglen} byte(s) at next expected seq - 1"
            same = seglen == 0 and noctl and seq == nextseq_f and ack == lastack_f
            if same and win and win != win_f:
                aflags |= k_wupd
                if ex:
                    reasons["window_update"] = f"no data, same seq/ack, window {fwd.window} -> {win}"
            if seglen and noctl and rev.win_scale != -1:
                sc = 0 if (rev.is_first_ack or rev.win_scale == -2) else rev.win_scale
                if (seq + seglen) & k_mask == (rev.lastack + (rev.window << sc)) & k_mask:
                    aflags |= k_wfull
                    if ex:
                        reasons["window_full"] = (f"segment ends exactly at the receiver's right edge "
                                                  f"(ack + window = {(rev.lastack + (rev.window << sc) - fwd.base_seq) & MASK})")
            if same and win:
                if win == win_f:
                    if rev.lastsegflags & k_ka:
                        aflags |= k_ka_ack
                        if ex:
                            reasons["keep_alive_ack"] = "repeats the last ACK and window after the peer's keep-alive"
                    else:
                        dn = fwd.dupacknum
                        dn = 1 if dn == -1 else dn + 1
                        fwd.dupacknum = dn
                        aflags |= k_dupack
                        dupack_num = dn
                        dupack_frame = fwd.lastnondupack
                        if ex:
                            reasons["duplicate_ack"] = (f"#{dn} of frame {dupack_frame}: no data, same seq, ack and "
                                                        f"window ({win}) as the previous segment")
            elif same and win == 0 and win_f == 0 and rev.lastsegflags & k_zwp:
                aflags |= k_zwp_ack
                if ex:
                    reasons["zero_window_probe_ack"] = "repeats the zero window after the peer's zero-window probe"

        # finished_fwd: an advancing ACK resets this direction's dup-ACK run.
        if ack != lastack_f:
            fwd.lastnondupack = frame
            fwd.dupacknum = 0

        # ACKed unseen segment: this ACK covers data the other direction was never seen sending.
        rmax = rev.maxseqtobeacked
        if rmax and flags & k_ack and 0 < ((ack - rmax) & k_mask) < k_half:
            # One flag per gap: when the mark already sits at the peer's next expected seq (the
            # peer sent nothing new since), only the first such ACK is flagged until the peer
            # sends again (its dupacknum is reset then).  This reproduces tshark 4.0.17 on
            # every oracle file (README, "Agreement with Wireshark").
            rnext = rev.nextseq
            if rmax != rnext or rev.dupacknum == 0:
                aflags |= k_acklost
                if ex:
                    reasons["ack_lost_segment"] = (f"ACKs {(ack - rev.base_seq) & MASK}, beyond the highest seq "
                                                   f"{(rmax - rev.base_seq) & MASK} seen from the peer")
            if rmax == rnext:
                rev.dupacknum = -1
            rev.maxseqtobeacked = rnext

        # Retransmission / fast retransmission / spurious / out-of-order.
        if (seglen or flags & k_sf) and not aflags & k_ka:
            not_adv = nextseq_f != 0 and 0 < ((nextseq_f - seq) & k_mask) < k_half
            if seglen > 1 and (nextseq_f - 1) & k_mask == seq:
                not_adv = False              # new data right after a zero-window-probe byte
            rla = rev.lastack
            end = (seq + seglen) & k_mask
            if seglen and rla and not (0 < ((end - rla) & k_mask) < k_half):
                aflags |= k_spur
                if ex:
                    reasons["spurious_retransmission"] = (f"every byte (up to {(end - fwd.base_seq) & MASK}) was already "
                                                          f"ACKed by the receiver (ack {(rla - fwd.base_seq) & MASK})")
            elif not_adv:
                cfg = self.cfg
                t = now - rev.lastacktime
                if rev.dupacknum >= 2 and rla == seq and 0 <= t < cfg.fast_rtx_ns:
                    aflags |= k_fast
                    if ex:
                        reasons["fast_retransmission"] = (f"{rev.dupacknum} duplicate ACKs asked for seq "
                                                          f"{(seq - fwd.base_seq) & MASK}; resent {t / 1e6:.1f} ms after "
                                                          f"the peer's last segment < {cfg.fast_rtx_ns / 1e6:g} ms")
                else:
                    t2 = now - fwd.nextseqtime
                    thr = conn.irtt or cfg.ooo_ns
                    if 0 <= t2 < thr and nextseq_f != (end + (1 if flags & k_sf else 0)) & k_mask:
                        aflags |= k_ooo
                        if ex:
                            reasons["out_of_order"] = (f"seq {(seq - fwd.base_seq) & MASK} below the next expected "
                                                       f"{(nextseq_f - fwd.base_seq) & MASK}, arrived {t2 / 1e6:.3f} ms after "
                                                       f"the highest segment < {'iRTT' if conn.irtt else 'default'} "
                                                       f"{thr / 1e6:.3f} ms")
                    else:
                        aflags |= k_rtx
                        if ex:
                            reasons["retransmission"] = (f"seq {(seq - fwd.base_seq) & MASK} below the next expected "
                                                         f"{(nextseq_f - fwd.base_seq) & MASK}, "
                                                         f"{t2 / 1e6:.3f} ms after the highest segment")

        # Book-keeping: remember the segment, advance nextseq / maxseqtobeacked.
        nxt = (seq + seglen) & k_mask
        if seglen or flags & k_sf:
            if flags & k_sf:
                nxt = (nxt + 1) & k_mask
            segs = fwd.segs
            if len(segs) < self.max_unacked:
                if fwd.segs_disordered:
                    base = fwd.base_seq
                    r = (seq - base) & k_mask
                    if r < fwd.seg_lo:
                        fwd.seg_lo = r
                    r = (nxt - base) & k_mask
                    if r > fwd.seg_hi:
                        fwd.seg_hi = r
                else:
                    if segs:
                        e = segs[-1]
                        if 0 < ((e.end - seq) & k_mask) < k_half:
                            fwd.segs_disordered = True
                            fwd.seg_lo, fwd.seg_hi = _span(segs, fwd.base_seq, seq, nxt)
                segs.append(_unacked(seq, nxt, frame, now, aflags & k_rtxf))
        if not nextseq_f or 0 < ((nxt - nextseq_f) & k_mask) < k_half:
            if not aflags & k_zwp:
                fwd.nextseq = nxt
                fwd.nextseqframe = frame
                fwd.nextseqtime = now
        if seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked:
            if not aflags & k_zwp:
                fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = win
        fwd.lastack = ack
        fwd.lastacktime = now
        fwd.lastsegflags = aflags
        if flags & k_ack and not flags & k_syn:
            fwd.is_first_ack = False

        # ACK matching against the other direction's unacked segments (RTT, removal).
        ack_rtt = -1
        acks_frame = 0
        rsegs = rev.segs
        if rsegs:
            if not rev.segs_disordered:
                k = 0
                n = len(rsegs)
                karn = 0
                while k < n:
                    e = rsegs[k]
                    dn = (ack - e.end) & k_mask
                    if dn >= k_half:           # ack before this segment's end
                        break
                    if dn == 0 and ack_rtt < 0:
                        ack_rtt = now - e.ts_ns
                        acks_frame = e.frame
                    karn |= e.karn
                    k += 1
                if k:
                    del rsegs[:k]
                if rsegs:
                    e = rsegs[0]
                    if 0 < ((ack - e.seq) & k_mask) < k_half:
                        e.seq = ack           # partial ACK: trim the acked part
            elif 0 < ((ack - rev.base_seq - rev.seg_lo) & k_mask) < k_half:
                # the ACK is past the lowest start: something is acked or trimmed
                keep = []
                karn = 0
                for e in rsegs:
                    if ack == e.end:
                        if ack_rtt < 0:
                            ack_rtt = now - e.ts_ns
                            acks_frame = e.frame
                        karn |= e.karn
                        continue
                    if 0 < ((ack - e.seq) & k_mask) < k_half and not (0 < ((ack - e.end) & k_mask) < k_half):
                        e.seq = ack
                        keep.append(e)
                    elif 0 < ((e.end - ack) & k_mask) < k_half:
                        keep.append(e)
                    else:
                        karn |= e.karn
                rev.segs = rsegs = keep
                if not keep:
                    rev.segs_disordered = False
                else:
                    e = keep[0]
                    rev.seg_lo, rev.seg_hi = _span(keep, rev.base_seq, e.seq, e.end)
            else:
                karn = 0
            if ack_rtt >= 0 and not karn:
                # Karn's rule: no RTT sample from an ACK of retransmitted data.
                rev.rtt_n += 1
                rev.rtt_sum += ack_rtt
                if rev.rtt_min < 0 or ack_rtt < rev.rtt_min:
                    rev.rtt_min = ack_rtt
                if ack_rtt > rev.rtt_max:
                    rev.rtt_max = ack_rtt
                if rev.rtt_samples is not None:
                    rev.rtt_samples.append((now, frame, ack_rtt))

        # Bytes in flight (payload based: span of the sender's unacked segments, less SACKed bytes).
        bif = -1
        if seglen and fwd.valid_bif:
            segs = fwd.segs
            if segs:
                base = fwd.base_seq
                if fwd.segs_disordered:
                    lo = fwd.seg_lo
                    hi = fwd.seg_hi
                else:
                    e = segs[0]
                    lo = (e.seq - base) & k_mask
                    e = segs[-1]
                    hi = (e.end - base) & k_mask
                inflight = hi - lo
                sack = rev.sack
                if sack:
                    for left, right in sack:
                        inflight -= (right - left) & k_mask
                if 0 < inflight < 2_000_000_000:
                    bif = inflight - 1 if flags & k_sf else inflight
        if seg.sack is not None:
            fwd.sack = seg.sack
        elif fwd.sack is not None and flags & k_ack:
            fwd.sack = None

        # ---- counters, window edge, zero-window episodes, state machines -------------
        if aflags:
            if aflags & k_rtxf:
                fwd.rtx += 1
                fwd.rtx_bytes += seglen
                if aflags & k_fast:
                    fwd.fast_rtx += 1
                if aflags & k_spur:
                    fwd.spurious += 1
            if aflags & k_ooo:
                fwd.ooo += 1
            if aflags & k_lost:
                fwd.lost += 1
            if aflags & k_acklost:
                fwd.ack_lost += 1
                conn.zeek.gap((d ^ 1) == conn.zorig)     # Zeek: a content gap in the peer's data
            if aflags & k_dupack:
                fwd.dupacks += 1
            if aflags & k_zw:
                fwd.zero_win += 1
                if fwd.zw_open is None:
                    fwd.zw_open = [frame, now, 0]
            if aflags & k_zwp:
                fwd.zwp += 1
                if rev.zw_open is not None:
                    rev.zw_open[2] += 1
            if aflags & k_ka:
                fwd.keepalive += 1
            if aflags & k_wfull:
                fwd.win_full += 1
            if aflags & k_wupd:
                fwd.win_update += 1
        if win and fwd.zw_open is not None and not flags & k_rst:
            self._close_zero_window(conn, fwd, frame, now)
        if (ack != lastack_f or win != win_f) and flags & k_ack and noctl and fwd.win_scale != -1:
            # Right edge of the window this sender advertises: ack + scaled window (RFC 9293 §3.8.6).
            sc = fwd.win_scale if fwd.win_scale > 0 else 0
            rb = rev.base_seq
            edge = ((ack - rb) & k_mask) + (win << sc)
            old = fwd.edge
            if old >= 0 and edge < old and old - edge >= (1 << sc) and old - edge < k_half:
                fwd.shrink_bytes += old - edge
                if fwd.shrinks is None:
                    fwd.shrinks = []
                if len(fwd.shrinks) < self.cfg.max_events:
                    fwd.shrinks.append((frame, now, old - edge))
            if edge > old:
                fwd.edge = edge

        # Endpoint state machines (RFC 9293) and Zeek history.  Fast path: an ordinary
        # segment between two ESTABLISHED endpoints changes neither state.
        state = conn.state
        if flags & k_sfr or state[0] is not _ESTABLISHED or state[1] is not _ESTABLISHED:
            if flags & k_sfr:
                self._control(conn, d, fwd, rev, seg, nxt)
            acks_fin = rev.fin_next >= 0 and flags & k_ack and ((ack - rev.fin_next) & k_mask) < k_half
            ev_s, ev_r = classify(flags, bool(acks_fin))
            s0 = state[d]
            s1, anom = step(s0, ev_s)
            if s1 is not s0:
                self._transition(conn, d, s0, s1, seg, True)
            elif anom is not None:
                self._anomaly(conn, d, anom, seg)
            r = d ^ 1
            s0 = state[r]
            s1, anom = step(s0, ev_r)
            if s1 is not s0:
                self._transition(conn, r, s0, s1, seg, False)
            elif anom is not None:
                self._anomaly(conn, r, anom, seg)
            if conn.end_reason == "open" and state[0] in _FINAL and state[1] in _FINAL:
                conn.end_reason = "rst" if (conn.flows[0].rsts or conn.flows[1].rsts) else "fin"
                self.closed.append(conn)
            if seglen and fwd.fin_next >= 0 and not aflags & k_rtxf \
                    and 0 < ((nxt - fwd.fin_next) & k_mask) < k_half:
                fwd.data_after_fin += 1
        # Zeek's retransmission rule (update_last_seq): payload that brings no new sequence space.
        zrtx = seglen > 0 and nextseq_f != 0 and ((nextseq_f - nxt) & k_mask) < k_half
        if flags & k_sfr or not win or zrtx or not fwd.zsettled:
            z = conn.zeek
            is_orig = d == conn.zorig
            z.update(is_orig, flags, (seq - fwd.base_seq) & k_mask, seglen, win, zrtx)
            fwd.zsettled = z.settled(is_orig)

        # ---- the verdict on this packet -----------------------------------------------
        v = self.verdict
        v.conn = conn
        v.direction = d
        v.analysis = aflags
        v.rel_seq = (seq - fwd.base_seq) & k_mask
        v.rel_ack = (ack - rev.base_seq) & k_mask if flags & k_ack else 0
        ws = fwd.win_scale
        v.win = win << ws if ws > 0 and not flags & k_syn else win
        v.ack_rtt = ack_rtt
        v.acks_frame = acks_frame
        v.bytes_in_flight = bif
        v.dupack_num = dupack_num
        v.dupack_frame = dupack_frame
        v.reasons = reasons
        return v

    # ------------------------------------------------------------------ helpers (not per data packet)
    def _on_syn(self, conn: Conn, d: int, fwd: Flow, rev: Flow, seg: Segment) -> None:
        """Window scale and MSS from a SYN or SYN/ACK (Wireshark's verify_tcp_window_scaling)."""
        ws = seg.wscale
        if ws >= 0:
            fwd.win_scale = ws if ws <= 14 else 14
        if fwd.win_scale == -1:
            fwd.win_scale = -2
            rev.win_scale = -2
        elif seg.flags & ACK and rev.win_scale == -2:
            fwd.win_scale = -2
        if seg.mss > 0:
            fwd.mss = seg.mss
        fwd.saw_syn = True

    def _control(self, conn: Conn, d: int, fwd: Flow, rev: Flow, seg: Segment, nxt: int) -> None:
        flags = seg.flags
        now = seg.ts_ns
        if flags & SYN:
            fwd.syns += 1
            if not flags & ACK and d == conn.orig:
                if conn.syn_times is None:
                    conn.syn_times = []
                    conn.syn_frame = seg.frame
                if len(conn.syn_times) < 64:
                    conn.syn_times.append(now)
        if flags & FIN:
            fwd.fins += 1
            if fwd.fin_next < 0:
                fwd.fin_next = nxt
                fwd.fin_frame = seg.frame
                fwd.fin_ns = now
                if conn.close_initiator < 0:
                    conn.close_initiator = d
        if flags & RST:
            fwd.rsts += 1
            if not fwd.rst_frame:
                fwd.rst_frame = seg.frame
                fwd.rst_ns = now
            if conn.reset_by < 0:
                conn.reset_by = d
                conn.reset_state = (conn.state[d], conn.state[d ^ 1])
                # Data the resetting side had sent that was never acknowledged is discarded.
                segs = fwd.segs
                if segs:
                    conn.reset_inflight = sum((e.end - e.seq) & MASK for e in segs)

    def _transition(self, conn: Conn, ep: int, s0: TcpState, s1: TcpState, seg: Segment, sent: bool) -> None:
        conn.state[ep] = s1
        if conn.timeline is not None:
            conn.timeline[ep].append((seg.ts_ns, seg.frame, s0, s1, seg.flags, seg.paylen, sent))
        if s1 is _TIME_WAIT:
            self._enter_time_wait(conn, ep, seg.ts_ns, seg.frame)

    def _anomaly(self, conn: Conn, ep: int, name: str, seg: Segment) -> None:
        if conn.anomalies is None:
            conn.anomalies = []
        if len(conn.anomalies) < self.cfg.max_events:
            conn.anomalies.append((seg.frame, seg.ts_ns, ep, name))

    def _enter_time_wait(self, conn: Conn, ep: int, now: int, frame: int) -> None:
        conn.tw_start = (ep, now, frame)
        self.tw_enter(conn.addr[ep], conn.port[ep], now, frame)

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
        start_frame, start_ns, probes = f.zw_open
        f.zw_open = None
        if f.zw_episodes is None:
            f.zw_episodes = []
        if len(f.zw_episodes) < self.cfg.max_events:
            f.zw_episodes.append((start_frame, start_ns, frame, now, probes))

    def _zeek_timers(self, conn: Conn, d: int, seg: Segment) -> None:
        """Zeek's attempt timer (an attempt still unanswered 5 s after it began) and its close
        and reset delays (5 s quiet after the connection ended): either removes the Zeek
        connection, so this segment starts a new Zeek record."""
        now = seg.ts_ns
        split = False
        if now >= conn.zdeadline:
            conn.zdeadline = _NEVER
            split = conn.zeek.attempt()
        if not split and now - conn.last_ns >= K_ZEEK_LINGER_NS and conn.zeek.expirable():
            split = True
        if split:
            self._zeek_split(conn, d, seg)

    def _zeek_split(self, conn: Conn, d: int, seg: Segment) -> None:
        """Start a new Zeek record inside this stream (Wireshark keeps one stream; Zeek would log
        a new connection).  Its originator follows Zeek's rule for a first packet."""
        if conn.zeek_done is None:
            conn.zeek_done = []
        start = conn.zeek_done[-1][3] if conn.zeek_done else conn.first_ns
        conn.zeek_done.append((conn.zeek, conn.zorig, start, conn.last_ns))
        flags = seg.flags
        flip = not (flags & SYN and not flags & ACK) and seg.sport < 1024 <= seg.dport
        conn.zorig = d ^ 1 if flip else d
        conn.zeek = ZeekConn(orig_is_first_sender=not flip)
        conn.zdeadline = seg.ts_ns + K_ZEEK_LINGER_NS
        conn.flows[0].zsettled = conn.flows[1].zsettled = False

    def _reuse(self, old: Conn, d: int, seg: Segment) -> None:
        """A new SYN on the 4-tuple of ``old``: note it when an endpoint is still in TIME_WAIT."""
        tw = old.tw_start
        if tw is not None and old.state[tw[0]] is _TIME_WAIT and seg.ts_ns - tw[1] < 2 * self.cfg.msl_ns:
            self.syn_in_time_wait.append((old.stream, seg.frame, seg.ts_ns))

    # ------------------------------------------------------------------ end of input
    def finish(self) -> list[Conn]:
        """Summarise every connection still in the table; returns all connections in stream order
        (an empty list when ``on_conn_done`` is set: each connection was handed to it instead)."""
        for conn, d in list(self.table.values()):
            if d == 0:
                self._finalize(conn)
        self.table.clear()
        self.closed = []
        self.live = 0
        self.done.sort(key=lambda c: c.stream)
        return self.done


_FINAL = frozenset({TcpState.CLOSED, TcpState.TIME_WAIT})
_NEVER = 1 << 62


def addr_port(conn: Conn, ep: int) -> str:
    a = addr_str(conn.addr[ep])
    return f"[{a}]:{conn.port[ep]}" if ":" in a else f"{a}:{conn.port[ep]}"
