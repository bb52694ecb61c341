"""``slow_server``: the server took long to answer a request.

Rule: in a connection whose sides take turns (request, response), the server's think time --
from the last byte of a request to the first byte of the answer, less the capture point's
round trip to the server (SYN to SYN/ACK) -- exceeded ``K_SLOW_SERVER_MS`` at least once
(``tcpanalyze.diagnosis.think_times``).  Its frame is the first segment of the slowest
answer.  A warning: the time went to the server application, not to TCP or the network.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.diagnosis import think_times
from tcpanalyze.engine import Conn, EndpointPerf
from tcpanalyze.findings.base import Finding, conn_detector, declare_kind, declare_threshold, label

#: a server think time above this (ms) is slow
K_SLOW_SERVER_MS = declare_threshold("slow_server_ms", 250.0, "slow_server: a server think time above this many ms.")


def render(f: Finding) -> str:
    v = f.values
    return (f"slow_server: {v['server']} took up to {v['max_ms']:g} ms to answer ({v['exchanges']} exchange(s), "
            f"think time min {v['min_ms']:g} / avg {v['avg_ms']:g} ms) > {f.terms['limit_ms']:g} ms")


SLOW_SERVER = declare_kind(
    "slow_server", render, severity="warning",
    description="the server's think time (last request byte to first answer byte, less the network round trip) "
                "was over the threshold")


@conn_detector(88)
@cython.locals(conn=Conn, p=EndpointPerf)
def slow_server(conn, th, acc, end_ns, out) -> None:
    srv = conn.orig ^ 1
    p = conn.flows[srv].perf
    if not p.turns.turn_n:
        return
    limit = th.get("slow_server_ms")
    if p.turns.turn_max <= limit * 1e6:
        return
    think, _client = think_times(conn)
    if think is None or think["max_ms"] <= limit:
        return
    out.append(Finding(
        "slow_server", "warning", stream=conn.stream, frames=[p.turns.turn_max_frame], ts_ns=p.first_ns,
        values={"server": label(conn, srv), **think}, terms={"limit_ms": limit}))
