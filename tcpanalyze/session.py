"""One analysis run: options in, a ``Report`` out (the orchestrator of the engine and detectors).

``analyze_file(path, options)`` is a pure function of its input (no printing, no click, no
rich): it runs the pipeline, the engine and the detectors over one capture and returns a
``Report`` made of dicts, lists and numbers only, so it pickles (``--jobs`` can run it in
worker processes, or a Dask/Ray task can) and ``merge_reports`` can add reports up.

A file that cannot be read gives a Report whose ``files[0]["error"]`` says why; the other
files of a run are still reported (the command exits 3).

The JSON document (``Report.to_dict()``) is described by ``schema.JSON_SCHEMA`` and in the
README ("JSON contract").  Reporters (``tcpanalyze.report``) only render a Report.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Union

from tcpanalyze._version import __version__
from tcpanalyze import engine
from tcpanalyze.errors import SourceError
from tcpanalyze.findings.base import SEVERITIES, SEVERITY_RANK, CaptureFacts, Thresholds
from tcpanalyze.findings.driver import Detectors
from tcpanalyze.pipeline import RunStats, analyze_source, gc_tuned
from tcpanalyze.records import RecordChain, SpilledRecords, _SpillFile
from tcpanalyze.schema import SCHEMA_VERSION
from tcpanalyze.summary import summarize

__all__ = ["AnalyzeOptions", "Report", "ReportBuilder", "analyze_file", "engine_kwargs", "failed_report",
           "merge_reports", "thresholds_from", "SCHEMA_VERSION"]

#: a report's connection records: a list of dicts, or records kept on disk (tcpanalyze.records)
Records = Union[list[dict[str, Any]], SpilledRecords, RecordChain]

#: how much a finding of each severity weighs when ranking the worst connections
_WEIGHT = {"error": 10_000, "warning": 100, "info": 1}


@dataclass
class AnalyzeOptions:
    """Everything ``analyze_file`` needs besides the path (picklable).

    ``engine``: keyword arguments of ``engine.Config`` (``fast_rtx_ns``, ``ooo_ns``, ``msl_s``,
    ``max_unacked``, ``max_connections``, ``idle_timeout_ns``); ``keep_connections``: None keeps
    every connection record, N keeps only the N worst (the console report needs no more);
    ``spill_records``: see below.
    """

    engine: dict[str, Any] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    keep_connections: int | None = None
    #: keep every connection record on disk until written (tcpanalyze.records), not in memory;
    #: the Report then only serves its own process (analyze --json/--jsonl without --jobs)
    spill_records: bool = False


@dataclass
class Report:
    """Plain data: ``files`` (one entry per input, with its own ``summary``), the total ``summary``,
    ``connections`` (summary records) and ``findings`` (finding dicts), both tagged with ``file``."""

    files: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    connections: Records = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "tool": {"name": "tcpanalyze", "version": __version__},
                "files": self.files, "summary": self.summary, "connections": self.connections,
                "findings": self.findings}

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Entries of ``files`` that could not be read (or whose data is corrupt past a point)."""
        return [f for f in self.files if f.get("error") or (f.get("damage") or {}).get("fatal")]

    @property
    def worst_severity(self) -> str | None:
        by = self.summary.get("findings", {}).get("by_severity", {})
        for sev in reversed(SEVERITIES):
            if by.get(sev):
                return sev
        return None


def thresholds_from(kw: dict[str, Any]) -> Thresholds:
    """Detector thresholds from the command-line threshold options, popped from ``kw`` (in
    their command-line units: percent, milliseconds); a missing one keeps its default."""
    d = Thresholds()
    rate = kw.pop("retrans_rate", None)
    hs_min = kw.pop("hs_rtt_min_ms", None)
    return Thresholds(
        retrans_rate=d.retrans_rate if rate is None else rate / 100.0,
        retrans_min_segments=kw.pop("retrans_min", d.retrans_min_segments),
        time_wait_peak=kw.pop("time_wait_peak", d.time_wait_peak), close_wait_s=kw.pop("close_wait", d.close_wait_s),
        zero_window_s=kw.pop("zero_window", d.zero_window_s), syn_flood=kw.pop("syn_flood", d.syn_flood),
        hs_rtt_factor=kw.pop("hs_rtt_factor", d.hs_rtt_factor),
        hs_rtt_min_s=d.hs_rtt_min_s if hs_min is None else hs_min / 1000.0,
        max_findings_per_kind=kw.pop("max_findings_per_kind", d.max_findings_per_kind),
        msl_s=kw.get("msl", d.msl_s))


def engine_kwargs(ek: dict[str, Any]) -> dict[str, Any]:
    """``engine.Config`` keyword arguments from the command-line engine options (``fast_rtx_ms``,
    ``ooo_ms``, ``msl``, ``max_unacked``, ``max_connections``, ``idle_timeout``) present in ``ek``."""
    out: dict[str, Any] = {}
    if "fast_rtx_ms" in ek:
        out["fast_rtx_ns"] = int(ek["fast_rtx_ms"] * 1e6)
    if "ooo_ms" in ek:
        out["ooo_ns"] = int(ek["ooo_ms"] * 1e6)
    if "msl" in ek:
        out["msl_s"] = ek["msl"]
    if "max_unacked" in ek:
        out["max_unacked"] = ek["max_unacked"]
    if "max_connections" in ek:
        out["max_connections"] = ek["max_connections"]
    if "idle_timeout" in ek:
        out["idle_timeout_ns"] = int(ek["idle_timeout"] * 1e9)
    return out


# ---------------------------------------------------------------------------- analysis of one file
def _empty_summary(th: Thresholds | None = None) -> dict[str, Any]:
    return {
        "files": 1, "files_failed": 0, "packets": 0, "tcp_segments": 0, "connections": 0,
        "connections_reported": 0, "bytes": 0, "start": None, "end": None, "duration": 0.0,
        "conn_states": {},
        "findings": {"total": 0, "reported": 0, "by_severity": {s: 0 for s in SEVERITIES}, "by_kind": {}},
        "worst_severity": None,
        "time_wait": {"msl_s": (th or Thresholds()).msl_s, "hosts": []},
        "capture_quality": {},
        "thresholds": (th or Thresholds()).to_dict(),
    }


def failed_report(path: str, message: str, th: Thresholds | None = None) -> Report:
    summ = _empty_summary(th)
    summ["files_failed"] = 1
    entry = RunStats(path).to_dict()
    entry["error"] = message
    entry["summary"] = summ
    return Report(files=[entry], summary=dict(summ))


_Key = tuple[tuple[int, int, int], int]


class _Connections:
    """Connection records as they are finalized: all of them, or the ``keep`` worst (a heap)."""

    def __init__(self, path: str, keep: int | None, spill: bool | str = False):
        self.path = path
        self.keep = keep
        # spill: True to this process's spill file, "named" to a file of its own that
        # another process adopts (a --jobs worker's)
        self.all: list[dict[str, Any]] | SpilledRecords = [] if not spill or keep is not None else \
            SpilledRecords(_SpillFile(named=True) if spill == "named" else None)
        self.heap: list[tuple[Any, ...]] = []
        self.n = 0
        self.bytes = 0
        self.states: dict[str, int] = {}

    def add(self, rec: dict[str, Any]) -> None:
        self.count(rec["orig_bytes"] + rec["resp_bytes"], rec["conn_state"])
        self.push((_rank(rec), -rec["stream"]), rec)

    def count(self, nbytes: int, conn_state: str) -> None:
        """Totals over every connection, kept or not."""
        self.n += 1
        self.bytes += nbytes
        self.states[conn_state] = self.states.get(conn_state, 0) + 1

    def wanted(self, key: _Key) -> bool:
        """Would a record with this (rank, -stream) key be kept?  (Lets the caller skip
        building the records of the many connections a top-N report drops.)"""
        keep = self.keep
        if keep is None:
            return True
        return keep > 0 and (len(self.heap) < keep or key > self.heap[0][:2])

    def push(self, key: _Key, rec: dict[str, Any]) -> None:
        """Keep ``rec`` (all of them, or in the top-N heap by ``key``)."""
        if self.keep is None:
            self.all.append(rec)
        elif self.keep > 0:
            item = (*key, rec)
            if len(self.heap) < self.keep:
                heapq.heappush(self.heap, item)
            elif key > self.heap[0][:2]:
                heapq.heapreplace(self.heap, item)

    def records(self) -> list[dict[str, Any]] | SpilledRecords:
        """The kept records in stream order: a list, or SpilledRecords when spilled."""
        if self.keep is None and not isinstance(self.all, list):
            return self.all.seal()
        recs: list[dict[str, Any]] = self.all if isinstance(self.all, list) and self.keep is None else \
            [x[2] for x in self.heap]
        recs.sort(key=lambda r: r["stream"])
        return recs


def _rank(rec: dict[str, Any]) -> tuple[int, int, int]:
    return (rec.get("score", 0), rec.get("retransmissions", 0), rec["orig_bytes"] + rec["resp_bytes"])


def _score(labels: Iterable[tuple[str, str]]) -> int:
    return sum(_WEIGHT[sev] for _lab, sev in labels)


class ReportBuilder:
    """The engine, detectors and connection records of one capture, and the Report built from
    them.  ``analyze_file`` feeds it from a file, ``live`` from an interface: both end with the
    same document.  Feed ``analyzer`` (with ``on_segment`` as the per-segment callback), then
    call ``build(stats)``."""

    def __init__(self, path: str, options: AnalyzeOptions | None = None, worker: bool = False):
        opts = options or AnalyzeOptions()
        cfg = engine.Config(**opts.engine)
        self.path = path
        self.th = replace(opts.thresholds, msl_s=cfg.msl_ns / 1e9)
        self.det = Detectors(self.th)
        self.conns = _Connections(path, opts.keep_connections,
                                  opts.spill_records and ("named" if worker else True))
        self.analyzer = engine.Analyzer(cfg, keep_timeline=False, on_conn_done=self._done, detail=False)
        self.det.analyzer = self.analyzer     # type: ignore[assignment]  # (Detectors declares it None)
        self.on_segment: Callable[[Any, engine.Analyzer], None] = self.det.on_segment

    def _done(self, conn: engine.Conn) -> None:
        fs = self.det.on_conn_done(conn)
        labels: list[tuple[str, str]] = [(f.label, f.severity) for f in fs]
        ev = conn.events
        if ev and "labels" in ev:
            labels.extend(ev["labels"])
        conns = self.conns
        fo, fr = conn.flows
        nbytes = fo.stats.bytes + fr.stats.bytes
        # what summarize() reports as conn_state (the first Zeek record of the stream)
        st = (conn.ztrack.zeek_done[0][0] if conn.ztrack.zeek_done else conn.zeek).conn_state()
        conns.count(nbytes, st)
        score = _score(labels)
        key = ((score, fo.stats.rtx + fr.stats.rtx, nbytes), -conn.stream)   # as _rank(summarize(conn))
        if not conns.wanted(key):
            return
        rec = summarize(conn)
        rec["file"] = self.path
        rec["findings"] = sorted({lab for lab, _sev in labels})
        rec["severity"] = max((sev for _l, sev in labels), key=SEVERITY_RANK.__getitem__, default=None)
        rec["score"] = score
        conns.push(key, rec)

    def build(self, stats: RunStats, facts: CaptureFacts | None = None) -> Report:
        """Finish the engine and build the Report (``facts``: the capture's, when no engine
        ran here, as in the ``--jobs`` merge)."""
        det, path, conns = self.det, self.path, self.conns
        if facts is None:
            self.analyzer.finish()
            facts = CaptureFacts.of(self.analyzer, stats)
        extra = det.finish(facts)
        records = conns.records()
        findings = []
        # aggregate findings about one connection (handshake RTT outliers) are added to its record
        patch = {f.stream for f in det.sink.kept if f.host is not None and f.stream is not None}
        by_stream: dict[int, dict[str, Any]]
        if isinstance(records, list):
            by_stream = {r["stream"]: r for r in records if r["stream"] in patch}
        else:
            by_stream = records.pick(sorted(patch))
        for f in det.sink.kept:
            d = f.to_dict()
            d["file"] = path
            findings.append(d)
            if f.host is not None and f.stream is not None and f.stream in by_stream:
                rec = by_stream[f.stream]
                if f.label not in rec["findings"]:
                    rec["findings"] = sorted(rec["findings"] + [f.label])
                    rec["score"] += _WEIGHT[f.severity]
                    if rec["severity"] is None or SEVERITY_RANK[f.severity] > SEVERITY_RANK[rec["severity"]]:
                        rec["severity"] = f.severity
        findings.sort(key=_finding_order)

        summ = _empty_summary(self.th)
        first, last = facts.first_ns, facts.last_ns
        by_kind = {k: dict(v) for k, v in sorted(det.sink.by_kind.items())}
        by_sev = {s: sum(v[s] for v in by_kind.values()) for s in SEVERITIES}
        summ.update({
            "packets": stats.frames, "tcp_segments": stats.tcp, "connections": conns.n,
            "connections_reported": len(records), "bytes": conns.bytes,
            "start": None if first is None or last is None else round(first / 1e9, 9),
            "end": None if first is None or last is None else round(last / 1e9, 9),
            "duration": 0.0 if first is None or last is None else round((last - first) / 1e9, 9),
            "conn_states": dict(sorted(conns.states.items())),
            "findings": {"total": sum(v["total"] for v in by_kind.values()),
                         "reported": sum(v["reported"] for v in by_kind.values()),
                         "by_severity": by_sev, "by_kind": by_kind},
            "worst_severity": next((s for s in reversed(SEVERITIES) if by_sev[s]), None),
            "time_wait": extra["time_wait"],
            "capture_quality": extra["capture_quality"],
        })
        entry = stats.to_dict()
        entry["error"] = None
        entry["summary"] = summ
        return Report(files=[entry], summary=dict(summ), connections=records, findings=findings)


def analyze_file(path: str, options: AnalyzeOptions | None = None,
                 progress: Callable[[int, int | None], None] | None = None) -> Report:
    """Analyse one capture file; never raises for bad input (the Report carries the error).

    ``progress(done_bytes, total_bytes)`` is called now and then while reading (optional).
    """
    b = ReportBuilder(path, options)
    with gc_tuned(off=path != "-"):     # a file (stdin may be a live pipe): see pipeline.gc_tuned
        try:
            stats = analyze_source(path, b.analyzer, on_segment=b.on_segment, progress=progress, notable_only=True)
        except SourceError as e:
            return failed_report(path, str(e), b.th)
        except OSError as e:
            return failed_report(path, f"{path}: {e.strerror or e}", b.th)
        return b.build(stats)


def _finding_order(d: dict[str, Any]) -> tuple[int, str, int, float, str, int]:
    return (-SEVERITY_RANK[d["severity"]], d["kind"], d["stream"] if d["stream"] is not None else -1,
            d["time"] if d["time"] is not None else 0.0, d["host"] or "", d["port"] or 0)


# ---------------------------------------------------------------------------- totals
_CQ_MAX = {"largest_segment"}


def merge_reports(reports: list[Report], keep_connections: int | None = None) -> Report:
    """The total of several per-file reports (files, connections and findings concatenated;
    counts added; TIME_WAIT hosts listed per file).  Each file keeps its own ``summary``."""
    if not reports:
        return Report(summary={**_empty_summary(), "files": 0})
    if len(reports) == 1:
        return reports[0]
    files: list[dict[str, Any]] = []
    finds: list[dict[str, Any]] = []
    conns: Records = []
    for r in reports:
        files.extend(r.files)
        finds.extend(r.findings)
    if keep_connections is None and not all(isinstance(r.connections, list) for r in reports):
        conns = RecordChain([r.connections for r in reports])    # spilled: stay on disk
    else:
        listed: list[dict[str, Any]] = []
        for r in reports:
            listed.extend(r.connections)
        conns = listed
    if keep_connections is not None:
        conns = sorted(conns, key=lambda c: _rank(c), reverse=True)[:keep_connections]
    finds.sort(key=_finding_order)
    summ = _empty_summary()
    summ["files"] = 0
    summ["thresholds"] = reports[0].summary.get("thresholds", summ["thresholds"])
    summ["time_wait"]["msl_s"] = reports[0].summary.get("time_wait", {}).get("msl_s", engine.K_MSL_S)
    starts, ends = [], []
    for r in reports:
        s = r.summary
        for k in ("files", "files_failed", "packets", "tcp_segments", "connections", "connections_reported",
                  "bytes"):
            summ[k] += s.get(k, 0)
        summ["duration"] += s.get("duration", 0.0)
        if s.get("start") is not None:
            starts.append(s["start"])
            ends.append(s["end"])
        for k, v in s.get("conn_states", {}).items():
            summ["conn_states"][k] = summ["conn_states"].get(k, 0) + v
        fd = s.get("findings", {})
        tf = summ["findings"]
        tf["total"] += fd.get("total", 0)
        tf["reported"] += fd.get("reported", 0)
        for sev, n in fd.get("by_severity", {}).items():
            tf["by_severity"][sev] += n
        for kind, cnt in fd.get("by_kind", {}).items():
            t = tf["by_kind"].setdefault(kind, {"total": 0, "reported": 0, "info": 0, "warning": 0, "error": 0})
            for k2, v2 in cnt.items():
                t[k2] += v2
        src = r.files[0]["source"] if r.files else None
        for h in s.get("time_wait", {}).get("hosts", []):
            summ["time_wait"]["hosts"].append({**h, "file": h.get("file", src)})
        for k, v in s.get("capture_quality", {}).items():
            cq = summ["capture_quality"]
            cq[k] = max(cq.get(k, 0), v) if k in _CQ_MAX else cq.get(k, 0) + v
    summ["connections_reported"] = len(conns)
    summ["conn_states"] = dict(sorted(summ["conn_states"].items()))
    summ["findings"]["by_kind"] = dict(sorted(summ["findings"]["by_kind"].items()))
    summ["time_wait"]["hosts"].sort(key=lambda e: (-e["peak"], e["host"], e.get("file") or ""))
    if starts:
        summ["start"] = min(starts)
        summ["end"] = max(ends)
    summ["duration"] = round(summ["duration"], 9)      # the sum of the files' durations
    by_sev = summ["findings"]["by_severity"]
    summ["worst_severity"] = next((s for s in reversed(SEVERITIES) if by_sev[s]), None)
    return Report(files=files, summary=summ, connections=conns, findings=finds)
