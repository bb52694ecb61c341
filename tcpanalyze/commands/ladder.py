"""``tcpanalyze ladder``: the ladder diagram of one connection, in the terminal or as SVG."""
from __future__ import annotations

import sys

import click

from tcpanalyze.engine import Analyzer
from tcpanalyze.findings import Detectors
from tcpanalyze.findings.stall import stall_spans
from tcpanalyze.report.ladder import LadderCollector, print_ladder, render_svg

from tcpanalyze.commands.common import (EXIT_INPUT, engine_options, make_config, no_stream, open_output,
                                        pop_engine_kw, run_capture, stdout)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--stream", type=click.IntRange(min=0), required=True, help="The connection (tcp.stream index).")
@click.option("--absolute", is_flag=True, help="Raw sequence and acknowledgment numbers instead of relative.")
@click.option("--max-packets", type=click.IntRange(min=0), default=40, show_default=True,
              help="Segments drawn: the first half and the last half, the middle elided with a count; 0 = all.")
@click.option("--svg", "svg_path", default=None, metavar="PATH",
              help="Write the ladder as an SVG document to PATH ('-' for stdout) instead of printing it.")
@click.option("--width", type=click.IntRange(min=60), default=None,
              help="Terminal width in cells (default: the terminal's, or 100 when not a terminal).")
@engine_options
def ladder(file, stream, absolute, max_packets, svg_path, width, **kw):
    """Ladder diagram of one connection of FILE: client left, server right, one arrow per
    segment labelled like the lecture notes (SYN, ACK(SEQ=0, ACK=1, LEN=0)), analysis flags
    marked, each endpoint's TCP state written where it changes.

    Payload bytes are not kept, so data segments are labelled by their flags only
    (ACK(SEQ=1, ACK=1, LEN=562)); PSH is left out."""

    cfg = make_config(**pop_engine_kw(kw))
    analyzer = Analyzer(cfg, keep_timeline=True)
    collector = LadderCollector(stream, max_packets=max_packets, absolute=absolute)
    det = Detectors()           # the stall detector's watch, for this stream only

    def on_segment(seg, a) -> None:
        collector(seg, a)
        if a.verdict.conn.stream == stream:
            det.on_segment(seg, a)

    stats = run_capture(file, analyzer, on_segment=on_segment, progress=True)
    analyzer.finish()
    if collector.conn is None:
        raise no_stream(stream, file, analyzer.streams)
    conn = collector.conn
    lad = collector.build([st for d in (0, 1) for st in stall_spans(conn, det.th, d)])
    if svg_path is not None:
        doc = render_svg(lad)
        if svg_path == "-":
            out = stdout()
            out.write(doc)
            out.flush()
        else:
            out, _ = open_output(svg_path)
            try:
                out.write(doc)
            finally:
                out.close()
            click.echo(f"tcpanalyze: wrote {svg_path} ({lad.shown} of {lad.total} segments)", err=True)
    else:
        from tcpanalyze.report.richout import OutConsole as Console

        console = Console(file=stdout(), highlight=False, width=width)
        if width is None and not console.is_terminal:
            console = Console(file=stdout(), highlight=False, width=100)
        print_ladder(lad, console)
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)
