"""Sequence gaps and disorder: ``lost_segment`` (a segment started beyond the next expected
sequence number), ``ack_lost_segment`` (an ACK for data never captured), ``out_of_order``."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.engine import Conn, Flow
from tcpanalyze.findings.base import Finding, conn_detector, declare_kind, evidence


def render_lost(f: Finding) -> str:
    rtx = f.values["retransmissions"]
    return (f"lost_segment: {f.values['segments']} time(s) a segment started beyond the next expected sequence "
            f"number (previous segment not captured)"
            + (f"; with {rtx} retransmission(s) on the connection the data was lost upstream of the capture"
               if rtx else "; no retransmission followed: the capture missed it"))


def render_ack_lost(f: Finding) -> str:
    return (f"ack_lost_segment: {f.values['segments']} ACK(s) acknowledged data that was never captured (capture "
            f"gap, or one direction routed past the capture point)")


def render_out_of_order(f: Finding) -> str:
    v = f.values
    return (f"out_of_order: {v['segments']} segment(s) arrived below the highest sequence number already seen, "
            f"within the out-of-order window, in {v['bursts']} burst(s) (largest {v['largest_burst']})")


LOST_SEGMENT = declare_kind("lost_segment", render_lost, severity="info",
                            description="a segment started beyond the next expected sequence number")
ACK_LOST_SEGMENT = declare_kind("ack_lost_segment", render_ack_lost, severity="info",
                                description="an ACK acknowledged data that was never captured")
OUT_OF_ORDER = declare_kind("out_of_order", render_out_of_order, severity="info",
                            description="segments below the highest sequence number seen, in bursts")


@conn_detector(80)
@cython.locals(conn=Conn, fo=Flow, fr=Flow)
def gaps(conn, th, acc, end_ns, out) -> None:
    fo, fr = conn.flows[conn.orig], conn.flows[conn.orig ^ 1]
    lost = fo.stats.lost + fr.stats.lost
    if lost:
        ev = evidence(conn, "lost")
        rtx = fo.stats.rtx + fr.stats.rtx
        out.append(Finding(
            "lost_segment", "info",
            stream=conn.stream, frames=ev.frames if ev else (), ts_ns=ev.first_ns if ev else None,
            values={"segments": lost, "retransmissions": rtx}, cause="network" if rtx else "capture"))
    al = fo.stats.ack_lost + fr.stats.ack_lost
    if al:
        ev = evidence(conn, "ack_lost")
        out.append(Finding(
            "ack_lost_segment", "info",
            stream=conn.stream, frames=ev.frames if ev else (), ts_ns=ev.first_ns if ev else None,
            values={"segments": al}, cause="capture"))
    ooo = fo.stats.ooo + fr.stats.ooo
    if ooo:
        ev = evidence(conn, "ooo")
        bursts, largest = (ev.bursts, ev.largest_burst) if ev else (1, ooo)
        data_pkts = fo.stats.data_pkts + fr.stats.data_pkts
        out.append(Finding(
            "out_of_order", "info",
            stream=conn.stream, frames=ev.frames if ev else (), ts_ns=ev.first_ns if ev else None,
            values={"segments": ooo, "bursts": bursts, "largest_burst": largest, "data_segments": data_pkts}))
