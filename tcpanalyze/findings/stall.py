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

One finding per stalled direction: how many stalls, the longest, the time in all, and the
frames of the retransmissions that ended them.  A warning when a retransmission ended one
(the sender waited on a time-out); info when D was only silent until the end.
"""
from __future__ import annotations

from tcpanalyze import analysis as A
from tcpanalyze.findings.base import SEG_DATA, Finding, conn_detector, declare_kind, label, role, segment_detector, _s
from tcpanalyze.model import FIN, SYN
from tcpanalyze.seq import seq_gt

#: a silence shorter than this (s) is never a stall (RFC 6298 §2.4: the minimum RTO is 1 s) ...
K_STALL_MIN_S = 1.0
#: ... nor one shorter than this many RTTs.
K_STALL_RTT_FACTOR = 4.0

#: how a connection ends for a silence up to its last segment to count (``Conn.end_reason``)
_ENDED = frozenset({"rst", "fin"})


class StallWatch:
    """Per connection: each direction's last data segment seen by the detectors (ns), and
    the stalls found so far: ``(direction, start_ns, end_ns, end_frame, limit_ns)``."""

    __slots__ = ("last_data_ns", "stalls")

    def __init__(self):
        self.last_data_ns = [0, 0]
        self.stalls: list = []


def _limit_ns(conn, f) -> float:
    rtt = f.track.rtt_sum / f.track.rtt_n if f.track.rtt_n else conn.irtt
    return max(K_STALL_MIN_S * 1e9, K_STALL_RTT_FACTOR * rtt)


def _outstanding(f, peer) -> bool:
    """The peer has acknowledged something, but not everything ``f`` sent, and its window is open."""
    if peer.is_first_ack or peer.window == 0:
        return False
    return seq_gt(f.nextseq, peer.lastack)


@segment_detector(50, on=SEG_DATA | FIN)
def watch_stalls(seg, verdict, conn, events, th) -> None:
    d = verdict.direction
    now = seg.ts_ns
    w = events.get("stall")
    if w is None:
        w = events["stall"] = StallWatch()
    f = conn.flows[d]
    if (verdict.analysis & A.RETRANSMISSION_FAMILY and not seg.flags & SYN and f.nextseqframe != seg.frame
            and _outstanding(f, conn.flows[d ^ 1])):
        start = max(f.nextseqtime, w.last_data_ns[d])
        limit = _limit_ns(conn, f)
        if now - start > limit:
            w.stalls.append((d, start, now, seg.frame, limit))
    w.last_data_ns[d] = now


def render(f: Finding) -> str:
    v, t = f.values, f.terms
    return (f"stall: {v['sender']} {v['endpoint']} had unacknowledged data and sent nothing for longer than "
            f"max({t['min_s']:g} s, {t['factor']:g}x RTT) {v['stalls']} time(s): longest {t['longest_ns'] / 1e9:.3f} s "
            f"(limit {t['limit_ns'] / 1e9:.3f} s), {t['total_ns'] / 1e9:.3f} s in all"
            + (f"; {v['ended_by_retransmission']} ended by a retransmission" if v["ended_by_retransmission"] else "")
            + (f"; still stalled when the connection ended ({t['end']})" if v["stalled_at_end"] else ""))


STALL = declare_kind(
    "stall", render,
    description="a direction had unacknowledged data and sent nothing (no new data nor retransmission) for more "
                "than max(1 s, 4x RTT)")


@conn_detector(85)
def stalls(conn, th, acc, end_ns, out) -> None:
    ev = conn.events
    w = ev.get("stall") if ev else None
    for d in (conn.orig, conn.orig ^ 1):
        f = conn.flows[d]
        found = [s for s in w.stalls if s[0] == d] if w is not None else []
        n_rtx = len(found)
        at_end = False
        if conn.end_reason in _ENDED and _outstanding(f, conn.flows[d ^ 1]):
            start = max(f.nextseqtime, w.last_data_ns[d] if w is not None else 0)
            limit = _limit_ns(conn, f)
            if start and conn.last_ns - start > limit:
                found.append((d, start, conn.last_ns, 0, limit))
                at_end = True
        if not found:
            continue
        longest = max(found, key=lambda s: s[2] - s[1])
        total = sum(s[2] - s[1] for s in found)
        out.append(Finding(
            "stall", "warning" if n_rtx else "info", stream=conn.stream,
            frames=[s[3] for s in found[:th.evidence_frames]], ts_ns=found[0][1],
            values={"sender": role(conn, d), "endpoint": label(conn, d), "stalls": len(found),
                    "ended_by_retransmission": n_rtx, "stalled_at_end": at_end,
                    "longest_s": _s(longest[2] - longest[1]), "limit_s": _s(int(longest[4])), "total_s": _s(total)},
            terms={"longest_ns": longest[2] - longest[1], "limit_ns": longest[4], "total_ns": total,
                   "end": conn.end_reason, "min_s": K_STALL_MIN_S, "factor": K_STALL_RTT_FACTOR}))
