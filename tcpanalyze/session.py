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
import ipaddress
import os
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Iterable, Union

from tcpanalyze._version import __version__
from tcpanalyze import engine
from tcpanalyze.errors import SourceError
from tcpanalyze.findings.base import SEVERITIES, SEVERITY_RANK, THRESHOLDS, CaptureFacts, Thresholds, add_counts
from tcpanalyze.findings.driver import Detectors
from tcpanalyze.findings.timewait import time_wait_section
from tcpanalyze.model import addr_str
from tcpanalyze.pipeline import RunStats, analyze_source, gc_tuned
from tcpanalyze.records import RecordChain, SpilledRecords, _SpillFile
from tcpanalyze.schema import SCHEMA_VERSION
from tcpanalyze.summary import summarize

__all__ = ["AnalyzeOptions", "Report", "ReportBuilder", "Selection", "analyze_file", "address_matcher",
           "engine_kwargs", "failed_report", "merge_reports", "thresholds_from", "SCHEMA_VERSION"]

#: a report's connection records: a list of dicts, or records kept on disk (tcpanalyze.records)
Records = Union[list[dict[str, Any]], SpilledRecords, RecordChain]

#: how much a finding of each severity weighs when ranking the worst connections
_WEIGHT = {"error": 10_000, "warning": 100, "info": 1}


def address_matcher(host: Any) -> Callable[[bytes], bool]:
    """``inside(packed_address)`` for an address or network: a string (``10.0.0.1``,
    ``10.200.0.0/24``, ``fd00::/64``, brackets allowed), an ``ipaddress`` network or address, or
    a packed address.  Raises ValueError for anything else."""
    if isinstance(host, (bytes, bytearray)):
        raw = bytes(host)
        if len(raw) not in (4, 16):
            raise ValueError(f"not a packed IPv4 or IPv6 address: {raw!r}")
        return raw.__eq__
    if isinstance(host, str):
        host = host.strip().strip("[]") if "/" not in host else host.strip()
        if host.startswith("[") and "]/" in host:
            host = host[1:].replace("]/", "/")
    net = ipaddress.ip_network(host, strict=False)
    if net.prefixlen == net.max_prefixlen:
        return net.network_address.packed.__eq__
    size = 4 if net.version == 4 else 16
    mask = int(net.netmask)
    base = int(net.network_address)
    from_bytes = int.from_bytes

    def inside(raw: bytes) -> bool:
        return len(raw) == size and from_bytes(raw, "big") & mask == base

    return inside


@dataclass(frozen=True)
class Selection:
    """The connections a run is about: ``stream`` (tcp.stream index), ``host`` (an address or
    a network, as ``address_matcher`` takes it; either end) and ``port`` (either end); None
    selects all.  Picklable (``--jobs`` workers receive it)."""

    stream: int | None = None
    host: str | None = None
    port: int | None = None

    def __bool__(self) -> bool:
        return self.stream is not None or self.host is not None or self.port is not None

    def conn_filter(self) -> Callable[[Any], bool]:
        """``wanted(conn)`` for an ``engine.Conn``."""
        stream, port = self.stream, self.port
        inside = address_matcher(self.host) if self.host is not None else None

        def wanted(conn: Any) -> bool:
            if stream is not None and conn.stream != stream:
                return False
            if inside is not None and not (inside(conn.addr[0]) or inside(conn.addr[1])):
                return False
            return port is None or conn.port[0] == port or conn.port[1] == port

        return wanted

    def host_filter(self) -> Callable[[str], bool] | None:
        """``wanted(host_text)`` for the --host address or network (None without --host)."""
        if self.host is None:
            return None
        inside = address_matcher(self.host)

        def wanted(text: str) -> bool:
            try:
                return inside(ipaddress.ip_address(text).packed)
            except ValueError:
                return False

        return wanted


@dataclass
class AnalyzeOptions:
    """Everything ``analyze_file`` needs besides the path (picklable).

    ``engine``: keyword arguments of ``engine.Config`` (``fast_rtx_ns``, ``ooo_ns``, ``msl_s``,
    ``max_unacked``, ``max_connections``, ``idle_timeout_ns``, ``checksums``); ``keep_connections``: None keeps
    every connection record, N keeps only the N worst (the console report needs no more);
    ``spill_records``: see below.
    """

    engine: dict[str, Any] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    keep_connections: int | None = None
    #: keep every connection record on disk until written (tcpanalyze.records), not in memory;
    #: the Report then only serves its own process (analyze --json/--jsonl without --jobs)
    spill_records: bool = False
    #: analyze only these connections (analyze --stream/--host/--port); the engine still sees
    #: every packet, so stream numbers are those of the whole capture
    select: Selection = field(default_factory=Selection)


@dataclass
class Report:
    """Plain data: ``files`` (one entry per input, with its own ``summary``), the total ``summary``,
    ``connections`` (summary records) and ``findings`` (finding dicts), both tagged with ``file``."""

    files: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    connections: Records = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    #: the records of the connections with the longest transfers (the console report's
    #: "Slowest connections"; kept only when ``connections`` is a top-N selection)
    slowest: list[dict[str, Any]] = field(default_factory=list)

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
    msl, tw = kw.get("msl"), kw.get("time_wait")       # (engine options: left in kw)
    hs_min = kw.pop("hs_rtt_min_ms", None)
    return Thresholds(
        retrans_rate=d.retrans_rate if rate is None else rate / 100.0,
        retrans_min_segments=kw.pop("retrans_min", d.retrans_min_segments),
        time_wait_peak=kw.pop("time_wait_peak", d.time_wait_peak), close_wait_s=kw.pop("close_wait", d.close_wait_s),
        zero_window_s=kw.pop("zero_window", d.zero_window_s), syn_flood=kw.pop("syn_flood", d.syn_flood),
        hs_rtt_factor=kw.pop("hs_rtt_factor", d.hs_rtt_factor),
        hs_rtt_min_s=d.hs_rtt_min_s if hs_min is None else hs_min / 1000.0,
        max_findings_per_kind=kw.pop("max_findings_per_kind", d.max_findings_per_kind),
        msl_s=msl if msl is not None else d.msl_s if tw is None else tw / 2,
        extra={name: v for name in THRESHOLDS if (v := kw.pop(name, None)) is not None})


def engine_kwargs(ek: dict[str, Any]) -> dict[str, Any]:
    """``engine.Config`` keyword arguments from the command-line engine options (``fast_rtx_ms``,
    ``ooo_ms``, ``msl``, ``max_unacked``, ``max_connections``, ``idle_timeout``, ``checksums``)
    present in ``ek`` (``checksums`` only when not the default, so default options stay as they were)."""
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
    if ek.get("checksums", "ignore") != "ignore":
        out["checksums"] = ek["checksums"]
    return out


# ---------------------------------------------------------------------------- analysis of one file
def _empty_summary(th: Thresholds | None = None) -> dict[str, Any]:
    return {
        "files": 1, "files_failed": 0, "packets": 0, "tcp_segments": 0, "late_packets": 0, "connections": 0,
        "connections_reported": 0, "connections_with_findings": 0, "bytes": 0, "start": None, "end": None,
        "duration": 0.0, "conn_states": {},
        "findings": {"total": 0, "reported": 0, "by_severity": {s: 0 for s in SEVERITIES}, "by_kind": {},
                     "by_subkind": {}},
        "worst_severity": None,
        "time_wait": time_wait_section((th or Thresholds()).msl_s),
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
        #: one byte per stream: 1 when the connection has a finding (kept or not)
        self.flagged = bytearray()
        self.slow: list[tuple[Any, ...]] = []       # (transfer ns, -stream, record): the longest transfers
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

    def flag(self, stream: int) -> bool:
        """Mark ``stream`` as a connection with findings; False if it already was."""
        fl = self.flagged
        if stream >= len(fl):
            fl.extend(bytes(stream + 1 - len(fl)))
        elif fl[stream]:
            return False
        fl[stream] = 1
        return True

    @property
    def with_findings(self) -> int:
        return self.flagged.count(1)

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

    def wanted_slow(self, key: tuple[int, int]) -> bool:
        """Would a connection with this (transfer ns, -stream) be among the slowest kept?"""
        keep = self.keep
        return keep is not None and keep > 0 and key[0] > 0 and (len(self.slow) < keep or key > self.slow[0][:2])

    def push_slow(self, rec: Any, key: tuple[int, int] | None = None) -> None:
        """Keep ``rec`` (a record, or a function that makes it) among the ``keep`` longest
        transfers (a top-N report only)."""
        if key is None:
            key = (int(transfer_s(rec) * 1e9), -rec["stream"])
        if self.keep is None or not self.wanted_slow(key):
            return
        item = (*key, rec)
        if len(self.slow) < self.keep:
            heapq.heappush(self.slow, item)
        else:
            heapq.heapreplace(self.slow, item)

    def slowest(self) -> list[dict[str, Any]]:
        """The kept longest transfers, longest first (a connection kept by ``ReportBuilder`` is
        summarised here, once: most of those pushed are pushed out again)."""
        return [x[2]() if callable(x[2]) else x[2] for x in sorted(self.slow, key=lambda x: x[:2], reverse=True)]

    def records(self) -> list[dict[str, Any]] | SpilledRecords:
        """The kept records in stream order: a list, or SpilledRecords when spilled."""
        if self.keep is None and not isinstance(self.all, list):
            return self.all.seal()
        recs: list[dict[str, Any]] = self.all if isinstance(self.all, list) and self.keep is None else \
            [x[2] for x in self.heap]
        recs.sort(key=lambda r: r["stream"])
        return recs


def transfer_s(rec: dict[str, Any]) -> float:
    """The longer of a connection record's two transfer times (first to last data byte), s."""
    return max(rec["orig"].get("transfer_s") or 0.0, rec["resp"].get("transfer_s") or 0.0)


def _rank(rec: dict[str, Any]) -> tuple[int, int, int]:
    return (rec.get("score", 0), rec.get("retransmissions", 0), rec["orig_bytes"] + rec["resp_bytes"])


def _score(labels: Iterable[tuple[str, str]]) -> int:
    return sum(_WEIGHT[sev] for _lab, sev in labels)


def _record(path: str, conn: engine.Conn, labels: list[tuple[str, str]], score: int) -> dict[str, Any]:
    """The report's record of a connection: its summary, the file, its findings' labels, the
    worst severity and the score.  (A module function: a record deferred as a ``partial`` of
    it refers to no ReportBuilder, so no reference cycle keeps the builder.)"""
    rec = summarize(conn)
    rec["file"] = path
    rec["findings"] = sorted({lab for lab, _sev in labels})
    rec["severity"] = max((sev for _l, sev in labels), key=SEVERITY_RANK.__getitem__, default=None)
    rec["score"] = score
    return rec


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
        #: with a selection: which connections count, their segments, their hosts (packed)
        self.selected: Callable[[Any], bool] | None = None
        self.selected_segments = 0
        self.selected_hosts: set[bytes] = set()
        if opts.select:
            self.selected = want = opts.select.conn_filter()
            examine = self.det.on_segment

            def on_segment(seg: Any, a: engine.Analyzer) -> None:
                if want(a.verdict.conn):
                    self.selected_segments += 1
                    examine(seg, a)

            self.on_segment = on_segment

    def _done(self, conn: engine.Conn) -> None:
        if self.selected is not None:
            if not self.selected(conn):
                return
            self.selected_hosts.update(conn.addr)
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
        if score:
            conns.flag(conn.stream)
        key = ((score, fo.stats.rtx + fr.stats.rtx, nbytes), -conn.stream)   # as _rank(summarize(conn))
        worst = conns.wanted(key)
        slow = None
        keep = conns.keep
        if keep:
            p = fo.perf
            t = p.last_ns - p.first_ns
            p = fr.perf
            if p.last_ns - p.first_ns > t:
                t = p.last_ns - p.first_ns
            if t > 0:
                heap = conns.slow
                if len(heap) < keep or t >= heap[0][0]:
                    slow = (t, -conn.stream)
                    if not conns.wanted_slow(slow):
                        slow = None
        if not worst:
            if slow is not None:
                conns.push_slow(partial(_record, self.path, conn, labels, score), slow)
            return
        rec = _record(self.path, conn, labels, score)
        conns.push(key, rec)
        if slow is not None:
            conns.push_slow(rec, slow)

    def release(self) -> None:
        """Let go of the engine after ``build``: the analyzer and the detectors refer to this
        builder (``on_conn_done``) and to each other, so without this they are freed by the
        cyclic collector, which walks every object of the run, instead of by reference counts."""
        a = self.analyzer
        a.on_conn_done = None
        self.det.analyzer = None
        self.analyzer = None            # type: ignore[assignment]

    def build(self, stats: RunStats, facts: CaptureFacts | None = None) -> Report:
        """Finish the engine and build the Report (``facts``: the capture's, when no engine
        ran here, as in the ``--jobs`` merge)."""
        det, path, conns = self.det, self.path, self.conns
        if facts is None:
            self.analyzer.finish()
            facts = CaptureFacts.of(self.analyzer, stats)
        keep = None
        if self.selected is not None:
            # the findings and TIME_WAIT rows about a host: those of the selected connections' hosts
            hosts = {addr_str(h) for h in self.selected_hosts}

            def keep(f: Any) -> bool:
                return f.host is None or f.host in hosts
        extra = det.finish(facts, keep)
        if keep is not None and extra.get("time_wait"):
            tw = extra["time_wait"]
            tw["hosts"] = [h for h in tw.get("hosts", []) if h.get("host") in hosts]
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
            if f.host is not None and f.stream is not None:
                conns.flag(f.stream)
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
            "packets": stats.frames if self.selected is None else self.selected_segments,
            "tcp_segments": stats.tcp if self.selected is None else self.selected_segments,
            "late_packets": facts.late_packets,
            "connections": conns.n,
            "connections_reported": len(records), "connections_with_findings": conns.with_findings,
            "bytes": conns.bytes,
            "start": None if first is None or last is None else round(first / 1e9, 9),
            "end": None if first is None or last is None else round(last / 1e9, 9),
            "duration": 0.0 if first is None or last is None else round((last - first) / 1e9, 9),
            "conn_states": dict(sorted(conns.states.items())),
            "findings": {"total": sum(v["total"] for v in by_kind.values()),
                         "reported": sum(v["reported"] for v in by_kind.values()),
                         "by_severity": by_sev, "by_kind": by_kind,
                         "by_subkind": {k: dict(v) for k, v in sorted(det.sink.by_subkind.items())}},
            "worst_severity": next((s for s in reversed(SEVERITIES) if by_sev[s]), None),
            "time_wait": extra["time_wait"],
            "capture_quality": extra["capture_quality"],
        })
        entry = stats.to_dict()
        entry["error"] = None
        entry["summary"] = summ
        return Report(files=[entry], summary=dict(summ), connections=records, findings=findings,
                      slowest=conns.slowest())


def analyze_file(path: str, options: AnalyzeOptions | None = None,
                 progress: Callable[[int, int | None], None] | None = None) -> Report:
    """Analyse one capture file; never raises for bad input (the Report carries the error).

    ``progress(done_bytes, total_bytes)`` is called now and then while reading (optional).
    """
    b = ReportBuilder(path, options)
    if path != "-" and os.path.isdir(path):
        return failed_report(path, no_captures_message(path), b.th)
    with gc_tuned(off=path != "-"):     # a file (stdin may be a live pipe): see pipeline.gc_tuned
        try:
            stats = analyze_source(path, b.analyzer, on_segment=b.on_segment, progress=progress,
                                   notable_only=b.selected is None)
        except SourceError as e:
            return failed_report(path, str(e), b.th)
        except OSError as e:
            return failed_report(path, f"{path}: {e.strerror or e}", b.th)
        report = b.build(stats)
        b.release()
        return report


def no_captures_message(path: str) -> str:
    """Why the directory ``path`` gives no capture to analyse (one line)."""
    try:
        n = sum(1 for e in os.scandir(path) if e.is_file())
    except OSError as e:
        return f"{path}: cannot list the directory: {e.strerror or e}"
    return (f"{path}: the directory contains no captures" if not n else
            f"{path}: the directory contains no captures (none of its {n} file(s) is a pcap or pcapng capture)")


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
    slowest: list[dict[str, Any]] = []
    if keep_connections is not None:
        conns = sorted(conns, key=lambda c: _rank(c), reverse=True)[:keep_connections]
        slowest = sorted((c for r in reports for c in r.slowest), key=lambda c: (transfer_s(c), -c["stream"]),
                         reverse=True)[:keep_connections]
    finds.sort(key=_finding_order)
    summ = _empty_summary()
    summ["files"] = 0
    summ["thresholds"] = reports[0].summary.get("thresholds", summ["thresholds"])
    summ["time_wait"] = time_wait_section(reports[0].summary.get("time_wait", {}).get("msl_s", engine.K_MSL_S))
    starts, ends = [], []
    for r in reports:
        s = r.summary
        for k in ("files", "files_failed", "packets", "tcp_segments", "late_packets", "connections", "connections_reported",
                  "connections_with_findings", "bytes"):
            summ[k] += s.get(k, 0)
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
        add_counts(tf["by_kind"], fd.get("by_kind", {}))
        add_counts(tf["by_subkind"], fd.get("by_subkind", {}))
        src = r.files[0]["source"] if r.files else None
        for h in s.get("time_wait", {}).get("hosts", []):
            summ["time_wait"]["hosts"].append({**h, "file": h.get("file", src)})
        for k, v in s.get("capture_quality", {}).items():
            cq = summ["capture_quality"]
            cq[k] = max(cq.get(k, 0), v) if k in _CQ_MAX else cq.get(k, 0) + v
    summ["connections_reported"] = len(conns)
    summ["conn_states"] = dict(sorted(summ["conn_states"].items()))
    summ["findings"]["by_kind"] = dict(sorted(summ["findings"]["by_kind"].items()))
    summ["findings"]["by_subkind"] = dict(sorted(summ["findings"]["by_subkind"].items()))
    summ["time_wait"]["hosts"].sort(key=lambda e: (-e["peak"], e["host"], e.get("file") or ""))
    if starts:
        # the capture span: first packet to last packet over all files (never the sum of
        # the files' durations, which counts overlaps twice and ignores the gaps)
        summ["start"] = min(starts)
        summ["end"] = max(ends)
        summ["duration"] = round(summ["end"] - summ["start"], 9)
    by_sev = summ["findings"]["by_severity"]
    summ["worst_severity"] = next((s for s in reversed(SEVERITIES) if by_sev[s]), None)
    return Report(files=files, summary=summ, connections=conns, findings=finds, slowest=slowest)
