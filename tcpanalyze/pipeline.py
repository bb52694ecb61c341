"""Glue: a capture source feeds the decoder and the engine, one packet at a time.

This is the loop every command runs.  It counts what it could not decode (per kind, with
the first frame of each kind) instead of stopping, and turns a source that yields nothing
decodable into a clear error.  No printing here: callers get ``RunStats`` and decide.
"""
from __future__ import annotations

import gc
from array import array
from contextlib import contextmanager
from typing import Callable, Iterable

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.decode import (CSUM_BAD, CSUM_GOOD, CSUM_OFFLOAD, LINKTYPE_NAMES, DecodeState, decode, decode_at,
                               decode_frame, decode_general)
from tcpanalyze.engine import Analyzer, Verdict
from tcpanalyze.errors import DecodeError, SourceError
from tcpanalyze.model import Segment
from tcpanalyze.reassembly import Reassembler
from tcpanalyze.sources.pcap import open_capture

#: Decode-error examples kept per kind (frame, byte offset, detail).
K_MAX_ERROR_EXAMPLES = 5

#: Records per batch of the compiled loop over a pcap file (run_batches): 5 int64 each.
K_BATCH = 4096

#: Progress is reported every this many frames.
K_PROGRESS_EVERY = 65536

#: Generation-0 threshold of the cyclic garbage collector while a live capture runs.  The
#: default (700 allocations) makes CPython scan the young objects, and every tenth time the
#: growing table of connections, about every 700 new connections: 14% of `analyze` on a
#: 2.4 M-packet capture.  Connection state makes no reference cycles, so collect rarely; a
#: capture file (finite) runs with the collector off (see gc_tuned).
K_GC_GEN0 = 50_000


class RunStats:
    """What happened while reading one source."""

    __slots__ = ("source", "frames", "tcp", "skipped", "errors", "error_examples", "damage", "warnings",
                 "format", "linktypes", "bytes_read", "unsupported", "fragments", "checksums")

    def __init__(self, source: str):
        self.source = source
        self.frames = 0
        self.tcp = 0
        #: skip reasons -> frames; while frames are read, also the decoder's DecodeState
        self.skipped: dict[str, int] = DecodeState()
        #: IP fragment reassembly counters (Reassembler.counts) once a fragment was seen, else {}
        self.fragments: dict[str, int] = {}
        #: TCP checksum counters when checksums were verified (--checksums verify/drop), else {}
        self.checksums: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.error_examples: dict[str, list[tuple[int, int, str]]] = {}
        self.damage = None
        self.warnings: list[str] = []
        self.format = ""
        self.linktypes: list[int] = []
        self.bytes_read = 0
        self.unsupported: dict[int, int] = {}

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "format": self.format,
            "linktypes": sorted(self.linktypes),
            "frames": self.frames,
            "tcp_segments": self.tcp,
            "skipped": dict(sorted(self.skipped.items())),
            "decode_errors": dict(sorted(self.errors.items())),
            "decode_error_examples": {k: [{"frame": f, "offset": o, "detail": t} for f, o, t in v]
                                      for k, v in sorted(self.error_examples.items())},
            "unsupported_linktypes": {str(k): v for k, v in sorted(self.unsupported.items())},
            **({"ip_fragments": dict(self.fragments)} if self.fragments else {}),
            **({"tcp_checksums": dict(self.checksums)} if self.checksums else {}),
            "damage": None if self.damage is None else {
                "message": str(self.damage), "offset": self.damage.offset, "frame": self.damage.frame,
                "fatal": self.damage.fatal},
            "warnings": list(self.warnings),
        }


def linktype_label(lt: int) -> str:
    name = LINKTYPE_NAMES.get(lt)
    return f"link type {lt} ({name})" if name else f"link type {lt}"


def run_packets(packets: Iterable[tuple], analyzer: Analyzer, stats: RunStats,
                on_segment: Callable | None = None, keep: Callable | None = None, finite: bool = False,
                share: tuple[int, int] | None = None, notable_only: bool = False) -> None:
    """Decode and analyse an iterable of (frame, ts_ns, linktype, data, wirelen) tuples.

    ``on_segment(seg, analyzer)`` is called after each analysed segment (the ``packets``
    command uses it); ``keep(seg)`` may filter segments before analysis.  ``share=(part, n)``
    analyses only the connections that ``owner`` gives to ``part`` of ``n`` and only moves
    the analyzer's clock for the others (a ``--jobs`` worker, parallel.py).  ``finite``: the
    packets come from a file (the collector may stay off, see gc_tuned).  ``notable_only``:
    call ``on_segment`` only for a segment with an analysis flag, SYN, FIN or RST, or without
    ACK -- the ones the detectors examine (``Detectors.on_segment``); the test is made here, so
    an ordinary ACK costs no call.
    """
    part, nparts, mode = _prepare(analyzer, stats, share)
    st = stats.skipped
    with gc_tuned(off=finite):
        _run(packets, analyzer, stats, on_segment, keep, part, nparts, notable_only, mode == "drop")
    if st.frags.counts["fragments"]:
        stats.fragments = st.frags.counts


def run_batches(batches: Iterable[tuple], out: array, analyzer: Analyzer, stats: RunStats,
                on_segment: Callable | None = None, keep: Callable | None = None, finite: bool = False,
                share: tuple[int, int] | None = None, notable_only: bool = False) -> None:
    """:func:`run_packets` over a reader's batches (``CaptureReader.batches(out)``: each
    ``(window, linktype, count)`` with ``count`` records ``(frame, ts_ns, offset, caplen,
    wirelen)`` in ``out``), each frame decoded where it lies in the window.  The same
    segments, counts and results as ``run_packets`` over the reader's frames; checksums are
    not verified here (``--checksums verify/drop`` takes ``run_packets``)."""
    part, nparts, mode = _prepare(analyzer, stats, share)
    st = stats.skipped
    if st.verify:
        raise ValueError("run_batches does not verify checksums: use run_packets")
    with gc_tuned(off=finite):
        _run_batches(batches, out, analyzer, stats, on_segment, keep, part, nparts, notable_only)
    if st.frags.counts["fragments"]:
        stats.fragments = st.frags.counts


def _prepare(analyzer: Analyzer, stats: RunStats, share: tuple[int, int] | None) -> tuple[int, int, str]:
    """Make ``stats`` ready for a run (the decoder's state with a fragment reassembler, the
    checksum counters when verifying); returns ``(part, nparts, checksum mode)``."""
    part, nparts = share if share is not None else (0, 1)
    if not 0 <= part < nparts:
        raise ValueError(f"share {share!r}: part must be in [0, n)")
    st = stats.skipped
    if type(st) is not DecodeState:
        st = DecodeState()
        st.update(stats.skipped)
        stats.skipped = st
    if st.frags is None:
        st.frags = Reassembler()
    mode = getattr(analyzer.cfg, "checksums", "ignore")
    st.verify = mode != "ignore"
    if st.verify and not stats.checksums:
        stats.checksums = {"verified": 0, "good": 0, "bad": 0, "offload": 0, "unverified": 0, "dropped": 0}
    return part, nparts, mode


def finish_fragments(stats: RunStats) -> None:
    """The end of a source: datagrams still waiting for fragments are counted as incomplete."""
    st = stats.skipped
    if type(st) is DecodeState and st.frags is not None:
        counts = st.frags.finish()
        if counts["fragments"]:
            stats.fragments = counts


#: 2**32 / golden ratio (Knuth's multiplicative hashing), for owner()
_GOLDEN = 0x9E3779B1


@cython.cfunc
@cython.inline
@cython.locals(seg=Segment, nparts=cython.longlong, h=cython.longlong, g=cython.longlong)
@cython.returns(cython.longlong)
def _owner_of(seg, nparts):
    g = _GOLDEN                 # a C-typed local: C arithmetic when compiled (no overflow: h < 2**18)
    h = seg.sport + seg.dport + seg.src[-1] + seg.dst[-1]
    return ((h * g) >> 16) % nparts


def owner(seg: Segment, nparts: int) -> int:
    """Which of ``nparts`` workers analyses a segment's connection: a hash of the unordered
    4-tuple (the sum of both ports and of each address's last byte, spread by Fibonacci
    hashing), the same in every process, so both directions and every reuse of a 4-tuple go
    to the same worker, and cheap enough to compute for every segment of the file."""
    return _owner_of(seg, nparts)


@contextmanager
def gc_tuned(off: bool = False):
    """Run a block with the cyclic garbage collector off, or with its generation-0 threshold
    raised to K_GC_GEN0.

    Off is for runs over a file: what the per-packet path allocates is freed by reference
    counting (a run leaves a handful of cycles at its end, whatever the number of packets:
    tests/test_bounds.py), and even rare collections still took 12% of the engine loop's
    samples (perf) on the 2.4 M-packet bench capture (each one walks young connection state).  Live captures,
    which have no end, keep a (high) threshold."""
    saved = gc.get_threshold()
    was_on = gc.isenabled()
    if off:
        gc.disable()
    elif saved[0] < K_GC_GEN0:
        gc.set_threshold(K_GC_GEN0, max(saved[1], 20), saved[2])
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        if was_on:
            gc.enable()


@cython.locals(analyzer=Analyzer, seg=Segment, v=Verdict, part=cython.longlong, nparts=cython.longlong,
               notable_only=cython.bint, drop=cython.bint, verify=cython.bint, cdec=cython.bint)
def _run(packets, analyzer, stats, on_segment, keep, part, nparts, notable_only, drop) -> None:
    counts = stats.skipped
    verify = counts.verify
    if not cython.compiled and not verify and nparts == 1 and keep is None:
        _run_plain(packets, analyzer, stats, on_segment, notable_only)
        return
    feed = analyzer.feed
    dec = decode_general if verify else decode   # checksums are computed off the fast path only
    cdec = cython.compiled and not verify        # compiled: decode() as a C call (decode_frame)
    frames = 0
    tcp = 0
    for pkt in packets:
        frames += 1
        frame, ts, lt, data, _wirelen = pkt
        try:
            if cdec:
                seg = decode_frame(frame, ts, lt, data, counts, _wirelen)
            else:
                seg = dec(frame, ts, lt, data, counts, _wirelen)
        except DecodeError as e:
            decode_error(stats, e, frame, lt)
            continue
        if seg is None:
            continue
        if verify and count_checksum(stats.checksums, counts.csum) and drop:
            analyzer.checksum_error(seg)        # Zeek drops it and marks the history
            stats.checksums["dropped"] += 1
            continue
        analyzer.cur_frame = seg.frame
        if nparts > 1 and _owner_of(seg, nparts) != part:
            analyzer.advance(seg.ts_ns)         # another worker's connection: only the clock moves
            continue
        if keep is not None and not keep(seg):
            continue
        tcp += 1
        v = feed(seg)
        if on_segment is not None and (not notable_only or v.analysis or seg.flags & 0x17 != 0x10):
            on_segment(seg, analyzer)
    stats.frames += frames
    stats.tcp += tcp


def _run_plain(packets, analyzer, stats, on_segment, notable_only) -> None:
    """_run as plain Python for the usual run (no checksums, one part, no ``keep``): the
    same segments and counts, without the tests for what the run does not do."""
    counts = stats.skipped
    feed = analyzer.feed
    frames = 0
    tcp = 0
    for frame, ts, lt, data, wirelen in packets:
        frames += 1
        try:
            seg = decode(frame, ts, lt, data, counts, wirelen)
        except DecodeError as e:
            decode_error(stats, e, frame, lt)
            continue
        if seg is None:
            continue
        analyzer.cur_frame = seg.frame
        tcp += 1
        v = feed(seg)
        if on_segment is not None and (not notable_only or v.analysis or seg.flags & 0x17 != 0x10):
            on_segment(seg, analyzer)
    stats.frames += frames
    stats.tcp += tcp


@cython.locals(analyzer=Analyzer, seg=Segment, v=Verdict, part=cython.longlong, nparts=cython.longlong,
               notable_only=cython.bint, rec=cython.longlong[::1], k=cython.Py_ssize_t, i=cython.Py_ssize_t,
               o=cython.Py_ssize_t, lt=cython.longlong, frame=cython.longlong, frames=cython.longlong,
               tcp=cython.longlong, window=bytes)
def _run_batches(batches, out, analyzer, stats, on_segment, keep, part, nparts, notable_only) -> None:
    counts = stats.skipped
    feed = analyzer.feed
    rec = out
    frames = 0
    tcp = 0
    for batch in batches:
        data, lt, k = batch
        window = data if type(data) is bytes else bytes(data)
        frames += k
        for i in range(k):
            o = 5 * i
            frame = rec[o]
            try:
                seg = decode_at(frame, rec[o + 1], lt, window, rec[o + 2], rec[o + 3], counts, rec[o + 4])
            except DecodeError as e:
                decode_error(stats, e, frame, lt)
                continue
            if seg is None:
                continue
            analyzer.cur_frame = seg.frame
            if nparts > 1 and _owner_of(seg, nparts) != part:
                analyzer.advance(seg.ts_ns)         # another worker's connection: only the clock moves
                continue
            if keep is not None and not keep(seg):
                continue
            tcp += 1
            v = feed(seg)
            if on_segment is not None and (not notable_only or v.analysis or seg.flags & 0x17 != 0x10):
                on_segment(seg, analyzer)
    stats.frames += frames
    stats.tcp += tcp


def decode_error(stats: RunStats, e: DecodeError, frame: int, lt: int) -> None:
    """Count a frame that did not decode, keeping the first examples of each kind."""
    kind = e.kind
    if kind == "unsupported_linktype":
        stats.unsupported[lt] = stats.unsupported.get(lt, 0) + 1
    stats.errors[kind] = stats.errors.get(kind, 0) + 1
    ex = stats.error_examples.setdefault(kind, [])
    if len(ex) < K_MAX_ERROR_EXAMPLES:
        ex.append((frame, e.offset, e.detail))


def count_checksum(cs: dict, state: int) -> bool:
    """Count one segment's checksum outcome; True when it is bad."""
    if state == CSUM_GOOD:
        cs["verified"] += 1
        cs["good"] += 1
    elif state == CSUM_BAD:
        cs["verified"] += 1
        cs["bad"] += 1
        return True
    elif state == CSUM_OFFLOAD:
        cs["verified"] += 1
        cs["offload"] += 1
    else:
        cs["unverified"] += 1
    return False


def analyze_source(path: str, analyzer: Analyzer, on_segment: Callable | None = None,
                   progress: Callable[[int, int | None], None] | None = None,
                   keep: Callable | None = None, share: tuple[int, int] | None = None,
                   notable_only: bool = False) -> RunStats:
    """Read one capture file (or ``-``) through ``analyzer``; raises SourceError if unreadable."""
    stats = RunStats(path)
    reader = open_capture(path)
    try:
        stats.format = reader.format
        batches = None
        if cython.compiled and getattr(analyzer.cfg, "checksums", "ignore") == "ignore":
            # compiled: a pcap file's frames are decoded in the read window (no copy of each)
            out = array("q", bytes(40 * K_BATCH))
            batches = reader.batches(out)
        if batches is not None:
            if progress is not None:
                batches = _batches_with_progress(batches, reader, progress)
            run_batches(batches, out, analyzer, stats, on_segment, keep, finite=path != "-", share=share,
                        notable_only=notable_only)
        else:
            it = iter(reader)
            if progress is not None:
                it = _with_progress(it, reader, progress)
            run_packets(it, analyzer, stats, on_segment, keep, finite=path != "-", share=share,  # stdin may be live
                        notable_only=notable_only)
    finally:
        finish_stats(stats, reader)
    check_decodable(stats)
    return stats


def finish_stats(stats: RunStats, reader) -> None:
    """Copy what the reader learnt (damage, warnings, link types, bytes read) into ``stats``,
    count the fragments left waiting, and close the reader."""
    finish_fragments(stats)
    stats.damage = reader.damage
    stats.warnings = list(reader.warnings)
    stats.linktypes = sorted(reader.linktypes)
    stats.bytes_read = reader.bytes_read
    reader.close()


def check_decodable(stats: RunStats) -> None:
    """A capture whose every frame has an unsupported link type is unreadable: say which."""
    if stats.unsupported and stats.tcp == 0 and sum(stats.unsupported.values()) == stats.frames:
        lts = ", ".join(linktype_label(lt) for lt in sorted(stats.unsupported))
        raise SourceError(f"{stats.source}: unsupported {lts}: no frame could be decoded")


def _with_progress(it, reader, progress, every: int = K_PROGRESS_EVERY):
    n = 0
    for pkt in it:
        n += 1
        if n % every == 0:
            progress(reader.bytes_read, reader.size)
        yield pkt
    progress(reader.bytes_read, reader.size)


def _batches_with_progress(batches, reader, progress, every: int = K_PROGRESS_EVERY):
    """_with_progress for batches: a report after each batch that reaches another multiple of
    ``every`` frames (the position is then that of the batch's end)."""
    n = 0
    for batch in batches:
        m = n + batch[2]
        if m // every != n // every:
            progress(reader.bytes_read, reader.size)
        n = m
        yield batch
    progress(reader.bytes_read, reader.size)


# As plain Python, the usual packet loop runs with decode() (and the Segment constructor it
# uses) written into it (tcpanalyze/_fuse.py): no call per frame to decode it.  Compiled,
# the loops call the C decoder and this does not run.
if not cython.compiled:
    # the names decode() reads, which the fuser needs here to write it out
    from tcpanalyze.decode import _FAST54, _FAST66, _FAST74, _FAST86, _decode_general_safe  # noqa: F401
    from tcpanalyze.model import new_segment  # noqa: F401
    from tcpanalyze import _fuse
    _FUSE_ENTRIES = ("_run_plain",)
    _FUSE_INLINE = ("decode", "new_segment")
    _fuse.fuse(globals(), _FUSE_ENTRIES, _FUSE_INLINE, cache=True)
