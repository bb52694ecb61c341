"""Connection summary records (the ``flows`` rows and the report's ``connections``).

A summary is a plain dict with stable keys (documented in the README, "JSON contract").
Times are seconds since the epoch (floats); durations and RTTs are seconds.
"""
from __future__ import annotations

from tcpanalyze.diagnosis import perf, think_times
from tcpanalyze.engine import Conn, Flow
from tcpanalyze.model import addr_str, flag_names


def _s(ns: int) -> float:
    return round(ns / 1e9, 9)


def _rtt(f: Flow) -> dict | None:
    if not f.track.rtt_n:
        return None
    return {"samples": f.track.rtt_n, "min": _s(f.track.rtt_min), "avg": round(f.track.rtt_sum / f.track.rtt_n / 1e9, 9), "max": _s(f.track.rtt_max)}


def side_stats(f: Flow) -> dict:
    return {
        "packets": f.stats.pkts, "bytes": f.stats.bytes, "data_packets": f.stats.data_pkts,
        "retransmissions": f.stats.rtx, "retransmitted_bytes": f.stats.rtx_bytes, "fast_retransmissions": f.stats.fast_rtx,
        "spurious_retransmissions": f.stats.spurious, "out_of_order": f.stats.ooo, "lost_segments": f.stats.lost,
        "acked_unseen": f.stats.ack_lost, "duplicate_acks": f.stats.dupacks, "zero_windows": f.stats.zero_win,
        "zero_window_probes": f.stats.zwp, "keep_alives": f.stats.keepalive, "window_full": f.stats.win_full,
        "window_updates": f.stats.win_update, "syn": f.stats.syns, "fin": f.stats.fins, "rst": f.stats.rsts,
        "window_scale": None if f.win_scale == -1 else (0 if f.win_scale == -2 else f.win_scale),
        "window_scale_known": f.win_scale != -1, "mss": f.stats.mss or None, "max_segment": f.stats.max_seg,
        "window_shrinks": len(f.track.shrinks) if f.track.shrinks else 0, "window_shrink_bytes": f.track.shrink_bytes,
        "rtt": _rtt(f),
    }


def summarize(conn: Conn, *, timelines: bool = False) -> dict:
    o = conn.orig
    r = o ^ 1
    fo, fr = conn.flows[o], conn.flows[r]
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
        "close_initiator": None if conn.ending.close_initiator < 0 else ("orig" if conn.ending.close_initiator == o else "resp"),
        "end_reason": conn.end_reason,
        "reset_by": None if conn.ending.reset_by < 0 else ("orig" if conn.ending.reset_by == o else "resp"),
        "handshake_seen": conn.handshake_seen,
        "states_inferred": conn.inferred,
        "handshake_rtt": _s(conn.irtt) if conn.irtt else None,
        "syn_retries": max(0, len(conn.handshake.syn_times) - 1) if conn.handshake.syn_times else 0,
        "retransmissions": fo.stats.rtx + fr.stats.rtx,
        "orig": {**side_stats(fo), **perf(conn, o)}, "resp": {**side_stats(fr), **perf(conn, r)},
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
    if conn.ending.tw_start is not None:
        ep, ts, frame = conn.ending.tw_start
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
