"""The close of a connection: ``half_close`` (the peer kept sending after a FIN),
``close_wait_stall`` (the peer stayed open, idle, without FIN) and ``data_after_fin`` (data
beyond a side's own FIN).  Servers that close first are tallied for ``server_active_close``."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.engine import Conn, Flow
from tcpanalyze.findings.base import (CloseTally, Finding, conn_detector, declare_kind, label, role, tally_example,
                                      _s)
from tcpanalyze.model import addr_str


def render_half_close(f: Finding) -> str:
    v, t = f.values, f.terms
    peer_fin = t["peer_fin_frame"]
    return (f"half_close: {v['fin_by']} {t['endpoint']} sent FIN (frame {t['fin_frame']}); the peer kept "
            f"sending data for {t['after_ns'] / 1e9:.3f} s before "
            + (f"its own FIN (frame {peer_fin})" if peer_fin is not None else "the end"))


#: how a CLOSE_WAIT stall ended, in the message
_UNTIL = {"rst": "until a RST", "end": "and never sent FIN"}


def render_close_wait_stall(f: Finding) -> str:
    v, t = f.values, f.terms
    how = f"until its FIN (frame {t['stop_frame']})" if t["until"] == "fin" else _UNTIL[t["until"]]
    return (f"close_wait_stall: {v['fin_by']} {t['fin_endpoint']} sent FIN (frame {t['fin_frame']}); "
            f"{v['stalled']} {t['stalled_endpoint']} stayed in CLOSE_WAIT, idle {t['idle_ns'] / 1e9:.3f} s {how} "
            f"(> {t['limit_s']:g} s)")


def render_data_after_fin(f: Finding) -> str:
    v, t = f.values, f.terms
    return (f"data_after_fin: {v['sent_by']} {t['endpoint']} sent {v['segments']} data segment(s) "
            f"beyond its own FIN (frame {t['fin_frame']})")


HALF_CLOSE = declare_kind("half_close", render_half_close, severity="info",
                          description="one side sent FIN and the peer kept sending data (RFC 9293 §3.6)")
CLOSE_WAIT_STALL = declare_kind(
    "close_wait_stall", render_close_wait_stall, severity="warning",
    description="one side sent FIN, the other stayed open without FIN for --close-wait seconds")
DATA_AFTER_FIN = declare_kind("data_after_fin", render_data_after_fin, severity="warning",
                              description="a side sent data beyond its own FIN")


@conn_detector(60)
@cython.locals(conn=Conn, f=Flow, p=Flow, ci=cython.longlong)
def close_findings(conn, th, acc, end_ns, out) -> None:
    ci = conn.ending.close_initiator
    if ci < 0:
        return
    f = conn.flows[ci]
    p = conn.flows[ci ^ 1]
    fin_ns = f.times.fin_ns
    # Half-close: the peer kept sending data after this side's FIN (RFC 9293 §3.6).
    if p.times.last_data_ns - fin_ns > max(conn.irtt, 0):
        # (data sent less than a handshake RTT after the FIN may have crossed it: not a half-close)
        out.append(Finding(
            "half_close", "info",
            stream=conn.stream, frames=[f.times.fin_frame, p.times.fin_frame if p.times.fin_next >= 0 else 0], ts_ns=fin_ns,
            values={"fin_by": role(conn, ci), "peer_data_after_fin_s": _s(p.times.last_data_ns - fin_ns)},
            terms={"endpoint": label(conn, ci), "fin_frame": f.times.fin_frame, "after_ns": p.times.last_data_ns - fin_ns,
                   "peer_fin_frame": p.times.fin_frame if p.times.fin_next >= 0 else None}))
    # CLOSE_WAIT stall: the peer neither sent data nor its FIN for long after the FIN.
    if p.times.fin_next >= 0:
        stop_ns, until = p.times.fin_ns, "fin"
        stop_frame = p.times.fin_frame
    elif p.stats.rsts or f.stats.rsts:
        stop_ns, until = (p.times.rst_ns if p.stats.rsts else f.times.rst_ns), "rst"
        stop_frame = p.times.rst_frame if p.stats.rsts else f.times.rst_frame
    elif p.times.last_ns >= fin_ns:
        # Never sent FIN, but was seen after the FIN (its ACK): stalled until the capture ended.
        stop_ns, until = end_ns, "end"
        stop_frame = 0
    else:
        return _data_after_fin(conn, out, acc, ci, f)   # the peer was never seen after the FIN
    idle_from = max(fin_ns, p.times.last_data_ns)
    idle = stop_ns - idle_from
    if idle > th.close_wait_s * 1e9:
        out.append(Finding(
            "close_wait_stall", "warning",
            stream=conn.stream, frames=[f.times.fin_frame, stop_frame], ts_ns=fin_ns,
            values={"fin_by": role(conn, ci), "stalled": role(conn, ci ^ 1), "idle_s": _s(idle),
                    "peer_fin": p.times.fin_next >= 0, "peer_fin_frame": p.times.fin_frame or None},
            terms={"fin_endpoint": label(conn, ci), "stalled_endpoint": label(conn, ci ^ 1),
                   "fin_frame": f.times.fin_frame, "idle_ns": idle, "until": until, "stop_frame": stop_frame,
                   "limit_s": th.close_wait_s}))
    _data_after_fin(conn, out, acc, ci, f)


@cython.locals(conn=Conn, f=Flow, fl=Flow, ci=cython.longlong, o=cython.longlong)
def _data_after_fin(conn, out, acc, ci, f) -> None:
    o = conn.orig
    for ep in (o, o ^ 1):
        fl = conn.flows[ep]
        if fl.stats.data_after_fin:
            out.append(Finding(
                "data_after_fin", "warning",
                stream=conn.stream, frames=[fl.times.fin_frame], ts_ns=fl.times.fin_ns,
                values={"sent_by": role(conn, ep), "segments": fl.stats.data_after_fin},
                terms={"endpoint": label(conn, ep), "fin_frame": fl.times.fin_frame}))
    if acc is not None and ci != o and conn.handshake_seen:
        key = (addr_str(conn.addr[ci]), conn.port[ci])
        t = acc.server_close.get(key)
        if t is None:
            t = acc.server_close[key] = CloseTally()
        t.connections += 1
        end = conn.ending
        tw = end.tw_start
        if tw is not None and tw[0] == ci:
            t.time_wait += 1
        elif end.reset_by >= 0:
            t.reset += 1
        tally_example(t.streams, conn.stream)
        tally_example(t.fin_frames, f.times.fin_frame)
