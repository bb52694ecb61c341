"""Anomaly detectors: connections and analyzer counters in, findings out (sans-IO).

Theory of operation
-------------------
The engine keeps counters per connection (``Conn``/``Flow``) and per capture
(``Analyzer``).  Detectors read them at two moments:

* ``conn_findings(conn, th, acc)`` runs when a connection is finalized (the ``Analyzer``'s
  ``on_conn_done`` callback), so the connection's per-segment state can be dropped right
  after; it also adds the connection to the aggregate tallies in ``acc`` (SYN floods, RSTs
  per server port, server-side closes, handshake RTTs, capture-quality counters);
* ``aggregate_findings(analyzer, stats, th, acc)`` runs once at the end of the input: TIME_WAIT
  build-up per host, SYN floods, handshake-RTT outliers, capture quality.

Evidence frames of per-packet verdicts (which retransmission, which out-of-order segment)
are not kept by the engine; ``Detectors.on_segment`` (the pipeline's per-segment callback)
records the first few of them in ``conn.events``.  It returns after one test for the
ordinary segment (an ACK without SYN/FIN/RST and no analysis flag), and it is the place
where segments with invalid flag combinations (SYN+FIN, SYN+RST, no flags, Xmas) are
counted: the engine's ``_control`` only sees SYN/FIN/RST segments.

Every finding names the rule that fired and the values it rests on (``message`` and
``data``).  Findings the capture itself causes (missed segments, truncation, TSO/GRO
super-segments, clock steps) carry ``cause = "capture"`` instead of blaming the network.
Thresholds are the named ``K_*`` defaults below, gathered in ``Thresholds``; the CLI
overrides them.  No I/O, no printing, no rich/click here.
"""
from __future__ import annotations

from array import array
from bisect import bisect_right
from collections import deque
from dataclasses import asdict, dataclass

from tcpanalyze import analysis as A
from tcpanalyze.engine import K_MSL_S
from tcpanalyze.model import ACK, FIN, PSH, RST, SYN, URG, addr_str

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}

# ---------------------------------------------------------------------------- thresholds
#: retransmissions: warn above this fraction of a connection's data segments ...
K_RETRANS_RATE = 0.01
#: ... and only with at least this many retransmitted data segments (no warning for a
#: handful of segments on tiny connections).
K_RETRANS_MIN_SEGMENTS = 3
#: time_wait_buildup: warn when more than this many connections of one host are in TIME_WAIT at once.
K_TIME_WAIT_PEAK = 100
#: close_wait_stall: one side sent FIN and the other stayed idle without FIN this long (s).
K_CLOSE_WAIT_S = 5.0
#: zero_window: an episode at least this long (s) is a warning (shorter ones are info).
K_ZERO_WINDOW_S = 1.0
#: syn_flood: unanswered SYNs (S0 connections) to one host:port at or above this count.
K_SYN_FLOOD = 100
#: handshake RTT outlier: above this factor times the median handshake RTT ...
K_HS_RTT_FACTOR = 3.0
#: ... and above this absolute value (s) ...
K_HS_RTT_MIN_S = 0.1
#: ... with at least this many handshakes to compute the median from.
K_HS_RTT_MIN_SAMPLES = 5
#: out_of_order: out-of-order segments less than this apart (s) belong to one burst.
K_OOO_BURST_GAP_S = 1.0
#: handshake syn_retries: SYNs repeated faster than this (ms) are duplicates, not RTO back-off.
K_MIN_RTO_MS = 200.0
#: evidence frames kept per connection and kind of per-packet verdict.
K_EVIDENCE_FRAMES = 10
#: findings kept per kind (the totals are still counted).
K_MAX_FINDINGS_PER_KIND = 1000
#: points of the TIME_WAIT series (sparkline) per host.
K_TW_SERIES_POINTS = 48
#: host:port entries of TIME_WAIT reported per host.
K_TW_TOP_PORTS = 5
#: hosts listed in the report's time_wait section (by peak); every host over the threshold
#: is still a finding, and the total number of hosts is given
K_TW_REPORT_HOSTS = 100


@dataclass
class Thresholds:
    """Named defaults of every detector; the CLI overrides them (``tcpanalyze analyze --help``)."""

    retrans_rate: float = K_RETRANS_RATE
    retrans_min_segments: int = K_RETRANS_MIN_SEGMENTS
    time_wait_peak: int = K_TIME_WAIT_PEAK
    msl_s: float = K_MSL_S
    close_wait_s: float = K_CLOSE_WAIT_S
    zero_window_s: float = K_ZERO_WINDOW_S
    syn_flood: int = K_SYN_FLOOD
    hs_rtt_factor: float = K_HS_RTT_FACTOR
    hs_rtt_min_s: float = K_HS_RTT_MIN_S
    hs_rtt_min_samples: int = K_HS_RTT_MIN_SAMPLES
    ooo_burst_gap_s: float = K_OOO_BURST_GAP_S
    evidence_frames: int = K_EVIDENCE_FRAMES
    max_findings_per_kind: int = K_MAX_FINDINGS_PER_KIND

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- findings
def _s(ns) -> float | None:
    return None if ns is None else round(ns / 1e9, 9)


class Finding:
    """One finding.  ``stream`` for a connection, ``host`` (and ``port``) for an aggregate."""

    __slots__ = ("kind", "subkind", "severity", "stream", "host", "port", "frames", "ts_ns", "message",
                 "data", "cause")

    def __init__(self, kind: str, severity: str, message: str, *, subkind: str | None = None,
                 stream: int | None = None, host: str | None = None, port: int | None = None,
                 frames=(), ts_ns: int | None = None, data: dict | None = None, cause: str | None = None):
        self.kind = kind
        self.subkind = subkind
        self.severity = severity
        self.stream = stream
        self.host = host
        self.port = port
        self.frames = [f for f in frames if f]
        self.ts_ns = ts_ns
        self.message = message
        self.data = data or {}
        self.cause = cause

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.subkind}" if self.subkind else self.kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "subkind": self.subkind, "severity": self.severity, "stream": self.stream,
                "host": self.host, "port": self.port, "frames": list(self.frames), "time": _s(self.ts_ns),
                "message": self.message, "data": self.data, "cause": self.cause}

    def __repr__(self) -> str:
        where = f"stream {self.stream}" if self.stream is not None else f"host {self.host}"
        return f"Finding({self.label}, {self.severity}, {where}: {self.message})"


class FindingSink:
    """Keeps at most ``cap`` findings per (kind, scope) and counts all of them."""

    def __init__(self, cap: int = K_MAX_FINDINGS_PER_KIND):
        self.cap = cap
        self.kept: list[Finding] = []
        self._n: dict[tuple[str, str], int] = {}
        #: kind -> {"total", "reported", "info", "warning", "error"}
        self.by_kind: dict[str, dict] = {}

    def add(self, f: Finding, scope: str = "conn") -> bool:
        k = self.by_kind.get(f.kind)
        if k is None:
            k = self.by_kind[f.kind] = {"total": 0, "reported": 0, "info": 0, "warning": 0, "error": 0}
        k["total"] += 1
        k[f.severity] += 1
        key = (f.kind, scope)
        n = self._n.get(key, 0)
        if n >= self.cap:
            return False
        self._n[key] = n + 1
        k["reported"] += 1
        self.kept.append(f)
        return True


# ---------------------------------------------------------------------------- helpers
def _label(conn, ep: int) -> str:
    a = addr_str(conn.addr[ep])
    return f"[{a}]:{conn.port[ep]}" if ":" in a else f"{a}:{conn.port[ep]}"


def _role(conn, ep: int) -> str:
    return "orig" if ep == conn.orig else "resp"


def _sname(state) -> str:
    return getattr(state, "name", str(state))


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _ev(conn, name: str):
    ev = conn.events
    return ev.get(name) if ev else None


_CLOSING = frozenset({"FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK", "CLOSE_WAIT"})
_AFTER_CLOSE = frozenset({"TIME_WAIT", "CLOSED"})
_HS_STATES = frozenset({"SYN_SENT", "SYN_RECEIVED", "LISTEN"})

#: evidence kinds recorded by ``Detectors.on_segment`` from the analysis bits
_BIT_EVIDENCE = (
    (A.RETRANSMISSION_FAMILY, "rtx"),
    (A.LOST_SEGMENT, "lost"),
    (A.ACK_LOST_SEGMENT, "ack_lost"),
)

#: invalid flag combinations (RFC 9293 gives no meaning to them; scanners send them)
_XMAS = FIN | PSH | URG
INVALID_FLAG_NAMES = {"syn_fin": "SYN+FIN", "syn_rst": "SYN+RST", "null": "no flags", "xmas": "Xmas (FIN+PSH+URG)"}


def invalid_flag_kinds(flags: int) -> list[str]:
    """Names of the invalid combinations in ``flags`` (empty for a legal segment)."""
    out = []
    if flags & SYN and flags & FIN:
        out.append("syn_fin")
    if flags & SYN and flags & RST:
        out.append("syn_rst")
    if not flags & (FIN | SYN | RST | PSH | ACK | URG):
        out.append("null")
    if flags & _XMAS == _XMAS:
        out.append("xmas")
    return out


# ---------------------------------------------------------------------------- aggregate tallies
class Tallies:
    """What ``conn_findings`` adds up across connections for ``aggregate_findings``."""

    def __init__(self):
        self.connections = 0
        # (resp host, port) -> [n, first_ns, last_ns, streams, origs]
        self.s0: dict[tuple[str, int], list] = {}
        self.rst_ports: dict[tuple[str, int], dict] = {}     # (resp host, port) -> {class: n, "streams": [...]}
        self.server_close: dict[tuple[str, int], list] = {}  # (resp host, port) -> [n, streams, frames]
        self.hs_rtt: dict[str, tuple[array, array]] = {}     # resp host -> (irtt ns, stream)
        self.no_handshake = [0, []]                          # connections, example streams
        self.scale_unknown = [0, []]
        self.one_sided = [0, []]
        self.truncated = [0, 0, []]                          # connections, segments, example streams
        self.super_segments = [0, 0, []]                     # connections, largest segment, examples
        self.unexpected = [0, 0, []]                         # connections, transitions, examples


def _unacked(f) -> int:
    """Bytes covered by a flow's unacknowledged segments (overlaps from retransmissions counted once)."""
    segs = f.segs
    if not segs:
        return 0
    base = f.base_seq
    spans = sorted((((e.seq - base) & 0xFFFFFFFF), ((e.end - base) & 0xFFFFFFFF)) for e in segs)
    total = 0
    cur_lo, cur_hi = spans[0]
    for lo, hi in spans[1:]:
        if lo > cur_hi:
            total += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
        elif hi > cur_hi:
            cur_hi = hi
    return total + max(0, cur_hi - cur_lo)


def _tally_example(lst: list, stream: int, cap: int = 10) -> None:
    if len(lst) < cap:
        lst.append(stream)


# ---------------------------------------------------------------------------- per-connection detectors
def conn_findings(conn, th: Thresholds | None = None, acc: Tallies | None = None,
                  now_ns: int | None = None) -> list[Finding]:
    """Findings of one finalized connection (and its contribution to the aggregates in ``acc``).

    ``now_ns`` is the capture time at which the connection was finalized (the end of the
    capture for connections still open then); it bounds a stall that never ended.
    """
    th = th or Thresholds()
    out: list[Finding] = []
    o = conn.orig
    r = o ^ 1
    fo, fr = conn.flows[o], conn.flows[r]
    end_ns = conn.last_ns if now_ns is None or now_ns < conn.last_ns else now_ns
    _rst(conn, out, acc)
    _handshake(conn, fo, fr, out, acc)
    _retrans(conn, th, out)
    _zero_window(conn, th, out)
    _window_shrink(conn, out)
    _close(conn, th, out, acc, end_ns)
    _invalid(conn, out)
    _gaps(conn, out)
    if acc is not None:
        _tally(conn, fo, fr, acc)
    return out


def _rst(conn, out, acc) -> None:
    d = conn.reset_by
    if d < 0:
        return
    o = conn.orig
    f = conn.flows[d]
    peer = conn.flows[d ^ 1]
    rf = f.rst_frame
    who = _role(conn, d)
    st = conn.reset_state
    s_self = _sname(st[0]) if st else "?"
    s_peer = _sname(st[1]) if st else "?"
    extra = _ev(conn, "rst")
    peer_unacked = extra[0] if extra else 0
    own_unacked = extra[2] if extra else conn.reset_inflight
    # data the peer still sent after the RST (it crossed the RST, or the peer had not seen it yet)
    after = (peer.nextseq - extra[3]) & 0xFFFFFFFF if extra and extra[3] and peer.nextseq else 0
    if after >= 0x80000000:
        after = 0
    data = {"sent_by": who, "endpoint": _label(conn, d), "state": s_self, "peer_state": s_peer,
            "rsts": f.rsts, "unacked_discarded": own_unacked, "peer_unacked_discarded": peer_unacked,
            "peer_sent_after_rst": after}
    if rf == conn.first_frame and not conn.handshake_seen:
        cls = "unknown_connection"
        sev, cause = "info", "capture"
        msg = (f"rst unknown_connection: the first segment seen of this 4-tuple is a RST from "
               f"{_label(conn, d)} (frame {rf}); the connection it resets was not captured")
        frames = [rf]
    elif d != o and not f.syns and conn.flows[o].syns:
        cls = "refused"
        sev, cause = "warning", None
        msg = (f"rst refused: {_label(conn, d)} answered the SYN (frame {conn.syn_frame}) with RST "
               f"(frame {rf}): nothing listening, or a firewall rejecting")
        frames = [conn.syn_frame, rf]
    elif s_self in _AFTER_CLOSE or (f.fin_next >= 0 and peer.fin_next >= 0 and f.fin_ns <= f.rst_ns
                                     and peer.fin_ns <= f.rst_ns):
        cls = "reset_after_close"
        sev, cause = "info", None
        msg = (f"rst reset_after_close: {who} {_label(conn, d)} sent RST (frame {rf}) after both sides "
               f"had sent FIN (its state {s_self})")
        frames = [rf]
    else:
        cls = "aborted"
        sev, cause = "warning", None
        closing = s_self in _CLOSING or s_peer in _CLOSING
        data["while_closing"] = closing
        lost = own_unacked + peer_unacked + after
        msg = (f"rst aborted: {who} {_label(conn, d)} reset the connection in {s_self} (frame {rf})"
               + (", while closing" if closing else "")
               + f"; {lost} bytes in flight discarded ({own_unacked} it had sent unacknowledged, "
                 f"{peer_unacked} from the peer unacknowledged, {after} the peer sent after the RST)")
        frames = [rf]
    data["inflight_discarded"] = own_unacked + peer_unacked + after
    data["class"] = cls
    out.append(Finding("rst", sev, msg, subkind=cls, stream=conn.stream, frames=frames, ts_ns=f.rst_ns,
                       data=data, cause=cause))
    if acc is not None:
        key = (addr_str(conn.addr[o ^ 1]), conn.port[o ^ 1])
        t = acc.rst_ports.get(key)
        if t is None:
            t = acc.rst_ports[key] = {"refused": 0, "aborted": 0, "reset_after_close": 0,
                                      "unknown_connection": 0, "streams": [], "first_ns": f.rst_ns}
        t[cls] += 1
        _tally_example(t["streams"], conn.stream)


def _handshake(conn, fo, fr, out, acc) -> None:
    o = conn.orig
    syn_times = conn.syn_times
    if fo.syns and syn_times:
        answered = fr.pkts > 0
        if len(syn_times) > 1:
            iv = [_ms(b - a) for a, b in zip(syn_times, syn_times[1:])]
            doubling = len(iv) >= 2 and all(a > 0 and 1.6 <= b / a <= 2.5 for a, b in zip(iv, iv[1:]))
            linear = len(iv) >= 2 and not doubling and all(a > 0 and 0.8 <= b / a <= 1.25 for a, b in zip(iv, iv[1:]))
            backoff = "exponential" if doubling else "linear" if linear else "single" if len(iv) == 1 else "irregular"
            # Below the smallest retransmission timeout a stack uses (RFC 6298 §2.4: 1 s; Linux
            # TCP_RTO_MIN 200 ms) a second SYN is no time-out: a duplicate in the capture, or crafted.
            dup = min(iv) < K_MIN_RTO_MS
            out.append(Finding(
                "handshake", "info" if dup else "warning",
                f"handshake syn_retries: {_label(conn, o)} sent the SYN {len(syn_times)} times, "
                f"intervals {', '.join(f'{x / 1000:.3f} s' for x in iv)}"
                + (" (exponential back-off)" if doubling else "")
                + (" (linear back-off, as Linux's tcp_syn_linear_timeouts)" if linear else "")
                + (f" (below the {K_MIN_RTO_MS:g} ms minimum RTO: duplicates, not back-off)" if dup else "")
                + ("" if answered else "; never answered"),
                subkind="syn_retries", stream=conn.stream, frames=[conn.syn_frame], ts_ns=syn_times[0],
                data={"syns": len(syn_times), "retries": len(syn_times) - 1, "intervals_ms": iv,
                      "backoff": backoff, "answered": answered, "duplicates": dup},
                cause="capture" if dup and min(iv) == 0 else None))
        if not answered:
            waited = conn.last_ns - syn_times[0]
            out.append(Finding(
                "handshake", "warning",
                f"handshake syn_unanswered: {len(syn_times)} SYN(s) from {_label(conn, o)} to "
                f"{_label(conn, o ^ 1)} got no reply in {waited / 1e9:.3f} s (half-open, Zeek S0)",
                subkind="syn_unanswered", stream=conn.stream, frames=[conn.syn_frame], ts_ns=syn_times[0],
                data={"syns": len(syn_times), "waited_s": _s(waited), "to": _label(conn, o ^ 1)}))
            if acc is not None:
                key = (addr_str(conn.addr[o ^ 1]), conn.port[o ^ 1])
                t = acc.s0.get(key)
                if t is None:
                    t = acc.s0[key] = [0, syn_times[0], syn_times[0], [], set()]
                t[0] += 1
                t[1] = min(t[1], syn_times[0])
                t[2] = max(t[2], syn_times[0])
                _tally_example(t[3], conn.stream)
                if len(t[4]) < 100_000:
                    t[4].add(conn.addr[o])
    elif conn.handshake_seen and fr.syns and not fo.syns:
        # The first segment seen was the responder's SYN/ACK.
        silent = fo.pkts == 0
        out.append(Finding(
            "handshake", "warning" if silent else "info",
            f"handshake synack_without_syn: {_label(conn, o ^ 1)} sent a SYN/ACK (frame {conn.first_frame}) "
            f"to {_label(conn, o)} with no SYN seen"
            + ("; the addressee never answered (backscatter of spoofed SYNs, or asymmetric routing)" if silent
               else "; the SYN was not captured"),
            subkind="synack_without_syn", stream=conn.stream, frames=[conn.first_frame], ts_ns=conn.first_ns,
            data={"addressee_answered": not silent}, cause=None if silent else "capture"))


def _retrans(conn, th, out) -> None:
    fo, fr = conn.flows[conn.orig], conn.flows[conn.orig ^ 1]
    rtx = fo.rtx + fr.rtx
    if not rtx:
        return
    # SYN and FIN retransmissions are in Wireshark's count; the rate is over data segments.
    syn_rtx = sum(max(0, f.syns - 1) for f in (fo, fr))
    ctl = syn_rtx + sum(max(0, f.fins - 1) for f in (fo, fr))
    data_pkts = fo.data_pkts + fr.data_pkts
    data_rtx = min(max(0, rtx - ctl), data_pkts)
    if data_rtx == 0 and rtx <= syn_rtx:
        return          # only SYNs were repeated: handshake/syn_retries says so
    byts = fo.bytes + fr.bytes
    rtx_bytes = fo.rtx_bytes + fr.rtx_bytes
    fast = fo.fast_rtx + fr.fast_rtx
    spurious = fo.spurious + fr.spurious
    rto = max(0, rtx - fast - spurious)
    rate = data_rtx / data_pkts if data_pkts else 0.0
    brate = rtx_bytes / byts if byts else 0.0
    warn = data_rtx >= th.retrans_min_segments and rate > th.retrans_rate
    if warn:
        rule = (f"warning: rate > {_pct(th.retrans_rate)} and >= {th.retrans_min_segments} segments")
    elif data_rtx < th.retrans_min_segments and rate > th.retrans_rate:
        rule = (f"info: fewer than {th.retrans_min_segments} retransmitted data segments, too few to warn "
                f"whatever the rate")
    else:
        rule = f"info: rate <= {_pct(th.retrans_rate)}"
    ev = _ev(conn, "rtx")
    per_side = {}
    for name, f in (("orig", fo), ("resp", fr)):
        if f.rtx:
            per_side[name] = {"segments": f.rtx, "bytes": f.rtx_bytes, "fast": f.fast_rtx, "spurious": f.spurious,
                              "data_segments": f.data_pkts}
    out.append(Finding(
        "retransmissions", "warning" if warn else "info",
        f"retransmissions: {rtx} segment(s) retransmitted: {data_rtx} of {data_pkts} data segments = "
        f"{_pct(rate)}, {rtx_bytes} of {byts} bytes = {_pct(brate)}"
        + (f", {rtx - data_rtx} SYN/FIN" if rtx > data_rtx else "")
        + f"; {fast} fast, {rto} RTO-style, {spurious} spurious; {rule}",
        stream=conn.stream, frames=ev[1] if ev else (), ts_ns=ev[2] if ev else conn.first_ns,
        data={"segments": rtx, "data_segments_retransmitted": data_rtx, "data_segments": data_pkts,
              "rate": round(rate, 6), "bytes": rtx_bytes, "total_bytes": byts, "byte_rate": round(brate, 6),
              "fast": fast, "rto": rto, "spurious": spurious, "control": ctl, "by_side": per_side}))


def _zero_window(conn, th, out) -> None:
    for ep in (conn.orig, conn.orig ^ 1):
        f = conn.flows[ep]
        eps = f.zw_episodes
        if not eps:
            continue
        for start_frame, start_ns, end_frame, end_ns, probes in eps:
            if end_frame is None:
                died = (conn.end_reason in ("rst", "timeout", "evicted")
                        or bool(conn.flows[0].rsts or conn.flows[1].rsts))
                dur = conn.last_ns - start_ns
                sev = "error" if died else "warning"
                how = ("the connection died in it (" + conn.end_reason + ")" if died
                       else "still closed when the capture (or the connection) ended")
                msg = (f"zero_window: {_role(conn, ep)} {_label(conn, ep)} advertised a zero window (frame "
                       f"{start_frame}) and never reopened it: {how}, {dur / 1e9:.3f} s, {probes} probe(s)")
            else:
                died = False
                dur = end_ns - start_ns
                sev = "warning" if dur >= th.zero_window_s * 1e9 else "info"
                msg = (f"zero_window: {_role(conn, ep)} {_label(conn, ep)} advertised a zero window for "
                       f"{dur / 1e9:.3f} s (frames {start_frame}-{end_frame}), {probes} probe(s); "
                       f"{sev} since {'>=' if sev == 'warning' else '<'} {th.zero_window_s:g} s")
            out.append(Finding(
                "zero_window", sev, msg, stream=conn.stream, frames=[start_frame, end_frame], ts_ns=start_ns,
                data={"advertised_by": _role(conn, ep), "endpoint": _label(conn, ep), "duration_s": _s(dur),
                      "reopened": end_frame is not None, "reopen_frame": end_frame, "probes": probes,
                      "died": died}))


def _window_shrink(conn, out) -> None:
    for ep in (conn.orig, conn.orig ^ 1):
        f = conn.flows[ep]
        if not f.shrinks:
            continue
        retreats = [{"frame": fr, "bytes": b} for fr, _ns, b in f.shrinks]
        largest = max(x["bytes"] for x in retreats)
        out.append(Finding(
            "window_shrink", "warning",
            f"window_shrink: {_role(conn, ep)} {_label(conn, ep)} advertised a right window edge (ACK + scaled "
            f"window) left of the furthest one it had advertised on {len(f.shrinks)} ACK(s), by up to {largest} "
            f"bytes (sum {f.shrink_bytes}); RFC 9293 §3.8.6: a receiver should not shrink the window",
            stream=conn.stream, frames=[x["frame"] for x in retreats[:10]], ts_ns=f.shrinks[0][1],
            data={"advertised_by": _role(conn, ep), "endpoint": _label(conn, ep), "shrinks": len(f.shrinks),
                  "total_bytes": f.shrink_bytes, "largest_bytes": largest,
                  "window_scale": 0 if f.win_scale < 0 else f.win_scale, "retreats": retreats}))


def _close(conn, th, out, acc, end_ns) -> None:
    ci = conn.close_initiator
    if ci < 0:
        return
    f = conn.flows[ci]
    p = conn.flows[ci ^ 1]
    fin_ns = f.fin_ns
    # Half-close: the peer kept sending data after this side's FIN (RFC 9293 §3.6).
    if p.last_data_ns - fin_ns > max(conn.irtt, 0):
        # (data sent less than a handshake RTT after the FIN may have crossed it: not a half-close)
        out.append(Finding(
            "half_close", "info",
            f"half_close: {_role(conn, ci)} {_label(conn, ci)} sent FIN (frame {f.fin_frame}); the peer kept "
            f"sending data for {(p.last_data_ns - fin_ns) / 1e9:.3f} s before "
            + (f"its own FIN (frame {p.fin_frame})" if p.fin_next >= 0 else "the end"),
            stream=conn.stream, frames=[f.fin_frame, p.fin_frame if p.fin_next >= 0 else 0], ts_ns=fin_ns,
            data={"fin_by": _role(conn, ci), "peer_data_after_fin_s": _s(p.last_data_ns - fin_ns)}))
    # CLOSE_WAIT stall: the peer neither sent data nor its FIN for long after the FIN.
    if p.fin_next >= 0:
        stop_ns, how = p.fin_ns, f"until its FIN (frame {p.fin_frame})"
        stop_frame = p.fin_frame
    elif p.rsts or f.rsts:
        rs = p.rst_ns if p.rsts else f.rst_ns
        stop_ns, how = rs, "until a RST"
        stop_frame = p.rst_frame if p.rsts else f.rst_frame
    elif p.last_ns >= fin_ns:
        # Never sent FIN, but was seen after the FIN (its ACK): stalled until the capture ended.
        stop_ns, how = end_ns, "and never sent FIN"
        stop_frame = 0
    else:
        return _data_after_fin(conn, out, acc, ci, f)   # the peer was never seen after the FIN
    idle_from = max(fin_ns, p.last_data_ns)
    idle = stop_ns - idle_from
    if idle > th.close_wait_s * 1e9:
        out.append(Finding(
            "close_wait_stall", "warning",
            f"close_wait_stall: {_role(conn, ci)} {_label(conn, ci)} sent FIN (frame {f.fin_frame}); "
            f"{_role(conn, ci ^ 1)} {_label(conn, ci ^ 1)} stayed in CLOSE_WAIT, idle {idle / 1e9:.3f} s {how} "
            f"(> {th.close_wait_s:g} s)",
            stream=conn.stream, frames=[f.fin_frame, stop_frame], ts_ns=fin_ns,
            data={"fin_by": _role(conn, ci), "stalled": _role(conn, ci ^ 1), "idle_s": _s(idle),
                  "peer_fin": p.fin_next >= 0, "peer_fin_frame": p.fin_frame or None}))
    _data_after_fin(conn, out, acc, ci, f)


def _data_after_fin(conn, out, acc, ci, f) -> None:
    o = conn.orig
    for ep in (o, o ^ 1):
        fl = conn.flows[ep]
        if fl.data_after_fin:
            out.append(Finding(
                "data_after_fin", "warning",
                f"data_after_fin: {_role(conn, ep)} {_label(conn, ep)} sent {fl.data_after_fin} data segment(s) "
                f"beyond its own FIN (frame {fl.fin_frame})",
                stream=conn.stream, frames=[fl.fin_frame], ts_ns=fl.fin_ns,
                data={"sent_by": _role(conn, ep), "segments": fl.data_after_fin}))
    if acc is not None and ci != o and conn.handshake_seen:
        key = (addr_str(conn.addr[ci]), conn.port[ci])
        t = acc.server_close.get(key)
        if t is None:
            t = acc.server_close[key] = [0, [], []]
        t[0] += 1
        _tally_example(t[1], conn.stream)
        _tally_example(t[2], f.fin_frame)


def _invalid(conn, out) -> None:
    ev = conn.events
    if not ev:
        return
    for name, text in INVALID_FLAG_NAMES.items():
        e = ev.get("flags_" + name)
        if e is None:
            continue
        n, frames, ts = e
        out.append(Finding(
            "invalid_flags", "warning",
            f"invalid_flags: {n} segment(s) with {text} (first frame {frames[0]}): no legal TCP segment "
            f"carries this combination (scan or broken stack)",
            subkind=name, stream=conn.stream, frames=frames, ts_ns=ts, data={"flags": name, "segments": n}))


def _gaps(conn, out) -> None:
    fo, fr = conn.flows[conn.orig], conn.flows[conn.orig ^ 1]
    lost = fo.lost + fr.lost
    if lost:
        ev = _ev(conn, "lost")
        rtx = fo.rtx + fr.rtx
        out.append(Finding(
            "lost_segment", "info",
            f"lost_segment: {lost} time(s) a segment started beyond the next expected sequence number "
            f"(previous segment not captured)"
            + (f"; with {rtx} retransmission(s) on the connection the data was lost upstream of the capture"
               if rtx else "; no retransmission followed: the capture missed it"),
            stream=conn.stream, frames=ev[1] if ev else (), ts_ns=ev[2] if ev else None,
            data={"segments": lost, "retransmissions": rtx}, cause="network" if rtx else "capture"))
    al = fo.ack_lost + fr.ack_lost
    if al:
        ev = _ev(conn, "ack_lost")
        out.append(Finding(
            "ack_lost_segment", "info",
            f"ack_lost_segment: {al} ACK(s) acknowledged data that was never captured (capture gap, "
            f"or one direction routed past the capture point)",
            stream=conn.stream, frames=ev[1] if ev else (), ts_ns=ev[2] if ev else None,
            data={"segments": al}, cause="capture"))
    ooo = fo.ooo + fr.ooo
    if ooo:
        ev = _ev(conn, "ooo")
        bursts, largest = (ev[3], ev[5]) if ev else (1, ooo)
        data_pkts = fo.data_pkts + fr.data_pkts
        out.append(Finding(
            "out_of_order", "info",
            f"out_of_order: {ooo} segment(s) arrived below the highest sequence number already seen, within "
            f"the out-of-order window, in {bursts} burst(s) (largest {largest})",
            stream=conn.stream, frames=ev[1] if ev else (), ts_ns=ev[2] if ev else None,
            data={"segments": ooo, "bursts": bursts, "largest_burst": largest, "data_segments": data_pkts}))


def _tally(conn, fo, fr, acc: Tallies) -> None:
    acc.connections += 1
    s = conn.stream
    if not conn.handshake_seen:
        acc.no_handshake[0] += 1
        _tally_example(acc.no_handshake[1], s)
    if (fo.win_scale == -1 or fr.win_scale == -1) and (fo.data_pkts or fr.data_pkts):
        acc.scale_unknown[0] += 1
        _tally_example(acc.scale_unknown[1], s)
    if fo.pkts == 0 or fr.pkts == 0:
        # One direction never seen although the other sent data (or kept talking): the capture
        # point saw one way only.  Unanswered SYNs, stray RSTs and scans are findings of their own.
        seen = fo if fr.pkts == 0 else fr
        if seen.data_pkts or (seen.pkts >= 3 and not seen.syns):
            acc.one_sided[0] += 1
            _tally_example(acc.one_sided[1], s)
    tr = fo.trunc + fr.trunc
    if tr:
        acc.truncated[0] += 1
        acc.truncated[1] += tr
        _tally_example(acc.truncated[2], s)
    for f, peer in ((fo, fr), (fr, fo)):
        if peer.mss and f.max_seg > peer.mss:
            acc.super_segments[0] += 1
            acc.super_segments[1] = max(acc.super_segments[1], f.max_seg)
            _tally_example(acc.super_segments[2], s)
            break
    if conn.anomalies:
        acc.unexpected[0] += 1
        acc.unexpected[1] += len(conn.anomalies)
        _tally_example(acc.unexpected[2], s)
    if conn.irtt and conn.handshake_seen:
        host = addr_str(conn.addr[conn.orig ^ 1])
        t = acc.hs_rtt.get(host)
        if t is None:
            t = acc.hs_rtt[host] = (array("q"), array("q"))
        t[0].append(conn.irtt)
        t[1].append(s)


# ---------------------------------------------------------------------------- TIME_WAIT
def time_wait_profile(starts, first_ns: int, last_ns: int, hold_ns: int, points: int = K_TW_SERIES_POINTS) -> dict:
    """Count of TIME_WAIT periods (each ``hold_ns`` long, from ``starts``) over the capture.

    Returns the peak, when it was first reached, the count at the end of the capture, the
    total, and ``series``: the maximum count in each of ``points`` equal slices of
    [first_ns, last_ns].  A period started at t covers (t, t + hold] like the engine's.
    """
    st = sorted(starts)
    n = len(st)
    peak = 0
    peak_ns = None
    j = 0
    for i in range(n):
        t = st[i]
        while st[j] <= t - hold_ns:
            j += 1
        c = i - j + 1
        if c > peak:
            peak, peak_ns = c, t
    at_end = n - bisect_right(st, last_ns - hold_ns)
    series = []
    if n == 1 and last_ns > first_ns and points > 0:
        # one period (most client hosts): it counts 1 in every slice it overlaps
        t = st[0]
        width = (last_ns - first_ns) / points
        series = [1 if first_ns + k * width - hold_ns < t <= first_ns + (k + 1) * width else 0
                  for k in range(points)]
    elif n and last_ns > first_ns and points > 0:
        width = (last_ns - first_ns) / points
        for k in range(points):
            lo = first_ns + k * width
            hi = first_ns + (k + 1) * width
            # count at the slice start, then after each start inside the slice
            a = bisect_right(st, lo)
            best = a - bisect_right(st, lo - hold_ns)
            b = bisect_right(st, hi)
            for i in range(a, b):
                c = i + 1 - bisect_right(st, st[i] - hold_ns)
                if c > best:
                    best = c
            series.append(best)
    elif n:
        series = [peak]
    return {"peak": peak, "peak_ns": peak_ns, "at_end": at_end, "total": n, "series": series}


# ---------------------------------------------------------------------------- aggregates
def aggregate_findings(analyzer, stats=None, th: Thresholds | None = None, acc: Tallies | None = None,
                       sink: FindingSink | None = None) -> tuple[list[Finding], dict]:
    """Capture-wide findings, and the TIME_WAIT / capture-quality summaries they rest on.

    Returns ``(findings, extra)`` where ``extra`` has ``time_wait`` (per host and host:port)
    and ``capture_quality`` (counts) for the report's summary.
    """
    th = th or Thresholds()
    acc = acc or Tallies()
    out: list[Finding] = []
    first_ns = analyzer.first_ns or 0
    last_ns = analyzer.last_ns or first_ns
    hold = int(th.msl_s * 2e9)

    # ---- TIME_WAIT per host (and host:port).  A cheap pass for every host's peak (most
    # client hosts hold one period), then the full profile for the hosts that are listed
    # (the K_TW_REPORT_HOSTS highest peaks) or over the threshold.
    tw_hosts = []
    peaks = []
    for i, (host, starts) in enumerate(analyzer.tw_starts.items()):
        pk = 1 if len(starts) == 1 else time_wait_profile(starts, first_ns, last_ns, hold, points=0)["peak"]
        peaks.append((-pk, addr_str(host), i, host, starts))
    peaks.sort()
    wanted = {p[3] for p in peaks[:K_TW_REPORT_HOSTS] if -p[0] > 0} | {p[3] for p in peaks if -p[0] > th.time_wait_peak}
    ports_by_host: dict[bytes, list] = {}
    for (host, port), starts in analyzer.tw_port_starts.items():
        if host in wanted:
            prof = time_wait_profile(starts, first_ns, last_ns, hold, points=0)
            ports_by_host.setdefault(host, []).append((prof["peak"], port, prof))
    server_close_hosts = {h for (h, _p) in acc.server_close}
    for _npk, hs, _i, host, starts in sorted((p for p in peaks if p[3] in wanted), key=lambda p: p[2]):
        prof = time_wait_profile(starts, first_ns, last_ns, hold)
        ports = sorted(ports_by_host.get(host, ()), key=lambda x: (-x[0], x[1]))[:K_TW_TOP_PORTS]
        entry = {"host": hs, "peak": prof["peak"], "peak_time": _s(prof["peak_ns"]), "at_end": prof["at_end"],
                 "total": prof["total"], "series": prof["series"],
                 "ports": [{"port": p, "peak": pk, "at_end": pr["at_end"], "total": pr["total"]}
                           for pk, p, pr in ports]}
        tw_hosts.append(entry)
        if prof["peak"] > th.time_wait_peak:
            top = ports[0] if ports else None
            out.append(Finding(
                "time_wait_buildup", "warning",
                f"time_wait_buildup: {hs} held {prof['peak']} connections in TIME_WAIT at once "
                f"(> {th.time_wait_peak}; 2*MSL = {2 * th.msl_s:g} s), {prof['at_end']} at the end of the capture"
                + (f"; most on port {top[1]} ({top[0]})" if top else "")
                + ("; this host is a server closing first (server_active_close)" if hs in server_close_hosts else ""),
                host=hs, port=top[1] if top else None, ts_ns=prof["peak_ns"],
                data={k: entry[k] for k in ("peak", "peak_time", "at_end", "total", "ports")}
                | {"threshold": th.time_wait_peak, "msl_s": th.msl_s}))
    tw_all_peaks = {p[1]: -p[0] for p in peaks}
    tw_hosts.sort(key=lambda e: (-e["peak"], e["host"]))
    tw_hosts = tw_hosts[:max(K_TW_REPORT_HOSTS, sum(1 for e in tw_hosts if e["peak"] > th.time_wait_peak))]
    tw_peaks = tw_all_peaks

    # ---- servers that close first
    for (hs, port), (n, streams, frames) in sorted(acc.server_close.items(), key=lambda kv: (-kv[1][0], kv[0])):
        peak = tw_peaks.get(hs, 0)
        sev = "warning" if peak > th.time_wait_peak else "info"
        out.append(Finding(
            "server_active_close", sev,
            f"server_active_close: the listening side {hs}:{port} sent the first FIN on {n} connection(s), so it "
            f"holds their TIME_WAIT (peak {peak} on this host"
            + (f" > {th.time_wait_peak})" if sev == "warning" else ")"),
            host=hs, port=port, frames=frames, data={"connections": n, "streams": streams, "time_wait_peak": peak}))

    # ---- SYN on a 4-tuple in TIME_WAIT (engine list) is emitted by Detectors as it happens.

    # ---- RSTs per server port
    for (hs, port), t in sorted(acc.rst_ports.items(), key=lambda kv: kv[0]):
        counts = {k: t[k] for k in ("refused", "aborted", "reset_after_close", "unknown_connection") if t[k]}
        total = sum(counts.values())
        out.append(Finding(
            "rst", "info",
            f"rst per_port: {total} reset connection(s) with server {hs}:{port}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items()),
            subkind="per_port", host=hs, port=port, ts_ns=t["first_ns"],
            data={"total": total, **counts, "streams": t["streams"]}), )

    # ---- SYN flood / half-open storm
    for (hs, port), (n, t0, t1, streams, origs) in sorted(acc.s0.items(), key=lambda kv: kv[0]):
        if n >= th.syn_flood:
            span = (t1 - t0) / 1e9
            out.append(Finding(
                "syn_flood", "error",
                f"syn_flood: {n} unanswered SYNs (half-open, S0) to {hs}:{port} from {len(origs)} source "
                f"address(es) in {span:.3f} s (>= {th.syn_flood}): SYN flood / half-open storm",
                host=hs, port=port, ts_ns=t0,
                data={"unanswered": n, "sources": len(origs), "duration_s": round(span, 9),
                      "rate_per_s": round(n / span, 3) if span > 0 else None, "streams": streams,
                      "threshold": th.syn_flood}))

    # ---- handshake RTT outliers
    every = array("q")
    for irtts, _st in acc.hs_rtt.values():
        every.extend(irtts)
    if len(every) >= th.hs_rtt_min_samples:
        global_median = _median(every)
        for hs, (irtts, streams) in sorted(acc.hs_rtt.items()):
            if len(irtts) >= th.hs_rtt_min_samples:
                med, scope = _median(irtts), f"median of {len(irtts)} handshakes with {hs}"
            else:
                med, scope = global_median, f"median of all {len(every)} handshakes"
            limit = max(th.hs_rtt_factor * med, th.hs_rtt_min_s * 1e9)
            for irtt, stream in zip(irtts, streams):
                if irtt > limit:
                    out.append(Finding(
                        "handshake", "warning",
                        f"handshake rtt_outlier: handshake RTT {irtt / 1e6:.3f} ms to {hs} is > {th.hs_rtt_factor:g}x "
                        f"the {scope} ({med / 1e6:.3f} ms) and > {th.hs_rtt_min_s * 1000:g} ms",
                        subkind="rtt_outlier", stream=stream, host=hs,
                        data={"rtt_ms": _ms(irtt), "median_ms": _ms(med),
                              "factor": round(irtt / med, 3) if med else None,
                              "samples": len(irtts)}))

    # ---- capture quality
    cq = _capture_quality(analyzer, stats, acc, out)
    tw = {"msl_s": th.msl_s, "hosts": tw_hosts}
    if len(peaks) > len(tw_hosts):
        tw["hosts_total"] = len(peaks)
    folded = getattr(analyzer, "tw_folded_hosts", 0)
    if folded:
        # beyond Config.max_tw_hosts the quietest hosts were folded into these counts
        tw["untracked_hosts"] = folded
        tw["untracked_periods"] = getattr(analyzer, "tw_folded_periods", 0)
    return out, {"time_wait": tw, "capture_quality": cq}


def _median(a) -> float:
    s = sorted(a)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _capture_quality(analyzer, stats, acc: Tallies, out: list) -> dict:
    def add(sub, sev, msg, data, streams=()):
        out.append(Finding("capture_quality", sev, "capture_quality " + sub + ": " + msg, subkind=sub,
                           data={**data, "streams": list(streams)}, cause="capture"))

    cq = {
        "handshake_not_seen": acc.no_handshake[0],
        "window_scale_unknown": acc.scale_unknown[0],
        "one_sided": acc.one_sided[0],
        "truncated_connections": acc.truncated[0], "truncated_segments": acc.truncated[1],
        "super_segment_connections": acc.super_segments[0], "largest_segment": acc.super_segments[1],
        "unexpected_transition_connections": acc.unexpected[0],
        "timestamps_backwards": analyzer.ts_backwards,
        "evicted": analyzer.evicted, "expired": analyzer.expired,
        "decode_errors": sum(stats.errors.values()) if stats is not None else 0,
    }
    if acc.no_handshake[0]:
        add("handshake_not_seen", "info",
            f"{acc.no_handshake[0]} connection(s) started before the capture (no SYN seen): roles inferred "
            f"from ports, relative numbers from the first segment", {"connections": acc.no_handshake[0]},
            acc.no_handshake[1])
    if acc.scale_unknown[0]:
        add("window_scale_unknown", "info",
            f"{acc.scale_unknown[0]} connection(s) with data but no handshake: window scale unknown, so "
            f"window_shrink is not evaluated and windows are raw", {"connections": acc.scale_unknown[0]},
            acc.scale_unknown[1])
    if acc.truncated[0]:
        add("snaplen_truncation", "info",
            f"{acc.truncated[1]} segment(s) on {acc.truncated[0]} connection(s) captured shorter than their IP "
            f"length (snaplen): payload lengths come from the IP header",
            {"connections": acc.truncated[0], "segments": acc.truncated[1]}, acc.truncated[2])
    if acc.super_segments[0]:
        add("super_segments", "info",
            f"{acc.super_segments[0]} connection(s) with segments larger than the peer's MSS (largest "
            f"{acc.super_segments[1]} bytes): TSO/GRO, the capture was taken on a sending or receiving host",
            {"connections": acc.super_segments[0], "largest": acc.super_segments[1]}, acc.super_segments[2])
    if acc.one_sided[0]:
        add("one_sided", "warning",
            f"{acc.one_sided[0]} connection(s) with packets in one direction only: the other direction did not "
            f"pass the capture point (asymmetric routing or a filter)", {"connections": acc.one_sided[0]},
            acc.one_sided[1])
    if acc.unexpected[0]:
        add("unexpected_transitions", "info",
            f"{acc.unexpected[1]} segment(s) on {acc.unexpected[0]} connection(s) did not fit the RFC 9293 "
            f"state table (often a segment the capture missed)",
            {"connections": acc.unexpected[0], "segments": acc.unexpected[1]}, acc.unexpected[2])
    if analyzer.ts_backwards:
        add("timestamps_backwards", "warning",
            f"{analyzer.ts_backwards} packet(s) timestamped earlier than the packet before them (capture clock "
            f"stepped, or merged captures)", {"packets": analyzer.ts_backwards})
    if analyzer.evicted:
        add("evicted", "warning",
            f"{analyzer.evicted} connection(s) evicted over the live-connection bound (--max-connections): "
            f"their later packets start new, partial connections", {"connections": analyzer.evicted})
    if analyzer.expired:
        add("expired", "info",
            f"{analyzer.expired} idle connection(s) expired (--idle-timeout) before the end of the capture",
            {"connections": analyzer.expired})
    if stats is not None and stats.errors:
        total = sum(stats.errors.values())
        add("decode_errors", "warning",
            f"{total} frame(s) could not be decoded ("
            + ", ".join(f"{k} {v}" for k, v in sorted(stats.errors.items())) + ")",
            {"frames": total, "by_kind": dict(sorted(stats.errors.items()))})
    if stats is not None and stats.damage is not None:
        dmg = stats.damage
        add("damaged_file", "error" if dmg.fatal else "warning",
            f"{dmg} (frame {dmg.frame}, byte {dmg.offset})" + ("" if dmg.fatal else "; analyzed up to the cut"),
            {"frame": dmg.frame, "offset": dmg.offset, "fatal": dmg.fatal})
    return cq


# ---------------------------------------------------------------------------- streaming driver
class Detectors:
    """Hooks the detectors into a run: ``on_segment`` for the pipeline, ``on_conn_done`` for the Analyzer.

    ``on_conn_done(conn)`` returns the connection's findings (also passed to ``sink``);
    ``finish(analyzer, stats)`` returns the aggregate findings and the summary extras.
    """

    def __init__(self, th: Thresholds | None = None, sink: FindingSink | None = None):
        self.th = th = th or Thresholds()
        self.sink = sink or FindingSink(th.max_findings_per_kind)
        self.acc = Tallies()
        self.analyzer = None
        self._recent: deque = deque(maxlen=8)        # recently finalized connections (port reuse)
        self._sitw = 0                               # analyzer.syn_in_time_wait entries seen
        self._kev = th.evidence_frames
        self._gap_ns = int(th.ooo_burst_gap_s * 1e9)
        self.on_segment = self._make_on_segment()

    def _make_on_segment(self):
        slow = self._slow

        def on_segment(seg, a):
            if a.r_flags or seg.flags & 0x17 != 0x10:     # ACK alone, no SYN/FIN/RST: the ordinary case
                slow(seg, a)

        return on_segment

    def _slow(self, seg, a) -> None:
        conn = a.r_conn
        bits = a.r_flags
        fl = seg.flags
        frame = seg.frame
        ev = conn.events
        if ev is None:
            ev = conn.events = {}
        k = self._kev
        if bits:
            for bit, name in _BIT_EVIDENCE:
                if bits & bit:
                    e = ev.get(name)
                    if e is None:
                        ev[name] = [1, [frame], seg.ts_ns]
                    else:
                        e[0] += 1
                        if len(e[1]) < k:
                            e[1].append(frame)
            if bits & A.OUT_OF_ORDER:
                e = ev.get("ooo")
                now = seg.ts_ns
                if e is None:
                    # count, frames, first ts, bursts, current burst, largest burst, last ts
                    ev["ooo"] = [1, [frame], now, 1, 1, 1, now]
                else:
                    e[0] += 1
                    if len(e[1]) < k:
                        e[1].append(frame)
                    if now - e[6] > self._gap_ns:
                        e[3] += 1
                        e[4] = 1
                    else:
                        e[4] += 1
                        if e[4] > e[5]:
                            e[5] = e[4]
                    e[6] = now
            if bits & A.REUSED_PORTS:
                self._port_reuse(seg, a, conn)
        if fl & 0x17 != 0x10:
            bad = invalid_flag_kinds(fl)
            for name in bad:
                key = "flags_" + name
                e = ev.get(key)
                if e is None:
                    ev[key] = [1, [frame], seg.ts_ns]
                else:
                    e[0] += 1
                    if len(e[1]) < k:
                        e[1].append(frame)
            if fl & RST and "rst" not in ev and conn.reset_by == a.r_dir:
                # Bytes in flight the RST discards: each side's data still unacknowledged after it
                # (the RST's own ACK has been applied), counted once even if retransmitted.
                d = a.r_dir
                peer = conn.flows[d ^ 1]
                ev["rst"] = [_unacked(peer), frame, _unacked(conn.flows[d]), peer.nextseq]

    def _port_reuse(self, seg, a, conn) -> None:
        ends = {(seg.src, seg.sport), (seg.dst, seg.dport)}
        old = None
        for c in reversed(self._recent):
            if {(c.addr[0], c.port[0]), (c.addr[1], c.port[1])} == ends:
                old = c
                break
        sitw = a.syn_in_time_wait
        in_tw = len(sitw) > self._sitw and sitw[-1][1] == seg.frame
        self._sitw = len(sitw)
        prev = old.stream if old is not None else None
        label = _label(conn, 0) + " -> " + _label(conn, 1)
        data = {"previous_stream": prev, "previous_end": old.end_reason if old is not None else None,
                "previous_conn_state": old.zeek.conn_state() if old is not None else None}
        if in_tw:
            tw = old.tw_start if old is not None else None
            age = (seg.ts_ns - tw[1]) if tw else None
            holder = _label(old, tw[0]) if tw else "?"
            self.sink.add(Finding(
                "syn_in_time_wait", "warning",
                f"syn_in_time_wait: new SYN {label} (frame {seg.frame}) while {holder} still held the previous "
                f"connection (stream {prev}) in TIME_WAIT"
                + (f" ({age / 1e9:.3f} s of {2 * self.th.msl_s:g} s)" if age is not None else ""),
                stream=conn.stream, frames=[seg.frame] + ([tw[2]] if tw else []), ts_ns=seg.ts_ns,
                data={**data, "time_wait_holder": holder, "time_wait_age_s": _s(age)}))
        labels = conn.events.setdefault("labels", [])
        if in_tw:
            labels.append(("syn_in_time_wait", "warning"))
        labels.append(("port_reuse", "info"))
        self.sink.add(Finding(
            "port_reuse", "info",
            f"port_reuse: SYN with a new ISN on the 4-tuple {label} of stream {prev} (frame {seg.frame}): a new "
            f"connection", stream=conn.stream, frames=[seg.frame], ts_ns=seg.ts_ns, data=data))

    def on_conn_done(self, conn) -> list[Finding]:
        self._recent.append(conn)
        a = self.analyzer
        now = a.last_ns if a is not None else None
        fs = conn_findings(conn, self.th, self.acc, now)
        add = self.sink.add
        for f in fs:
            add(f)
        return fs

    def finish(self, analyzer, stats=None) -> dict:
        fs, extra = aggregate_findings(analyzer, stats, self.th, self.acc)
        for f in fs:
            self.sink.add(f, "aggregate")
        return extra


def worst_severity(findings) -> str | None:
    best = -1
    for f in findings:
        sev = f.severity if isinstance(f, Finding) else f["severity"]
        r = SEVERITY_RANK[sev]
        if r > best:
            best = r
    return SEVERITIES[best] if best >= 0 else None


def severity_at_least(sev: str, floor: str) -> bool:
    return SEVERITY_RANK[sev] >= SEVERITY_RANK[floor]


__all__ = ["Finding", "FindingSink", "Thresholds", "Tallies", "Detectors", "conn_findings", "aggregate_findings",
           "time_wait_profile", "invalid_flag_kinds", "SEVERITIES", "SEVERITY_RANK", "worst_severity",
           "severity_at_least"]
