"""Running the detectors: per segment (evidence frames, invalid flags, port reuse), per
finalized connection (``conn_findings``) and once at the end (``aggregate_findings``)."""
from __future__ import annotations

from collections import deque

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze import analysis as A
from tcpanalyze.engine import Analyzer, Conn, Verdict
from tcpanalyze.findings.base import (AGGREGATE_DETECTORS, CONN_DETECTORS, SEG_ANALYSIS, SEG_DATA, SEG_ODD,
                                      SEGMENT_DETECTORS, CaptureFacts, Finding, FindingSink, OutOfOrderEvidence,
                                      Tallies, Thresholds, add_evidence)
from tcpanalyze.findings.reuse import reuse_findings
from tcpanalyze.model import Segment

# analysis bits as C constants when compiled; the first three are the evidence kinds
# ``Detectors.on_segment`` records from the analysis bits (``rtx``, ``lost``, ``ack_lost``)
_RTX = cython.declare(cython.longlong, A.RETRANSMISSION_FAMILY)
_LOST = cython.declare(cython.longlong, A.LOST_SEGMENT)
_ACK_LOST = cython.declare(cython.longlong, A.ACK_LOST_SEGMENT)
_OOO = cython.declare(cython.longlong, A.OUT_OF_ORDER)
_REUSED = cython.declare(cython.longlong, A.REUSED_PORTS)
#: the analysis bits whose segments leave evidence here (any of the five above)
_EVIDENCE = cython.declare(cython.longlong, A.RETRANSMISSION_FAMILY | A.LOST_SEGMENT | A.ACK_LOST_SEGMENT
                           | A.OUT_OF_ORDER | A.REUSED_PORTS)
# what a segment detector asks to see, as C constants
_SEG_ANALYSIS = cython.declare(cython.longlong, SEG_ANALYSIS)
_SEG_ODD = cython.declare(cython.longlong, SEG_ODD)
_SEG_DATA = cython.declare(cython.longlong, SEG_DATA)


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

    ``on_segment(seg, analyzer)`` (``examine``) returns True when it examined the segment
    (anything but an ordinary ACK: an analysis flag, or SYN/FIN/RST); ``on_conn_done(conn)`` returns the
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
        self._seg_n = -1                             # segment detectors _seg_on covers
        self._seg_on = 0                             # every property any of them asks for

    @cython.locals(seg=Segment, a=Analyzer, verdict=Verdict, conn=Conn, bits=cython.longlong,
                   fl=cython.longlong, want=cython.longlong, k=cython.longlong,
                   on=cython.longlong)
    def examine(self, seg, a) -> bool:
        """Record the evidence of a segment that is not an ordinary ACK (an analysis flag, or
        SYN/FIN/RST, or no ACK; False for an ordinary one): the analysis flags' evidence
        frames, port reuse, then the segment detectors that asked for such a segment."""
        verdict = a.verdict
        bits = verdict.analysis
        fl = seg.flags
        if not bits and fl & 0x17 == 0x10:     # ACK alone, no SYN/FIN/RST: the ordinary case
            return False
        conn = verdict.conn
        if conn.done:                           # a late packet: its connection was summarised
            return False
        ev = conn.events
        if ev is None:
            ev = conn.events = {}
        want = fl
        if bits:
            want |= _SEG_ANALYSIS
            if bits & _EVIDENCE:
                k = self._kev
                if bits & _RTX:
                    add_evidence(ev, "rtx", seg.frame, seg.ts_ns, k)
                if bits & _LOST:
                    add_evidence(ev, "lost", seg.frame, seg.ts_ns, k)
                if bits & _ACK_LOST:
                    add_evidence(ev, "ack_lost", seg.frame, seg.ts_ns, k)
                if bits & _OOO:
                    self._out_of_order(ev, seg.frame, seg.ts_ns, k)
                if bits & _REUSED and not seg.flags & 0x10:    # a SYN/ACK keeps its stream
                    self._port_reuse(seg, a, conn)
        if fl & 0x17 != 0x10:
            want |= _SEG_ODD
        if seg.paylen:
            want |= _SEG_DATA
        if not cython.compiled:
            # as plain Python, a walk of the list costs more than one test of what any
            # detector asks for (compiled, the walk is C)
            if len(SEGMENT_DETECTORS) != self._seg_n:
                self._seg_mask()
            if not want & self._seg_on:
                return True
        th = self.th
        for _order, detect, on in SEGMENT_DETECTORS:
            if want & on:
                detect(seg, verdict, conn, ev, th)
        return True

    #: the pipeline's per-segment callback (a class attribute: a bound method kept on the
    #: instance would make a reference cycle, freed only by the cyclic collector)
    on_segment = examine

    def _seg_mask(self) -> None:
        on = 0
        for _order, _detect, want in SEGMENT_DETECTORS:
            on |= want
        self._seg_on = on
        self._seg_n = len(SEGMENT_DETECTORS)

    def _out_of_order(self, ev: dict, frame: int, now: int, k: int) -> None:
        """Out-of-order evidence: count, frames, and bursts (segments less than the burst gap apart)."""
        e = ev.get("ooo")
        if e is None:
            ev["ooo"] = OutOfOrderEvidence(frame, now)
            return
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

    def _port_reuse(self, seg, a, conn) -> None:
        ends = {(seg.src, seg.sport), (seg.dst, seg.dport)}
        # the connection the engine just replaced on this 4-tuple (it may have been summarised
        # long before, kept as a tombstone); else the latest finalized one with these ends
        old = a.previous
        if old is None or {(old.addr[0], old.port[0]), (old.addr[1], old.port[1])} != ends:
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

    def finish(self, facts: CaptureFacts, keep=None) -> dict:
        """Add the aggregate findings to the sink (those ``keep(finding)`` accepts, when
        given); the summary sections they rest on."""
        fs, extra = aggregate_findings(facts, self.th, self.acc)
        for f in fs:
            if keep is None or keep(f):
                self.sink.add(f, "aggregate")
        return extra
