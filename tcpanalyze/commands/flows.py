"""``tcpanalyze flows``: one summary per connection; ``--stream N`` shows both endpoints' timelines."""
from __future__ import annotations

import json
import sys

import click

from tcpanalyze.commands.common import EXIT_INPUT, engine_options, make_config, open_output, pop_engine_kw, run_capture


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True)
@click.option("--json", "fmt", flag_value="json", help="Shorthand for --format json.")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Shorthand for --format jsonl.")
@click.option("--stream", type=int, default=None, help="Only this connection, with both endpoints' state timelines.")
@click.option("-o", "--output", default=None, help="Write to this file instead of stdout.")
@engine_options
def flows(file, fmt, stream, output, **kw):
    """Connection summaries of FILE: endpoints, RFC 9293 state of both ends, Zeek conn_state and
    history, packets and bytes each way, who closed first and how it ended."""
    from tcpanalyze.engine import Analyzer
    from tcpanalyze.summary import summarize

    analyzer = Analyzer(make_config(**pop_engine_kw(kw)), keep_timeline=True)
    stats = run_capture(file, analyzer)
    conns = analyzer.finish()
    if stream is not None:
        conns = [c for c in conns if c.stream == stream]
        if not conns:
            raise click.BadParameter(f"no stream {stream} in {file} (it has {analyzer.streams} streams)",
                                     param_hint="--stream")
    recs = [summarize(c, timelines=stream is not None) for c in conns]
    out, close = open_output(output)
    try:
        if fmt == "jsonl":
            for r in recs:
                out.write(json.dumps(r, separators=(",", ":")) + "\n")
        elif fmt == "json":
            out.write(json.dumps({"file": file, "connections": recs}, indent=2) + "\n")
        else:
            from tcpanalyze.report.flows_table import render_flows

            render_flows(recs, out, detail=stream is not None)
    finally:
        if close:
            out.close()
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)
