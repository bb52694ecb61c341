"""``tcpanalyze packets``: one row per TCP segment, Wireshark-comparable."""
from __future__ import annotations

import json
import sys

import click

from tcpanalyze.commands.common import (EXIT_INPUT, engine_options, filter_options, input_errors, make_config,
                                        no_stream, open_output, parquet_output, pop_engine_kw, run_capture,
                                        stats_notes, UsageProblem)
from tcpanalyze.engine import Analyzer, reused_ports_reason
from tcpanalyze.errors import SourceError
from tcpanalyze.model import addr_str, flag_str
from tcpanalyze.pipeline import gc_tuned
from tcpanalyze.rows import COLUMNS, TsvRows
from tcpanalyze.sources.pcap import open_capture


def _ts(ns: int) -> str:
    if ns < 0:
        return "-" + _ts(-ns)
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _segment_filter(stream, host, port):
    """``api.segment_filter``, imported only when a filter is given: the TSV and JSONL rows
    need nothing else of the library API (nor the ``--jobs`` modules it loads)."""
    if stream is None and host is None and port is None:
        return None
    from tcpanalyze.api import segment_filter
    return segment_filter(stream, host, port)


def _first_ns(path: str) -> int | None:
    """The timestamp of the capture's first frame (None for stdin, or when it cannot be read:
    the run itself then reports why)."""
    if path == "-":
        return None
    try:
        reader = open_capture(path)
    except (SourceError, OSError):
        return None
    try:
        for rec in reader:
            return rec[1]
        return None
    except (SourceError, OSError):
        return None
    finally:
        reader.close()


class _HeaderFirst:
    """``write`` that writes ``head`` before the first text it is given (or at ``done()``)."""

    __slots__ = ("write", "head")

    def __init__(self, write, head: str):
        self.write = write
        self.head = head

    def __call__(self, s: str) -> None:
        if self.head:
            self.write(self.head)
            self.head = ""
        self.write(s)

    def done(self) -> None:
        if self.head:
            self.write(self.head)
            self.head = ""


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["tsv", "jsonl", "parquet"]), default="tsv", show_default=True,
              help="parquet: a typed table for DuckDB, pandas, Spark (needs -o FILE and pyarrow).")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Shorthand for --format jsonl.")
@click.option("--absolute", is_flag=True, help="Raw sequence and acknowledgment numbers instead of relative.")
@click.option("--relative-time", is_flag=True,
              help="time: seconds since the capture's first packet (Wireshark's default time display) "
                   "instead of since the epoch.")
@filter_options("Only this stream (tcp.stream index).")
@click.option("-o", "--output", default=None, help="Write to this file instead of stdout.")
@engine_options
def packets(file, fmt, absolute, relative_time, stream, host, port, output, **kw):
    """One row per TCP segment of FILE ('-' reads stdin): relative SEQ/ACK, calculated window,
    Wireshark-named analysis flags (with their reasons in jsonl), ack_rtt, bytes in flight."""
    engine = pop_engine_kw(kw)
    if fmt == "parquet" and relative_time:
        raise UsageProblem("--relative-time applies to tsv and jsonl; the Parquet columns time and ts_ns "
                           "are absolute (subtract the first value)")
    if fmt == "parquet":
        from tcpanalyze.api import packets as packet_stream
        from tcpanalyze.parquet import write_packets
        path = parquet_output(output)
        with input_errors(file), gc_tuned(off=file != "-"):
            it = packet_stream(file, absolute=absolute, stream=stream, host=host, port=port, **engine)
            write_packets(it, path)
        stats_notes(file, it.stats)
        if stream is not None and stream >= it._analyzer.streams:
            raise no_stream(stream, file, it._analyzer.streams)
        if it.stats.damage is not None and it.stats.damage.fatal:
            sys.exit(EXIT_INPUT)
        return
    cfg = make_config(explain=(fmt == "jsonl"), **engine)
    out, close = open_output(output)
    if fmt == "tsv":
        # the header goes out with the first rows (or after a capture without TCP), so that
        # stdout gets nothing when the capture cannot be read
        write = _HeaderFirst(out.write, "\t".join(COLUMNS) + "\n")
    else:
        write = out.write

    wanted = _segment_filter(stream, host, port)
    filtered = wanted is not None
    # The TSV row is the hot path of this command: rows.TsvRows, compiled with the core.
    t0 = _first_ns(file) if relative_time else None
    tsv = TsvRows(write, absolute, wanted, relative=relative_time, t0=t0)
    base = [t0]
    # packets keeps nothing of finished connections: their cached row text goes with them
    analyzer = Analyzer(cfg, keep_timeline=False, on_conn_done=tsv.drop, diagnose=False)
    buf = []
    append = buf.append
    flush_at = 2048

    def row_jsonl(seg, a):
        conn = a.verdict.conn
        if relative_time and base[0] is None:
            base[0] = seg.ts_ns
        if filtered and not wanted(seg, conn):
            return
        if absolute:
            s, k = seg.seq, (seg.ack if seg.flags & 0x10 else 0)
        else:
            s, k = a.verdict.rel_seq, a.verdict.rel_ack
        rtt = a.verdict.ack_rtt
        bif = a.verdict.bytes_in_flight
        rec = {"frame": seg.frame, "time": _ts(seg.ts_ns - base[0] if relative_time else seg.ts_ns), "stream": conn.stream, "src": addr_str(seg.src),
               "sport": seg.sport, "dst": addr_str(seg.dst), "dport": seg.dport, "seq": s, "ack": k,
               "len": seg.paylen, "flags": flag_str(seg.flags), "win": a.verdict.win,
               "analysis": a.verdict.reasons or {}, "ack_rtt": None if rtt < 0 else rtt / 1e9,
               "acks_frame": a.verdict.acks_frame or None, "bytes_in_flight": None if bif < 0 else bif,
               "dup_ack_num": a.verdict.dupack_num or None,
               "dup_ack_frame": a.verdict.dupack_frame if a.verdict.dupack_num else None}
        if a.verdict.analysis & 0x2000:
            rec["analysis"]["reused_ports"] = reused_ports_reason(seg.flags)
        append(json.dumps(rec, separators=(",", ":")) + "\n")
        if len(buf) >= flush_at:
            write("".join(buf))
            buf.clear()

    row = tsv if fmt == "tsv" else row_jsonl

    try:
        stats = run_capture(file, analyzer, on_segment=row, progress=output is not None)
        analyzer.finish()
        if stream is not None and stream >= analyzer.streams:
            raise no_stream(stream, file, analyzer.streams)
        tsv.flush()
        if fmt == "tsv":
            write.done()
        if buf:
            write("".join(buf))
    finally:
        if close:
            out.close()
        else:
            out.flush()
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)
