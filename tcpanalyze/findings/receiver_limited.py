"""``receiver_limited``: the receiver's window, not the network, capped a direction's throughput.

Rule: direction D's ``limited_by`` (``tcpanalyze.diagnosis``) is ``receiver_window``, at least
``K_RECEIVER_LIMITED_SHARE`` of its transfer time passed with the bytes in flight within one
MSS of the window the receiver advertised, and the transfer (first to last data byte) lasted
at least ``K_RECEIVER_LIMITED_MIN_S``.  The finding names the window, the RTT and the ceiling
they set, window/RTT; its frame is the first data segment that filled the window.  A warning:
a larger receive buffer (or window scaling) would have made the transfer faster.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.diagnosis import perf
from tcpanalyze.engine import Conn, EndpointPerf, Flow
from tcpanalyze.findings.base import Finding, conn_detector, declare_kind, declare_threshold, label, role

#: the share of the transfer time spent window-limited ...
K_RECEIVER_LIMITED_SHARE = declare_threshold(
    "receiver_limited_share", 0.5,
    "receiver_limited: the share of a transfer's time with bytes in flight within 1 MSS of the receiver's window ...")
#: ... of a transfer at least this long (s)
K_RECEIVER_LIMITED_MIN_S = declare_threshold(
    "receiver_limited_min_s", 1.0, "... of a transfer at least this many seconds long.")


def render(f: Finding) -> str:
    v = f.values
    return (f"receiver_limited: {v['sender']} {v['endpoint']} was held by {v['receiver']}'s receive window for "
            f"{v['share'] * 100:.0f}% of {v['transfer_s']:.3f} s: window {v['window_bytes']:,} B, RTT "
            f"{v['rtt_ms']:g} ms, ceiling window/RTT = {v['ceiling_bps'] / 1e6:.3g} Mbit/s "
            f"(goodput {v['goodput_bps'] / 1e6:.3g} Mbit/s)")


RECEIVER_LIMITED = declare_kind(
    "receiver_limited", render, severity="warning",
    description="the receiver's advertised window, not the network, capped a direction's throughput for most of "
                "the transfer")


@conn_detector(86)
@cython.locals(conn=Conn, f=Flow, p=EndpointPerf)
def receiver_limited(conn, th, acc, end_ns, out) -> None:
    for d in (conn.orig, conn.orig ^ 1):
        f = conn.flows[d]
        p = f.perf
        if not p.split.t_rwnd or p.last_ns - p.first_ns < th.get("receiver_limited_min_s") * 1e9:
            continue
        share = th.get("receiver_limited_share")
        total = p.split.t_rwnd + p.split.t_zwnd + p.split.t_loss + p.split.t_app + p.split.t_cwnd
        if p.split.t_rwnd < share * total:
            continue
        r = perf(conn, d)
        if r["limited_by"] != "receiver_window" or not f.track.rtt_sum:
            continue
        rtt_ns = f.track.rtt_sum / f.track.rtt_n
        w = p.win_max
        out.append(Finding(
            "receiver_limited", "warning", stream=conn.stream, frames=[p.rwnd_frame], ts_ns=p.first_ns,
            values={"sender": role(conn, d), "endpoint": label(conn, d), "receiver": label(conn, d ^ 1),
                    "share": round(p.split.t_rwnd / total, 4), "transfer_s": r["transfer_s"], "window_bytes": w,
                    "rtt_ms": round(rtt_ns / 1e6, 3), "ceiling_bps": round(w * 8e9 / rtt_ns, 1),
                    "goodput_bps": r["goodput_bps"]}))
