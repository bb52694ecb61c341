"""``handshake`` (unanswered SYNs, SYN retries, SYN/ACK without SYN, handshake-RTT outliers)
and ``syn_flood`` (many unanswered SYNs to one server host:port)."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from array import array

from tcpanalyze.engine import Conn, Flow
from tcpanalyze.findings.base import (K_MIN_RTO_MS, Finding, RttTally, SynTally, aggregate_detector, conn_detector,
                                      declare_kind, label, ms, tally_example, _s)
from tcpanalyze.model import addr_str

#: distinct source addresses remembered per SYN-flood target (the count stops there)
K_SYN_FLOOD_SOURCES = 100_000


def render(f: Finding) -> str:
    v, t, sub = f.values, f.terms, f.subkind
    if sub == "syn_retries":
        iv = v["intervals_ms"]
        return (f"handshake syn_retries: {t['from']} sent the SYN {v['syns']} times, "
                f"intervals {', '.join(f'{x / 1000:.3f} s' for x in iv)}"
                + (" (exponential back-off)" if v["backoff"] == "exponential" else "")
                + (" (linear back-off, as Linux's tcp_syn_linear_timeouts)" if v["backoff"] == "linear" else "")
                + (f" (below the {t['min_rto_ms']:g} ms minimum RTO: duplicates, not back-off)"
                   if v["duplicates"] else "")
                + ("" if v["answered"] else "; never answered"))
    if sub == "syn_unanswered":
        return (f"handshake syn_unanswered: {v['syns']} SYN(s) from {t['from']} to {v['to']} got no reply in "
                f"{t['waited_ns'] / 1e9:.3f} s (half-open, Zeek S0)")
    if sub == "synack_without_syn":
        return (f"handshake synack_without_syn: {t['sender']} sent a SYN/ACK (frame {t['frame']}) to "
                f"{t['addressee']} with no SYN seen"
                + ("; the SYN was not captured" if v["addressee_answered"] else
                   "; the addressee never answered (backscatter of spoofed SYNs, or asymmetric routing)"))
    # rtt_outlier
    scope = (f"median of {t['samples']} handshakes with {f.host}" if t["per_host"]
             else f"median of all {t['samples']} handshakes")
    return (f"handshake rtt_outlier: handshake RTT {t['rtt_ns'] / 1e6:.3f} ms to {f.host} is > {t['factor']:g}x "
            f"the {scope} ({t['median_ns'] / 1e6:.3f} ms) and > {t['min_s'] * 1000:g} ms")


def render_syn_flood(f: Finding) -> str:
    v = f.values
    return (f"syn_flood: {v['unanswered']} unanswered SYNs (half-open, S0) to {f.host}:{f.port} from "
            f"{v['sources']} source address(es) in {f.terms['span_ns'] / 1e9:.3f} s (>= {v['threshold']}): "
            f"SYN flood / half-open storm")


HANDSHAKE = declare_kind(
    "handshake", render, subkinds=("syn_unanswered", "syn_retries", "synack_without_syn", "rtt_outlier"),
    description="syn_unanswered (half-open, S0), syn_retries with the intervals, synack_without_syn, "
                "rtt_outlier (a handshake RTT far above the median)")
SYN_FLOOD = declare_kind(
    "syn_flood", render_syn_flood, severity="error",
    description="many unanswered SYNs to one host:port (--syn-flood)")


@conn_detector(20)
@cython.locals(conn=Conn, fo=Flow, fr=Flow, o=cython.longlong)
def handshake_findings(conn, th, acc, end_ns, out) -> None:
    o = conn.orig
    fo, fr = conn.flows[o], conn.flows[o ^ 1]
    syn_times = conn.handshake.syn_times
    if fo.stats.syns and syn_times:
        answered = fr.stats.pkts > 0
        if len(syn_times) > 1:
            iv = [ms(b - a) for a, b in zip(syn_times, syn_times[1:])]
            doubling = len(iv) >= 2 and all(a > 0 and 1.6 <= b / a <= 2.5 for a, b in zip(iv, iv[1:]))
            linear = len(iv) >= 2 and not doubling and all(a > 0 and 0.8 <= b / a <= 1.25 for a, b in zip(iv, iv[1:]))
            backoff = "exponential" if doubling else "linear" if linear else "single" if len(iv) == 1 else "irregular"
            # Below the smallest retransmission timeout a stack uses (RFC 6298 §2.4: 1 s; Linux
            # TCP_RTO_MIN 200 ms) a second SYN is no time-out: a duplicate in the capture, or crafted.
            dup = min(iv) < K_MIN_RTO_MS
            out.append(Finding(
                "handshake", "info" if dup else "warning",
                subkind="syn_retries", stream=conn.stream, frames=[conn.handshake.syn_frame], ts_ns=syn_times[0],
                values={"syns": len(syn_times), "retries": len(syn_times) - 1, "intervals_ms": iv,
                        "backoff": backoff, "answered": answered, "duplicates": dup},
                terms={"from": label(conn, o), "min_rto_ms": K_MIN_RTO_MS},
                cause="capture" if dup and min(iv) == 0 else None))
        if not answered:
            waited = conn.last_ns - syn_times[0]
            out.append(Finding(
                "handshake", "warning",
                subkind="syn_unanswered", stream=conn.stream, frames=[conn.handshake.syn_frame], ts_ns=syn_times[0],
                values={"syns": len(syn_times), "waited_s": _s(waited), "to": label(conn, o ^ 1)},
                terms={"from": label(conn, o), "waited_ns": waited}))
            if acc is not None:
                key = (addr_str(conn.addr[o ^ 1]), conn.port[o ^ 1])
                t = acc.s0.get(key)
                if t is None:
                    t = acc.s0[key] = SynTally(0, syn_times[0], syn_times[0])
                t.unanswered += 1
                t.first_ns = min(t.first_ns, syn_times[0])
                t.last_ns = max(t.last_ns, syn_times[0])
                tally_example(t.streams, conn.stream)
                if len(t.sources) < K_SYN_FLOOD_SOURCES:
                    t.sources.add(conn.addr[o])
    elif conn.handshake_seen and fr.stats.syns and not fo.stats.syns:
        # The first segment seen was the responder's SYN/ACK.
        silent = fo.stats.pkts == 0
        out.append(Finding(
            "handshake", "warning" if silent else "info",
            subkind="synack_without_syn", stream=conn.stream, frames=[conn.first_frame], ts_ns=conn.first_ns,
            values={"addressee_answered": not silent},
            terms={"sender": label(conn, o ^ 1), "addressee": label(conn, o), "frame": conn.first_frame},
            cause=None if silent else "capture"))


@conn_detector(95)
@cython.locals(conn=Conn)
def handshake_rtt_tally(conn, th, acc, end_ns, out) -> None:
    if acc is not None and conn.irtt and conn.handshake_seen:
        host = addr_str(conn.addr[conn.orig ^ 1])
        t = acc.hs_rtt.get(host)
        if t is None:
            t = acc.hs_rtt[host] = RttTally()
        t.irtts.append(conn.irtt)
        t.streams.append(conn.stream)


@aggregate_detector(30)
def syn_flood(facts, th, acc, out, extra) -> None:
    for (hs, port), t in sorted(acc.s0.items(), key=lambda kv: kv[0]):
        n = t.unanswered
        if n >= th.syn_flood:
            span = (t.last_ns - t.first_ns) / 1e9
            out.append(Finding(
                "syn_flood", "error", host=hs, port=port, ts_ns=t.first_ns,
                values={"unanswered": n, "sources": len(t.sources), "duration_s": round(span, 9),
                        "rate_per_s": round(n / span, 3) if span > 0 else None, "streams": t.streams,
                        "threshold": th.syn_flood},
                terms={"span_ns": t.last_ns - t.first_ns}))


def _median(a) -> float:
    s = sorted(a)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


@aggregate_detector(40)
def handshake_rtt_outliers(facts, th, acc, out, extra) -> None:
    every = array("q")
    for t in acc.hs_rtt.values():
        every.extend(t.irtts)
    if len(every) < th.hs_rtt_min_samples:
        return
    global_median = _median(every)
    for hs, t in sorted(acc.hs_rtt.items(), key=lambda kv: kv[0]):
        irtts = t.irtts
        per_host = len(irtts) >= th.hs_rtt_min_samples
        med = _median(irtts) if per_host else global_median
        limit = max(th.hs_rtt_factor * med, th.hs_rtt_min_s * 1e9)
        for irtt, stream in zip(irtts, t.streams):
            if irtt > limit:
                out.append(Finding(
                    "handshake", "warning", subkind="rtt_outlier", stream=stream, host=hs,
                    values={"rtt_ms": ms(irtt), "median_ms": ms(med),
                            "factor": round(irtt / med, 3) if med else None, "samples": len(irtts)},
                    terms={"rtt_ns": irtt, "median_ns": med, "factor": th.hs_rtt_factor, "min_s": th.hs_rtt_min_s,
                           "per_host": per_host, "samples": len(irtts) if per_host else len(every)}))
