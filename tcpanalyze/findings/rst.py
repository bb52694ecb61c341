"""``rst``: who reset a connection and in which state; reset connections per server port."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.engine import Conn, Flow, Verdict
from tcpanalyze.findings.base import (Finding, RstEvidence, RstTally, aggregate_detector, conn_detector,
                                      declare_kind, evidence, label, role, segment_detector, state_name,
                                      tally_example)
from tcpanalyze.model import RST, Segment, addr_str

_CLOSING = frozenset({"FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK", "CLOSE_WAIT"})
_AFTER_CLOSE = frozenset({"TIME_WAIT", "CLOSED"})
#: classes of a reset connection (the per-connection subkinds)
CLASSES = ("refused", "aborted", "reset_after_close", "unknown_connection")


def _crossing_note(v: dict) -> str:
    """What the peer sent after the RST that the state machine did not expect, when it did."""
    crossed, late = v.get("peer_segments_crossed", 0), v.get("peer_segments_late", 0)
    note = ""
    if crossed:
        note += (f"; {crossed} segment(s) from the peer crossed the RST in flight (they arrived up to "
                 f"{v['crossed_within_ms']:g} ms after it, about one {v['round_trip_ms']:g} ms round trip to the "
                 f"peer: sent before the peer had taken the RST), not segments the capture missed")
    if late:
        note += (f"; {late} later segment(s) from the peer: the RST did not reach it (lost past the capture point) "
                 f"or it did not accept the RST")
    return note


def render(f: Finding) -> str:
    v, t, sub = f.values, f.terms, f.subkind
    if sub == "per_port":
        counts = [(k, v[k]) for k in CLASSES if k in v]
        return (f"rst per_port: {v['total']} reset connection(s) with server {f.host}:{f.port}: "
                + ", ".join(f"{k} {n}" for k, n in counts))
    rf = t["frame"]
    if sub == "unknown_connection":
        return (f"rst unknown_connection: the first segment seen of this 4-tuple is a RST from "
                f"{v['endpoint']} (frame {rf}); the connection it resets was not captured")
    if sub == "refused":
        return (f"rst refused: {v['endpoint']} answered the SYN (frame {t['syn_frame']}) with RST "
                f"(frame {rf}): nothing listening, or a firewall rejecting")
    if sub == "reset_after_close":
        return (f"rst reset_after_close: {v['sent_by']} {v['endpoint']} sent RST (frame {rf}) after both sides "
                f"had sent FIN (its state {v['state']})" + _crossing_note(v))
    return (f"rst aborted: {v['sent_by']} {v['endpoint']} reset the connection in {v['state']} (frame {rf})"
            + (", while closing" if v["while_closing"] else "")
            + f"; {v['inflight_discarded']} bytes in flight discarded ({v['unacked_discarded']} it had sent "
              f"unacknowledged, {v['peer_unacked_discarded']} from the peer unacknowledged, "
              f"{v['peer_sent_after_rst']} the peer sent after the RST)" + _crossing_note(v))


RST_KIND = declare_kind(
    "rst", render, subkinds=CLASSES + ("per_port",),
    description="a RST: refused (answering a SYN), aborted (mid-stream: who, bytes discarded), "
                "reset_after_close, unknown_connection (the first segment seen); per_port counts per server port")


def round_trip_ns(conn) -> int:
    """The round trip from the capture point to the peer of the first RST's sender and back:
    the largest ACK RTT of the RST sender's segments, else the handshake RTT (0: unknown)."""
    rtt = conn.flows[conn.ending.reset_by].track.rtt_max
    return rtt if rtt > 0 else conn.irtt


def rst_crossings(conn) -> tuple[list, int, int]:
    """The peer's segments after the first RST that the state machine did not expect (the peer
    is CLOSED once the RST passed the capture point): (frames of those that crossed the RST in
    flight, the number that came later, the latest crossing one's delay after the RST in ns).

    A segment crossed the RST when it reached the capture point less than one round trip to
    the peer and back after the RST: it was sent before the RST could have reached the peer.
    The bound allows twice the round trip (``round_trip_ns``) for the queueing a burst meets on
    the way; with no round trip known, none is taken as crossed. A peer that has taken a RST
    sends nothing more, so neither kind is a segment the capture missed; a later one means
    the RST did not reach the peer or the peer did not accept it."""
    d = conn.ending.reset_by
    if d < 0 or not conn.anomalies:
        return [], 0, 0
    rst_ns = conn.flows[d].times.rst_ns
    limit = 2 * round_trip_ns(conn)
    crossed: list = []
    late = 0
    last = 0
    for frame, ts, ep, name in conn.anomalies:
        if ep != d and ts >= rst_ns and name.startswith("unexpected_snd_"):
            if ts - rst_ns < limit:
                crossed.append(frame)
                last = max(last, ts - rst_ns)
            else:
                late += 1
    return crossed, late, last


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


@segment_detector(30, on=RST)
@cython.locals(seg=Segment, verdict=Verdict, conn=Conn, peer=Flow, d=cython.longlong)
def measure_rst(seg, verdict, conn, events, th) -> None:
    d = verdict.direction
    if seg.flags & RST and "rst" not in events and conn.ending.reset_by == d:
        # Bytes in flight the RST discards: each side's data still unacknowledged after it
        # (the RST's own ACK has been applied), counted once even if retransmitted.
        peer = conn.flows[d ^ 1]
        events["rst"] = RstEvidence(_unacked(peer), seg.frame, _unacked(conn.flows[d]), peer.nextseq)


@conn_detector(10)
@cython.locals(conn=Conn, f=Flow, peer=Flow)
def rst_finding(conn, th, acc, end_ns, out) -> None:
    d = conn.ending.reset_by
    if d < 0:
        return
    o = conn.orig
    f = conn.flows[d]
    peer = conn.flows[d ^ 1]
    rf = f.times.rst_frame
    who = role(conn, d)
    st = conn.ending.reset_state
    s_self = state_name(st[0]) if st else "?"
    s_peer = state_name(st[1]) if st else "?"
    extra = evidence(conn, "rst")
    peer_unacked = extra.peer_unacked if extra else 0
    own_unacked = extra.own_unacked if extra else conn.ending.reset_inflight
    # data the peer still sent after the RST (it crossed the RST, or the peer had not seen it yet)
    after = (peer.nextseq - extra.peer_nextseq) & 0xFFFFFFFF if extra and extra.peer_nextseq and peer.nextseq else 0
    if after >= 0x80000000:
        after = 0
    values = {"sent_by": who, "endpoint": label(conn, d), "state": s_self, "peer_state": s_peer,
              "rsts": f.stats.rsts, "unacked_discarded": own_unacked, "peer_unacked_discarded": peer_unacked,
              "peer_sent_after_rst": after}
    terms = {"frame": rf}
    if rf == conn.first_frame and not conn.handshake_seen:
        cls = "unknown_connection"
        sev, cause = "info", "capture"
        frames = [rf]
    elif d != o and not f.stats.syns and conn.flows[o].stats.syns:
        cls = "refused"
        sev, cause = "warning", None
        terms["syn_frame"] = conn.handshake.syn_frame
        frames = [conn.handshake.syn_frame, rf]
    elif s_self in _AFTER_CLOSE or (f.times.fin_next >= 0 and peer.times.fin_next >= 0 and f.times.fin_ns <= f.times.rst_ns
                                     and peer.times.fin_ns <= f.times.rst_ns):
        cls = "reset_after_close"
        sev, cause = "info", None
        frames = [rf]
    else:
        cls = "aborted"
        sev, cause = "warning", None
        values["while_closing"] = s_self in _CLOSING or s_peer in _CLOSING
        frames = [rf]
    values["inflight_discarded"] = own_unacked + peer_unacked + after
    if cls in ("aborted", "reset_after_close"):
        crossed, late, last = rst_crossings(conn)
        if crossed or late:
            values["peer_segments_crossed"] = len(crossed)
            values["peer_segments_late"] = late
            values["crossed_frames"] = crossed[:th.evidence_frames]
            values["crossed_within_ms"] = round(last / 1e6, 3)
            values["round_trip_ms"] = round(round_trip_ns(conn) / 1e6, 3)
    values["class"] = cls
    out.append(Finding("rst", sev, subkind=cls, stream=conn.stream, frames=frames, ts_ns=f.times.rst_ns,
                       values=values, terms=terms, cause=cause))
    if acc is not None:
        key = (addr_str(conn.addr[o ^ 1]), conn.port[o ^ 1])
        t = acc.rst_ports.get(key)
        if t is None:
            t = acc.rst_ports[key] = RstTally(first_ns=f.times.rst_ns)
        t.counts[cls] += 1
        tally_example(t.streams, conn.stream)


@aggregate_detector(20)
def rst_per_port(facts, th, acc, out, extra) -> None:
    for (hs, port), t in sorted(acc.rst_ports.items(), key=lambda kv: kv[0]):
        counts = {k: n for k, n in t.counts.items() if n}
        total = sum(counts.values())
        out.append(Finding("rst", "info", subkind="per_port", host=hs, port=port, ts_ns=t.first_ns,
                           values={"total": total, **counts, "streams": t.streams}))
