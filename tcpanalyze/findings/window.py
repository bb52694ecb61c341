"""``zero_window`` (a receiver advertised zero: how long, probes, whether the connection died
in it) and ``window_shrink`` (the right edge of the window moved left, RFC 9293 §3.8.6;
``window_shrink/reordered_ack``: old ACKs that arrived after later ones carried an edge left of
it, which their receiver ignores, RFC 9293 §3.10.7.4)."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.engine import Conn, EndpointTrack, Flow
from tcpanalyze.findings.base import Finding, conn_detector, declare_kind, label, role, _s


def render_zero_window(f: Finding) -> str:
    v, t = f.values, f.terms
    who = f"{v['advertised_by']} {v['endpoint']}"
    dur = t["duration_ns"] / 1e9
    if not v["reopened"]:
        how = ("the connection died in it (" + t["end_reason"] + ")" if v["died"]
               else "still closed when the capture (or the connection) ended")
        return (f"zero_window: {who} advertised a zero window (frame {t['start_frame']}) and never reopened it: "
                f"{how}, {dur:.3f} s, {v['probes']} probe(s)")
    sev = f.severity
    return (f"zero_window: {who} advertised a zero window for {dur:.3f} s (frames {t['start_frame']}-"
            f"{v['reopen_frame']}), {v['probes']} probe(s); {sev} since {'>=' if sev == 'warning' else '<'} "
            f"{t['limit_s']:g} s")


def render_window_shrink(f: Finding) -> str:
    v = f.values
    if f.subkind == "reordered_ack":
        return (f"window_shrink reordered_ack: {v['shrinks']} old ACK(s) from {v['advertised_by']} {v['endpoint']} "
                f"arrived after a later one (an ACK number below one already seen, or the same with an older "
                f"timestamp: reordered on the way) with a right window edge left of the furthest advertised, by up "
                f"to {v['largest_bytes']} bytes (sum {v['total_bytes']}); the window did not shrink: the peer ignores "
                f"the window of an old ACK (RFC 9293 §3.10.7.4)")
    return (f"window_shrink: {v['advertised_by']} {v['endpoint']} advertised a right window edge (ACK + scaled "
            f"window) left of the furthest one it had advertised on {v['shrinks']} ACK(s), by up to "
            f"{v['largest_bytes']} bytes (sum {v['total_bytes']}); RFC 9293 §3.8.6: a receiver should not "
            f"shrink the window")


ZERO_WINDOW = declare_kind(
    "zero_window", render_zero_window,
    description="per episode: who advertised a zero window, how long until it reopened, probes seen, whether "
                "the connection died in it; warning from --zero-window seconds")
WINDOW_SHRINK = declare_kind(
    "window_shrink", render_window_shrink, subkinds=("reordered_ack",), notes=("reordered_ack",),
    description="a receiver's right window edge (ACK + scaled window) moved left of one it advertised "
                "(RFC 9293 §3.8.6), on a segment its peer takes as a window update (RFC 9293 §3.10.7.4); "
                "reordered_ack (info): old ACKs that arrived late carried an edge left of it, which the peer ignores")


@conn_detector(40)
@cython.locals(conn=Conn, f=Flow)
def zero_window(conn, th, acc, end_ns, out) -> None:
    for ep in (conn.orig, conn.orig ^ 1):
        f = conn.flows[ep]
        eps = f.track.zw_episodes
        if not eps:
            continue
        for start_frame, start_ns, end_frame, end_ns_, probes in eps:
            if end_frame is None:
                died = (conn.end_reason in ("rst", "timeout", "evicted")
                        or bool(conn.flows[0].stats.rsts or conn.flows[1].stats.rsts))
                dur = conn.last_ns - start_ns
                sev = "error" if died else "warning"
            else:
                died = False
                dur = end_ns_ - start_ns
                sev = "warning" if dur >= th.zero_window_s * 1e9 else "info"
            out.append(Finding(
                "zero_window", sev, stream=conn.stream, frames=[start_frame, end_frame], ts_ns=start_ns,
                values={"advertised_by": role(conn, ep), "endpoint": label(conn, ep), "duration_s": _s(dur),
                        "reopened": end_frame is not None, "reopen_frame": end_frame, "probes": probes,
                        "died": died},
                terms={"start_frame": start_frame, "duration_ns": dur, "end_reason": conn.end_reason,
                       "limit_s": th.zero_window_s}))


def _retreats(conn, ep, th, kept, total, subkind, sev) -> Finding:
    f = conn.flows[ep]
    retreats = [{"frame": fr, "bytes": b} for fr, _ns, b in kept]
    largest = max(x["bytes"] for x in retreats)
    return Finding(
        "window_shrink", sev, subkind=subkind,
        stream=conn.stream, frames=[x["frame"] for x in retreats[:th.evidence_frames]], ts_ns=kept[0][1],
        values={"advertised_by": role(conn, ep), "endpoint": label(conn, ep), "shrinks": len(kept),
                "total_bytes": total, "largest_bytes": largest,
                "window_scale": 0 if f.win_scale < 0 else f.win_scale, "retreats": retreats})


@conn_detector(50)
@cython.locals(conn=Conn, tr=EndpointTrack)
def window_shrink(conn, th, acc, end_ns, out) -> None:
    for ep in (conn.orig, conn.orig ^ 1):
        tr = conn.flows[ep].track
        if tr.shrinks:
            out.append(_retreats(conn, ep, th, tr.shrinks, tr.shrink_bytes, None, "warning"))
        if tr.reorders:
            out.append(_retreats(conn, ep, th, tr.reorders, tr.reorder_bytes, "reordered_ack", "info"))
