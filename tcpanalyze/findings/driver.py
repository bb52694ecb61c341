"""Running the detectors: per segment (evidence frames, invalid flags, port reuse), per
finalized connection (``conn_findings``) and once at the end (``aggregate_findings``)."""
from __future__ import annotations

from collections import deque

from tcpanalyze import analysis as A
from tcpanalyze.findings.base import (AGGREGATE_DETECTORS, CONN_DETECTORS, CaptureFacts, Evidence, Finding,
                                      FindingSink, OutOfOrderEvidence, RstEvidence, Tallies, Thresholds)
from tcpanalyze.findings.flags import invalid_flag_kinds
from tcpanalyze.findings.reuse import reuse_findings
from tcpanalyze.model import RST

#: evidence kinds recorded by ``Detectors.on_segment`` from the analysis bits
_BIT_EVIDENCE = (
    (A.RETRANSMISSION_FAMILY, "rtx"),
    (A.LOST_SEGMENT, "lost"),
    (A.ACK_LOST_SEGMENT, "ack_lost"),
)


def _unacked(f) -> int:
    """Bytes covered by a flow's unacknowledged segments (overlaps from retransmissions counted once)."""
    segs = f.segs
    if not segs:
        return 0
    base = f.base_seq
    spans = sorted((((e.seq - base) & 0xFFFFFFFF), ((e.end - base) & 0xFFFFFFFF)) for e in segs)
    total = 0
    cur_lo, cur_hi = spans[0]
    for lo, hi in spans[1:]:
        if lo > cur_hi:
            total += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
        elif hi > cur_hi:
            cur_hi = hi
    return total + max(0, cur_hi - cur_lo)


def conn_findings(conn, th: Thresholds | None = None, acc: Tallies | None = None,
                  now_ns: int | None = None) -> list[Finding]:
    """Findings of one finalized connection (and its contribution to the aggregates in ``acc``).

    ``now_ns`` is the capture time at which the connection was finalized (the end of the
    capture for connections still open then); it bounds a stall that never ended.
    """
    th = th or Thresholds()
    out: list[Finding] = []
    end_ns = conn.last_ns if now_ns is None or now_ns < conn.last_ns else now_ns
    for _order, detect in CONN_DETECTORS:
        detect(conn, th, acc, end_ns, out)
    return out


def aggregate_findings(facts: CaptureFacts, th: Thresholds | None = None,
                       acc: Tallies | None = None) -> tuple[list[Finding], dict]:
    """Capture-wide findings, and the summary sections they rest on.

    Returns ``(findings, extra)`` where ``extra`` has ``time_wait`` (per host and host:port)
    and ``capture_quality`` (counts) for the report's summary.
    """
    th = th or Thresholds()
    acc = acc or Tallies()
    out: list[Finding] = []
    extra: dict = {}
    for _order, detect in AGGREGATE_DETECTORS:
        detect(facts, th, acc, out, extra)
    return out, extra


class Detectors:
    """The detectors in a run: ``on_segment`` for the pipeline, ``on_conn_done`` for the Analyzer.

    ``on_segment(seg, analyzer)`` returns True when it examined the segment (anything but an
    ordinary ACK: an analysis flag, or SYN/FIN/RST); ``on_conn_done(conn)`` returns the
    connection's findings (also passed to ``sink``); ``finish(facts)`` returns the summary
    sections of the aggregate findings.
    """

    def __init__(self, th: Thresholds | None = None, sink: FindingSink | None = None):
        self.th = th = th or Thresholds()
        self.sink = sink or FindingSink(th.max_findings_per_kind)
        self.acc = Tallies()
        self.analyzer = None
        self._recent: deque = deque(maxlen=8)        # recently finalized connections (port reuse)
        self._sitw = 0                               # analyzer.syn_in_time_wait entries seen
        self._kev = th.evidence_frames
        self._gap_ns = int(th.ooo_burst_gap_s * 1e9)
        self.on_segment = self._make_on_segment()

    def _make_on_segment(self):
        examine = self.examine

        def on_segment(seg, a) -> bool:
            if a.verdict.analysis or seg.flags & 0x17 != 0x10:     # ACK alone, no SYN/FIN/RST: the ordinary case
                examine(seg, a)
                return True
            return False

        return on_segment

    def examine(self, seg, a) -> None:
        """Record the evidence of a segment that is not an ordinary ACK (``on_segment`` tests that)."""
        verdict = a.verdict
        conn = verdict.conn
        bits = verdict.analysis
        fl = seg.flags
        frame = seg.frame
        ev = conn.events
        if ev is None:
            ev = conn.events = {}
        k = self._kev
        if bits:
            for bit, name in _BIT_EVIDENCE:
                if bits & bit:
                    e = ev.get(name)
                    if e is None:
                        ev[name] = Evidence(frame, seg.ts_ns)
                    else:
                        e.count += 1
                        if len(e.frames) < k:
                            e.frames.append(frame)
            if bits & A.OUT_OF_ORDER:
                e = ev.get("ooo")
                now = seg.ts_ns
                if e is None:
                    ev["ooo"] = OutOfOrderEvidence(frame, now)
                else:
                    e.count += 1
                    if len(e.frames) < k:
                        e.frames.append(frame)
                    if now - e.last_ns > self._gap_ns:
                        e.bursts += 1
                        e.burst = 1
                    else:
                        e.burst += 1
                        if e.burst > e.largest_burst:
                            e.largest_burst = e.burst
                    e.last_ns = now
            if bits & A.REUSED_PORTS:
                self._port_reuse(seg, a, conn)
        if fl & 0x17 != 0x10:
            for name in invalid_flag_kinds(fl):
                key = "flags_" + name
                e = ev.get(key)
                if e is None:
                    ev[key] = Evidence(frame, seg.ts_ns)
                else:
                    e.count += 1
                    if len(e.frames) < k:
                        e.frames.append(frame)
            if fl & RST and "rst" not in ev and conn.reset_by == verdict.direction:
                # Bytes in flight the RST discards: each side's data still unacknowledged after it
                # (the RST's own ACK has been applied), counted once even if retransmitted.
                d = verdict.direction
                peer = conn.flows[d ^ 1]
                ev["rst"] = RstEvidence(_unacked(peer), frame, _unacked(conn.flows[d]), peer.nextseq)

    def _port_reuse(self, seg, a, conn) -> None:
        ends = {(seg.src, seg.sport), (seg.dst, seg.dport)}
        old = None
        for c in reversed(self._recent):
            if {(c.addr[0], c.port[0]), (c.addr[1], c.port[1])} == ends:
                old = c
                break
        sitw = a.syn_in_time_wait
        in_tw = len(sitw) > self._sitw and sitw[-1][1] == seg.frame
        self._sitw = len(sitw)
        labels = conn.events.setdefault("labels", [])
        for f in reuse_findings(seg, conn, old, in_tw, self.th.msl_s):
            self.sink.add(f)
            labels.append((f.kind, f.severity))

    def on_conn_done(self, conn) -> list[Finding]:
        self._recent.append(conn)
        a = self.analyzer
        now = a.last_ns if a is not None else None
        fs = conn_findings(conn, self.th, self.acc, now)
        add = self.sink.add
        for f in fs:
            add(f)
        return fs

    def finish(self, facts: CaptureFacts) -> dict:
        """Add the aggregate findings to the sink; the summary sections they rest on."""
        fs, extra = aggregate_findings(facts, self.th, self.acc)
        for f in fs:
            self.sink.add(f, "aggregate")
        return extra
