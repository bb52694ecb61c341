"""``tcpanalyze analyze``: connections, findings and a report for one or more capture files."""
from __future__ import annotations

import sys

import click

from tcpanalyze.commands.common import (EXIT_FAIL, EXIT_INPUT, EXIT_OK, EXIT_USAGE, engine_options, filter_options,
                                        no_stream, open_output, pop_engine_kw, warn)
from tcpanalyze.commands.reporting import FAIL_ON, stderr_notes, threshold_options
from tcpanalyze.findings import severity_at_least
from tcpanalyze.parallel import expand_inputs, iter_reports
from tcpanalyze.report.jsonout import dumps, summary_record, write_json, write_jsonl_file
from tcpanalyze.session import AnalyzeOptions, Selection, analyze_file, engine_kwargs, merge_reports, thresholds_from


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True,
              help="table: the rich report; json: one document; jsonl: one record per line.")
@click.option("--json", "fmt", flag_value="json", help="Shorthand for --format json.")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Shorthand for --format jsonl.")
@click.option("-o", "--output", default=None, help="Write the output to this file instead of stdout.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="never", show_default=True,
              help="Exit 1 when a finding of this severity or worse is found.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Worst connections listed in the table report.")
@click.option("--html", "html_path", default=None, metavar="FILE",
              help="Also write a self-contained HTML report (interactive graphs, works offline) to FILE. "
                   "Needs plotly: pip install 'tcpanalyze[html]'.")
@click.option("--html-connections", type=click.IntRange(min=0), default=10, show_default=True, metavar="N",
              help="--html: connections with per-packet graphs: the N worst by findings and the N longest "
                   "transfers (the others are summary rows).")
@click.option("--html-rows", type=click.IntRange(min=0), default=300, show_default=True, metavar="N",
              help="--html: rows of the connections table, the worst first (0: every connection; the page "
                   "says how many are not listed).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes in all: one file is read once and its connections split among them (same "
                   "output), several files run side by side. FILES may be directories or glob patterns.")
@filter_options("Only this connection (tcp.stream index, as in the whole capture).")
@threshold_options
@engine_options
def analyze(files, fmt, output, fail_on, top, html_path, html_connections, html_rows, jobs, stream, host, port, **kw):
    """Analyze capture FILES ('-' reads stdin): connections, findings, TIME_WAIT, worst connections.

    \b
    Findings: rst (refused, aborted, reset_after_close, unknown_connection, per_port),
    time_wait_buildup, server_active_close, syn_in_time_wait, window_shrink (reordered_ack),
    zero_window, retransmissions, handshake (syn_unanswered, syn_retries, synack_without_syn, rtt_outlier),
    close_wait_stall, half_close, data_after_fin, invalid_flags, port_reuse, lost_segment,
    ack_lost_segment, out_of_order, syn_flood, capture_quality.

    \b
    --stream, --host and --port analyze the selected connections only (stream numbers
    stay those of the whole capture); TIME_WAIT per host lists the hosts of the selected
    connections, counting every connection those hosts hold.

    \b
    Exit codes: 0 ok; 1 a finding at or above --fail-on; 2 usage error (a --stream the
    capture does not have); 3 a file could not be read (the other files are still
    reported); 4 the output could not be written.
    """
    th = thresholds_from(kw)
    engine = engine_kwargs(pop_engine_kw(kw))
    html = None
    keep = top if fmt == "table" else None
    if html_path is not None:
        from tcpanalyze.report.html import HtmlCollector, HtmlDependencyError, check_dependency

        try:
            check_dependency()
        except HtmlDependencyError as e:
            click.echo(f"tcpanalyze: error: {e}", err=True)
            sys.exit(EXIT_USAGE)
        html = HtmlCollector(connections=html_connections, rows=html_rows)
        if keep is not None:              # the page's table; the terminal report still shows --top
            keep = max(keep, html.rows) if html.rows else None
    # --json/--jsonl: connection records wait on disk, not in memory (tcpanalyze.records)
    options = AnalyzeOptions(engine=engine, thresholds=th, keep_connections=keep,
                             spill_records=fmt != "table", select=Selection(stream, host, port))
    reports = []
    # directories and globs expand to files; --jobs N runs them (or splits one) in processes (parallel.py)
    skipped: dict[str, list[str]] = {}
    files = expand_inputs(files, skipped)
    for d, names in skipped.items():
        warn(f"{d}: {len(names)} file(s) skipped, not pcap or pcapng captures: "
             + ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""))
    each = (iter_reports(files, options, jobs, meanwhile=_render_imports if fmt == "table" else None) if jobs > 1
            else (_one(path, options, html) for path in files))
    # The output is opened once a file could be read: when none can, stdout gets nothing
    # (and no -o file is created); the error lines on stderr say why.
    out = close = None
    unread = []                         # jsonl: reports of unreadable files not yet written
    try:
        for rep in each:
            stderr_notes(rep)
            reports.append(rep)
            if fmt == "jsonl":
                if _unreadable(rep) and out is None:
                    unread.append(rep)
                    continue
                if out is None:
                    out, close = open_output(output)
                for r in unread + [rep]:
                    write_jsonl_file(r, out)
                unread.clear()
                out.flush()
        total = merge_reports(reports, keep_connections=options.keep_connections)
        if reports and all(_unreadable(r) for r in reports):
            sys.exit(EXIT_INPUT)
        if stream is not None and not total.summary.get("connections"):
            raise no_stream(stream, ", ".join(files), None)
        if out is None:
            out, close = open_output(output)
        if fmt == "json":
            write_json(total, out)
        elif fmt == "jsonl":
            out.write(dumps(summary_record(total)) + "\n")
        else:
            from tcpanalyze.report.console import render
            from tcpanalyze.report.richout import OutConsole as Console

            if output is None or output == "-":
                console = Console(file=out)
            else:
                console = Console(file=out, width=120, color_system=None, force_terminal=False)
            render(total, console, top=top)
    finally:
        if out is not None:
            if close:
                out.close()
            else:
                out.flush()
    if html is not None and not all(_unreadable(r) for r in reports):
        from tcpanalyze.report.html import html_report

        size = html_report(html_path, total, html, options)
        click.echo(f"tcpanalyze: wrote {html_path} ({size / 1e6:.1f} MB)", err=True)
    if total.failed:
        sys.exit(EXIT_INPUT)
    worst = total.worst_severity
    if fail_on != "never" and worst is not None and severity_at_least(worst, fail_on):
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_OK)


def _render_imports() -> None:
    """The modules of the table report: imported by a --jobs run while its workers finish."""
    import tcpanalyze.report.console  # noqa: F401
    import tcpanalyze.report.richout  # noqa: F401


def _unreadable(rep) -> bool:
    """True when no file of ``rep`` could be read at all."""
    return all(f.get("error") for f in rep.files)


def _one(path: str, options, html=None):
    bar = None
    cb = None
    if sys.stderr.isatty() and path != "-":
        from tcpanalyze.report.progress import ProgressBar

        bar = ProgressBar(path)
        cb = bar.update
    try:
        if html is not None:
            from tcpanalyze.report.html import run_file

            rep, tw = run_file(path, options, progress=cb)
            html.add(tw)
            return rep
        return analyze_file(path, options, progress=cb)
    finally:
        if bar is not None:
            bar.close()
