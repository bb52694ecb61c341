"""``app_limited``: a direction's application, not TCP or the network, set its pace.

Rule: direction D's ``limited_by`` (``tcpanalyze.diagnosis``) is ``application`` -- most of its
transfer time passed with nothing unacknowledged or its send buffer empty (segments shorter
than the MSS) -- over a transfer (first to last data byte) at least ``K_APP_LIMITED_MIN_S``
long and ``K_APP_LIMITED_MIN_BYTES`` large.  Info: the application wrote slowly or waited for
its peer; TCP was not the limit.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.diagnosis import perf
from tcpanalyze.engine import Conn, EndpointPerf
from tcpanalyze.findings.base import Finding, conn_detector, declare_kind, declare_threshold, label, role

#: transfers shorter than this (s) ...
K_APP_LIMITED_MIN_S = declare_threshold(
    "app_limited_min_s", 1.0, "app_limited: report application-limited transfers at least this many seconds long ...")
#: ... or smaller than this (bytes) are not reported: a request or two is no transfer to speed up
K_APP_LIMITED_MIN_BYTES = declare_threshold(
    "app_limited_min_bytes", 16384, "... and at least this many bytes.")


def render(f: Finding) -> str:
    v = f.values
    return (f"app_limited: {v['sender']} {v['endpoint']} sent {v['data_bytes']:,} B in {v['transfer_s']:.3f} s "
            f"(goodput {v['goodput_bps'] / 1e3:.4g} kbit/s) at its application's pace: {f.terms['reason']}")


APP_LIMITED = declare_kind(
    "app_limited", render, severity="info",
    description="a direction spent most of its transfer with nothing to send: the application set the pace")


@conn_detector(87)
@cython.locals(conn=Conn, p=EndpointPerf)
def app_limited(conn, th, acc, end_ns, out) -> None:
    for d in (conn.orig, conn.orig ^ 1):
        p = conn.flows[d].perf
        if (not p.split.t_app or p.last_ns - p.first_ns < th.get("app_limited_min_s") * 1e9
                or p.unique < th.get("app_limited_min_bytes")):
            continue
        r = perf(conn, d)
        if r["limited_by"] != "application":
            continue
        out.append(Finding(
            "app_limited", "info", stream=conn.stream, frames=[p.first_frame], ts_ns=p.first_ns,
            values={"sender": role(conn, d), "endpoint": label(conn, d), "data_bytes": r["data_bytes"],
                    "transfer_s": r["transfer_s"], "goodput_bps": r["goodput_bps"] or 0.0,
                    "application_share": r["time"]["application"] if r["time"] else None},
            terms={"reason": r["limited_by_reason"]}))
