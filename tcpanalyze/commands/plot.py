"""``tcpanalyze plot``: time-sequence, window, RTT and TIME_WAIT plots (needs the [plot] extra)."""
from __future__ import annotations

import os
import sys

import click

from tcpanalyze.engine import Analyzer, addr_port
from tcpanalyze.findings import Detectors
from tcpanalyze.findings.stall import stall_spans
from tcpanalyze.report import plots

from tcpanalyze.commands.common import EXIT_INPUT, EXIT_USAGE, UsageProblem, engine_options, input_errors, \
    make_config, no_stream, pop_engine_kw, run_capture, warn

KINDS = ("tseq", "window", "rtt", "timewait")
FORMATS = (".png", ".svg", ".pdf")


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        click.echo("tcpanalyze: error: plots need matplotlib: pip install 'tcpanalyze[plot]'", err=True)
        sys.exit(EXIT_USAGE)


def _range(text: str | None, option: str, what: str):
    """``--time-range``/``--seq-range`` A:B -> (low, high); a one-line usage error (exit 2)."""
    if text is None:
        return None
    try:
        return plots.parse_range(text, what)
    except ValueError as e:
        raise UsageProblem(f"{option} {text!r}: {e}") from None


def busiest_stream(file: str, cfg) -> tuple[int, str, int] | None:
    """(stream, "client A → server B", payload bytes) of the connection that carried the most
    data (payload bytes of both directions; ties: more packets, then the lower index), by a
    first pass over the file; None when it has no TCP connection.  Its warnings are left to
    the second pass, which reports them."""
    from tcpanalyze.pipeline import analyze_source

    best = [(-1, -1, 0), None]

    def done(conn) -> None:
        f0, f1 = conn.flows
        key = (f0.stats.bytes + f1.stats.bytes, f0.stats.pkts + f1.stats.pkts, -conn.stream)
        if key > best[0]:
            o = conn.orig
            best[0] = key
            best[1] = (conn.stream, f"client {addr_port(conn, o)} → server {addr_port(conn, o ^ 1)}", key[0])

    analyzer = Analyzer(cfg, keep_timeline=False, on_conn_done=done, detail=False, diagnose=False)
    with input_errors(file):
        analyze_source(file, analyzer)
    analyzer.finish()
    return best[1]


def _size(n: int) -> str:
    for scale, unit in plots.BYTE_UNITS:
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--kind", type=click.Choice(KINDS), required=True,
              help="tseq: time-sequence graph; window: advertised window and bytes in flight; "
                   "rtt: RTT samples; timewait: TIME_WAIT per host over the whole file.")
@click.option("--stream", type=click.IntRange(min=0), default=None,
              help="The connection (tcp.stream index); default: the one with the most data (the file "
                   "is then read twice; stdin needs --stream).  Not used by --kind timewait.")
@click.option("-o", "--output", required=True, metavar="PATH",
              help="Image to write; the format follows the extension (.png, .svg, .pdf).")
@click.option("--direction", type=click.Choice(["auto", "client", "server"]), default="auto", show_default=True,
              help="tseq: whose data to draw (auto: the side that sent more bytes).")
@click.option("--time-range", metavar="A:B", default=None,
              help="The time axis from A to B seconds (since the connection's first segment; for timewait "
                   "since the capture's); A: or :B leave an end open.  The other axis fits what is inside.")
@click.option("--seq-range", metavar="A:B", default=None,
              help="tseq: the sequence axis from A to B (relative sequence numbers, bytes; k/M/G suffixes "
                   "are 1000s); A: or :B leave an end open.  The time axis fits what is inside.")
@click.option("--threshold", type=click.IntRange(min=0), default=100, show_default=True,
              help="timewait: the threshold line (connections in TIME_WAIT per host).")
@click.option("--top", type=click.IntRange(min=1), default=8, show_default=True,
              help="timewait: hosts drawn (those with the highest peaks).")
@engine_options
def plot(file, kind, stream, output, direction, time_range, seq_range, threshold, top, **kw):
    """Draw one plot of FILE into an image.  tseq/window/rtt show one connection (--stream,
    by default the one with the most data); timewait covers the whole file.  Needs
    matplotlib: pip install 'tcpanalyze[plot]'."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in FORMATS:
        raise click.BadParameter(f"unsupported image type {ext or '(none)'!r}; use {', '.join(FORMATS)}",
                                 param_hint="--output")
    trange = _range(time_range, "--time-range", "time")
    srange = _range(seq_range, "--seq-range", "seq")
    if srange is not None and kind != "tseq":
        raise UsageProblem(f"--seq-range applies to --kind tseq only (not {kind})")
    if kind != "timewait" and stream is None and file == "-":
        raise UsageProblem(f"--kind {kind} on standard input needs --stream N (choosing the connection "
                           "with the most data reads the capture twice)")
    _need_matplotlib()

    cfg = make_config(**pop_engine_kw(kw))
    if kind == "timewait":
        if stream is not None:
            warn("--stream is ignored for --kind timewait (it covers the whole file)")
        analyzer = Analyzer(cfg, keep_timeline=False)
        stats = run_capture(file, analyzer, progress=True)
        analyzer.finish()
        info = plots.plot_timewait(analyzer, output, threshold=threshold, top=top, time_range=trange)
    else:
        if stream is None:
            chosen = busiest_stream(file, cfg)
            if chosen is None:
                raise UsageProblem(f"{file}: no TCP connection to draw")
            stream, name, nbytes = chosen
            click.echo(f"tcpanalyze: --stream not given: drawing tcp.stream {stream} ({name}), "
                       f"the connection with the most data ({_size(nbytes)})", err=True)
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
                                   stalls=[st for d in (0, 1) for st in stall_spans(rec.conn, det.th, d)],
                                   time_range=trange, seq_range=srange)
        elif kind == "window":
            info = plots.plot_window(rec, output, time_range=trange)
        else:
            info = plots.plot_rtt(rec, output, time_range=trange)
    detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info.items())
    click.echo(f"tcpanalyze: wrote {output} ({detail})", err=True)
    if stats.damage is not None and stats.damage.fatal:
        sys.exit(EXIT_INPUT)
