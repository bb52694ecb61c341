"""What every detector shares: severities, thresholds, the registry of finding kinds and
detectors, ``Finding`` and ``FindingSink``, the aggregate tallies and the capture facts.

A detector module declares its kinds with ``declare_kind`` (name, subkinds, description,
default severity, and the function that renders a finding's message from its values) and
its functions with ``conn_detector`` (run when a connection is finalized) or
``aggregate_detector`` (run once at the end of the input).  The JSON schema's kind enum,
``policy.SUBKINDS`` / ``policy.finding_kinds()`` and the reporters read ``KINDS``.
"""
from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass, field

from tcpanalyze.engine import K_MSL_S, addr_port

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}

# ---------------------------------------------------------------------------- thresholds
#: retransmissions: warn above this fraction of a connection's data segments ...
K_RETRANS_RATE = 0.01
#: ... and only with at least this many retransmitted data segments (no warning for a
#: handful of segments on tiny connections).
K_RETRANS_MIN_SEGMENTS = 3
#: time_wait_buildup: warn when more than this many connections of one host are in TIME_WAIT at once.
K_TIME_WAIT_PEAK = 100
#: close_wait_stall: one side sent FIN and the other stayed idle without FIN this long (s).
K_CLOSE_WAIT_S = 5.0
#: zero_window: an episode at least this long (s) is a warning (shorter ones are info).
K_ZERO_WINDOW_S = 1.0
#: syn_flood: unanswered SYNs (S0 connections) to one host:port at or above this count.
K_SYN_FLOOD = 100
#: handshake RTT outlier: above this factor times the median handshake RTT ...
K_HS_RTT_FACTOR = 3.0
#: ... and above this absolute value (s) ...
K_HS_RTT_MIN_S = 0.1
#: ... with at least this many handshakes to compute the median from.
K_HS_RTT_MIN_SAMPLES = 5
#: out_of_order: out-of-order segments less than this apart (s) belong to one burst.
K_OOO_BURST_GAP_S = 1.0
#: handshake syn_retries: SYNs repeated faster than this (ms) are duplicates, not RTO back-off.
K_MIN_RTO_MS = 200.0
#: evidence frames kept per connection and kind of per-packet verdict.
K_EVIDENCE_FRAMES = 10
#: findings kept per kind (the totals are still counted).
K_MAX_FINDINGS_PER_KIND = 1000
#: example streams kept per aggregate tally.
K_TALLY_EXAMPLES = 10
#: points of the TIME_WAIT series (sparkline) per host.
K_TW_SERIES_POINTS = 48
#: host:port entries of TIME_WAIT reported per host.
K_TW_TOP_PORTS = 5
#: hosts listed in the report's time_wait section (by peak); every host over the threshold
#: is still a finding, and the total number of hosts is given
K_TW_REPORT_HOSTS = 100


class Threshold:
    """A threshold a detector module declares with ``declare_threshold``: its option name
    (``--slow-server-ms``), default (the module's named constant), type and help."""

    __slots__ = ("name", "default", "type", "help")

    def __init__(self, name: str, default, type_, help_: str):
        self.name = name
        self.default = default
        self.type = type_
        self.help = help_


#: thresholds declared by detector modules, by name (the analyze/check/live options and
#: ``Thresholds.extra`` read it): a detector with a threshold of its own touches no other file
THRESHOLDS: dict[str, Threshold] = {}


def declare_threshold(name: str, default, help: str):
    """Declare a detector's threshold: ``--NAME`` (underscores as dashes) on the commands that
    report findings, ``th.get(NAME)`` in the detector.  Returns the default."""
    THRESHOLDS[name] = Threshold(name, default, type(default), help)
    return default


@dataclass
class Thresholds:
    """Named defaults of every detector; the CLI overrides them (``tcpanalyze analyze --help``).
    ``extra`` holds the values given for thresholds declared with ``declare_threshold``."""

    retrans_rate: float = K_RETRANS_RATE
    retrans_min_segments: int = K_RETRANS_MIN_SEGMENTS
    time_wait_peak: int = K_TIME_WAIT_PEAK
    msl_s: float = K_MSL_S
    close_wait_s: float = K_CLOSE_WAIT_S
    zero_window_s: float = K_ZERO_WINDOW_S
    syn_flood: int = K_SYN_FLOOD
    hs_rtt_factor: float = K_HS_RTT_FACTOR
    hs_rtt_min_s: float = K_HS_RTT_MIN_S
    hs_rtt_min_samples: int = K_HS_RTT_MIN_SAMPLES
    ooo_burst_gap_s: float = K_OOO_BURST_GAP_S
    evidence_frames: int = K_EVIDENCE_FRAMES
    max_findings_per_kind: int = K_MAX_FINDINGS_PER_KIND
    extra: dict = field(default_factory=dict)

    def get(self, name: str):
        """A declared threshold's value: the one given, else its default."""
        v = self.extra.get(name)
        return THRESHOLDS[name].default if v is None else v

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["extra"]
        for name in THRESHOLDS:
            d[name] = self.get(name)
        return d


# ---------------------------------------------------------------------------- the registry
class Kind:
    """One finding kind: its name, subkinds, what it means, its severity when it has one
    severity, and ``render(finding) -> str``, the message of a finding of this kind.
    ``notes`` are subkinds that report something next to the event the kind names (old ACKs
    next to a shrinking window): ``forbid = ["kind"]`` does not match them, only
    ``forbid = ["kind/subkind"]`` does."""

    __slots__ = ("name", "subkinds", "description", "severity", "render", "notes")

    def __init__(self, name: str, render, subkinds: tuple = (), description: str = "", severity=None,
                 notes: tuple = ()):
        self.name = name
        self.render = render
        self.subkinds = tuple(subkinds)
        self.description = description
        self.severity = severity
        self.notes = tuple(notes)

    def __repr__(self) -> str:
        return f"Kind({self.name})"


#: every finding kind, by name
KINDS: dict[str, Kind] = {}
#: per-connection detectors, ``(order, function(conn, th, acc, end_ns, out))``, in run order
CONN_DETECTORS: list = []
#: capture-wide detectors, ``(order, function(facts, th, acc, out, extra))``, in run order
AGGREGATE_DETECTORS: list = []
#: per-segment detectors, ``(order, function(seg, verdict, conn, events, th), on)``, in run order
SEGMENT_DETECTORS: list = []

#: what a segment detector asks to see (``segment_detector(order, on=...)``): any of the TCP
#: flag bits (``model.FIN``, ``SYN``, ``RST`` ...) and these
SEG_DATA = 1 << 16          # the segment carries payload
SEG_ODD = 1 << 17           # SYN, FIN or RST, or no ACK: not an ordinary ACK
SEG_ANALYSIS = 1 << 18      # an analysis flag
SEG_ANY = (1 << 19) - 1     # every segment the detectors examine (SEG_ODD or SEG_ANALYSIS)


def declare_kind(name: str, render, *, subkinds: tuple = (), description: str = "", severity=None,
                 notes: tuple = ()) -> Kind:
    """Register a finding kind (once per name); ``notes`` must be among ``subkinds``."""
    if name in KINDS:
        raise ValueError(f"finding kind {name!r} declared twice")
    if not set(notes) <= set(subkinds):
        raise ValueError(f"finding kind {name!r}: notes {notes!r} are not subkinds")
    k = KINDS[name] = Kind(name, render, subkinds, description, severity, notes)
    return k


def _registrar(detectors: list, order: int, *extra):
    """A decorator that adds ``(order, function, *extra)`` to ``detectors``, kept sorted by ``order``."""
    def register(fn):
        detectors.append((order, fn, *extra))
        detectors.sort(key=lambda x: x[0])
        return fn
    return register


def conn_detector(order: int):
    """Register ``function(conn, th, acc, end_ns, out)``: run on every finalized connection,
    lowest ``order`` first; it appends its findings to ``out`` and may add to ``acc``."""
    return _registrar(CONN_DETECTORS, order)


def aggregate_detector(order: int):
    """Register ``function(facts, th, acc, out, extra)``: run once at the end of the input,
    lowest ``order`` first; it appends findings to ``out`` and summary sections to ``extra``."""
    return _registrar(AGGREGATE_DETECTORS, order)


def segment_detector(order: int, on: int = SEG_ANY):
    """Register ``function(seg, verdict, conn, events, th)``: run on every segment that is not
    an ordinary ACK (``Detectors.on_segment``: an analysis flag, or SYN/FIN/RST) and has any
    of the properties in ``on`` (TCP flag bits, ``SEG_DATA``, ``SEG_ODD``, ``SEG_ANALYSIS``;
    the driver tests them, so a segment the function would ignore costs no call), after the
    engine processed it, lowest ``order`` first; it records what it needs in ``events``
    (``conn.events``) for a per-connection detector to read when the connection ends."""
    return _registrar(SEGMENT_DETECTORS, order, on)


def finding_kinds() -> tuple[str, ...]:
    """The registered finding kinds, sorted by name."""
    return tuple(sorted(KINDS))


def subkinds() -> dict[str, tuple[str, ...]]:
    """Kind -> its subkinds, for the kinds that have them (sorted by kind)."""
    return {n: KINDS[n].subkinds for n in sorted(KINDS) if KINDS[n].subkinds}


# ---------------------------------------------------------------------------- findings
def _s(ns) -> float | None:
    return None if ns is None else round(ns / 1e9, 9)


class Finding:
    """One finding.  ``stream`` for a connection, ``host`` (and ``port``) for an aggregate.

    ``values`` are the numbers the rule rests on (the JSON ``data``); ``terms`` what else the
    message names (endpoint labels, frame numbers, thresholds, exact durations in ns).  The
    message is rendered from them by the kind's renderer (``KINDS[kind].render``), so a
    stream renumbered in ``values`` is renumbered in the message too.
    """

    __slots__ = ("kind", "subkind", "severity", "stream", "host", "port", "frames", "ts_ns", "values", "terms",
                 "cause")

    def __init__(self, kind: str, severity: str, *, subkind: str | None = None, stream: int | None = None,
                 host: str | None = None, port: int | None = None, frames=(), ts_ns: int | None = None,
                 values: dict | None = None, terms: dict | None = None, cause: str | None = None):
        self.kind = kind
        self.subkind = subkind
        self.severity = severity
        self.stream = stream
        self.host = host
        self.port = port
        self.frames = [f for f in frames if f]
        self.ts_ns = ts_ns
        self.values = values or {}
        self.terms = terms or {}
        self.cause = cause

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.subkind}" if self.subkind else self.kind

    @property
    def message(self) -> str:
        return KINDS[self.kind].render(self)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "subkind": self.subkind, "severity": self.severity, "stream": self.stream,
                "host": self.host, "port": self.port, "frames": list(self.frames), "time": _s(self.ts_ns),
                "message": self.message, "data": self.values, "cause": self.cause}

    def __repr__(self) -> str:
        where = f"stream {self.stream}" if self.stream is not None else f"host {self.host}"
        return f"Finding({self.label}, {self.severity}, {where}: {self.message})"


class FindingSink:
    """Keeps at most ``cap`` findings per (kind, scope) and counts all of them."""

    def __init__(self, cap: int = K_MAX_FINDINGS_PER_KIND):
        self.cap = cap
        self.kept: list[Finding] = []
        self._n: dict[tuple[str, str], int] = {}
        #: kind -> {"total", "reported", "info", "warning", "error"}
        self.by_kind: dict[str, dict] = {}
        #: "kind/subkind" -> {"total", "info", "warning", "error"} (findings with a subkind)
        self.by_subkind: dict[str, dict] = {}

    def add(self, f: Finding, scope: str = "conn") -> bool:
        k = self.by_kind.get(f.kind)
        if k is None:
            k = self.by_kind[f.kind] = {"total": 0, "reported": 0, "info": 0, "warning": 0, "error": 0}
        k["total"] += 1
        k[f.severity] += 1
        if f.subkind is not None:
            label = f.kind + "/" + f.subkind
            sk = self.by_subkind.get(label)
            if sk is None:
                sk = self.by_subkind[label] = {"total": 0, "info": 0, "warning": 0, "error": 0}
            sk["total"] += 1
            sk[f.severity] += 1
        key = (f.kind, scope)
        n = self._n.get(key, 0)
        if n >= self.cap:
            return False
        self._n[key] = n + 1
        k["reported"] += 1
        self.kept.append(f)
        return True


def add_counts(into: dict, counts: dict) -> None:
    """Add the count dicts of ``counts`` (label -> {"total", ...}) into ``into``."""
    for label, c in counts.items():
        t = into.get(label)
        if t is None:
            into[label] = dict(c)
        else:
            for k, v in c.items():
                t[k] = t.get(k, 0) + v


def worst_severity(findings) -> str | None:
    best = -1
    for f in findings:
        sev = f.severity if isinstance(f, Finding) else f["severity"]
        r = SEVERITY_RANK[sev]
        if r > best:
            best = r
    return SEVERITIES[best] if best >= 0 else None


def severity_at_least(sev: str, floor: str) -> bool:
    return SEVERITY_RANK[sev] >= SEVERITY_RANK[floor]


# ---------------------------------------------------------------------------- helpers
def label(conn, ep: int) -> str:
    """``addr:port`` of endpoint ``ep`` (``[addr]:port`` for IPv6)."""
    return addr_port(conn, ep)


def role(conn, ep: int) -> str:
    return "orig" if ep == conn.orig else "resp"


def state_name(state) -> str:
    return getattr(state, "name", str(state))


def ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def evidence(conn, name: str):
    """The per-segment evidence ``name`` recorded for ``conn`` (``Detectors.on_segment``), or None."""
    ev = conn.events
    return ev.get(name) if ev else None


def tally_example(lst: list, stream: int, cap: int = K_TALLY_EXAMPLES) -> None:
    if len(lst) < cap:
        lst.append(stream)


# ---------------------------------------------------------------------------- per-segment evidence
class Evidence:
    """Segments of one connection with one per-packet verdict: how many, the first frames, when first."""

    __slots__ = ("count", "frames", "first_ns")

    def __init__(self, frame: int, ts_ns: int):
        self.count = 1
        self.frames = [frame]
        self.first_ns = ts_ns


def add_evidence(events: dict, name: str, frame: int, ts_ns: int, keep: int) -> None:
    """Count one more segment of evidence ``name``; keep its frame if fewer than ``keep`` are kept."""
    e = events.get(name)
    if e is None:
        events[name] = Evidence(frame, ts_ns)
    else:
        e.count += 1
        if len(e.frames) < keep:
            e.frames.append(frame)


class OutOfOrderEvidence(Evidence):
    """Out-of-order segments, grouped into bursts (segments less than the burst gap apart)."""

    __slots__ = ("bursts", "burst", "largest_burst", "last_ns")

    def __init__(self, frame: int, ts_ns: int):
        Evidence.__init__(self, frame, ts_ns)
        self.bursts = 1
        self.burst = 1                  # segments in the current burst
        self.largest_burst = 1
        self.last_ns = ts_ns


class RstEvidence:
    """What a connection's RST discarded, measured as it passed (after its own ACK was applied)."""

    __slots__ = ("peer_unacked", "frame", "own_unacked", "peer_nextseq")

    def __init__(self, peer_unacked: int, frame: int, own_unacked: int, peer_nextseq: int):
        self.peer_unacked = peer_unacked        # bytes the peer had sent that were unacknowledged
        self.frame = frame
        self.own_unacked = own_unacked          # bytes the RST's sender had sent unacknowledged
        self.peer_nextseq = peer_nextseq        # the peer's next sequence number at the RST


# ---------------------------------------------------------------------------- aggregate tallies
@dataclass
class Examples:
    """Connections counted for one capture-quality note, an amount (segments, or the largest
    segment), and the first few streams."""

    connections: int = 0
    amount: int = 0
    streams: list = field(default_factory=list)


@dataclass
class SynTally:
    """Unanswered SYNs to one server host:port."""

    unanswered: int
    first_ns: int
    last_ns: int
    streams: list = field(default_factory=list)
    sources: set = field(default_factory=set)


@dataclass
class RstTally:
    """Reset connections with one server host:port, by class (``rst`` subkinds)."""

    first_ns: int
    counts: dict = field(default_factory=lambda: {"refused": 0, "aborted": 0, "reset_after_close": 0,
                                                  "unknown_connection": 0})
    streams: list = field(default_factory=list)


@dataclass
class CloseTally:
    """Connections whose listening side (host:port) sent the first FIN; ``time_wait``: how many
    of them the listening side was seen entering TIME_WAIT, ``reset``: how many were reset."""

    connections: int = 0
    streams: list = field(default_factory=list)
    fin_frames: list = field(default_factory=list)
    time_wait: int = 0
    reset: int = 0


@dataclass
class RttTally:
    """Handshake RTTs (ns) to one server host, and their streams."""

    irtts: array = field(default_factory=lambda: array("q"))
    streams: array = field(default_factory=lambda: array("q"))


class Tallies:
    """What the per-connection detectors add up across connections for the aggregate ones."""

    def __init__(self):
        self.connections = 0
        self.s0: dict[tuple[str, int], SynTally] = {}        # (resp host, port)
        self.rst_ports: dict[tuple[str, int], RstTally] = {}  # (resp host, port)
        self.server_close: dict[tuple[str, int], CloseTally] = {}
        self.hs_rtt: dict[str, RttTally] = {}                # resp host
        self.no_handshake = Examples()
        self.scale_unknown = Examples()
        self.one_sided = Examples()
        self.truncated = Examples()                          # amount: truncated segments
        self.super_segments = Examples()                     # amount: largest segment
        self.unexpected = Examples()                         # amount: unexpected transitions


# ---------------------------------------------------------------------------- capture facts
@dataclass
class CaptureFacts:
    """What the aggregate detectors need besides the tallies: the capture's time bounds, the
    engine's capture-wide counters, its TIME_WAIT table (``engine.TwTable``: ``starts``,
    ``port_starts``, ``folded_hosts``, ``folded_periods``) and the reader's decode errors,
    damage, IP fragment and TCP checksum counters."""

    first_ns: int | None
    last_ns: int | None
    ts_backwards: int = 0
    evicted: int = 0
    #: segments analysed against a tombstone (engine.Analyzer.late_packets)
    late_packets: int = 0
    expired: int = 0
    time_wait: object = None
    decode_errors: dict = field(default_factory=dict)
    damage: object = None
    #: the reader's IP fragment and TCP checksum counters (RunStats.fragments / .checksums)
    fragments: dict = field(default_factory=dict)
    checksums: dict = field(default_factory=dict)

    @classmethod
    def of(cls, analyzer, stats=None) -> "CaptureFacts":
        """The facts of a finished ``engine.Analyzer`` and the ``pipeline.RunStats`` of its input."""
        return cls(first_ns=analyzer.first_ns, last_ns=analyzer.last_ns, ts_backwards=analyzer.ts_backwards,
                   evicted=analyzer.evicted, expired=analyzer.expired, time_wait=analyzer.tw,
                   late_packets=analyzer.late_packets,
                   decode_errors=dict(stats.errors) if stats is not None else {},
                   damage=stats.damage if stats is not None else None,
                   fragments=dict(stats.fragments) if stats is not None else {},
                   checksums=dict(stats.checksums) if stats is not None else {})


__all__ = [
    "SEVERITIES", "SEVERITY_RANK", "K_RETRANS_RATE", "K_RETRANS_MIN_SEGMENTS", "K_TIME_WAIT_PEAK", "K_CLOSE_WAIT_S",
    "K_ZERO_WINDOW_S", "K_SYN_FLOOD", "K_HS_RTT_FACTOR", "K_HS_RTT_MIN_S", "K_HS_RTT_MIN_SAMPLES",
    "K_OOO_BURST_GAP_S", "K_MIN_RTO_MS", "K_EVIDENCE_FRAMES", "K_MAX_FINDINGS_PER_KIND", "K_TALLY_EXAMPLES",
    "K_TW_SERIES_POINTS", "K_TW_TOP_PORTS", "K_TW_REPORT_HOSTS", "Thresholds", "Kind", "KINDS", "declare_kind",
    "conn_detector", "aggregate_detector", "segment_detector", "finding_kinds", "subkinds", "Finding", "FindingSink", "add_counts", "worst_severity",
    "severity_at_least", "Tallies", "Examples", "SynTally", "RstTally", "CloseTally", "RttTally", "CaptureFacts",
    "Evidence", "OutOfOrderEvidence", "RstEvidence", "add_evidence",
]
