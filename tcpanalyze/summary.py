"""Connection summary records (the ``flows`` rows and the report's ``connections``).

A summary is a plain dict with stable keys (documented in the README, "JSON contract").
Times are seconds since the epoch (floats); durations and RTTs are seconds.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.diagnosis import perf_into, think_times
from tcpanalyze.engine import Conn, ConnEnding, EndpointStats, EndpointTrack, Flow
from tcpanalyze.jsontext import fround
from tcpanalyze.model import addr_str, flag_names


@cython.cfunc
def _s(ns: object) -> object:
    """Integer nanoseconds as seconds: the value ``round(ns / 1e9, 9)`` gives, which for an
    integer is ``ns / 1e9`` itself (the double nearest to the 9-decimal number; checked by
    tests/test_summary_times.py), so it is not rounded again."""
    return ns / 1e9


def _rtt(t: EndpointTrack) -> dict | None:
    if not t.rtt_n:
        return None
    return {"samples": t.rtt_n, "min": _s(t.rtt_min), "avg": fround(t.rtt_sum / t.rtt_n / 1e9, 9), "max": _s(t.rtt_max)}


def side_stats(f: Flow) -> dict:
    """One direction's counters (the ``orig`` / ``resp`` object without the diagnosis)."""
    s: EndpointStats = f.stats
    t: EndpointTrack = f.track
    return {
        "packets": s.pkts, "bytes": s.bytes, "data_packets": s.data_pkts,
        "retransmissions": s.rtx, "retransmitted_bytes": s.rtx_bytes, "fast_retransmissions": s.fast_rtx,
        "spurious_retransmissions": s.spurious, "out_of_order": s.ooo, "lost_segments": s.lost,
        "acked_unseen": s.ack_lost, "duplicate_acks": s.dupacks, "zero_windows": s.zero_win,
        "zero_window_probes": s.zwp, "keep_alives": s.keepalive, "window_full": s.win_full,
        "window_updates": s.win_update, "syn": s.syns, "fin": s.fins, "rst": s.rsts,
        "window_scale": None if f.win_scale == -1 else (0 if f.win_scale == -2 else f.win_scale),
        "window_scale_known": f.win_scale != -1, "mss": s.mss or None, "max_segment": s.max_seg,
        "window_shrinks": len(t.shrinks) if t.shrinks else 0, "window_shrink_bytes": t.shrink_bytes,
        "rtt": _rtt(t),
    }


def endpoint_record(conn: Conn, d: int) -> dict:
    """Direction ``d``'s object: its counters, then its diagnosis (``diagnosis.perf``)."""
    rec = side_stats(conn.flows[d])
    perf_into(rec, conn, d)
    return rec


def summarize(conn: Conn, *, timelines: bool = False) -> dict:
    o: int = conn.orig
    r: int = o ^ 1
    fo: Flow = conn.flows[o]
    fr: Flow = conn.flows[r]
    end: ConnEnding = conn.ending
    z = conn.zeek
    rec = {
        "stream": conn.stream,
        "orig_h": addr_str(conn.addr[o]), "orig_p": conn.port[o],
        "resp_h": addr_str(conn.addr[r]), "resp_p": conn.port[r],
        "orig_state": conn.state[o].name, "resp_state": conn.state[r].name,
        "conn_state": z.conn_state(), "history": z.history,
        "orig_pkts": fo.stats.pkts, "resp_pkts": fr.stats.pkts, "orig_bytes": fo.stats.bytes, "resp_bytes": fr.stats.bytes,
        "start": _s(conn.first_ns), "end": _s(conn.last_ns), "duration": _s(conn.last_ns - conn.first_ns),
        "first_frame": conn.first_frame, "last_frame": conn.last_frame,
        "close_initiator": None if end.close_initiator < 0 else ("orig" if end.close_initiator == o else "resp"),
        "end_reason": conn.end_reason,
        "reset_by": None if end.reset_by < 0 else ("orig" if end.reset_by == o else "resp"),
        "handshake_seen": conn.handshake_seen,
        "states_inferred": conn.inferred,
        "handshake_rtt": _s(conn.irtt) if conn.irtt else None,
        "syn_retries": max(0, len(conn.handshake.syn_times) - 1) if conn.handshake.syn_times else 0,
        "retransmissions": fo.stats.rtx + fr.stats.rtx,
        "orig": endpoint_record(conn, o), "resp": endpoint_record(conn, r),
        "unexpected": [{"frame": fr_, "endpoint": "orig" if ep == o else "resp", "anomaly": name}
                       for fr_, _ts, ep, name in (conn.anomalies or ())],
    }
    if conn.ztrack.zeek_done:
        # Zeek would have logged several connections for this stream (timers after a close,
        # reset or one-sided start): list them all; the top-level fields describe the first.
        recs = [(z, zo, a, b) for z, zo, a, b in conn.ztrack.zeek_done] + [(conn.zeek, conn.ztrack.zorig, conn.ztrack.zeek_done[-1][3], conn.last_ns)]
        rec["zeek"] = [{"start": _s(a), "orig_h": addr_str(conn.addr[zo]), "orig_p": conn.port[zo],
                        "resp_h": addr_str(conn.addr[zo ^ 1]), "resp_p": conn.port[zo ^ 1],
                        "conn_state": z.conn_state(), "history": z.history} for z, zo, a, b in recs]
        first = conn.ztrack.zeek_done[0][0]
        rec["conn_state"], rec["history"] = first.conn_state(), first.history
    if end.tw_start is not None:
        ep, ts, frame = end.tw_start
        rec["time_wait"] = {"endpoint": "orig" if ep == o else "resp", "start": _s(ts), "frame": frame}
    rec["server_think"], rec["client_think"] = think_times(conn)
    if timelines and conn.timeline is not None:
        rec["timeline"] = {
            "orig": timeline(conn, o),
            "resp": timeline(conn, r),
        }
    return rec


def timeline(conn: Conn, ep: int) -> list[dict]:
    """One endpoint's transitions: time, frame, from, to, and the segment that caused them."""
    return [{"time": _s(ts), "frame": frame, "from": s0.name, "to": s1.name,
             "cause": f"{'sent' if sent else 'received'} {flag_names(flags)}" + (f" LEN={paylen}" if paylen else "")}
            for ts, frame, s0, s1, flags, paylen, sent in conn.timeline[ep]]
