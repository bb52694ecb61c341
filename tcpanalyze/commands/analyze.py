"""``tcpanalyze analyze``: connections, findings and a report for one or more capture files."""
from __future__ import annotations

import sys

import click

from tcpanalyze.commands.common import EXIT_FAIL, EXIT_INPUT, EXIT_OK, engine_options, open_output, pop_engine_kw, warn
from tcpanalyze.findings import (K_CLOSE_WAIT_S, K_HS_RTT_FACTOR, K_HS_RTT_MIN_S, K_MAX_FINDINGS_PER_KIND,
                                 K_RETRANS_MIN_SEGMENTS, K_RETRANS_RATE, K_SYN_FLOOD, K_TIME_WAIT_PEAK,
                                 K_ZERO_WINDOW_S)

FAIL_ON = ("info", "warning", "error", "never")


def threshold_options(f):
    """The detectors' thresholds (defaults: the ``K_*`` constants of ``tcpanalyze.findings``)."""
    opts = [
        click.option("--retrans-rate", type=click.FloatRange(min=0), default=K_RETRANS_RATE * 100, show_default=True,
                     help="retransmissions: warn above this percentage of a connection's data segments ..."),
        click.option("--retrans-min", type=click.IntRange(min=1), default=K_RETRANS_MIN_SEGMENTS, show_default=True,
                     help="... and only with at least this many retransmitted data segments."),
        click.option("--time-wait-peak", type=click.IntRange(min=0), default=K_TIME_WAIT_PEAK, show_default=True,
                     help="time_wait_buildup: warn when a host holds more connections than this in TIME_WAIT at once."),
        click.option("--close-wait", type=click.FloatRange(min=0), default=K_CLOSE_WAIT_S, show_default=True,
                     help="close_wait_stall: seconds a side may stay idle without FIN after the peer's FIN."),
        click.option("--zero-window", type=click.FloatRange(min=0), default=K_ZERO_WINDOW_S, show_default=True,
                     help="zero_window: an episode at least this many seconds long is a warning."),
        click.option("--syn-flood", type=click.IntRange(min=1), default=K_SYN_FLOOD, show_default=True,
                     help="syn_flood: unanswered SYNs to one host:port at or above this count."),
        click.option("--hs-rtt-factor", type=click.FloatRange(min=0), default=K_HS_RTT_FACTOR, show_default=True,
                     help="handshake rtt_outlier: handshake RTT above this factor times the median ..."),
        click.option("--hs-rtt-min-ms", type=click.FloatRange(min=0), default=K_HS_RTT_MIN_S * 1000, show_default=True,
                     help="... and above this many milliseconds."),
        click.option("--max-findings-per-kind", type=click.IntRange(min=0), default=K_MAX_FINDINGS_PER_KIND,
                     show_default=True, help="Findings listed per kind (all are still counted)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _thresholds(kw: dict):
    from tcpanalyze.findings import Thresholds

    return Thresholds(
        retrans_rate=kw.pop("retrans_rate") / 100.0, retrans_min_segments=kw.pop("retrans_min"),
        time_wait_peak=kw.pop("time_wait_peak"), close_wait_s=kw.pop("close_wait"),
        zero_window_s=kw.pop("zero_window"), syn_flood=kw.pop("syn_flood"), hs_rtt_factor=kw.pop("hs_rtt_factor"),
        hs_rtt_min_s=kw.pop("hs_rtt_min_ms") / 1000.0, max_findings_per_kind=kw.pop("max_findings_per_kind"),
        msl_s=kw.get("msl", 60.0))


def _engine_kwargs(ek: dict) -> dict:
    """``engine.Config`` keyword arguments from the engine options (as ``common.make_config``)."""
    out = {}
    if "fast_rtx_ms" in ek:
        out["fast_rtx_ns"] = int(ek["fast_rtx_ms"] * 1e6)
    if "ooo_ms" in ek:
        out["ooo_ns"] = int(ek["ooo_ms"] * 1e6)
    if "msl" in ek:
        out["msl_s"] = ek["msl"]
    if "max_unacked" in ek:
        out["max_unacked"] = ek["max_unacked"]
    if "max_connections" in ek:
        out["max_connections"] = ek["max_connections"]
    if "idle_timeout" in ek:
        out["idle_timeout_ns"] = int(ek["idle_timeout"] * 1e9)
    return out


def _stderr_notes(rep) -> None:
    """What ``run_capture`` prints for one file: errors, damage, decode errors (stderr)."""
    for f in rep.files:
        src = f["source"]
        if f.get("error"):
            click.echo(f"tcpanalyze: error: {f['error']}", err=True)
            continue
        for w in f.get("warnings", ()):
            warn(f"{src}: {w}")
        dmg = f.get("damage")
        if dmg:
            warn(f"{src}: {dmg['message']}" + ("" if dmg["fatal"] else "; analyzed up to the cut"))
        errs = f.get("decode_errors") or {}
        if errs:
            kinds = ", ".join(f"{k}={v}" for k, v in sorted(errs.items()))
            warn(f"{src}: {sum(errs.values())} frame(s) could not be decoded ({kinds})")


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
# --- parallel hook (issue 9, tcpanalyze/parallel.py): --jobs; directories and globs ---
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes: one file is split by connection (same output), several files run side by side. "
                   "FILES may be directories or glob patterns.")
# --- end parallel hook ---
@threshold_options
@engine_options
def analyze(files, fmt, output, fail_on, top, jobs, **kw):
    """Analyze capture FILES ('-' reads stdin): connections, findings, TIME_WAIT, worst connections.

    \b
    Findings: rst (refused, aborted, reset_after_close, unknown_connection, per_port),
    time_wait_buildup, server_active_close, syn_in_time_wait, window_shrink, zero_window,
    retransmissions, handshake (syn_unanswered, syn_retries, synack_without_syn, rtt_outlier),
    close_wait_stall, half_close, data_after_fin, invalid_flags, port_reuse, lost_segment,
    ack_lost_segment, out_of_order, syn_flood, capture_quality.

    \b
    Exit codes: 0 ok; 1 a finding at or above --fail-on; 3 a file could not be read
    (the other files are still reported).
    """
    from tcpanalyze.findings import severity_at_least
    from tcpanalyze.report.model import AnalyzeOptions, analyze_file, merge_reports

    th = _thresholds(kw)
    engine = _engine_kwargs(pop_engine_kw(kw))
    options = AnalyzeOptions(engine=engine, thresholds=th, keep_connections=top if fmt == "table" else None)
    if fmt == "table":
        from rich.console import Console

        if output is None or output == "-":
            out, close = sys.stdout, False
            console = Console(file=out)
        else:
            out, close = open_output(output)
            console = Console(file=out, width=120, color_system=None, force_terminal=False)
    else:
        out, close = open_output(output)
    reports = []
    # --- parallel hook (issue 9): expand directories/globs; --jobs N runs tcpanalyze.parallel ---
    from tcpanalyze.parallel import expand_inputs, iter_reports

    files = expand_inputs(files)
    each = iter_reports(files, options, jobs) if jobs > 1 else (_one(path, options) for path in files)
    # --- end parallel hook ---
    try:
        for rep in each:
            _stderr_notes(rep)
            reports.append(rep)
            if fmt == "jsonl":
                from tcpanalyze.report.jsonout import write_jsonl_file

                write_jsonl_file(rep, out)
                out.flush()
        total = merge_reports(reports, keep_connections=options.keep_connections)
        if fmt == "json":
            from tcpanalyze.report.jsonout import write_json

            write_json(total, out)
        elif fmt == "jsonl":
            from tcpanalyze.report.jsonout import dumps, summary_record

            out.write(dumps(summary_record(total)) + "\n")
        else:
            from tcpanalyze.report.console import render

            render(total, console, top=top)
    finally:
        if close:
            out.close()
        else:
            out.flush()
    if total.failed:
        sys.exit(EXIT_INPUT)
    worst = total.worst_severity
    if fail_on != "never" and worst is not None and severity_at_least(worst, fail_on):
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_OK)


def _one(path: str, options):
    from tcpanalyze.report.model import analyze_file

    bar = None
    cb = None
    if sys.stderr.isatty() and path != "-":
        from tcpanalyze.report.progress import ProgressBar

        bar = ProgressBar(path)
        cb = bar.update
    try:
        return analyze_file(path, options, progress=cb)
    finally:
        if bar is not None:
            bar.close()
