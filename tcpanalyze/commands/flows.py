"""``tcpanalyze flows``: one summary per connection; ``--stream N`` shows both endpoints' timelines."""
from __future__ import annotations

import json
import sys

import click

from tcpanalyze.api import connections
from tcpanalyze.commands.common import (EXIT_INPUT, engine_options, input_errors, make_config, no_stream,
                                        open_output, parquet_output, pop_engine_kw, run_capture, stats_notes)
from tcpanalyze.engine import Analyzer
from tcpanalyze.parquet import write_connections
from tcpanalyze.pipeline import RunStats, gc_tuned
from tcpanalyze.summary import summarize


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "parquet"]), default="table",
              show_default=True, help="parquet: a typed table for DuckDB, pandas, Spark (needs -o FILE and pyarrow).")
@click.option("--json", "fmt", flag_value="json", help="Shorthand for --format json.")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Shorthand for --format jsonl.")
@click.option("--stream", type=click.IntRange(min=0), default=None, help="Only this connection, with both endpoints' state timelines.")
@click.option("-o", "--output", default=None, help="Write to this file instead of stdout.")
@engine_options
def flows(file, fmt, stream, output, **kw):
    """Connection summaries of FILE: endpoints, RFC 9293 state of both ends, Zeek conn_state and
    history, packets and bytes each way, who closed first and how it ended."""
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
        else:
            # a file runs with the cyclic collector off, as analyze does (pipeline.gc_tuned)
            with input_errors(file), gc_tuned(off=file != "-"):
                it = connections(file, **engine)
                recs = [c.to_dict() for c in it]
            stats = it.stats
            stats_notes(file, stats)
        _write(file, recs, fmt, output, detail=stream is not None)
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)


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
            from tcpanalyze.report.flows_table import render_flows

            render_flows(recs, out, detail=detail)
    finally:
        if close:
            out.close()
