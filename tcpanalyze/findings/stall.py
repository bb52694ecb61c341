"""``stall``: a direction that had unacknowledged data and sent nothing for long.

Rule: direction D is stalled while the peer has not acknowledged everything D sent (D's next
sequence number is beyond the peer's last ACK) and D sends no segment carrying data --
neither new data nor a retransmission -- for longer than
``max(K_STALL_MIN_S, K_STALL_RTT_FACTOR x RTT)``, RTT being the mean RTT of the ACKs of D's
data measured so far (the handshake RTT before any; 0 if neither is known).  The silence
runs from D's last data segment: the later of the last one that advanced its sequence
number and the last other data segment the detectors saw (a retransmission, an
out-of-order segment).  A silence while the peer advertises a zero window is not a stall
(``zero_window`` reports it), nor is one before the peer's first ACK (``handshake``).

A stall is found where it ends: at D's next retransmission (RTO back-off shows as a series
of them, each silence twice the one before; a retransmission that also carries new data
is not measured), or at the connection's last segment when it
ended by RST or FIN with D's data still unacknowledged.  A connection still open when the
capture ends (or expired, or evicted) ends no stall: what followed was not captured.  New
data sent after a silence also ends a stall, but that one is not seen: the detectors look
only at segments that are not ordinary ACKs.

One finding per stalled direction: how many stalls, the longest, the time in all, the
frames of the retransmissions that ended them, and the cause:

- ``dead_peer``: the peer sent nothing from the start of the first stall to the end of the
  connection (its retransmissions reached a peer that no longer answered, or nothing got
  through to or from it);
- ``rto_backoff``: a series of time-outs, each silence at least ``K_STALL_BACKOFF`` times
  the one before (RFC 6298 §5.5 doubles the RTO at each one): every retransmission was lost;
- ``lost_retransmission``: a stall ended by sending again a segment already retransmitted
  (the earlier retransmission was lost), without such a series;
- ``timeout``: otherwise, a single retransmission time-out.

A warning when a retransmission ended one (the sender waited on a time-out); info when D
was only silent until the end.  Info with ``cause = "capture"`` when the capture cannot be
trusted to show the silence: a silence longer than ``K_STALL_MAX_S`` (no retransmission
timer waits that long: Linux's TCP_RTO_MAX is 120 s; a paused or spliced capture, a clock
step), or D's data missed by the capture at least ``K_STALL_CAPTURE_GAPS`` times (its
segments beyond the next expected seq, or the peer ACKing bytes never seen).  ``--stall-min-s`` and ``--stall-rtt-factor`` set the limit.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze import analysis as A
from tcpanalyze.engine import Conn, Flow, Verdict
from tcpanalyze.findings.base import (SEG_DATA, Finding, conn_detector, declare_kind, declare_threshold, label,
                                      role, segment_detector, _s)
from tcpanalyze.model import FIN, SYN, Segment
from tcpanalyze.seq import seq_gt

# C constants when compiled
_RTX = cython.declare(cython.longlong, A.RETRANSMISSION_FAMILY)
_SYN = cython.declare(cython.longlong, SYN)

#: a silence shorter than this (s) is never a stall (RFC 6298 §2.4: the minimum RTO is 1 s) ...
K_STALL_MIN_S = declare_threshold("stall_min_s", 1.0, "stall: a silence with data outstanding longer than "
                                  "this many seconds ...")
#: ... nor one shorter than this many RTTs.
K_STALL_RTT_FACTOR = declare_threshold("stall_rtt_factor", 4.0, "... and longer than this many RTTs is a stall.")
#: consecutive silences growing by at least this factor are RTO back-off
K_STALL_BACKOFF = 1.5
#: retransmitted sequence numbers remembered per direction (to see one resent again)
K_STALL_SEQS = 64

#: a silence longer than this (s) is a gap in the capture, not a retransmission time-out
K_STALL_MAX_S = 120.0
#: a direction whose data the capture missed this many times is not judged
K_STALL_CAPTURE_GAPS = 2

CAUSES = ("dead_peer", "rto_backoff", "lost_retransmission", "timeout")

#: how a connection ends for a silence up to its last segment to count (``Conn.end_reason``)
_ENDED = frozenset({"rst", "fin"})


class StallWatch:
    """Per connection: each direction's last data segment seen by the detectors (ns), and
    the stalls found so far: ``(direction, start_ns, end_ns, end_frame, limit_ns)``."""

    __slots__ = ("last_data_ns", "stalls", "resent")

    def __init__(self):
        self.last_data_ns = [0, 0]
        self.stalls: list = []
        # sequence numbers each direction retransmitted: two sets from the first retransmission
        # on (most connections have none, and a watch lives as long as its connection)
        self.resent: tuple | None = None


@cython.locals(conn=Conn, f=Flow)
def _limit_ns(conn, f, th) -> float:
    rtt = f.track.rtt_sum / f.track.rtt_n if f.track.rtt_n else conn.irtt
    return max(th.get("stall_min_s") * 1e9, th.get("stall_rtt_factor") * rtt)


@cython.locals(f=Flow, peer=Flow)
def _outstanding(f, peer) -> bool:
    """The peer has acknowledged something, but not everything ``f`` sent, and its window is open."""
    if peer.is_first_ack or peer.window == 0:
        return False
    return seq_gt(f.nextseq, peer.lastack)


@segment_detector(50, on=SEG_DATA | FIN)
@cython.locals(seg=Segment, verdict=Verdict, conn=Conn, f=Flow, d=cython.longlong)
def watch_stalls(seg, verdict, conn, events, th) -> None:
    d = verdict.direction
    now = seg.ts_ns
    w = events.get("stall")
    if w is None:
        w = events["stall"] = StallWatch()
    f = conn.flows[d]
    if (verdict.analysis & _RTX and not seg.flags & _SYN and f.nextseqframe != seg.frame
            and _outstanding(f, conn.flows[d ^ 1])):
        start = max(f.nextseqtime, w.last_data_ns[d])
        limit = _limit_ns(conn, f, th)
        if w.resent is None:
            w.resent = (set(), set())
        resent = w.resent[d]
        if now - start > limit:
            w.stalls.append((d, start, now, seg.frame, limit, seg.seq in resent))
        if len(resent) < K_STALL_SEQS:
            resent.add(seg.seq)
    w.last_data_ns[d] = now


def render(f: Finding) -> str:
    v, t = f.values, f.terms
    return (f"stall: {v['sender']} {v['endpoint']} had unacknowledged data and sent nothing for longer than "
            f"max({t['min_s']:g} s, {t['factor']:g}x RTT) {v['stalls']} time(s): longest {t['longest_ns'] / 1e9:.3f} s "
            f"(limit {t['limit_ns'] / 1e9:.3f} s), {t['total_ns'] / 1e9:.3f} s in all"
            + (f"; {v['ended_by_retransmission']} ended by a retransmission" if v["ended_by_retransmission"] else "")
            + (f"; still stalled when the connection ended ({t['end']})" if v["stalled_at_end"] else "")
            + f"; cause: {_CAUSE_TEXT[v['cause']].format(**t)}"
            + (f", after {t['backoffs']} time-outs in a row with RTO back-off x{t['backoff']:.2g}"
               if v["cause"] == "dead_peer" and t["backoffs"] else ""))


_CAUSE_TEXT = {
    "dead_peer": "dead peer (it sent nothing from the first stall on)",
    "rto_backoff": "RTO back-off ({backoffs} time-outs in a row, each silence x{backoff:.2g} the one before)",
    "lost_retransmission": "lost retransmission (a segment already retransmitted was sent again)",
    "timeout": "retransmission time-out",
}


def _cause(found: list, peer, at_end: bool) -> tuple[str, int, float]:
    """The stall's cause (see the module doc), the longest run of back-offs and its mean factor."""
    run = best = 0
    factors: list = []
    best_f: list = []
    for a, b in zip(found, found[1:]):
        # b follows a: it began when a's retransmission went out (give or take a segment sent with it)
        if b[3] and 0 <= b[1] - a[2] < (a[2] - a[1]) // 10 and (b[2] - b[1]) >= K_STALL_BACKOFF * (a[2] - a[1]):
            run += 1
            factors.append((b[2] - b[1]) / (a[2] - a[1]))
            if run > best:
                best, best_f = run, list(factors)
        else:
            run, factors = 0, []
    backoff = sum(best_f) / len(best_f) if best_f else 0.0
    if at_end and peer.times.last_ns < found[0][1]:
        return "dead_peer", best + 1 if best else 0, backoff
    if best:
        return "rto_backoff", best + 1, backoff
    if any(s[5] for s in found):
        return "lost_retransmission", 0, 0.0
    return "timeout", 0, 0.0


STALL = declare_kind(
    "stall", render,
    description="a direction had unacknowledged data and sent nothing (no new data nor retransmission) for more "
                "than max(1 s, 4x RTT); cause: dead_peer, rto_backoff, lost_retransmission or timeout")


@cython.locals(conn=Conn, f=Flow)
def stall_spans(conn, th, d: int) -> list[tuple]:
    """The stalls of direction ``d`` of a finalized connection whose segments went through the
    detectors: ``(d, start_ns, end_ns, end_frame, limit_ns, resent_again)``, the last one with
    ``end_frame`` 0 when the connection ended stalled (``ladder`` and ``plot`` mark them)."""
    ev = conn.events
    w = ev.get("stall") if ev else None
    f = conn.flows[d]
    found = [s for s in w.stalls if s[0] == d] if w is not None else []
    if conn.end_reason in _ENDED and _outstanding(f, conn.flows[d ^ 1]):
        start = max(f.nextseqtime, w.last_data_ns[d] if w is not None else 0)
        limit = _limit_ns(conn, f, th)
        if start and conn.last_ns - start > limit:
            found.append((d, start, conn.last_ns, 0, limit, False))
    return found


@conn_detector(85)
@cython.locals(conn=Conn, f=Flow, fo=Flow, fr=Flow)
def stalls(conn, th, acc, end_ns, out) -> None:
    ev = conn.events
    w = ev.get("stall") if ev else None
    if w is None or not w.stalls:
        # no stall seen while the segments passed: one is left only if the connection ended
        # with data outstanding (stall_spans), which needs a direction whose next sequence
        # number is not what its peer acknowledged last
        if conn.end_reason not in _ENDED:
            return
        fo, fr = conn.flows
        if fo.nextseq == fr.lastack and fr.nextseq == fo.lastack:
            return
    for d in (conn.orig, conn.orig ^ 1):
        f = conn.flows[d]
        found = stall_spans(conn, th, d)
        if not found:
            continue
        at_end = found[-1][3] == 0
        n_rtx = len(found) - at_end
        longest = max(found, key=lambda s: s[2] - s[1])
        total = sum(s[2] - s[1] for s in found)
        cause, backoffs, factor = _cause(found, conn.flows[d ^ 1], at_end)
        untrusted = (longest[2] - longest[1] > K_STALL_MAX_S * 1e9
                     or f.stats.lost + conn.flows[d ^ 1].stats.ack_lost >= K_STALL_CAPTURE_GAPS)
        out.append(Finding(
            "stall", "warning" if n_rtx and not untrusted else "info", stream=conn.stream,
            cause="capture" if untrusted else None,
            frames=[s[3] for s in found[:th.evidence_frames]], ts_ns=found[0][1],
            values={"sender": role(conn, d), "endpoint": label(conn, d), "stalls": len(found),
                    "ended_by_retransmission": n_rtx, "stalled_at_end": at_end,
                    "longest_s": _s(longest[2] - longest[1]), "limit_s": _s(int(longest[4])), "total_s": _s(total),
                    "cause": cause, "backoffs": backoffs, "backoff_factor": round(factor, 2)},
            terms={"longest_ns": longest[2] - longest[1], "limit_ns": longest[4], "total_ns": total,
                   "end": conn.end_reason, "min_s": th.get("stall_min_s"), "factor": th.get("stall_rtt_factor"),
                   "backoffs": backoffs, "backoff": factor}))
