"""``analyze --jobs N``: one large capture split by connection across processes, or many
captures analysed side by side; and the deterministic merge of the parts.

One file, N processes (``analyze_partitioned``)
------------------------------------------------
A connection belongs to the worker chosen by a symmetric hash of its 4-tuple (ports and
the last byte of each address), so both directions and every reuse of a 4-tuple go to the
same worker.  Two ways to get each worker its segments:

* read once and fan out (``analyze_fanout``, wherever processes can be forked: Linux, macOS,
  BSD): N processes in all.  This process alone reads and decodes the file (or standard
  input); the hash picks one of ``fanout.K_BUCKETS`` buckets and a lane table
  (``fanout.lane_table``) the process that owns the bucket, and a ``fanout.Placement``
  places new connections off their bucket's lane when that lane is over its share: the
  shares follow how far behind each worker is (``Placement.steer``, at every slot handed
  over), so neither the reader nor a worker waits for the other, whatever the capture's
  mix of large and small connections and costs of reading and analysing.  N - 1 forked
  workers get their segments as packed records in shared memory (an anonymous shared ``mmap`` made before
  they are forked: per worker ``K_LANE_SLOTS`` slots of ``K_SLOT_RECORDS`` records; a full
  slot is announced over the worker's pipe, and the worker hands it back once fed); they
  decode nothing, they turn records back into segments and feed their own analyzer
  (``fanout.consume``).  The reading process feeds the segments of its own buckets straight
  to its own analyzer as it decodes them (``fanout.dispatch``: no record), a smaller share
  than a worker's to start with, so that reading plus its share keeps it about as busy as
  a worker (``lane_weights``; from 5 processes on it only reads).  The records also carry the capture clock
  (``fanout``'s module doc): the clock's time before each segment, and a tick to every
  other analyzer for a segment at which the clock sweeps;
* every worker reads the whole file (``analyze_whole``, where there is no fork): it decodes
  every frame, keeps its own connections (``pipeline.owner``) and only moves the engine's
  capture clock (``Analyzer.advance``: the same code as the start of ``Analyzer.feed``)
  for the others (``pipeline.analyze_source(..., share=(part, n))``).

Either way every worker sweeps lingering connections at the same moments as a single
process would, counts the same backwards timestamps, and has the same first/last time.  The
result is the same as ``--jobs 1``.  Workers and the merge both use ``session.ReportBuilder``
(the merge hands it the merged state and lets its ``build`` make the Report), so records,
findings and summary come from the same code as ``analyze_file``:

* streams: a worker numbers its connections 0, 1, ... in order of first appearance; the
  global number of a connection is the rank of its first frame over all workers
  (``tcp.stream`` is the order of first appearance), and it is rewritten wherever a
  stream number appears (connection records, findings and the ``previous_stream`` of their
  values, from which their messages are rendered, the example streams of the aggregates);
* findings per connection: a worker keeps the first ``max_findings_per_kind`` of each
  kind in its own finalization order and tags each with the global position of the event
  that produced it (frame of the segment being processed, then sweep / in-segment /
  per-segment callback / end of input, then stream).  The merge sorts the union by that
  key and keeps the first ``max_findings_per_kind``: exactly the set and order a single
  process keeps (it is a prefix of each worker's list).  Totals per kind are added up;
* aggregate findings (TIME_WAIT per host, server_active_close, RSTs per port, SYN flood,
  handshake-RTT outliers, capture quality) are *recomputed* by
  ``findings.aggregate_findings`` from the workers' merged tallies (``findings.Tallies``:
  counts added, example lists merged in global finalization order, handshake RTTs of all
  connections, TIME_WAIT start times of all hosts), never added up from per-worker
  findings (a per-worker TIME_WAIT peak or median RTT is meaningless).

Not identical by construction (documented limits): ``--max-connections`` applies to each
worker's own live table (evictions only happen past a million live connections by
default), and the SYN-flood distinct-source count is capped per worker (100k).  Which
connections a worker gets depends, read once, on timing (``fanout.Placement.steer``), so
past those bounds two runs of ``--jobs N`` can differ from each other too.

The TIME_WAIT table.  One process enters a connection into its bounded TIME_WAIT table
(``engine.TwTable``) at the segment that puts it there; the table folds hosts past
``max_tw_hosts``, so the order of the entries over all connections matters.  Read once and
fanned out, the reading process builds that table while the run goes on (``_TwMerge``):
its own part hands it its entries, and a worker sends the entries it made while feeding
a slot with the slot's acknowledgement, and how far it got; entries are entered in frame
order as soon as every worker got that far.  Where every worker reads the whole file (or
all lanes run in one process), each part logs its entries to a file and the merge replays
the logs in frame order (``_replay_logs``).  Either way, the table of one process.

The end of a run.  Closed connections are finalized during the run (the engine retires
them a second after they close), so at the end a worker finalizes only what is still open
and sends its part: first frames and finalization places as integer arrays, findings as
tuples of their slots, tallies, the index of its spilled records.  The reading process,
whose share of the connections is set so that it ends its own a little earlier
(``lane_weights``), finishes its own part and does the caller's preparations for the
report (``meanwhile``: the table report's imports) while the workers finish theirs, then
merges the parts (global stream numbers, finalization keys and the order of the handshake
RTTs by compiled loops: ``fanout.first_frame_ranks``, ``finalization_keys``,
``order_by_keys``).  The ends run with the cyclic collector off (finite work, whatever the input).

Scaling.  Read once, the per-packet work divides: the reader's share is reading, decoding
and writing one 152-byte record (about a quarter of what a worker spends on a segment:
making it from the record, engine, detectors, finalization), the workers' share falls as 1/N, and
the parts are merged by this process (linear in connections and findings, not packets):
docs/performance.md has the measurements.  Every worker reading the whole file
(``analyze_whole``) repeats reading and decoding in every worker: at most 1/r with r the
serial share (5-6x), and the total CPU time grows with the number of workers.

Many files (``iter_reports``)
-----------------------------
With several inputs and ``--jobs N`` the files are analysed by a pool of N processes
(``session.analyze_file`` per file, reports returned in input order);
``expand_inputs`` turns directories and glob patterns into file lists.
"""
from __future__ import annotations

import glob
import mmap
import os
import struct
import tempfile
from array import array
from bisect import bisect_right
from collections import deque
from dataclasses import replace
from itertools import compress
from operator import attrgetter, itemgetter
from typing import Iterable, Iterator

from tcpanalyze.engine import TwTable
from tcpanalyze.errors import CaptureDamage, SourceError
from tcpanalyze.findings import (K_TALLY_EXAMPLES, CaptureFacts, CloseTally, Examples, Finding, FindingSink,
                                 RstTally, RttTally, SynTally, Tallies, add_counts)
from tcpanalyze.fanout import (REC_SIZE, consume, dispatch, finalization_keys, first_frame_ranks, frames_of,
                               Placement, order_by_keys, prepare)
from tcpanalyze.pipeline import RunStats, analyze_source, check_decodable, finish_stats, gc_tuned
from tcpanalyze.session import ReportBuilder, analyze_file, failed_report, merge_reports
from tcpanalyze.sources.pcap import capture_format, open_capture
from tcpanalyze.sources.remote import expand_url, is_url

#: capture file names: a file of a directory with one of these is taken even when its first
#: bytes are not a capture's (it is then reported as unreadable, not silently left out)
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".pcap.gz", ".pcapng.gz", ".cap.gz")

_FINISH_FRAME = 1 << 60                 # finalization "frame" of connections still open at the end
#: a finalization's place as one integer: frame * _PHASES + phase (below 2**63 for _FINISH_FRAME)
_PHASES = 4
# phases of a finalization / finding within the processing of one frame
_PH_SWEEP, _PH_FEED, _PH_SEGMENT, _PH_FINISH = 0, 1, 2, 3


# ---------------------------------------------------------------------------- inputs
def expand_inputs(args: Iterable[str], skipped: dict[str, list[str]] | None = None) -> list[str]:
    """Files named on the command line: a directory gives its capture files (sorted, not
    recursive), recognised by their first bytes (pcap in either byte order, nanosecond pcap,
    pcapng, each maybe gzip-compressed: ``sources.pcap.capture_format``) or a capture file
    name (``CAPTURE_SUFFIXES``); its other files are left out and listed in ``skipped``
    (directory -> names) when given.  A pattern with ``*?[`` that names no existing file
    gives its matches (sorted).  A URL (``s3://bucket/caps/``, ``file:///data/*.pcap``)
    follows the same rules through fsspec.  Anything else (including ``-``) is kept as is, so a missing
    file is still reported as unreadable, and so is a directory without captures
    (``session.analyze_file`` says so)."""
    out: list[str] = []
    for a in args:
        if is_url(a):   # scheme://...: the same rules through fsspec (sources.remote.expand_url)
            out.extend(expand_url(a, CAPTURE_SUFFIXES, capture_format, skipped))
        elif a != "-" and os.path.isdir(a):
            names, others = [], []
            for n in sorted(os.listdir(a)):
                p = os.path.join(a, n)
                if not os.path.isfile(p):
                    continue
                (names if n.lower().endswith(CAPTURE_SUFFIXES) or capture_format(p) else others).append(n)
            if others and skipped is not None:
                skipped[a] = others
            out.extend([os.path.join(a, n) for n in names] if names else [a])
        elif a != "-" and glob.has_magic(a) and not os.path.exists(a):
            hits = sorted(p for p in glob.glob(a) if os.path.isfile(p))
            out.extend(hits if hits else [a])
        else:
            out.append(a)
    return out


# ---------------------------------------------------------------------------- process pools
def _mp_context():
    import multiprocessing as mp

    # fork starts a worker in milliseconds and shares the imported modules; elsewhere the default
    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()


def _pool(jobs: int):
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=_mp_context())


def iter_reports(paths: list[str], options=None, jobs: int = 1, meanwhile=None) -> Iterator:
    """Reports of ``paths`` in input order: one file with ``jobs > 1`` is split by connection;
    several files are analysed ``jobs`` at a time (standard input always in this process).
    ``meanwhile``: see ``analyze_fanout``."""
    paths = list(paths)
    if jobs <= 1:
        for p in paths:
            yield analyze_file(p, options)
        return
    if len(paths) == 1:
        p = paths[0]
        # a selection (analyze --stream/--host/--port) needs the whole capture's stream
        # numbers, which a split learns only when its parts are merged: one process; standard
        # input can only be read once, so it is split only when read once (fanout_available)
        whole = (options is not None and bool(options.select)) or (p == "-" and not fanout_available())
        yield analyze_file(p, options) if whole else analyze_partitioned(p, options, jobs, meanwhile)
        return
    if options is not None and options.spill_records:
        # whole reports come back from the pool: their records cannot stay on a worker's disk
        options = replace(options, spill_records=False)
    with _pool(min(jobs, len(paths))) as ex:
        futs = [None if p == "-" else ex.submit(analyze_file, p, options) for p in paths]
        for p, fut in zip(paths, futs):
            yield analyze_file(p, options) if fut is None else fut.result()


def analyze_many(paths: list[str], options=None, jobs: int = 1):
    """Per-file reports and their total (``merge_reports``): ``(reports, total)``."""
    reps = list(iter_reports(expand_inputs(paths), options, jobs))
    keep = options.keep_connections if options is not None else None
    return reps, merge_reports(reps, keep_connections=keep)


def analyze_partitioned(path: str, options=None, jobs: int = 2, meanwhile=None):
    """``analyze_file(path, options)`` computed by ``jobs`` processes (see the module doc):
    read once and fanned out where processes can be forked (``analyze_fanout``; ``meanwhile``:
    see there), else every worker reads the whole file (``analyze_whole``)."""
    if jobs > 1 and fanout_available():
        return analyze_fanout(path, options, jobs, meanwhile=meanwhile)
    return analyze_whole(path, options, jobs)


def analyze_whole(path: str, options=None, jobs: int = 2):
    """``analyze_file(path, options)`` computed by ``jobs`` processes that each read and decode
    the whole file and keep their share of the connections (``analyze_part``)."""
    if jobs <= 1:
        return merge_parts(path, options, [analyze_part(path, options, 0, 1)])
    with _pool(jobs) as ex:
        futs = [ex.submit(analyze_part, path, options, k, jobs) for k in range(jobs)]
        parts = [f.result() for f in futs]
    return merge_parts(path, options, parts)


# ---------------------------------------------------------------------------- the worker
class _Ctx:
    """Where the worker is: frame being processed (the analyzer's ``cur_frame``, which the
    pipeline sets for every segment) and phase (orders finalizations globally)."""

    __slots__ = ("an", "phase", "stream", "n")

    def __init__(self, an):
        self.an = an
        self.phase = _PH_FEED
        self.stream = -1
        self.n = 0

    @property
    def frame(self) -> int:
        return self.an.cur_frame


def _keyed_sink(cap: int, ctx: _Ctx):
    class KeyedSink(FindingSink):
        """A FindingSink that also remembers when (globally) each kept finding was made."""

        def __init__(self):
            super().__init__(cap)
            self.keys: list[tuple] = []

        def add(self, f, scope: str = "conn") -> bool:
            kept = super().add(f, scope)
            if kept:
                ctx.n += 1
                if ctx.stream >= 0:         # while a connection is finalized (on_conn_done)
                    self.keys.append((ctx.frame, ctx.phase, ctx.stream, ctx.n))
                else:                       # from Detectors.on_segment, after the engine saw the segment
                    self.keys.append((ctx.frame, _PH_SEGMENT, -1, ctx.n))
            return kept

    return KeyedSink()


class _Part:
    """One worker's analysis: a ``session.ReportBuilder`` (the engine, detectors and records
    of ``analyze_file``) with the hooks that remember when each connection was finalized and
    each finding made, and where its TIME_WAIT entries go: ``tw_enter`` (a function taking
    the engine's ``tw_enter`` arguments: the forked run's ``_TwMerge``), else a log file
    (``tw_path``, or a new temporary file) replayed in frame order for the merge
    (``_replay_logs``).  Feed ``an`` (``on_segment`` per segment), then ``result()``."""

    def __init__(self, path: str, options, part: int, nparts: int, tw_path: str | None = None, tw_enter=None):
        self.path, self.part, self.nparts = path, part, nparts
        b = self.b = ReportBuilder(path, options, worker=True)
        an = self.an = b.analyzer
        ctx = self.ctx = _Ctx(an)
        self.sink = b.det.sink = _keyed_sink(b.th.max_findings_per_kind, ctx)
        self.on_segment = b.on_segment
        # per local stream: finalization place (frame * _PHASES + phase) and first frame,
        # grown as streams are finalized (every stream is, by the end)
        fin, firsts = array("q"), array("q")
        self.fin, self.firsts = fin, firsts
        self.finalized = 0
        builder_done = an.on_conn_done

        def done(conn):
            s = conn.stream
            if s >= len(fin):
                grow = bytes(8 * max(s + 1 - len(fin), len(fin), 1024))
                fin.frombytes(grow)
                firsts.frombytes(grow)
            fin[s] = an.cur_frame * _PHASES + ctx.phase
            firsts[s] = conn.first_frame
            self.finalized += 1
            ctx.stream = s
            builder_done(conn)
            ctx.stream = -1

        an.on_conn_done = done

        def sweeping(entering: bool) -> None:
            ctx.phase = _PH_SWEEP if entering else _PH_FEED

        an.on_sweep = sweeping                         # feed() and the clock sweep through advance()

        self.twf = self.tw_path = None
        if tw_enter is not None:
            an.tw_enter = tw_enter
            return
        # TIME_WAIT entries go to a log replayed in frame order for the merge (_replay_logs)
        if tw_path is None:
            fd, tw_path = tempfile.mkstemp(prefix="tcpanalyze-tw-", suffix=".bin")
            self.twf = os.fdopen(fd, "wb", buffering=1 << 16)
        else:
            self.twf = open(tw_path, "wb", buffering=1 << 16)
        self.tw_path = tw_path
        tw_write = self.twf.write
        tw_pack = _TW_REC.pack

        def tw_log(host: bytes, port: int, now: int, frame: int) -> None:
            tw_write(tw_pack(frame, now, port, len(host), host))

        an.tw_enter = tw_log

    def finish(self) -> None:
        """The end of the input: the connections still open are finalized."""
        an = self.an
        an.cur_frame, self.ctx.phase = _FINISH_FRAME, _PH_FINISH
        an.finish()

    def discard(self) -> None:
        """Give up: close and delete the TIME_WAIT log and any spilled records."""
        if self.twf is not None:
            self.twf.close()
            try:
                os.unlink(self.tw_path)
            except OSError:
                pass
        _drop_spill(self.b.conns)

    def error(self, err: str) -> dict:
        self.discard()
        return {"error": err, "part": self.part}

    def result(self, stats: dict, stats_errors: dict, damage, sent: int = 0, packed: bool = True) -> dict:
        """Plain picklable data out: what ``merge_parts`` needs of this worker (``sent``:
        its first findings were sent already, see ``_lane_worker``; ``packed``: findings as
        tuples, else the objects, for a part that is merged where it was made)."""
        if self.twf is not None:
            self.twf.close()
        an, b, fin, firsts, sink = self.an, self.b, self.fin, self.firsts, self.sink
        n = an.streams
        conns = b.conns
        return {
            "error": None, "part": self.part, "nparts": self.nparts,
            "stats": stats, "stats_errors": stats_errors, "damage": damage,
            # per local stream: first frame, finalization (frame * _PHASES + phase)
            "firsts": firsts[:n], "fin": fin[:n],
            # spilled records stay in the worker's file: only their index travels
            "records": conns.records() if isinstance(conns.all, list) else conns.all.export(),
            "slowest": [dict(r) for r in conns.slowest()],      # copies: their streams are renumbered apart
            "totals": {"n": conns.n, "bytes": conns.bytes, "states": conns.states},
            "findings": _pack_findings(sink.kept[sent:]) if packed else sink.kept[sent:], "keys": sink.keys[sent:],
            "by_kind": {k: dict(v) for k, v in sink.by_kind.items()},
            "by_subkind": {k: dict(v) for k, v in sink.by_subkind.items()},
            "flagged": bytes(conns.flagged),
            "acc": b.det.acc,
            "clock": {"first_ns": an.first_ns, "last_ns": an.last_ns, "ts_backwards": an.ts_backwards,
                      "evicted": an.evicted, "expired": an.expired, "live_peak": an.live_peak,
                      "late_packets": an.late_packets},
            "tw_log": self.tw_path,
        }


#: a findings.Finding as a plain tuple of its slots: pickled several times faster than the object
_FINDING_SLOTS = Finding.__slots__
_finding_values = attrgetter(*_FINDING_SLOTS)


def _pack_findings(findings) -> list[tuple]:
    return [_finding_values(f) for f in findings]


def _unpack_finding(values: tuple) -> Finding:
    f = Finding.__new__(Finding)
    for name, v in zip(_FINDING_SLOTS, values):
        setattr(f, name, v)
    return f


def analyze_part(path: str, options, part: int, nparts: int) -> dict:
    """Worker ``part`` of ``nparts`` reading the whole file itself: analyse the connections it
    owns, only move the clock for the others; plain picklable data out."""
    w = _Part(path, options, part, nparts)
    err = None
    try:
        try:
            # the pipeline feeds this worker's connections and only moves the clock
            # (Analyzer.advance) for the others
            stats = analyze_source(path, w.an, on_segment=w.on_segment, share=(part, nparts), notable_only=True)
        except SourceError as e:
            err = str(e)
        except OSError as e:
            err = f"{path}: {e.strerror or e}"
        else:
            w.finish()
    except BaseException:
        w.discard()
        raise
    if err is not None:
        return w.error(err)
    dmg = stats.damage
    return w.result(stats.to_dict(), dict(stats.errors),
                    None if dmg is None else (str(dmg), dmg.offset, dmg.frame, dmg.fatal))


# ---------------------------------------------------------------------------- read once, fan out
#: records per slot (about 300 kB) and slots per worker in the shared memory of analyze_fanout
K_SLOT_RECORDS = 2048
K_LANE_SLOTS = 24
#: b"S" slot (start, stop) / b"A" slot fed (``_ACK`` and what follows it) / b"E" end (last_ns)
_MSG = struct.Struct("=cqq")


class _Lanes:
    """The dispatcher's side of the shared memory: per worker lane ``slots`` slots of
    ``per_slot`` records.  Lanes ``0 .. len(conns) - 1`` are the workers': a full slot is
    sent (its byte range, over the worker's pipe) and the worker hands it back when it has
    fed its records (``on_ack`` gets what it says then: ``_acked``).  With ``own`` (a
    ``_Part``), lane ``len(conns)`` is this process's: ``fanout.dispatch`` feeds its segments
    to ``own`` as it decodes them, so it has no slots (``fed`` counts its segments).  ``mem``,
    ``pos`` and ``lim`` are what ``fanout.dispatch`` writes to."""

    def __init__(self, nparts: int, conns: list | None, slots: int | None = None, per_slot: int | None = None,
                 own: "_Part | None" = None, mem=None, on_ack=None, steer=None):
        slots = K_LANE_SLOTS if slots is None else slots
        self.size = size = (K_SLOT_RECORDS if per_slot is None else per_slot) * REC_SIZE
        self.slots = slots
        self.steer = steer
        self.local = nparts - 1 if own is not None else -1
        nslotted = nparts - 1 if own is not None else nparts
        # anonymous, shared with the workers forked after it was made
        self.mem = mmap.mmap(-1, max(1, nslotted) * slots * size) if mem is None else mem
        self.conns = conns
        self.own = own
        self.on_ack = on_ack
        self.fed = 0
        self.free = [deque((k * slots + s) * size for s in range(slots)) for k in range(nslotted)]
        self.cur = [0] * nparts
        self.pos = array("q", [0] * nparts)
        self.lim = array("q", [0] * nparts)
        for k in range(nslotted):
            self._take(k)

    def _take(self, k: int) -> None:
        free = self.free[k]
        self.drain(k)
        while not free:
            free.append(self.wait(k))
        s = free.popleft()
        self.cur[k] = s
        self.pos[k] = s
        self.lim[k] = s + self.size

    def flush(self, k: int) -> None:
        """Hand lane ``k``'s current slot over (if it holds records) and take a free one; with
        a ``steer`` (``fanout.Placement.steer``), tell it how many of the lane's slots the
        worker has not handed back yet."""
        if self.pos[k] > self.cur[k]:
            self.send(k, self.cur[k], self.pos[k])
        if self.steer is not None:
            self.drain(k)
            self.steer(k, self.slots - len(self.free[k]), self.slots)
        self._take(k)

    def send(self, k: int, start: int, stop: int) -> None:
        self._send(k, _MSG.pack(b"S", start, stop))

    def _send(self, k: int, msg: bytes) -> None:
        try:
            self.conns[k].send_bytes(msg)
        except OSError:
            # the worker is gone: raise what it said before it went
            _recv_tagged(self.conns[k], k, b"\0")

    def drain(self, k: int) -> None:
        """Take back the slots worker ``k`` has already handed back (without waiting)."""
        conn = self.conns[k]
        free = self.free[k]
        while conn.poll():
            free.append(self.wait(k))

    def wait(self, k: int) -> int:
        """A slot worker ``k`` has finished with (blocks until there is one)."""
        return _acked(_recv_tagged(self.conns[k], k, b"A"), k, self.on_ack)

    def end(self, last_ns: int) -> None:
        """The end of the capture: the last records, then the clock's final time."""
        for k in range(len(self.cur)):
            if k == self.local:
                continue
            if self.pos[k] > self.cur[k]:
                self.send(k, self.cur[k], self.pos[k])
                self.cur[k] = self.pos[k]
            self._send(k, _MSG.pack(b"E", last_ns, 0))


class _KeptLanes(_Lanes):
    """Lanes whose records are kept (copied) instead of sent: the fan-out run in one process,
    one worker after the other (tests; ``analyze_fanout(..., inline=True)``)."""

    def __init__(self, nparts: int):
        self.kept: list[list[bytearray]] = [[] for _ in range(nparts)]
        super().__init__(nparts, None, slots=1, per_slot=256)

    def send(self, k: int, start: int, stop: int) -> None:
        self.kept[k].append(bytearray(self.mem[start:stop]))

    def drain(self, k: int) -> None:
        pass

    def wait(self, k: int) -> int:
        return k * self.size                   # the slot's records were copied: it is free

    def end(self, last_ns: int) -> None:
        for k in range(len(self.cur)):
            if self.pos[k] > self.cur[k]:
                self.send(k, self.cur[k], self.pos[k])
                self.cur[k] = self.pos[k]


#: a b"A" message after its tag: slot start, frame of its last record, length of the
#: TIME_WAIT entries that follow (``_TW_REC`` records); then the findings the worker kept
#: since its last b"A" (pickled, or nothing)
_ACK = struct.Struct("=qqq")


def _acked(msg: bytes, k: int, on_ack) -> int:
    """The slot of worker ``k``'s b"A" message (``msg``: after its tag); ``on_ack(k, frame,
    entries, findings)`` gets the frame of the slot's last record, the TIME_WAIT entries and
    the pickled findings that follow."""
    start, frame, n = _ACK.unpack_from(msg)
    if on_ack is not None:
        head = _ACK.size
        on_ack(k, frame, msg[head:head + n], msg[head + n:])
    return start


class _Received:
    """What the workers of a forked run send while it goes on: their TIME_WAIT entries,
    entered into ``tw`` (a ``_TwMerge``), and the findings they kept, made ``Finding``s
    again as they come (per worker: lists of findings and of their keys, see ``_lane_worker``)."""

    def __init__(self, tw: "_TwMerge", nworkers: int):
        self.tw = tw
        self.findings: list[list] = [[] for _ in range(nworkers)]
        self.keys: list[list] = [[] for _ in range(nworkers)]

    def ack(self, k: int, frame: int, entries: bytes, found: bytes) -> None:
        self.tw.add(k, frame, entries)
        if found:
            import pickle

            packed, keys = pickle.loads(found)
            self.findings[k].extend(map(_unpack_finding, packed))
            self.keys[k].extend(keys)

    def part(self, k: int, part: dict) -> dict:
        """Worker ``k``'s part: its last TIME_WAIT entries entered, the findings it sent
        before the rest of its part put in front of those in it."""
        self.tw.add(k, _FINISH_FRAME, part.pop("tw_tail"))
        part["findings"] = self.findings[k] + part["findings"]
        part["keys"] = self.keys[k] + part["keys"]
        self.findings[k] = self.keys[k] = []
        return part


class _TwMerge:
    """The TIME_WAIT table of ``--jobs 1``, built by the reading process of a forked run while
    the run goes on (``_replay_logs`` builds it from logs at the end instead).

    The engine enters a connection into TIME_WAIT at the segment that puts it there
    (``Analyzer.tw_enter``, with that segment's frame), so each part makes its entries in
    frame order.  This process's own part hands its entries to the function ``own_enter``
    gives as it makes them; a worker sends the entries it made while feeding a slot with
    the slot's acknowledgement, and the frame of the slot's last record (``add``).  A worker
    that has fed its records up to frame F has made all its entries up to F, and this
    process, which dispatched those records, has made all of its own: so the entries up to
    the lowest such frame over the workers are final, and they are entered into one
    ``engine.TwTable`` in frame order over all parts, equal frames in part order, as
    ``_replay_logs`` enters them."""

    def __init__(self, nparts: int, nworkers: int, max_hosts: int, hold: int):
        self.table = TwTable(max_hosts, hold)
        #: per part, its entries not entered yet, in frame order: (frame, now, port, address length, address)
        self.pending: list[list[tuple]] = [[] for _ in range(nparts)]
        self.upto = [-1] * nworkers         # per worker: the frame up to which it has fed its records

    def own_enter(self, part: int):
        """The ``tw_enter`` function of this process's own part (part ``part``)."""
        keep = self.pending[part].append

        def tw_enter(host: bytes, port: int, now: int, frame: int) -> None:
            keep((frame, now, port, len(host), host))

        return tw_enter

    def add(self, k: int, frame: int, entries: bytes) -> None:
        """Worker ``k`` has fed its records up to ``frame`` and made ``entries`` (``_TW_REC``
        records, in frame order) since it last said so."""
        if entries:
            self.pending[k].extend(_TW_REC.iter_unpack(entries))
        self.upto[k] = frame
        self.enter(min(self.upto))

    def enter(self, upto: int) -> None:
        """Enter the pending entries up to frame ``upto``."""
        batch: list[tuple] = []
        for pend in self.pending:
            if pend and pend[0][0] <= upto:
                n = bisect_right(pend, upto, key=_FRAME)
                batch.extend(pend[:n])
                del pend[:n]
        if not batch:
            return
        batch.sort(key=_FRAME)              # stable: equal frames stay in part order
        enter = self.table.enter
        for frame, now, port, n, host in batch:
            enter(host[:n], port, now, frame)

    def finish(self):
        """The table with every entry entered (call when every part has ended)."""
        self.enter(_FINISH_FRAME)
        return self.table


_FRAME = itemgetter(0)


def _lane_worker(path: str, options, part: int, nparts: int, conn, mem) -> None:
    """A forked worker: feed the records the dispatcher sends (fanout.consume), hand each
    slot back with the TIME_WAIT entries made meanwhile (``_TwMerge``) and the findings kept
    meanwhile (they only ever grow: ``FindingSink.kept``), and at the end send the rest of
    its part (pickled) for merge_parts."""
    import pickle
    import traceback

    try:
        entries = bytearray()
        tw_pack = _TW_REC.pack

        def tw_enter(host: bytes, port: int, now: int, frame: int) -> None:
            entries.extend(tw_pack(frame, now, port, len(host), host))

        w = _Part(path, options, part, nparts, tw_enter=tw_enter)
        an, on_segment = w.an, w.on_segment
        kept, keys = w.sink.kept, w.sink.keys
        fed = sent = 0
        with gc_tuned(off=path != "-"):        # as pipeline.run_packets: standard input may be live
            while True:
                msg = conn.recv_bytes()
                tag, a, b = _MSG.unpack(msg)
                if tag == b"E":
                    an.last_ns = a              # the capture's clock at its end
                    break
                fed += consume(mem, a, b, an, on_segment, True)
                found = b""
                n = len(kept)
                if n > sent:
                    found = pickle.dumps((_pack_findings(kept[sent:n]), keys[sent:n]), pickle.HIGHEST_PROTOCOL)
                    sent = n
                conn.send_bytes(b"A" + _ACK.pack(a, an.cur_frame, len(entries)) + entries + found)
                entries.clear()
        with gc_tuned(off=True):               # the end is finite work, whatever the input
            w.finish()
            res = w.result({"tcp_segments": fed}, {}, None, sent)
            res["tw_tail"] = bytes(entries)     # TIME_WAIT entries made after the last slot
            conn.send_bytes(b"R" + pickle.dumps(res, pickle.HIGHEST_PROTOCOL))
    except BaseException:
        try:
            conn.send_bytes(b"X" + traceback.format_exc().encode("utf-8", "replace"))
        except OSError:
            pass
    finally:
        conn.close()


def _engine_config(options):
    from tcpanalyze import engine
    from tcpanalyze.session import AnalyzeOptions

    return engine.Config(**(options or AnalyzeOptions()).engine)


def _read_once(path: str, options, lanes: _Lanes, table) -> dict:
    """Read and decode ``path`` once into the lanes (``fanout.dispatch``, segments to the lane
    of ``table[bucket]``); what the reader learnt, as ``merge_parts`` takes it (``shared``).
    Raises SourceError/OSError."""
    checksums = _engine_config(options).checksums
    stats = RunStats(path)
    reader = open_capture(path)
    try:
        stats.format = reader.format
        prepare(stats, checksums)
        with gc_tuned(off=path != "-"):
            frames, out = frames_of(reader, checksums)
            own = lanes.own
            first, last, back, fed = dispatch(frames, stats, table, lanes.mem, lanes.pos, lanes.lim, lanes.flush,
                                              checksums == "drop", out, None if own is None else own.an,
                                              None if own is None else own.on_segment, True)
            lanes.fed += fed
            lanes.end(last)
    finally:
        finish_stats(stats, reader)
    check_decodable(stats)
    dmg = stats.damage
    return {"stats": stats.to_dict(), "stats_errors": dict(stats.errors),
            "damage": None if dmg is None else (str(dmg), dmg.offset, dmg.frame, dmg.fatal),
            "clock": {"first_ns": first, "last_ns": last, "ts_backwards": back}}


#: the reader's CPU per segment (reading, decoding, writing the record, entering the
#: TIME_WAIT table) over a worker's (making the segment, engine, detectors, finalizing its
#: connections as they close), with a margin so that the reader ends its share a little
#: before the worker (its own part and the report's imports fit in between): measured on
#: the compiled build (docs/performance.md); it sets how much of the analysis the reading
#: process does itself
K_READER_COST = 0.32


def lane_weights(jobs: int, reader_cost: float = K_READER_COST) -> list[float]:
    """Shares of the connections for ``jobs`` processes: ``jobs - 1`` forked workers, then
    this process, which also reads and dispatches.  This process's share ``f`` makes it as
    busy as a worker: ``reader_cost + f = (1 - f) / (jobs - 1)`` (both per segment of
    analysis), so ``f = (1 - (jobs - 1) * reader_cost) / jobs``, and 0 when the reading
    alone keeps it busier than a worker."""
    if jobs < 2:
        raise ValueError("a split needs at least two processes")
    f = max(0.0, (1.0 - (jobs - 1) * reader_cost) / jobs)
    return [(1.0 - f) / (jobs - 1)] * (jobs - 1) + [f]


def fanout_available() -> bool:
    """The read-once split needs workers that share the dispatcher's memory: fork."""
    import multiprocessing as mp

    return "fork" in mp.get_all_start_methods()


def analyze_fanout(path: str, options=None, jobs: int = 2, inline: bool = False, weights=None, meanwhile=None):
    """``analyze_file(path, options)`` computed by ``jobs`` processes: ``jobs - 1`` forked
    workers fed by this one, which alone reads and decodes the file and analyses its own
    share of the connections from its own lane (``fanout``; see the module doc;
    ``weights``: the shares, as ``lane_weights(jobs)`` gives them: the workers', then this
    process's).  ``inline``: the same records, fed to the lanes' analyzers one after the
    other in this process.  ``meanwhile``: a function this process calls once it has read
    the file and finished its own part, while the workers finish theirs (the caller's
    preparations for the report: the imports of its rendering)."""
    weights = lane_weights(jobs) if weights is None else list(weights)
    if len(weights) != jobs:
        raise ValueError(f"{len(weights)} weights for {jobs} processes")
    reads_only = weights[-1] <= 0
    if reads_only:                      # no lane of this process's own
        weights = weights[:-1]
    table = Placement(weights, own=not reads_only)
    if inline:
        return _fanout_inline(path, options, len(weights), table)
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    nw = jobs - 1
    procs, conns = [], []
    parts: list[dict] = []
    mem = own = None
    try:
        # the workers are forked before this process's own part exists: they inherit none of it
        mem = mmap.mmap(-1, nw * K_LANE_SLOTS * K_SLOT_RECORDS * REC_SIZE)
        for k in range(nw):
            mine, theirs = ctx.Pipe(duplex=True)
            pr = ctx.Process(target=_lane_worker, args=(path, options, k, jobs, theirs, mem), daemon=True)
            pr.start()
            theirs.close()
            procs.append(pr)
            conns.append(mine)
        cfg = _engine_config(options)
        tw = _TwMerge(len(weights), nw, cfg.max_tw_hosts, cfg.msl_ns * 2)
        if not reads_only:
            own = _Part(path, options, nw, jobs, tw_enter=tw.own_enter(nw))
        got = _Received(tw, nw)
        lanes = _Lanes(len(weights), conns, own=own, mem=mem, on_ack=got.ack, steer=table.steer)
        shared = _read_or_fail(path, options, lanes, table)
        if not isinstance(shared, dict):
            return shared
        import pickle

        # the end is finite work, whatever the input: the collector stays off
        with gc_tuned(off=True):
            if own is not None:         # this process's share, finished while the workers finish theirs
                own.an.last_ns = shared["clock"]["last_ns"]
                own.finish()
                parts.append(own.result({"tcp_segments": lanes.fed}, {}, None, packed=False))
                own = None
            if meanwhile is not None:
                meanwhile()
            for k, conn in enumerate(conns):
                parts.append(got.part(k, pickle.loads(_recv_tagged(conn, k, b"R", got.ack))))
            rep = merge_parts(path, options, parts, shared, tw.finish)
        for c in conns:
            c.close()
        for pr in procs:
            pr.join()
        return rep
    finally:
        if own is not None:
            own.discard()
        for pr in procs:
            if pr.is_alive():
                pr.terminate()
            pr.join()
        for c in conns:
            c.close()
        if mem is not None:
            mem.close()


def _recv_tagged(conn, k: int, tag: bytes, on_ack=None) -> bytes:
    """The payload of worker ``k``'s next ``tag`` message; slot acknowledgements before it
    go to ``on_ack`` (see ``_acked``), or are passed over without one; a worker that failed
    raises its error."""
    while True:
        try:
            msg = conn.recv_bytes()
        except EOFError:
            raise RuntimeError(f"--jobs worker {k} ended unexpectedly") from None
        if msg[:1] == tag:
            return msg[1:]
        if msg[:1] != b"A":
            _expect_fail(msg, k)
        if on_ack is not None:
            _acked(msg[1:], k, on_ack)


def _expect_fail(msg: bytes, k: int):
    """Raise what worker ``k`` said instead of the message expected."""
    if msg[:1] == b"X":
        raise RuntimeError(f"--jobs worker {k} failed:\n{msg[1:].decode('utf-8', 'replace')}")
    raise RuntimeError(f"--jobs worker {k}: unexpected message {msg[:1]!r}")


def _read_or_fail(path: str, options, lanes, table):
    """``_read_once``'s shared results, or the failed-file Report when the capture cannot be read."""
    try:
        return _read_once(path, options, lanes, table)
    except SourceError as e:
        return failed_report(path, str(e), ReportBuilder(path, options).th)
    except OSError as e:
        return failed_report(path, f"{path}: {e.strerror or e}", ReportBuilder(path, options).th)


def _fanout_inline(path: str, options, nlanes: int, table):
    lanes = _KeptLanes(nlanes)
    try:
        shared = _read_or_fail(path, options, lanes, table)
        if not isinstance(shared, dict):
            return shared
    finally:
        lanes.mem.close()
    parts = []
    for k in range(nlanes):
        w = _Part(path, options, k, nlanes)
        fed = 0
        with gc_tuned(off=True):
            for blob in lanes.kept[k]:
                fed += consume(blob, 0, len(blob), w.an, w.on_segment, True)
        w.an.last_ns = shared["clock"]["last_ns"]
        w.finish()
        parts.append(w.result({"tcp_segments": fed}, {}, None))
    return merge_parts(path, options, parts, shared)


def _drop_spill(conns) -> None:
    if not isinstance(conns.all, list):
        conns.all.discard()


#: one TIME_WAIT entry in a worker's log: frame, time (ns), port, address length, address
_TW_REC = struct.Struct("<qqHB16s")


def _tw_entries(path: str) -> list[tuple]:
    """A worker's TIME_WAIT log as (frame, time, port, address length, address) tuples."""
    with open(path, "rb") as f:
        data = f.read()
    return list(_TW_REC.iter_unpack(memoryview(data)[:len(data) - len(data) % _TW_REC.size]))


def _replay_time_wait(parts: list[dict], cfg):
    """The TIME_WAIT table ``--jobs 1`` would have built from the parts' logs (``_replay_logs``)."""
    return _replay_logs([p["tw_log"] for p in parts if p.get("tw_log")], cfg.max_tw_hosts, cfg.msl_ns * 2)


def _replay_logs(paths: list[str], max_hosts: int, hold: int):
    """Every worker's TIME_WAIT entries (``paths``: their logs, in part order) merged in frame
    order and entered into an ``engine.TwTable`` bounded as one process's (``max_hosts``,
    2 MSL ``hold``): the table ``--jobs 1`` would have built.  Each log is in frame order
    already; a stable sort of their concatenation merges them, equal frames (a sweep at a
    tick) in part order."""
    tw = TwTable(max_hosts, hold)
    entries: list[tuple] = []
    for path in paths:
        entries.extend(_tw_entries(path))
    entries.sort(key=itemgetter(0))
    enter = tw.enter
    for frame, now, port, n, host in entries:
        enter(host[:n], port, now, frame)
    return tw


# ---------------------------------------------------------------------------- the merge
#: the attributes of findings.Tallies this merge knows (tests/test_parallel.py checks it)
TALLY_FIELDS = frozenset({"connections", "s0", "rst_ports", "server_close", "hs_rtt", "no_handshake",
                          "scale_unknown", "one_sided", "truncated", "super_segments", "unexpected"})


def _merge_examples(lists, key, cap: int = K_TALLY_EXAMPLES) -> list:
    """Example lists (global streams) merged in global finalization order, first ``cap``."""
    return sorted((x for lst in lists for x in lst), key=key)[:cap]


def _merge_tallies(parts: list[dict], maps: list[list[int]], fin_key) -> object:
    finkey = fin_key.__getitem__
    accs = []
    for p, m in zip(parts, maps):
        a = p["acc"]
        unknown = set(vars(a)) - TALLY_FIELDS
        if unknown:
            raise RuntimeError(f"parallel merge does not know Tallies fields {sorted(unknown)}")
        accs.append((a, m))
    out = Tallies()
    out.connections = sum(a.connections for a, _ in accs)

    def g(m, streams):
        return [m[s] for s in streams]

    # unanswered SYNs per (host, port)
    for a, m in accs:
        for key, s0 in a.s0.items():
            t = out.s0.get(key)
            if t is None:
                out.s0[key] = SynTally(s0.unanswered, s0.first_ns, s0.last_ns, g(m, s0.streams), set(s0.sources))
            else:
                t.unanswered += s0.unanswered
                t.first_ns = min(t.first_ns, s0.first_ns)
                t.last_ns = max(t.last_ns, s0.last_ns)
                t.streams = _merge_examples([t.streams, g(m, s0.streams)], finkey)
                t.sources |= s0.sources
    # RSTs per server port: counts, example streams, time of the first finalized one
    for a, m in accs:
        for key, d in a.rst_ports.items():
            streams = g(m, d.streams)
            t = out.rst_ports.get(key)
            if t is None:
                out.rst_ports[key] = RstTally(d.first_ns, dict(d.counts), streams)
                continue
            first = min(t.streams[:1] + streams[:1], key=finkey)
            if first in streams[:1]:
                t.first_ns = d.first_ns
            for cls, n in d.counts.items():
                t.counts[cls] += n
            t.streams = _merge_examples([t.streams, streams], finkey)
    # servers closing first: connections, example streams and their FIN frames (paired)
    for a, m in accs:
        for key, c in a.server_close.items():
            pairs = list(zip(g(m, c.streams), c.fin_frames))
            t = out.server_close.get(key)
            if t is None:
                out.server_close[key] = CloseTally(c.connections, [s for s, _ in pairs], [f for _, f in pairs],
                                                   c.time_wait, c.reset)
                continue
            both = sorted(list(zip(t.streams, t.fin_frames)) + pairs, key=lambda sf: finkey(sf[0]))[:K_TALLY_EXAMPLES]
            t.connections += c.connections
            t.time_wait += c.time_wait
            t.reset += c.reset
            t.streams = [s for s, _ in both]
            t.fin_frames = [f for _, f in both]
    # handshake RTTs per server host, in global finalization order
    hs: dict[str, tuple] = {}
    for a, m in accs:
        for host, r in a.hs_rtt.items():
            streams, irtts = hs.setdefault(host, (array("q"), array("q")))
            streams.extend(array("q", g(m, r.streams)))
            irtts.extend(r.irtts)
    keys = fin_key if isinstance(fin_key, array) else None
    for host, (streams, irtts) in hs.items():
        t = out.hs_rtt[host] = RttTally()
        if keys is not None:
            streams, irtts = order_by_keys(keys, streams, irtts)
        else:
            order = sorted(range(len(streams)), key=lambda i: fin_key[streams[i]])
            streams, irtts = [streams[i] for i in order], [irtts[i] for i in order]
        t.irtts.extend(irtts)
        t.streams.extend(streams)
    # capture-quality counters: connections added, the amount added (the max for super segments)
    for name, comb in (("no_handshake", sum), ("scale_unknown", sum), ("one_sided", sum), ("truncated", sum),
                       ("super_segments", max), ("unexpected", sum)):
        xs = [(getattr(a, name), m) for a, m in accs]
        setattr(out, name, Examples(sum(x.connections for x, _ in xs), comb(x.amount for x, _ in xs),
                                    _merge_examples([g(m, x.streams) for x, m in xs], finkey)))
    return out


def _renumber_finding(f, m: list[int]):
    """A worker's findings.Finding with global stream numbers (its stream, and the earlier
    connection's ``previous_stream`` in its values: the message is rendered from them)."""
    if f.stream is not None:
        f.stream = m[f.stream]
    values = f.values
    if values and values.get("previous_stream") is not None:
        values["previous_stream"] = m[values["previous_stream"]]
    return f


def merge_parts(path: str, options, parts: list[dict], shared: dict | None = None, time_wait=None):
    """One Report from the workers' parts, built by ``session.ReportBuilder.build`` from the
    merged state: equal to ``analyze_file(path, options)``.  ``shared``: what the reader of
    the file learnt (``stats``, ``stats_errors``, ``damage``, ``clock``: see analyze_fanout);
    without it, every worker read the whole file and worker 0's are taken.  ``time_wait``:
    a function that gives the replay of the parts' TIME_WAIT logs made elsewhere (it is
    called as late as possible); without it they are replayed here.  Deletes the workers' logs."""
    try:
        return _merge_parts(path, options, parts, shared, time_wait)
    finally:
        for p in parts:
            if p.get("tw_log"):
                try:
                    os.unlink(p["tw_log"])
                except OSError:
                    pass


def _merge_parts(path: str, options, parts: list[dict], shared: dict | None, time_wait=None):
    b = ReportBuilder(path, options)
    th = b.th
    parts = sorted(parts, key=lambda p: p["part"])
    bad = next((p for p in parts if p["error"]), None)
    if bad is not None:
        return failed_report(path, bad["error"], th)
    ranks = first_frame_ranks([p["firsts"] for p in parts])
    maps = [r.tolist() for r in ranks]
    # global stream -> its place in the global finalization order: (frame, phase, stream) as
    # one integer (frame * _PHASES + phase, then the stream below it)
    total = sum(len(m) for m in maps)
    fin_key = finalization_keys(ranks, [p["fin"] for p in parts], _FINISH_FRAME * _PHASES)
    if fin_key is None:                 # (places too large for 64-bit keys) Python integers
        fin_key = [0] * total
        for p, m in zip(parts, maps):
            for g, code in zip(m, p["fin"]):
                fin_key[g] = code * total + g
    finkey = fin_key.__getitem__

    # ---- connection records (global streams); the keep-N selection is redone over all of them
    conns = b.conns
    for p, m in zip(parts, maps):
        if isinstance(p["records"], tuple):         # a worker's spilled records (tcpanalyze.records)
            conns.all.adopt(p["records"], m)
            continue
        for rec in p["records"]:
            rec["stream"] = m[rec["stream"]]
            conns.add(rec)
    flagged = bytearray(total)
    for p, m in zip(parts, maps):
        for g in compress(m, p["flagged"]):
            flagged[g] = 1
    conns.flagged = flagged
    for p, m in zip(parts, maps):
        for rec in p.get("slowest", ()):
            rec["stream"] = m[rec["stream"]]
            conns.push_slow(rec)
    conns.n = sum(p["totals"]["n"] for p in parts)
    conns.bytes = sum(p["totals"]["bytes"] for p in parts)
    states: dict[str, int] = {}
    for p in parts:
        for k, v in p["totals"]["states"].items():
            states[k] = states.get(k, 0) + v
    conns.states = states

    # ---- per-connection findings: the first `cap` of each kind in global order
    cap = th.max_findings_per_kind
    keyed = []
    for p, m in zip(parts, maps):
        for f, (fr, ph, s, n) in zip(p["findings"], p["keys"]):
            keyed.append(((fr, ph, m[s] if s >= 0 else -1, n), f, m))
    keyed.sort(key=itemgetter(0))
    sink = FindingSink(cap)
    by_kind: dict[str, dict] = {}
    for p in parts:
        for kind, cnt in p["by_kind"].items():
            t = by_kind.setdefault(kind, {"total": 0, "reported": 0, "info": 0, "warning": 0, "error": 0})
            for k2, v2 in cnt.items():
                if k2 != "reported":
                    t[k2] += v2
    kept_n: dict[str, int] = {}
    for _key, f, m in keyed:                 # only the kept ones become Findings again (if packed)
        if type(f) is not Finding:
            f = _unpack_finding(f)
        kind = f.kind
        if kept_n.get(kind, 0) < cap:
            kept_n[kind] = kept_n.get(kind, 0) + 1
            by_kind[kind]["reported"] += 1
            sink.kept.append(_renumber_finding(f, m))
    sink.by_kind = by_kind
    for p in parts:
        add_counts(sink.by_subkind, p["by_subkind"])
    b.det.sink = sink                  # the aggregate findings are added to it by build()

    # ---- the state the aggregates are computed from: merged tallies, clock, TIME_WAIT starts
    b.det.acc = _merge_tallies(parts, maps, fin_key)
    # the capture's clock and what was read: the reader's, or worker 0's (every worker read it all)
    whole = shared or parts[0]
    c0 = whole["clock"]
    tw = _replay_time_wait(parts, b.analyzer.cfg) if time_wait is None else time_wait()
    facts = CaptureFacts(first_ns=c0["first_ns"], last_ns=c0["last_ns"], ts_backwards=c0["ts_backwards"],
                         evicted=sum(p["clock"]["evicted"] for p in parts),
                         expired=sum(p["clock"]["expired"] for p in parts), time_wait=tw,
                         late_packets=sum(p["clock"]["late_packets"] for p in parts))
    sd = whole["stats"]
    stats = RunStats(path)
    stats.frames = sd["frames"]
    stats.tcp = sum(p["stats"]["tcp_segments"] for p in parts)
    stats.skipped = dict(sd["skipped"])
    stats.errors = dict(whole["stats_errors"])
    stats.error_examples = {k: [(e["frame"], e["offset"], e["detail"]) for e in v]
                            for k, v in sd["decode_error_examples"].items()}
    stats.unsupported = {int(k): v for k, v in sd["unsupported_linktypes"].items()}
    stats.format = sd["format"]
    stats.linktypes = list(sd["linktypes"])
    stats.warnings = list(sd["warnings"])
    dmg = whole["damage"]
    stats.damage = None if dmg is None else CaptureDamage(*dmg)
    stats.fragments = dict(sd.get("ip_fragments") or {})
    stats.checksums = dict(sd.get("tcp_checksums") or {})
    facts.decode_errors = dict(stats.errors)
    facts.damage = stats.damage
    facts.fragments = dict(stats.fragments)
    facts.checksums = dict(stats.checksums)
    rep = b.build(stats, facts)
    entry = rep.files[0]
    for k, v in sd.items():             # the file record exactly as the worker's RunStats wrote it
        if k != "tcp_segments":
            entry[k] = v
    return rep


__all__ = ["expand_inputs", "iter_reports", "analyze_many", "analyze_partitioned", "analyze_part", "merge_parts",
           "CAPTURE_SUFFIXES"]
