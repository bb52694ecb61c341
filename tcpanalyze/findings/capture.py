"""``capture_quality``: what the capture itself causes (missed handshakes, unknown window
scale, snaplen truncation, TSO/GRO super-segments, one-sided connections, clock steps,
evicted or expired connections, decode errors, IP fragments not reassembled, bad or offloaded TCP
checksums, a damaged file), marked ``cause = "capture"``."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.engine import Conn, EndpointStats, Flow
from tcpanalyze.findings.base import Finding, aggregate_detector, conn_detector, declare_kind, tally_example
from tcpanalyze.findings.rst import rst_crossings


def _decode_errors(v, t) -> str:
    return (f"{v['frames']} frame(s) could not be decoded ("
            + ", ".join(f"{k} {n}" for k, n in v["by_kind"].items()) + ")")


#: subkind -> its message (from the finding's values and terms)
_TEXT = {
    "handshake_not_seen": lambda v, t: (
        f"{v['connections']} connection(s) started before the capture (no SYN seen): roles inferred "
        f"from ports, relative numbers from the first segment"),
    "window_scale_unknown": lambda v, t: (
        f"{v['connections']} connection(s) with data but no handshake: window scale unknown, so "
        f"window_shrink is not evaluated and windows are raw"),
    "snaplen_truncation": lambda v, t: (
        f"{v['segments']} segment(s) on {v['connections']} connection(s) captured shorter than their IP "
        f"length (snaplen): payload lengths come from the IP header"),
    "super_segments": lambda v, t: (
        f"{v['connections']} connection(s) with segments larger than the peer's MSS (largest "
        f"{v['largest']} bytes): TSO/GRO, the capture was taken on a sending or receiving host"),
    "one_sided": lambda v, t: (
        f"{v['connections']} connection(s) with packets in one direction only: the other direction did not "
        f"pass the capture point (asymmetric routing or a filter)"),
    "unexpected_transitions": lambda v, t: (
        f"{v['segments']} segment(s) on {v['connections']} connection(s) did not fit the RFC 9293 "
        f"state table (often a segment the capture missed)"),
    "timestamps_backwards": lambda v, t: (
        f"{v['packets']} packet(s) timestamped earlier than the packet before them (capture clock "
        f"stepped, or merged captures)"),
    "evicted": lambda v, t: (
        f"{v['connections']} connection(s) evicted over the live-connection bound (--max-connections): "
        f"their later packets start new, partial connections"),
    "expired": lambda v, t: (
        f"{v['connections']} idle connection(s) expired (--idle-timeout) before the end of the capture"),
    "decode_errors": _decode_errors,
    "ip_fragments": lambda v, t: (
        f"{v['fragments']} IP fragment(s), {v['reassembled']} datagram(s) reassembled; not reassembled: "
        f"{v['overlapping']} overlapping (discarded), {v['timed_out']} timed out, {v['evicted']} evicted over "
        f"the table's bound, {v['incomplete']} incomplete at the end, {v['truncated']} fragment(s) cut by the "
        f"snaplen, {v['malformed']} malformed"),
    "bad_checksums": lambda v, t: (
        f"{v['segments']} segment(s) with a bad TCP checksum"
        + (" left out of the analysis (--checksums drop)" if v["dropped"] else "")),
    "checksum_offload": lambda v, t: (
        f"{v['segments']} segment(s) with the TCP checksum left to the network card (zero or the bare "
        f"pseudo-header sum): captured on the sending host with checksum offload, not counted as bad"),
    "damaged_file": lambda v, t: (
        f"{t['damage']} (frame {v['frame']}, byte {v['offset']})" + ("" if v["fatal"] else "; analyzed up to the cut")),
}


def render(f: Finding) -> str:
    return "capture_quality " + f.subkind + ": " + _TEXT[f.subkind](f.values, f.terms)


CAPTURE_QUALITY = declare_kind(
    "capture_quality", render, subkinds=tuple(_TEXT),
    description="handshake not seen, window scale unknown, snaplen truncation, super-segments larger than the "
                "MSS, one-sided connections, unexpected transitions, timestamps going backwards, evicted or "
                "expired connections, decode errors, IP fragments not reassembled, bad or offloaded TCP "
                "checksums, a damaged file")


@conn_detector(90)
@cython.locals(conn=Conn, fo=Flow, fr=Flow, so=EndpointStats, sr=EndpointStats, seen=EndpointStats,
               o=cython.longlong)
def capture_tally(conn, th, acc, end_ns, out) -> None:
    if acc is None:
        return
    o = conn.orig
    fo, fr = conn.flows[o], conn.flows[o ^ 1]
    so, sr = fo.stats, fr.stats
    acc.connections += 1
    s = conn.stream
    if not conn.handshake_seen:
        acc.no_handshake.connections += 1
        tally_example(acc.no_handshake.streams, s)
    if (fo.win_scale == -1 or fr.win_scale == -1) and (so.data_pkts or sr.data_pkts):
        acc.scale_unknown.connections += 1
        tally_example(acc.scale_unknown.streams, s)
    if so.pkts == 0 or sr.pkts == 0:
        # One direction never seen although the other sent data (or kept talking): the capture
        # point saw one way only.  Unanswered SYNs, stray RSTs and scans are findings of their own.
        seen = so if sr.pkts == 0 else sr
        if seen.data_pkts or (seen.pkts >= 3 and not seen.syns):
            acc.one_sided.connections += 1
            tally_example(acc.one_sided.streams, s)
    tr = so.trunc + sr.trunc
    if tr:
        acc.truncated.connections += 1
        acc.truncated.amount += tr
        tally_example(acc.truncated.streams, s)
    # a segment larger than the peer's MSS (the orig's first)
    big = (so.max_seg if sr.mss and so.max_seg > sr.mss else
           sr.max_seg if so.mss and sr.max_seg > so.mss else 0)
    if big:
        acc.super_segments.connections += 1
        acc.super_segments.amount = max(acc.super_segments.amount, big)
        tally_example(acc.super_segments.streams, s)
    if conn.anomalies:
        # the peer's segments that crossed a RST in flight are expected of a reset, not a capture gap
        n = len(conn.anomalies) - (len(rst_crossings(conn)[0]) if conn.ending.reset_by >= 0 else 0)
        if n:
            acc.unexpected.connections += 1
            acc.unexpected.amount += n
            tally_example(acc.unexpected.streams, s)


@aggregate_detector(50)
def capture_quality(facts, th, acc, out, extra) -> None:
    def add(sub, sev, values, streams=(), terms=None):
        out.append(Finding("capture_quality", sev, subkind=sub, values={**values, "streams": list(streams)},
                           terms=terms, cause="capture"))

    errors = facts.decode_errors
    extra["capture_quality"] = {
        "handshake_not_seen": acc.no_handshake.connections,
        "window_scale_unknown": acc.scale_unknown.connections,
        "one_sided": acc.one_sided.connections,
        "truncated_connections": acc.truncated.connections, "truncated_segments": acc.truncated.amount,
        "super_segment_connections": acc.super_segments.connections, "largest_segment": acc.super_segments.amount,
        "unexpected_transition_connections": acc.unexpected.connections,
        "timestamps_backwards": facts.ts_backwards,
        "evicted": facts.evicted, "expired": facts.expired,
        "decode_errors": sum(errors.values()),
    }
    if acc.no_handshake.connections:
        add("handshake_not_seen", "info", {"connections": acc.no_handshake.connections}, acc.no_handshake.streams)
    if acc.scale_unknown.connections:
        add("window_scale_unknown", "info", {"connections": acc.scale_unknown.connections},
            acc.scale_unknown.streams)
    if acc.truncated.connections:
        add("snaplen_truncation", "info",
            {"connections": acc.truncated.connections, "segments": acc.truncated.amount}, acc.truncated.streams)
    if acc.super_segments.connections:
        add("super_segments", "info",
            {"connections": acc.super_segments.connections, "largest": acc.super_segments.amount},
            acc.super_segments.streams)
    if acc.one_sided.connections:
        add("one_sided", "warning", {"connections": acc.one_sided.connections}, acc.one_sided.streams)
    if acc.unexpected.connections:
        add("unexpected_transitions", "info",
            {"connections": acc.unexpected.connections, "segments": acc.unexpected.amount}, acc.unexpected.streams)
    if facts.ts_backwards:
        add("timestamps_backwards", "warning", {"packets": facts.ts_backwards})
    if facts.evicted:
        add("evicted", "warning", {"connections": facts.evicted})
    if facts.expired:
        add("expired", "info", {"connections": facts.expired})
    frag = facts.fragments
    if frag.get("fragments"):
        for k in ("reassembled", "overlapping", "timed_out", "evicted", "incomplete"):
            extra["capture_quality"]["fragments_" + k] = frag.get(k, 0)
        if any(frag.get(k) for k in ("overlapping", "timed_out", "evicted", "incomplete", "truncated", "malformed")):
            add("ip_fragments", "info", {k: frag.get(k, 0) for k in (
                "fragments", "reassembled", "overlapping", "timed_out", "evicted", "incomplete", "truncated",
                "malformed")})
    cs = facts.checksums
    if cs:
        for k in ("bad", "offload", "dropped"):
            extra["capture_quality"]["checksum_" + k] = cs.get(k, 0)
        if cs.get("bad"):
            add("bad_checksums", "warning", {"segments": cs["bad"], "dropped": cs.get("dropped", 0)})
        if cs.get("offload"):
            add("checksum_offload", "info", {"segments": cs["offload"]})
    if errors:
        add("decode_errors", "warning", {"frames": sum(errors.values()), "by_kind": dict(sorted(errors.items()))})
    dmg = facts.damage
    if dmg is not None:
        add("damaged_file", "error" if dmg.fatal else "warning",
            {"frame": dmg.frame, "offset": dmg.offset, "fatal": dmg.fatal}, terms={"damage": str(dmg)})
