"""``retransmissions``: a connection's retransmitted segments, count and rate (fast, RTO-style
and spurious ones counted separately)."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.engine import Conn, Flow
from tcpanalyze.findings.base import Finding, conn_detector, declare_kind, evidence, pct


def render(f: Finding) -> str:
    v, t = f.values, f.terms
    rtx, data_rtx, rate, thr, mins = v["segments"], v["data_segments_retransmitted"], t["rate"], t["rate_limit"], \
        t["min_segments"]
    if f.severity == "warning":
        rule = f"warning: rate > {pct(thr)} and >= {mins} segments"
    elif data_rtx < mins and rate > thr:
        rule = f"info: fewer than {mins} retransmitted data segments, too few to warn whatever the rate"
    else:
        rule = f"info: rate <= {pct(thr)}"
    return (f"retransmissions: {rtx} segment(s) retransmitted: {data_rtx} of {v['data_segments']} data segments = "
            f"{pct(rate)}, {v['bytes']} of {v['total_bytes']} bytes = {pct(t['byte_rate'])}"
            + (f", {rtx - data_rtx} SYN/FIN" if rtx > data_rtx else "")
            + f"; {v['fast']} fast, {v['rto']} RTO-style, {v['spurious']} spurious; {rule}")


RETRANSMISSIONS = declare_kind(
    "retransmissions", render,
    description="a connection's retransmitted data segments exceed --retrans-rate and number at least "
                "--retrans-min; fast, spurious and RTO-style counted separately")


@conn_detector(30)
@cython.locals(conn=Conn, fo=Flow, fr=Flow)
def retransmissions(conn, th, acc, end_ns, out) -> None:
    fo, fr = conn.flows[conn.orig], conn.flows[conn.orig ^ 1]
    rtx = fo.stats.rtx + fr.stats.rtx
    if not rtx:
        return
    # SYN and FIN retransmissions are in Wireshark's count; the rate is over data segments.
    syn_rtx = sum(max(0, f.stats.syns - 1) for f in (fo, fr))
    ctl = syn_rtx + sum(max(0, f.stats.fins - 1) for f in (fo, fr))
    data_pkts = fo.stats.data_pkts + fr.stats.data_pkts
    data_rtx = min(max(0, rtx - ctl), data_pkts)
    if data_rtx == 0 and rtx <= syn_rtx:
        return          # only SYNs were repeated: handshake/syn_retries says so
    byts = fo.stats.bytes + fr.stats.bytes
    rtx_bytes = fo.stats.rtx_bytes + fr.stats.rtx_bytes
    fast = fo.stats.fast_rtx + fr.stats.fast_rtx
    spurious = fo.stats.spurious + fr.stats.spurious
    rto = max(0, rtx - fast - spurious)
    rate = data_rtx / data_pkts if data_pkts else 0.0
    brate = rtx_bytes / byts if byts else 0.0
    warn = data_rtx >= th.retrans_min_segments and rate > th.retrans_rate
    ev = evidence(conn, "rtx")
    per_side = {}
    for name, f in (("orig", fo), ("resp", fr)):
        if f.stats.rtx:
            per_side[name] = {"segments": f.stats.rtx, "bytes": f.stats.rtx_bytes, "fast": f.stats.fast_rtx, "spurious": f.stats.spurious,
                              "data_segments": f.stats.data_pkts}
    out.append(Finding(
        "retransmissions", "warning" if warn else "info",
        stream=conn.stream, frames=ev.frames if ev else (), ts_ns=ev.first_ns if ev else conn.first_ns,
        values={"segments": rtx, "data_segments_retransmitted": data_rtx, "data_segments": data_pkts,
                "rate": round(rate, 6), "bytes": rtx_bytes, "total_bytes": byts, "byte_rate": round(brate, 6),
                "fast": fast, "rto": rto, "spurious": spurious, "control": ctl, "by_side": per_side},
        terms={"rate": rate, "byte_rate": brate, "rate_limit": th.retrans_rate,
               "min_segments": th.retrans_min_segments}))
