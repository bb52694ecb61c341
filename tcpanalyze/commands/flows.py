"""``tcpanalyze flows``: one summary per connection; ``--stream N`` shows both endpoints' timelines."""
from __future__ import annotations

import heapq
import json
import os
import sys

import click

from tcpanalyze.api import _ENGINE_OPTIONS, ConnectionDicts, _engine, connection_dicts, connections
from tcpanalyze.commands.common import (EXIT_INPUT, engine_options, input_errors, make_config, no_stream,
                                        open_output, parquet_output, pop_engine_kw, run_capture, stats_notes,
                                        stdout)
from tcpanalyze.engine import Analyzer, Config
from tcpanalyze.jsontext import encode_bytes
from tcpanalyze.parquet import write_connections
from tcpanalyze.pipeline import RunStats, gc_tuned
from tcpanalyze.records import WaitingIndex, _SpillFile
from tcpanalyze.summary import summarize


#: --sort: key of a Connection (smallest first), ties in stream order
SORT_KEYS = {
    "stream": lambda c: c.stream,
    "start": lambda c: (c.start, c.stream),
    "duration": lambda c: (-c.duration, c.stream),
    "packets": lambda c: (-(c.orig_pkts + c.resp_pkts), c.stream),
    "bytes": lambda c: (-(c.orig_bytes + c.resp_bytes), c.stream),
    "rtx": lambda c: (-c.retransmissions, c.stream),
}


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "parquet"]), default="table",
              show_default=True, help="parquet: a typed table for DuckDB, pandas, Spark (needs -o FILE and pyarrow).")
@click.option("--json", "fmt", flag_value="json", help="Shorthand for --format json.")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Shorthand for --format jsonl.")
@click.option("--stream", type=click.IntRange(min=0), default=None, help="Only this connection, with both endpoints' state timelines.")
@click.option("--top", type=click.IntRange(min=0), default=None,
              help="table: connections listed, the first by --sort (default: a screenful; 0: all).")
@click.option("--sort", "sort_key", type=click.Choice(list(SORT_KEYS)), default="stream", show_default=True,
              help="table: the order of --top: stream or start (ascending); duration, packets, bytes, rtx "
                   "(largest first).")
@click.option("-o", "--output", default=None, help="Write to this file instead of stdout.")
@engine_options
def flows(file, fmt, stream, top, sort_key, output, **kw):
    """Connection summaries of FILE: endpoints, RFC 9293 state of both ends, Zeek conn_state and
    history, packets and bytes each way, who closed first and how it ended.

    The table lists --top connections (a screenful unless given) in --sort order and fits the
    width (a terminal's, else COLUMNS, else 80): endpoints are never cut, lower-priority
    columns are left out and named.  --format jsonl/json/parquet give every connection."""
    engine = pop_engine_kw(kw)
    if fmt == "parquet":
        path = parquet_output(output)
        with input_errors(file), gc_tuned(off=file != "-"):
            it = connections(file, **engine)
            write_connections((c for c in it if stream is None or c.stream == stream), path)
        stats = it.stats
        stats_notes(file, stats)
        if stream is not None and stream >= it._analyzer.streams:
            raise no_stream(stream, file, it._analyzer.streams)
    else:
        if stream is not None:
            recs, stats = _timelines(file, stream, engine)
        elif fmt == "table":
            _table(file, engine, top, sort_key, output)
            return
        elif fmt == "jsonl":
            stats = _jsonl(file, engine, output)
            if stats.damage is not None and stats.damage.fatal:
                sys.exit(EXIT_INPUT)
            return
        else:
            # a file runs with the cyclic collector off, as analyze does (pipeline.gc_tuned)
            with input_errors(file), gc_tuned(off=file != "-"):
                it = connection_dicts(file, **engine)
                recs = list(it)
            stats = it.stats
            stats_notes(file, stats)
        _write(file, recs, fmt, output, detail=stream is not None)
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)


def _table(file: str, engine: dict, top: int | None, sort_key: str, output: str | None) -> None:
    """The table of the --top first connections by --sort: the connections stream through a
    bounded heap, so only those shown are kept and rendered."""
    from tcpanalyze.report.flows_table import make_console, render_flows

    to_file = output not in (None, "-")
    if top is None:
        # a screenful: the terminal's height (rich: LINES, else 25 for other outputs) less
        # the title, the borders and the caption
        height = make_console(stdout()).size.height if not to_file else _env_int("LINES", 25)
        top = max(5, height - 8)
    with input_errors(file), gc_tuned(off=file != "-"):
        it = connections(file, **engine)
        stats = it.stats
        if top == 0:
            chosen = list(it)
            total = len(chosen)
            if sort_key != "stream":
                chosen.sort(key=SORT_KEYS[sort_key])
        else:
            counted = _Counted(it)
            chosen = heapq.nsmallest(top, counted, key=SORT_KEYS[sort_key])
            total = counted.n
    stats_notes(file, stats)
    # opened once the capture was read: an unreadable one leaves no output behind
    out, close = open_output(output)
    try:
        console = make_console(out, _env_int("COLUMNS", 120) if to_file else None)
        recs = [c.to_dict() for c in chosen]
        title = None
        if len(recs) < total:
            title = (f"{len(recs)} of {total} connection(s), by {sort_key} "
                     f"(--top N lists more, --top 0 all; --sort {'|'.join(SORT_KEYS)})")
        render_flows(recs, out, title=title, console=console)
    finally:
        if close:
            out.close()
        else:
            out.flush()
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)


def _env_int(name: str, default: int) -> int:
    """A positive number from the environment (COLUMNS, LINES), else ``default``."""
    v = os.environ.get(name, "")
    return int(v) if v.isdigit() and int(v) > 0 else default


class _Counted:
    """An iterator that counts what it yields."""

    def __init__(self, it):
        self.it = iter(it)
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self):
        x = next(self.it)
        self.n += 1
        return x


#: bytes of waiting records kept in memory before the next ones wait on disk
K_WAIT_IN_MEMORY = 4 << 20


class _Lines(ConnectionDicts):
    """The connection summaries as their ``--format jsonl`` text (``json.dumps(rec,
    separators=(",", ":"))``, ASCII, as bytes), handed to ``write`` in stream order as
    connections end.  A connection that ended before an earlier stream
    waits for it: in memory while the waiting text stays under ``K_WAIT_IN_MEMORY``, beyond
    that on disk (tcpanalyze.records' spill file, a few dozen bytes of index in memory), so a
    long connection at the start of a capture does not keep every later record in memory
    until it ends."""

    def __init__(self, path: str, cfg: Config, write):
        super().__init__(path, cfg, "stream")
        self._write = write
        self._held: dict[int, bytes] = {}                   # stream -> line, in memory
        self._held_chars = 0
        self._spill: _SpillFile | None = None
        self._spilled = WaitingIndex()                      # stream -> (offset, length) on disk
        self.waited = 0             # records that waited on disk for an earlier stream

    def _done(self, conn) -> None:
        line = encode_bytes(summarize(conn), ascii_only=True)
        s = conn.stream
        if s != self._next:
            if self._held_chars + len(line) <= K_WAIT_IN_MEMORY:
                self._held[s] = line
                self._held_chars += len(line)
                return
            if self._spill is None:
                self._spill = _SpillFile()
            self._spilled.put(s, self._spill.put(line), len(line))
            self.waited += 1
            return
        write = self._write
        write(line)
        self._next = s = s + 1
        held, spilled = self._held, self._spilled
        while True:
            line = held.pop(s, None)
            if line is not None:
                self._held_chars -= len(line)
            else:
                at = spilled.pop(s) if spilled else None
                if at is None:
                    break
                line = self._spill.get(*at)
            write(line)
            s += 1
        self._next = s
        spilled.advance(s)

    def close(self) -> None:
        super().close()
        if self._spill is not None:
            self._spill.close()
            self._spill = None


#: bytes of lines gathered before one write to the output
K_LINES_CHUNK = 1 << 18


class _LineWriter:
    """Lines (bytes) gathered in one reused buffer and written out in chunks, the output
    opened at the first chunk (an unreadable capture leaves no output behind)."""

    def __init__(self, output: str | None):
        self.output = output
        self.out = None
        self.close_out = False
        self.buf = bytearray()
        self.n = 0

    def write(self, line: bytes) -> None:
        start = self.n
        mid = start + len(line)
        self.n = end = mid + 1
        self.buf[start:mid] = line
        self.buf[mid:end] = b"\n"
        if end >= K_LINES_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.out is None:
            self.out, self.close_out = open_output(self.output)
        if self.n:
            with memoryview(self.buf) as whole:
                part = whole[:self.n]
                try:
                    self.out.write_bytes(part)
                finally:
                    part.release()
            self.n = 0

    def close(self) -> None:
        if self.out is not None:
            if self.close_out:
                self.out.close()
            else:
                self.out.flush()


def _jsonl(file: str, engine: dict, output: str | None) -> RunStats:
    """Write each connection's line as it leaves the engine, in stream order."""
    w = _LineWriter(output)
    try:
        # a file runs with the cyclic collector off, as analyze does (pipeline.gc_tuned)
        with input_errors(file), gc_tuned(off=file != "-"):
            it = _Lines(file, Config(**_engine(*(engine.get(k) for k in _ENGINE_OPTIONS))), w.write)
            try:
                for _block in it._blocks():
                    pass
            finally:
                it.close()
        stats = it.stats
        stats_notes(file, stats)
        w.flush()
    finally:
        w.close()
    return stats


def _timelines(file: str, stream: int, engine: dict) -> tuple[list[dict], RunStats]:
    """The record of one stream with both endpoints' state timelines."""
    analyzer = Analyzer(make_config(**engine), keep_timeline=True)
    stats = run_capture(file, analyzer)
    conns = [c for c in analyzer.finish() if c.stream == stream]
    if not conns:
        raise no_stream(stream, file, analyzer.streams)
    return [summarize(c, timelines=True) for c in conns], stats


def _write(file: str, recs: list[dict], fmt: str, output: str | None, detail: bool) -> None:
    out, close = open_output(output)
    try:
        if fmt == "jsonl":
            for r in recs:
                out.write(json.dumps(r, separators=(",", ":")) + "\n")
        elif fmt == "json":
            out.write(json.dumps({"file": file, "connections": recs}, indent=2) + "\n")
        else:
            from tcpanalyze.report.flows_table import make_console, render_flows

            render_flows(recs, out, detail=detail,
                         console=make_console(out, None if output in (None, "-") else _env_int("COLUMNS", 120)))
    finally:
        if close:
            out.close()
