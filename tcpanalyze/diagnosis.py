"""What limited each direction of a connection: throughput, RTT, the time breakdown and
``limited_by`` (docs/diagnosis.md).

The engine keeps, per sending direction, where the time between its first and last data
segment went (``engine.EndpointPerf``): waiting on a full receive window, on a zero window,
repairing a loss (with each retransmission time-out), with nothing to send (nothing
unacknowledged, or the send buffer ran dry), or sending below the window (the sender's own
congestion window).  ``perf(conn, d)`` turns that into the direction's numbers and verdict
when the connection is summarised; ``think_times(conn)`` the request/response waits.

The verdict follows T-RAT (Zhang, Breslau, Paxson, Shenker, "On the characteristics and
origins of Internet flow rates", SIGCOMM 2002): the dominant state of the transfer names
the limit, and the time spent sending below the window is split by what the segments show:
regularly spaced segments without loss are a bottleneck link (``bandwidth``), losses a
congestion window (``congestion``), a flight that stopped growing short of the window
without either a send buffer (``send_buffer``).
"""
from __future__ import annotations

import math

from tcpanalyze.engine import Conn, EndpointPerf, EndpointTrack, Flow, PerfSplit
from tcpanalyze.jsontext import fround

#: a transfer that ended within this many round trips never left slow start: ``latency``
K_LATENCY_MAX_RTTS = 4.0
#: send gaps at most this variable (standard deviation / mean) are paced by a bottleneck
K_BANDWIDTH_MAX_CV = 0.5
#: ... measured over at least this many gaps
K_BANDWIDTH_MIN_GAPS = 20
#: a transfer this many RTTs long without loss whose flight stayed below this share of the
#: window was held by the sender's buffer (``send_buffer``)
K_SEND_BUFFER_MIN_RTTS = 20.0
K_SEND_BUFFER_MAX_SHARE = 0.5
#: the capture is next to the receiver when the sender's data is ACKed within this share of
#: the handshake RTT: the flight in the network is not visible there
K_NEAR_RECEIVER_SHARE = 0.25
#: at a receiver-side capture, a goodput at least this share of window/RTT is window-limited
K_WINDOW_CEILING_SHARE = 0.75

#: the limits, one fixed vocabulary
LIMITS = ("receiver_window", "zero_window", "congestion", "loss_recovery", "bandwidth", "application",
          "send_buffer", "latency", "unknown")
#: the time breakdown's states, in the order of the ``time`` object
STATES = ("receiver_window", "zero_window", "loss_recovery", "application", "congestion")

_STATE_LIMIT = {"receiver_window": "receiver_window", "zero_window": "zero_window",
                "loss_recovery": "loss_recovery", "application": "application"}


def _ms(ns: float) -> float:
    return fround(ns / 1e6, 3)


def _rate(bps: float) -> str:
    for unit, k in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= k:
            return f"{bps / k:.3g} {unit}"
    return f"{bps:.0f} bit/s"


def _fractions(parts: list[int]) -> list[float]:
    """Shares of the total, rounded to 4 places, adding up to exactly 1."""
    total = sum(parts)
    out = [fround(p / total, 4) for p in parts]
    i = max(range(len(parts)), key=parts.__getitem__)
    out[i] = fround(1.0 - sum(out[:i]) - sum(out[i + 1:]), 4)
    return out


def perf(conn: Conn, d: int) -> dict:
    """Direction ``d``'s numbers (the keys ``summary.side_stats`` adds): throughput,
    goodput, data bytes, transfer time, RTT in ms, the time breakdown, the retransmission
    time-outs and the verdict.  Every value is None when the direction sent no data."""
    out: dict = {}
    perf_into(out, conn, d)
    return out


def perf_into(out: dict, conn: Conn, d: int) -> None:
    """``perf(conn, d)``'s keys and values, added to ``out`` (after the keys it has)."""
    f: Flow = conn.flows[d]
    p: EndpointPerf = f.perf
    tr: EndpointTrack = f.track
    out["data_bytes"] = 0
    out["transfer_s"] = out["throughput_bps"] = out["goodput_bps"] = None
    if tr.rtt_n:
        out["rtt_min_ms"] = fround(tr.rtt_min / 1e6, 3)
        out["rtt_avg_ms"] = fround(tr.rtt_sum / tr.rtt_n / 1e6, 3)
        out["rtt_max_ms"] = fround(tr.rtt_max / 1e6, 3)
    else:
        out["rtt_min_ms"] = out["rtt_avg_ms"] = out["rtt_max_ms"] = None
    out["time"] = None
    out["rto_waits"] = []
    out["limited_by"] = out["limited_by_reason"] = None
    if not p.first_frame:
        return
    data = p.unique
    span = p.last_ns - p.first_ns
    out["data_bytes"] = data
    out["transfer_s"] = span / 1e9      # = round(span / 1e9, 9) for an integer (see summary._s)
    if span > 0:
        out["throughput_bps"] = fround(f.stats.bytes * 8e9 / span, 1)
        out["goodput_bps"] = fround(data * 8e9 / span, 1)
    sp: PerfSplit = p.split
    parts = [sp.t_rwnd, sp.t_zwnd, sp.t_loss, sp.t_app, sp.t_cwnd]
    if sp.t_rwnd + sp.t_zwnd + sp.t_loss + sp.t_app + sp.t_cwnd > 0:
        out["time"] = dict(zip(STATES, _fractions(parts)))
    if p.rto_waits:
        out["rto_waits"] = rto_waits(p)
    out["limited_by"], out["limited_by_reason"] = _verdict(conn, f, conn.flows[d ^ 1], p, parts, data, span, out)


def rto_waits(p) -> list[dict]:
    """Each retransmission time-out: when the silence began, how long it lasted, the frame of
    the retransmission that ended it, and its back-off (this wait over the one before, when
    the stall went on from that retransmission)."""
    waits = []
    prev = None
    for start, end, frame in p.rto_waits or ():
        w = end - start
        backoff = round(w / (prev[1] - prev[0]), 2) if prev is not None and prev[1] == start and prev[1] > prev[0] \
            else None
        waits.append({"frame": frame, "start": round(start / 1e9, 9), "wait_s": round(w / 1e9, 6),
                      "backoff": backoff})
        prev = (start, end)
    return waits


def _verdict(conn, f, peer, p, parts: list[int], data: int, span: int, out: dict) -> tuple[str, str]:
    tr = f.track
    if peer.is_first_ack or (not tr.rtt_n and not conn.irtt):
        return "unknown", "no ACK of this data seen (one-sided capture): no RTT, no window"
    rtt_ns = tr.rtt_sum / tr.rtt_n if tr.rtt_n else conn.irtt
    rtt_min = tr.rtt_min if tr.rtt_n else conn.irtt
    if rtt_ns <= 0 or rtt_min <= 0:
        rtt_ns = max(rtt_ns, conn.irtt)
        rtt_min = max(rtt_min, conn.irtt)
    if rtt_ns <= 0 or rtt_min <= 0:
        return "unknown", "every RTT sample is 0 ms: the capture's clock is too coarse"
    total = sum(parts)
    rtx = f.stats.rtx + f.stats.ooo      # a sender-side capture sees quick resends as out of order
    near = conn.irtt > 1_000_000 and tr.rtt_n and rtt_ns < K_NEAR_RECEIVER_SHARE * conn.irtt
    if near:
        rtt_min = conn.irtt
    if span <= K_LATENCY_MAX_RTTS * rtt_min and not p.split.t_loss and not p.split.t_zwnd:
        return "latency", (f"{data:,} B in {span / 1e9:.3f} s = {span / rtt_min:.1f} RTT "
                           f"(RTT {_ms(rtt_min):g} ms): finished within {K_LATENCY_MAX_RTTS:g} round trips, in slow start")
    if near:
        return _near_receiver(conn, f, peer, p, parts, data, span, rtt_ns)
    i = max(range(len(parts)), key=parts.__getitem__)
    state = STATES[i]
    share = f"{100 * parts[i] / total:.0f}% of {total / 1e9:.3g} s"
    rtt_txt = f"RTT {_ms(rtt_ns):g} ms"
    if state == "receiver_window":
        w = p.win_max
        return "receiver_window", (f"{share} with bytes in flight within 1 MSS of the advertised window "
                                   f"{w:,} B; {rtt_txt}; window/RTT = {_rate(w * 8e9 / rtt_ns)}")
    if state == "zero_window":
        return "zero_window", f"{share} with the receiver's window at zero; {rtt_txt}"
    if state == "loss_recovery":
        rto = f" ({p.rto_n} time-out(s), {p.rto_ns / 1e9:.3g} s waiting)" if p.rto_n else ""
        return "loss_recovery", (f"{share} repairing losses: {rtx} segment(s) resent{rto}; {rtt_txt}")
    if state == "application":
        return "application", (f"{share} with nothing unacknowledged or the send buffer empty "
                               f"({f.stats.data_pkts} data segment(s), {data:,} B); {rtt_txt}")
    # sending below the window: what held the flight?
    cv = None
    if p.gap_n >= 2 and p.gap_sum > 0:
        mean = p.gap_sum / p.gap_n / 1e3          # µs, as gap_sq
        var = max(0.0, p.gap_sq / p.gap_n - mean * mean)
        cv = math.sqrt(var) / mean
    rate = out["goodput_bps"] or 0.0
    if not rtx and cv is not None and p.gap_n >= K_BANDWIDTH_MIN_GAPS and cv <= K_BANDWIDTH_MAX_CV:
        return "bandwidth", (f"{share} sending below the window with segments evenly spaced "
                             f"(gap {p.gap_sum / p.gap_n / 1e6:.3g} ms, variation {cv:.2f} <= {K_BANDWIDTH_MAX_CV:g}) "
                             f"and no loss: a bottleneck of about {_rate(rate)}; {rtt_txt} "
                             f"(min {_ms(rtt_min):g}, max {_ms(tr.rtt_max):g})")
    if rtx:
        return "congestion", (f"{share} sending below the window; {rtx} segment(s) resent "
                              f"cut the congestion window; {rtt_txt}")
    wnd = p.win_max or _window(peer)
    if span >= K_SEND_BUFFER_MIN_RTTS * rtt_ns and wnd and p.flight_max <= K_SEND_BUFFER_MAX_SHARE * wnd:
        return "send_buffer", (f"{share} sending with at most {p.flight_max:,} B in flight, under half the "
                               f"window {wnd:,} B, for {span / rtt_ns:.0f} RTTs without loss; {rtt_txt}")
    return "congestion", (f"{share} sending below the window (at most {p.flight_max:,} B in flight), "
                          f"no loss: the congestion window; {rtt_txt}")


def _window(f) -> int:
    sc = f.win_scale
    return f.window << sc if sc > 0 else max(f.window, 0)


def _near_receiver(conn, f, peer, p, parts, data, span, rtt_ns) -> tuple[str, str]:
    """A capture next to the receiver sees data ACKed at once: only the window ceiling and a
    zero window can be told apart from there."""
    total = sum(parts)
    where = (f"capture next to the receiver (data ACKed within {_ms(rtt_ns):g} ms, handshake RTT "
             f"{_ms(conn.irtt):g} ms)")
    i = max(range(len(parts)), key=parts.__getitem__)
    share = f"{100 * parts[i] / total:.0f}% of {total / 1e9:.3g} s"
    if STATES[i] == "zero_window":
        return "zero_window", f"{share} with the receiver's window at zero; {where}"
    if STATES[i] == "loss_recovery":
        rto = f" ({p.rto_n} time-out(s), {p.rto_ns / 1e9:.3g} s waiting)" if p.rto_n else ""
        return "loss_recovery", (f"{share} repairing losses: {f.stats.rtx + f.stats.ooo} segment(s) resent{rto}; "
                                 f"{where}")
    if p.turns.turn_n >= 2 and p.turns.turn_sum * (p.turns.turn_n - 1) / p.turns.turn_n * 2 >= span:
        return "application", (f"{p.turns.turn_n} turns: waited {p.turns.turn_sum / 1e9:.3g} s in all for the peer's "
                               f"requests and the application's answers; {where}")
    w = p.win_max or _window(peer)
    if span > 0 and w and data * 8e9 / span >= K_WINDOW_CEILING_SHARE * w * 8e9 / conn.irtt:
        return "receiver_window", (f"goodput {_rate(data * 8e9 / span)} reaches window/RTT = "
                                   f"{_rate(w * 8e9 / conn.irtt)} (window {w:,} B); {where}")
    return "unknown", f"{where}: the sender's flight is not visible"


def think_times(conn) -> tuple[dict | None, dict | None]:
    """Server and client think times (ms): the wait from the last data byte of one side to
    the first of the other's next turn, less the capture point's round trip to the side that
    answers (SYN to SYN/ACK for the server, SYN/ACK to the handshake's ACK for the client).
    The engine counts waits up to 10 s (longer ones are idle time)."""
    o = conn.orig
    srv = conn.flows[o ^ 1].perf
    cli = conn.flows[o].perf
    to_srv = srv.syn_gap
    to_cli = max(0, conn.irtt - to_srv) if to_srv and conn.irtt else 0
    return _think(srv, to_srv), _think(cli, to_cli)


def _think(p, net: int) -> dict | None:
    if not p.turns.turn_n:
        return None
    return {"exchanges": p.turns.turn_n, "min_ms": _ms(max(0, p.turns.turn_min - net)),
            "avg_ms": _ms(max(0.0, p.turns.turn_sum / p.turns.turn_n - net)), "max_ms": _ms(max(0, p.turns.turn_max - net))}
