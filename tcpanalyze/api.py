"""The Python API: ``analyze``, ``packets`` and ``connections`` (re-exported by ``tcpanalyze``).

The records are frozen, slotted dataclasses whose ``to_dict()`` gives exactly the dicts the
command line writes: ``Connection`` a ``flows --format jsonl`` line (or an element of
``analyze --json``'s ``connections``), ``Finding`` an element of ``analyze --json``'s
``findings``, and ``Report.to_dict()`` the whole ``analyze --json`` document.

``packets`` and ``connections`` stream: they read the capture a block of frames at a time
through the same pipeline and engine as the commands, and yield records as they are made.
An unreadable capture raises ``tcpanalyze.errors.SourceError``.  See docs/api.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from itertools import islice
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence, TypeVar, Union

from tcpanalyze._version import __version__
from tcpanalyze.analysis import REUSED_PORTS, analysis_names
from tcpanalyze.engine import TIME_WAIT_PRESETS, Analyzer, Config, Conn, reused_ports_reason
from tcpanalyze.errors import SourceError
from tcpanalyze.model import Segment, addr_str, flag_str
from tcpanalyze.parallel import expand_inputs, iter_reports
from tcpanalyze.pipeline import RunStats, check_decodable, finish_stats, gc_tuned, run_packets
from tcpanalyze.schema import SCHEMA_VERSION
from tcpanalyze.findings.base import THRESHOLDS
from tcpanalyze.session import AnalyzeOptions, address_matcher, engine_kwargs, merge_reports, thresholds_from
from tcpanalyze.sources.pcap import open_capture
from tcpanalyze.summary import summarize

__all__ = ["Connection", "EndpointSummary", "Finding", "Packet", "PacketStream", "ConnectionStream", "Report",
           "RtoWait", "RttSummary", "ThinkTimes", "TimeBreakdown", "TimeWait", "Unexpected", "ZeekRecord", "analyze",
           "connections", "packets"]

PathLike = Union[str, "os.PathLike[str]"]

#: raw frames read from the capture between two batches of yielded records
K_BLOCK_FRAMES = 4096

_R = TypeVar("_R", bound="_Record")


class _Record:
    """``to_dict``/``from_dict`` for the records below: fields in order, nested records as
    dicts, tuples as lists; the fields named in ``_OPTIONAL`` are left out when None (their
    keys are absent from the command-line records, not null)."""

    __slots__ = ()
    _OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    _NESTED: ClassVar[dict[str, type[_Record]]] = {}

    def to_dict(self) -> dict[str, Any]:
        return self._dict(frozenset())

    def _dict(self, drop: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        optional = self._OPTIONAL
        for name in _names(type(self)):
            if name in drop:
                continue
            v = getattr(self, name)
            if v is None and name in optional:
                continue
            out[name] = _plain(v)
        return out

    @classmethod
    def from_dict(cls: type[_R], d: dict[str, Any]) -> _R:
        nested = cls._NESTED
        kw: dict[str, Any] = {}
        for name in _names(cls):
            v = d.get(name)
            sub = nested.get(name)
            if v is None:
                pass
            elif sub is not None:
                v = tuple(sub.from_dict(x) for x in v) if isinstance(v, list) else sub.from_dict(v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[name] = v
        return cls(**kw)


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _plain(v: Any) -> Any:
    if isinstance(v, _Record):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


# ---------------------------------------------------------------------------- connection records
@dataclass(frozen=True, slots=True)
class RttSummary(_Record):
    """ACK round-trip times of one direction, seconds."""

    samples: int
    min: float
    avg: float
    max: float


@dataclass(frozen=True, slots=True)
class TimeBreakdown(_Record):
    """Shares (adding up to 1) of a direction's transfer time in each state (docs/diagnosis.md)."""

    receiver_window: float
    zero_window: float
    loss_recovery: float
    application: float
    congestion: float


@dataclass(frozen=True, slots=True)
class RtoWait(_Record):
    """One retransmission time-out: the silence's start (epoch s), its length, the frame of
    the retransmission that ended it, and the back-off over the wait before (None: the first)."""

    frame: int
    start: float
    wait_s: float
    backoff: float | None


@dataclass(frozen=True, slots=True)
class ThinkTimes(_Record):
    """Waits between one side's last data byte and the other side's answer, in ms."""

    exchanges: int
    min_ms: float
    avg_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class EndpointSummary(_Record):
    """What one endpoint sent (``Connection.orig`` / ``Connection.resp``), and what limited
    its data transfer (docs/diagnosis.md)."""

    _NESTED: ClassVar[dict[str, type[_Record]]] = {"rtt": RttSummary, "time": TimeBreakdown, "rto_waits": RtoWait}

    packets: int
    bytes: int
    data_packets: int
    retransmissions: int
    retransmitted_bytes: int
    fast_retransmissions: int
    spurious_retransmissions: int
    out_of_order: int
    lost_segments: int
    acked_unseen: int
    duplicate_acks: int
    zero_windows: int
    zero_window_probes: int
    keep_alives: int
    window_full: int
    window_updates: int
    syn: int
    fin: int
    rst: int
    window_scale: int | None
    window_scale_known: bool
    mss: int | None
    max_segment: int
    window_shrinks: int
    window_shrink_bytes: int
    rtt: RttSummary | None
    data_bytes: int
    transfer_s: float | None
    throughput_bps: float | None
    goodput_bps: float | None
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    time: TimeBreakdown | None
    rto_waits: tuple[RtoWait, ...]
    limited_by: str | None
    limited_by_reason: str | None


@dataclass(frozen=True, slots=True)
class Unexpected(_Record):
    """A segment the state machine had no transition for."""

    frame: int
    endpoint: str
    anomaly: str


@dataclass(frozen=True, slots=True)
class ZeekRecord(_Record):
    """One of the Zeek conn.log records a stream would give (when Zeek would log several)."""

    start: float
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    conn_state: str
    history: str


@dataclass(frozen=True, slots=True)
class TimeWait(_Record):
    """Which endpoint entered TIME_WAIT, when, on which frame."""

    endpoint: str
    start: float
    frame: int


@dataclass(frozen=True, slots=True)
class Connection(_Record):
    """One connection: a ``flows --format jsonl`` record.  In a ``Report`` it also has the
    report's ``file``, ``findings`` (labels), ``severity`` and ``score``; elsewhere those are None."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"zeek", "time_wait"})
    _NESTED: ClassVar[dict[str, type[_Record]]] = {"orig": EndpointSummary, "resp": EndpointSummary,
                                                   "unexpected": Unexpected, "zeek": ZeekRecord,
                                                   "time_wait": TimeWait, "server_think": ThinkTimes,
                                                   "client_think": ThinkTimes}

    stream: int
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    orig_state: str
    resp_state: str
    conn_state: str
    history: str
    orig_pkts: int
    resp_pkts: int
    orig_bytes: int
    resp_bytes: int
    start: float
    end: float
    duration: float
    first_frame: int
    last_frame: int
    close_initiator: str | None
    end_reason: str | None
    reset_by: str | None
    handshake_seen: bool
    states_inferred: bool
    handshake_rtt: float | None
    syn_retries: int
    retransmissions: int
    orig: EndpointSummary
    resp: EndpointSummary
    unexpected: tuple[Unexpected, ...]
    zeek: tuple[ZeekRecord, ...] | None = None
    time_wait: TimeWait | None = None
    server_think: ThinkTimes | None = None
    client_think: ThinkTimes | None = None
    file: str | None = None
    findings: tuple[str, ...] | None = None
    severity: str | None = None
    score: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return self._dict(frozenset() if self.findings is not None else _REPORT_KEYS)


#: the keys a connection record has in a report only
_REPORT_KEYS = frozenset({"file", "findings", "severity", "score"})


@dataclass(frozen=True, slots=True)
class Finding(_Record):
    """One finding of ``analyze`` (the JSON ``findings`` element): what rule fired, where, why."""

    kind: str
    subkind: str | None
    severity: str
    stream: int | None
    host: str | None
    port: int | None
    frames: tuple[int, ...]
    time: float | None
    message: str
    data: dict[str, Any]
    cause: str | None
    file: str | None = None

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"file"})

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.subkind}" if self.subkind else self.kind


@dataclass(frozen=True, slots=True)
class Report:
    """What ``analyze`` found: ``files`` (one entry per input), the total ``summary``, typed
    ``connections`` and ``findings``.  ``to_dict()`` is the ``analyze --json`` document."""

    files: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    connections: tuple[Connection, ...]
    findings: tuple[Finding, ...]
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "tool": {"name": "tcpanalyze", "version": __version__},
                "files": list(self.files), "summary": self.summary,
                "connections": [c.to_dict() for c in self.connections],
                "findings": [f.to_dict() for f in self.findings]}

    @property
    def worst_severity(self) -> str | None:
        """The worst severity among the findings (None without findings)."""
        ws: str | None = self.summary.get("worst_severity")
        return ws


# ---------------------------------------------------------------------------- options
def _engine(fast_rtx_ms: float | None, ooo_ms: float | None, msl: float | None, max_unacked: int | None,
            max_connections: int | None, idle_timeout: float | None, checksums: str | None = None) -> dict[str, Any]:
    given = {"fast_rtx_ms": fast_rtx_ms, "ooo_ms": ooo_ms, "msl": msl, "max_unacked": max_unacked,
             "max_connections": max_connections, "idle_timeout": idle_timeout, "checksums": checksums}
    return engine_kwargs({k: v for k, v in given.items() if v is not None})


def _paths(paths: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def analyze(paths: PathLike | Sequence[PathLike], *, jobs: int = 1, keep_connections: int | None = None,
            fast_rtx_ms: float | None = None, ooo_ms: float | None = None, msl: float | None = None,
            max_unacked: int | None = None, max_connections: int | None = None, idle_timeout: float | None = None,
            checksums: str | None = None, retrans_rate: float | None = None, retrans_min: int | None = None,
            time_wait_peak: int | None = None, close_wait: float | None = None, zero_window: float | None = None,
            syn_flood: int | None = None, hs_rtt_factor: float | None = None, hs_rtt_min_ms: float | None = None,
            max_findings_per_kind: int | None = None, time_wait: str | float | None = None,
            thresholds: Mapping[str, float] | None = None) -> Report:
    """Analyse capture files as ``tcpanalyze analyze --json`` does and return the Report.

    ``paths``: a path or a list of them (directories and glob patterns are expanded as on the
    command line).  The keyword arguments are the command's options (same names, same units:
    ``msl`` in seconds, ``retrans_rate`` in percent, ...); None keeps the default.
    ``time_wait``: how long TIME_WAIT lasts, ``"linux"``, ``"windows"``, ``"bsd"``, ``"rfc"``
    (``engine.TIME_WAIT_PRESETS``) or seconds (instead of ``msl``: TIME_WAIT = 2*MSL).
    ``keep_connections=N`` keeps only the N worst connection records (all by default).
    ``thresholds``: the thresholds the detectors declare, by the name of their option
    (``{"slow_server_ms": 100, "stall_min_s": 2}``; ``findings.base.THRESHOLDS`` lists them).
    Raises ``SourceError`` when a file cannot be read.
    """
    th_given: dict[str, Any] = {"retrans_rate": retrans_rate, "retrans_min": retrans_min,
                                "time_wait_peak": time_wait_peak, "close_wait": close_wait,
                                "zero_window": zero_window, "syn_flood": syn_flood, "hs_rtt_factor": hs_rtt_factor,
                                "hs_rtt_min_ms": hs_rtt_min_ms, "max_findings_per_kind": max_findings_per_kind}
    for name, value in (thresholds or {}).items():
        if name not in THRESHOLDS:
            raise ValueError(f"thresholds: no threshold {name!r} (one of {', '.join(sorted(THRESHOLDS))})")
        th_given[name] = value
    if time_wait is not None:
        if msl is not None:
            raise ValueError("give time_wait or msl, not both (TIME_WAIT lasts 2*MSL)")
        seconds = TIME_WAIT_PRESETS.get(time_wait) if isinstance(time_wait, str) else float(time_wait)
        if seconds is None or not seconds >= 0:
            raise ValueError(f"time_wait {time_wait!r}: one of {', '.join(TIME_WAIT_PRESETS)} or seconds >= 0")
        msl = seconds / 2
    if msl is not None:
        th_given["msl"] = msl
    eng = _engine(fast_rtx_ms, ooo_ms, msl, max_unacked, max_connections, idle_timeout, checksums)
    options = AnalyzeOptions(engine=eng,
                             thresholds=thresholds_from({k: v for k, v in th_given.items() if v is not None}),
                             keep_connections=keep_connections)
    files = expand_inputs(_paths(paths))
    reports = []
    for rep in iter_reports(files, options, jobs):
        for f in rep.files:
            if f.get("error"):
                raise _named(f["source"], f["error"])
        reports.append(rep)
    total = merge_reports(reports, keep_connections=keep_connections)
    return Report(files=tuple(total.files), summary=total.summary,
                  connections=tuple(Connection.from_dict(c) for c in total.connections),
                  findings=tuple(Finding.from_dict(f) for f in total.findings),
                  schema_version=total.schema_version)


def _named(path: str, message: str) -> SourceError:
    """A SourceError whose message names the file (standard input for '-')."""
    name = "standard input" if path == "-" else path
    return SourceError(message if name in message else f"{name}: {message}")


# ---------------------------------------------------------------------------- streaming
class _Stream:
    """Drives the pipeline over a capture a block of frames at a time; ``stats`` (RunStats:
    frames, decode errors, damage, warnings) is complete once the iteration ended."""

    def __init__(self, path: PathLike, analyzer: Analyzer, on_segment: Callable[[Segment, Analyzer], None] | None,
                 out: list[Any]):
        self.path = os.fspath(path)
        self.stats = RunStats(self.path)
        self._analyzer = analyzer
        self._on_segment = on_segment
        self._out = out
        try:
            self._reader = open_capture(self.path)   # SourceError now, not at the first next()
        except SourceError as e:
            raise _named(self.path, str(e)) from None
        except OSError as e:
            raise _named(self.path, e.strerror or str(e)) from None

    def _blocks(self) -> Iterator[list[Any]]:
        reader, stats, out = self._reader, self.stats, self._out
        try:
            stats.format = reader.format
            frames = iter(reader)
            finite = self.path != "-"
            # run_packets turns the cyclic collector off for a block of a file and back on
            # after it; between blocks (the caller's code included, while the iteration is
            # suspended) and at the end it runs with a raised generation-0 threshold: with the
            # default one, its collections cost a third more than the analysis (connections()
            # of the 1M-packet bench capture: 4.0 s against 3.1 s)
            with gc_tuned():
                while True:
                    block = list(islice(frames, K_BLOCK_FRAMES))
                    if not block:
                        break
                    run_packets(block, self._analyzer, stats, self._on_segment, finite=finite)
                    if out:
                        yield out
                        out.clear()
                self._at_end()
            if out:
                yield out
                out.clear()
        finally:
            finish_stats(stats, reader)
        check_decodable(stats)

    def close(self) -> None:
        """Close the capture (iterating to the end closes it too)."""
        self._reader.close()

    def _at_end(self) -> None:
        """After the last frame (before the stats are final)."""


class PacketStream(_Stream):
    """Iterator of ``Packet`` records (``tcpanalyze.packets``)."""

    def __init__(self, path: PathLike, cfg: Config, absolute: bool,
                 wanted: Callable[[Segment, Conn], bool] | None):
        out: list[Packet] = []
        self._absolute = absolute
        self._explain = cfg.explain
        self._wanted = wanted
        # finished connections are not kept: memory stays O(live connections)
        super().__init__(path, Analyzer(cfg, keep_timeline=False, on_conn_done=_forget, diagnose=False),
                         self._row, out)
        self._append = out.append

    def _row(self, seg: Segment, a: Analyzer) -> None:
        conn = a.verdict.conn
        if self._wanted is not None and conn is not None and not self._wanted(seg, conn):
            return
        self._append(_packet(seg, a, self._absolute, self._explain))

    def __iter__(self) -> Iterator[Packet]:
        for block in self._blocks():
            yield from block


def _forget(conn: Conn) -> None:
    """on_conn_done for the packet stream: nothing is kept of a finished connection."""


class _Connections(_Stream):
    """The connection summaries of a capture, in stream order or in the order connections
    end (``order="end"``); ``_record`` turns a summary (the ``flows --format jsonl`` dict) into
    what is yielded."""

    def __init__(self, path: PathLike, cfg: Config, order: str):
        if order not in ("stream", "end"):
            raise ValueError(f"order must be 'stream' or 'end', not {order!r}")
        out: list[Any] = []
        self._by_stream = order == "stream"
        self._waiting: dict[int, Any] = {}
        self._next = 0
        self._emit = out.append
        super().__init__(path, Analyzer(cfg, keep_timeline=False, on_conn_done=self._done, detail=False), None, out)

    def _record(self, summary: dict[str, Any]) -> Any:
        return summary

    def _done(self, conn: Conn) -> None:
        rec = self._record(summarize(conn))
        if not self._by_stream:
            self._emit(rec)
            return
        # stream order: a connection waits for every earlier stream to end
        waiting = self._waiting
        waiting[conn.stream] = rec
        while self._next in waiting:
            self._emit(waiting.pop(self._next))
            self._next += 1

    def _at_end(self) -> None:
        self._analyzer.finish()


class ConnectionStream(_Connections):
    """Iterator of ``Connection`` records (``tcpanalyze.connections``)."""

    def _record(self, summary: dict[str, Any]) -> Connection:
        return Connection.from_dict(summary)

    def __iter__(self) -> Iterator[Connection]:
        for block in self._blocks():
            yield from block


class ConnectionDicts(_Connections):
    """Iterator of the connection summaries as dicts, exactly ``Connection.to_dict()`` of the
    records ``ConnectionStream`` yields (tested), without building the records: what
    ``flows --format json|jsonl`` writes."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for block in self._blocks():
            yield from block


@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP segment as ``tcpanalyze packets`` prints it.  ``time`` is seconds since the
    epoch (``ts_ns`` the exact nanoseconds); ``seq``/``ack`` relative unless ``absolute=True``;
    ``win`` the calculated (scaled) window; ``analysis`` Wireshark's ``tcp.analysis`` flag
    names; ``reasons`` (with ``explain=True``) why each flag was set."""

    frame: int
    time: float
    stream: int
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    len: int
    flags: str
    win: int
    analysis: tuple[str, ...]
    ack_rtt: float | None
    bytes_in_flight: int | None
    dup_ack_num: int | None
    reasons: dict[str, str] | None
    ts_ns: int


def _packet(seg: Segment, a: Analyzer, absolute: bool, explain: bool) -> Packet:
    """The engine's verdict on the segment it was just fed, as a Packet."""
    v = a.verdict
    conn = v.conn
    assert conn is not None
    af = v.analysis
    if absolute:
        seq, ack = seg.seq, (seg.ack if seg.flags & 0x10 else 0)
    else:
        seq, ack = v.rel_seq, v.rel_ack
    rtt, bif = v.ack_rtt, v.bytes_in_flight
    reasons = None
    if explain:
        reasons = dict(v.reasons or {})
        if af & REUSED_PORTS:
            reasons["reused_ports"] = reused_ports_reason(seg.flags)
    return Packet(seg.frame, seg.ts_ns / 1e9, conn.stream, addr_str(seg.src), seg.sport, addr_str(seg.dst),
                  seg.dport, seq, ack, seg.paylen, flag_str(seg.flags), v.win,
                  tuple(analysis_names(af)) if af else (), None if rtt < 0 else rtt / 1e9,
                  None if bif < 0 else bif, v.dupack_num or None, reasons, seg.ts_ns)


def packets(path: PathLike, *, absolute: bool = False, explain: bool = False, stream: int | None = None,
            host: str | None = None, port: int | None = None, fast_rtx_ms: float | None = None,
            ooo_ms: float | None = None, msl: float | None = None, max_unacked: int | None = None,
            max_connections: int | None = None, idle_timeout: float | None = None,
            checksums: str | None = None) -> PacketStream:
    """The TCP segments of a capture with the engine's per-packet analysis, as they are read
    (``tcpanalyze packets``).  ``stream``, ``host`` and ``port`` filter as the command's
    options do.  Raises ``SourceError`` if the file cannot be read."""
    wanted = segment_filter(stream, host, port)         # ValueError for a bad address or network
    cfg = Config(explain=explain, **_engine(fast_rtx_ms, ooo_ms, msl, max_unacked, max_connections, idle_timeout, checksums))
    return PacketStream(path, cfg, absolute, wanted)


def segment_filter(stream: int | None, host: Any,
                   port: int | None) -> Callable[[Segment, Conn], bool] | None:
    """``wanted(seg, conn)`` for the ``packets`` filters, or None when there is none: the
    stream, an address or network (text such as ``10.200.0.0/24``, an ``ipaddress`` object or a
    packed address; either end) and a port (either end)."""
    if stream is None and host is None and port is None:
        return None
    inside = address_matcher(host) if host is not None else None

    def wanted(seg: Segment, conn: Conn) -> bool:
        if stream is not None and conn.stream != stream:
            return False
        if inside is not None and not (inside(seg.src) or inside(seg.dst)):
            return False
        return port is None or seg.sport == port or seg.dport == port

    return wanted


def connections(path: PathLike, *, order: str = "stream", fast_rtx_ms: float | None = None,
                ooo_ms: float | None = None, msl: float | None = None, max_unacked: int | None = None,
                max_connections: int | None = None, idle_timeout: float | None = None,
                checksums: str | None = None) -> ConnectionStream:
    """The connections of a capture as ``flows --format jsonl`` gives them, each yielded once
    it has ended.  ``order="stream"`` (the default) yields them in stream order, as ``flows``
    does: a connection that ended waits for the earlier streams still open.  ``order="end"``
    yields each as soon as it ends (memory O(live connections)).
    Raises ``SourceError`` if the file cannot be read."""
    cfg = Config(**_engine(fast_rtx_ms, ooo_ms, msl, max_unacked, max_connections, idle_timeout, checksums))
    return ConnectionStream(path, cfg, order)


def connection_dicts(path: PathLike, *, order: str = "stream", **options: Any) -> ConnectionDicts:
    """``connections`` with each record as the dict ``Connection.to_dict()`` gives (the
    ``flows --format jsonl`` line), for a caller that only writes them out.  Options as for
    ``connections``."""
    cfg = Config(**_engine(*(options.pop(k, None) for k in _ENGINE_OPTIONS)))
    if options:
        raise TypeError(f"connection_dicts: unknown option(s) {', '.join(sorted(options))}")
    return ConnectionDicts(path, cfg, order)


_ENGINE_OPTIONS = ("fast_rtx_ms", "ooo_ms", "msl", "max_unacked", "max_connections", "idle_timeout", "checksums")
