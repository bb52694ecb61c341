"""``tcpanalyze plot``: time-sequence, window, RTT and TIME_WAIT plots (needs the [plot] extra)."""
from __future__ import annotations

import os
import sys

import click

from tcpanalyze.engine import Analyzer
from tcpanalyze.findings import Detectors
from tcpanalyze.findings.stall import stall_spans
from tcpanalyze.report import plots

from tcpanalyze.commands.common import EXIT_INPUT, EXIT_USAGE, engine_options, make_config, no_stream, \
    pop_engine_kw, run_capture, warn

KINDS = ("tseq", "window", "rtt", "timewait")
FORMATS = (".png", ".svg", ".pdf")


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        click.echo("tcpanalyze: error: plots need matplotlib: pip install 'tcpanalyze[plot]'", err=True)
        sys.exit(EXIT_USAGE)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--kind", type=click.Choice(KINDS), required=True,
              help="tseq: time-sequence graph; window: advertised window and bytes in flight; "
                   "rtt: RTT samples; timewait: TIME_WAIT per host over the whole file.")
@click.option("--stream", type=click.IntRange(min=0), default=None,
              help="The connection (tcp.stream index); required except for --kind timewait.")
@click.option("-o", "--output", required=True, metavar="PATH",
              help="Image to write; the format follows the extension (.png, .svg, .pdf).")
@click.option("--direction", type=click.Choice(["auto", "client", "server"]), default="auto", show_default=True,
              help="tseq: whose data to draw (auto: the side that sent more bytes).")
@click.option("--threshold", type=click.IntRange(min=0), default=100, show_default=True,
              help="timewait: the threshold line (connections in TIME_WAIT per host).")
@click.option("--top", type=click.IntRange(min=1), default=8, show_default=True,
              help="timewait: hosts drawn (those with the highest peaks).")
@engine_options
def plot(file, kind, stream, output, direction, threshold, top, **kw):
    """Draw one plot of FILE into an image.  tseq/window/rtt show one connection (--stream);
    timewait covers the whole file.  Needs matplotlib: pip install 'tcpanalyze[plot]'."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in FORMATS:
        raise click.BadParameter(f"unsupported image type {ext or '(none)'!r}; use {', '.join(FORMATS)}",
                                 param_hint="--output")
    if kind != "timewait" and stream is None:
        raise click.UsageError(f"--kind {kind} needs --stream N (the connection to draw)")
    _need_matplotlib()

    cfg = make_config(**pop_engine_kw(kw))
    if kind == "timewait":
        if stream is not None:
            warn("--stream is ignored for --kind timewait (it covers the whole file)")
        analyzer = Analyzer(cfg, keep_timeline=False)
        stats = run_capture(file, analyzer, progress=True)
        analyzer.finish()
        info = plots.plot_timewait(analyzer, output, threshold=threshold, top=top)
    else:
        analyzer = Analyzer(cfg, keep_timeline=False, keep_rtt=True)
        rec = plots.StreamRecorder(stream)
        det = Detectors()       # the stall detector's watch, for this stream only

        def on_segment(seg, a) -> None:
            rec(seg, a)
            if a.verdict.conn.stream == stream:
                det.on_segment(seg, a)

        stats = run_capture(file, analyzer, on_segment=on_segment, progress=True)
        analyzer.finish()
        if rec.conn is None:
            raise no_stream(stream, file, analyzer.streams)
        if kind == "tseq":
            info = plots.plot_tseq(rec, output, direction=direction,
                                   stalls=[st for d in (0, 1) for st in stall_spans(rec.conn, det.th, d)])
        elif kind == "window":
            info = plots.plot_window(rec, output)
        else:
            info = plots.plot_rtt(rec, output)
    detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info.items())
    click.echo(f"tcpanalyze: wrote {output} ({detail})", err=True)
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)
