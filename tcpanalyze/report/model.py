"""The Report: what ``tcpanalyze analyze`` found in one or more captures, as plain data.

``analyze_file(path, options)`` is a pure function of its input (no printing, no click, no
rich): it runs the pipeline, the engine and the detectors over one capture and returns a
``Report`` made of dicts, lists and numbers only, so it pickles (``--jobs`` can run it in
worker processes, or a Dask/Ray task can) and ``merge_reports`` can add reports up.

A file that cannot be read gives a Report whose ``files[0]["error"]`` says why; the other
files of a run are still reported (the command exits 3).

The JSON document (``Report.to_dict()``) is described by ``JSON_SCHEMA`` below and in the
README ("JSON contract"); ``SCHEMA_VERSION`` changes when a key changes meaning or goes away
(adding keys does not change it).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

from tcpanalyze.engine import K_MSL_S
from tcpanalyze.findings import SEVERITIES, SEVERITY_RANK, CaptureFacts, Detectors, Thresholds, finding_kinds

SCHEMA_VERSION = 1

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

    engine: dict = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    keep_connections: int | None = None
    #: keep every connection record on disk until written (report.records), not in memory;
    #: the Report then only serves its own process (analyze --json/--jsonl without --jobs)
    spill_records: bool = False


@dataclass
class Report:
    """Plain data: ``files`` (one entry per input, with its own ``summary``), the total ``summary``,
    ``connections`` (summary records) and ``findings`` (finding dicts), both tagged with ``file``."""

    files: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    connections: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        from tcpanalyze import __version__

        return {"schema_version": self.schema_version, "tool": {"name": "tcpanalyze", "version": __version__},
                "files": self.files, "summary": self.summary, "connections": self.connections,
                "findings": self.findings}

    @property
    def failed(self) -> list[dict]:
        """Entries of ``files`` that could not be read (or whose data is corrupt past a point)."""
        return [f for f in self.files if f.get("error") or (f.get("damage") or {}).get("fatal")]

    @property
    def worst_severity(self) -> str | None:
        by = self.summary.get("findings", {}).get("by_severity", {})
        for sev in reversed(SEVERITIES):
            if by.get(sev):
                return sev
        return None


# ---------------------------------------------------------------------------- analysis of one file
def _empty_summary(th: Thresholds | None = None) -> dict:
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
    from tcpanalyze.pipeline import RunStats

    summ = _empty_summary(th)
    summ["files_failed"] = 1
    entry = RunStats(path).to_dict()
    entry["error"] = message
    entry["summary"] = summ
    return Report(files=[entry], summary=dict(summ))


class _Connections:
    """Connection records as they are finalized: all of them, or the ``keep`` worst (a heap)."""

    def __init__(self, path: str, keep: int | None, spill: bool | str = False):
        from tcpanalyze.report.records import SpilledRecords, _SpillFile

        self.path = path
        self.keep = keep
        # spill: True to this process's spill file, "named" to a file of its own that
        # another process adopts (a --jobs worker's)
        self.all = [] if not spill or keep is not None else \
            SpilledRecords(_SpillFile(named=True) if spill == "named" else None)
        self.heap: list[tuple] = []
        self.n = 0
        self.bytes = 0
        self.states: dict[str, int] = {}

    def add(self, rec: dict) -> None:
        self.count(rec["orig_bytes"] + rec["resp_bytes"], rec["conn_state"])
        self.push((_rank(rec), -rec["stream"]), rec)

    def count(self, nbytes: int, conn_state: str) -> None:
        """Totals over every connection, kept or not."""
        self.n += 1
        self.bytes += nbytes
        self.states[conn_state] = self.states.get(conn_state, 0) + 1

    def wanted(self, key: tuple) -> bool:
        """Would a record with this (rank, -stream) key be kept?  (Lets the caller skip
        building the records of the many connections a top-N report drops.)"""
        keep = self.keep
        if keep is None:
            return True
        return keep > 0 and (len(self.heap) < keep or key > self.heap[0][:2])

    def push(self, key: tuple, rec: dict) -> None:
        """Keep ``rec`` (all of them, or in the top-N heap by ``key``)."""
        if self.keep is None:
            self.all.append(rec)
        elif self.keep > 0:
            item = (*key, rec)
            if len(self.heap) < self.keep:
                heapq.heappush(self.heap, item)
            elif key > self.heap[0][:2]:
                heapq.heapreplace(self.heap, item)

    def records(self):
        """The kept records in stream order: a list, or SpilledRecords when spilled."""
        if self.keep is None and not isinstance(self.all, list):
            return self.all.seal()
        recs = self.all if self.keep is None else [x[2] for x in self.heap]
        recs.sort(key=lambda r: r["stream"])
        return recs


def _rank(rec: dict) -> tuple:
    return (rec.get("score", 0), rec.get("retransmissions", 0), rec["orig_bytes"] + rec["resp_bytes"])


def _score(labels: list) -> int:
    return sum(_WEIGHT[sev] for _lab, sev in labels)


class ReportBuilder:
    """The engine, detectors and connection records of one capture, and the Report built from
    them.  ``analyze_file`` feeds it from a file, ``live`` from an interface: both end with the
    same document.  Feed ``analyzer`` (with ``on_segment`` as the per-segment callback), then
    call ``build(stats)``."""

    def __init__(self, path: str, options: AnalyzeOptions | None = None, worker: bool = False):
        from tcpanalyze.engine import Analyzer, Config

        opts = options or AnalyzeOptions()
        cfg = Config(**opts.engine)
        self.path = path
        self.th = replace(opts.thresholds, msl_s=cfg.msl_ns / 1e9)
        self.det = Detectors(self.th)
        self.conns = _Connections(path, opts.keep_connections,
                                  opts.spill_records and ("named" if worker else True))
        self.analyzer = Analyzer(cfg, keep_timeline=False, on_conn_done=self._done)
        self.det.analyzer = self.analyzer
        self.on_segment = self.det.on_segment

    def _done(self, conn) -> None:
        from tcpanalyze.summary import summarize

        fs = self.det.on_conn_done(conn)
        labels = [(f.label, f.severity) for f in fs]
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

    def build(self, stats, facts: CaptureFacts | None = None) -> Report:
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
            "start": None if first is None else round(first / 1e9, 9),
            "end": None if first is None else round(last / 1e9, 9),
            "duration": 0.0 if first is None else round((last - first) / 1e9, 9),
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


def analyze_file(path: str, options: AnalyzeOptions | None = None, progress=None) -> Report:
    """Analyse one capture file; never raises for bad input (the Report carries the error).

    ``progress(done_bytes, total_bytes)`` is called now and then while reading (optional).
    """
    from tcpanalyze.errors import SourceError
    from tcpanalyze.pipeline import analyze_source, gc_tuned

    b = ReportBuilder(path, options)
    with gc_tuned(off=path != "-"):     # a file (stdin may be a live pipe): see pipeline.gc_tuned
        try:
            stats = analyze_source(path, b.analyzer, on_segment=b.on_segment, progress=progress)
        except SourceError as e:
            return failed_report(path, str(e), b.th)
        except OSError as e:
            return failed_report(path, f"{path}: {e.strerror or e}", b.th)
        return b.build(stats)


def _finding_order(d: dict) -> tuple:
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
    files, conns, finds = [], [], []
    for r in reports:
        files.extend(r.files)
        finds.extend(r.findings)
    if keep_connections is None and not all(isinstance(r.connections, list) for r in reports):
        from tcpanalyze.report.records import RecordChain

        conns = RecordChain([r.connections for r in reports])    # spilled: stay on disk
    else:
        for r in reports:
            conns.extend(r.connections)
    if keep_connections is not None:
        conns = sorted(conns, key=lambda c: _rank(c), reverse=True)[:keep_connections]
    finds.sort(key=_finding_order)
    summ = _empty_summary()
    summ["files"] = 0
    summ["thresholds"] = reports[0].summary.get("thresholds", summ["thresholds"])
    summ["time_wait"]["msl_s"] = reports[0].summary.get("time_wait", {}).get("msl_s", K_MSL_S)
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


# ---------------------------------------------------------------------------- JSON schema
_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_OPT_NUM = {"type": ["number", "null"]}
_OPT_STR = {"type": ["string", "null"]}
_OPT_INT = {"type": ["integer", "null"]}
_COUNTS = {"type": "object", "additionalProperties": _INT}
_SEV = {"enum": list(SEVERITIES)}

JSON_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tcpanalyze analyze --json",
    "type": "object",
    "required": ["schema_version", "tool", "files", "summary", "connections", "findings"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "tool": {"type": "object", "required": ["name", "version"],
                 "properties": {"name": {"enum": ["tcpanalyze"]}, "version": _STR}},
        "files": {"type": "array", "items": {"$ref": "#/$defs/file"}},
        "summary": {"$ref": "#/$defs/summary"},
        "connections": {"type": "array", "items": {"$ref": "#/$defs/connection"}},
        "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
    },
    "$defs": {
        "file": {
            "type": "object",
            "required": ["source", "format", "linktypes", "frames", "tcp_segments", "skipped", "decode_errors",
                         "damage", "warnings", "error", "summary"],
            "properties": {
                "source": _STR, "format": _STR, "linktypes": {"type": "array", "items": {"type": "integer"}},
                "frames": _INT, "tcp_segments": _INT, "skipped": _COUNTS, "decode_errors": _COUNTS,
                "decode_error_examples": {"type": "object"}, "unsupported_linktypes": _COUNTS,
                "damage": {"type": ["object", "null"]},
                "warnings": {"type": "array", "items": _STR},
                "error": _OPT_STR,
                "summary": {"$ref": "#/$defs/summary"},
            },
        },
        "summary": {
            "type": "object",
            "required": ["files", "files_failed", "packets", "tcp_segments", "connections", "connections_reported",
                         "bytes", "start", "end", "duration", "conn_states", "findings", "worst_severity",
                         "time_wait", "capture_quality", "thresholds"],
            "additionalProperties": False,
            "properties": {
                "files": _INT, "files_failed": _INT, "packets": _INT, "tcp_segments": _INT, "connections": _INT,
                "connections_reported": _INT, "bytes": _INT, "start": _OPT_NUM, "end": _OPT_NUM,
                "duration": _NUM, "conn_states": _COUNTS,
                "findings": {
                    "type": "object", "required": ["total", "reported", "by_severity", "by_kind"],
                    "additionalProperties": False,
                    "properties": {
                        "total": _INT, "reported": _INT,
                        "by_severity": {"type": "object", "required": list(SEVERITIES),
                                        "additionalProperties": False,
                                        "properties": {s: _INT for s in SEVERITIES}},
                        "by_kind": {"type": "object", "additionalProperties": {
                            "type": "object", "required": ["total", "reported", "info", "warning", "error"],
                            "additionalProperties": False,
                            "properties": {k: _INT for k in ("total", "reported", "info", "warning", "error")}}},
                    },
                },
                "worst_severity": {"enum": list(SEVERITIES) + [None]},
                "time_wait": {
                    "type": "object", "required": ["msl_s", "hosts"],
                    "properties": {
                        "msl_s": _NUM,
                        "hosts": {"type": "array", "items": {
                            "type": "object",
                            "required": ["host", "peak", "peak_time", "at_end", "total", "series", "ports"],
                            "properties": {
                                "host": _STR, "peak": _INT, "peak_time": _OPT_NUM, "at_end": _INT, "total": _INT,
                                "series": {"type": "array", "items": _INT}, "file": _STR,
                                "ports": {"type": "array", "items": {
                                    "type": "object", "required": ["port", "peak", "at_end", "total"],
                                    "properties": {"port": _INT, "peak": _INT, "at_end": _INT, "total": _INT}}},
                            }}},
                    },
                },
                "capture_quality": {"type": "object", "additionalProperties": _INT},
                "thresholds": {"type": "object", "additionalProperties": _NUM},
            },
        },
        "connection": {
            "type": "object",
            "required": ["stream", "orig_h", "orig_p", "resp_h", "resp_p", "orig_state", "resp_state", "conn_state",
                         "history", "start", "end", "duration", "file", "findings", "severity", "score"],
            "properties": {
                "stream": _INT, "orig_h": _STR, "orig_p": _INT, "resp_h": _STR, "resp_p": _INT,
                "orig_state": _STR, "resp_state": _STR, "conn_state": _STR, "history": _STR,
                "orig_pkts": _INT, "resp_pkts": _INT, "orig_bytes": _INT, "resp_bytes": _INT,
                "start": _NUM, "end": _NUM, "duration": _NUM, "file": _STR,
                "findings": {"type": "array", "items": _STR}, "severity": {"enum": list(SEVERITIES) + [None]},
                "score": _INT, "orig": {"type": "object"}, "resp": {"type": "object"},
            },
        },
        "finding": {
            "type": "object",
            "required": ["kind", "subkind", "severity", "stream", "host", "port", "frames", "time", "message", "data",
                         "cause", "file"],
            "additionalProperties": False,
            "properties": {
                "kind": {"enum": list(finding_kinds())},
                "subkind": _OPT_STR, "severity": _SEV, "stream": _OPT_INT, "host": _OPT_STR, "port": _OPT_INT,
                "frames": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "time": _OPT_NUM, "message": _STR, "data": {"type": "object"},
                "cause": {"enum": ["capture", "network", None]}, "file": _STR,
            },
        },
    },
}

#: JSON Lines records (``--jsonl``): one per line, each with a ``type``.
JSONL_TYPES = ("connection", "finding", "file", "summary")


# ---------------------------------------------------------------------------- a small validator
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(instance, schema: dict | None = None) -> list[str]:
    """Errors of ``instance`` against ``schema`` (default ``JSON_SCHEMA``): the subset of JSON Schema
    used above (type, enum, required, properties, additionalProperties, items, minimum, $ref)."""
    root = JSON_SCHEMA if schema is None else schema
    errors: list[str] = []
    _check(instance, root, root, "$", errors)
    return errors


def _is_type(x, t: str) -> bool:
    if t == "integer":
        return isinstance(x, int) and not isinstance(x, bool)
    if t == "number":
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    return isinstance(x, _TYPES[t])


def _check(x, sch: dict, root: dict, path: str, errors: list) -> None:
    if len(errors) > 50:
        return
    ref = sch.get("$ref")
    if ref is not None:
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        _check(x, node, root, path, errors)
        return
    if "enum" in sch and x not in sch["enum"]:
        errors.append(f"{path}: {x!r} not one of {sch['enum']}")
        return
    t = sch.get("type")
    if t is not None:
        ts = t if isinstance(t, list) else [t]
        if not any(_is_type(x, tt) for tt in ts):
            errors.append(f"{path}: {type(x).__name__} is not {t}")
            return
    if "minimum" in sch and isinstance(x, (int, float)) and not isinstance(x, bool) and x < sch["minimum"]:
        errors.append(f"{path}: {x} < minimum {sch['minimum']}")
    if isinstance(x, dict):
        props = sch.get("properties", {})
        for k in sch.get("required", ()):
            if k not in x:
                errors.append(f"{path}: missing required key {k!r}")
        addl = sch.get("additionalProperties", True)
        for k, v in x.items():
            if k in props:
                _check(v, props[k], root, f"{path}.{k}", errors)
            elif addl is False:
                errors.append(f"{path}: unexpected key {k!r}")
            elif isinstance(addl, dict):
                _check(v, addl, root, f"{path}.{k}", errors)
    elif isinstance(x, list) and "items" in sch:
        for i, v in enumerate(x):
            _check(v, sch["items"], root, f"{path}[{i}]", errors)
