"""``tcpanalyze check``: the CI gate.  Apply a policy (TOML file and/or options) to capture files.

Exit codes (the first that applies): 2 usage or policy error (nothing is read); 4 an output
(summary, -o, --junit) could not be written; 3 a file could not be read (the others are still
checked and reported); 1 a rule failed; 0 every rule passed.
"""
from __future__ import annotations

import json
import sys
import time

import click

from tcpanalyze.commands.reporting import stderr_notes, threshold_options
from tcpanalyze.commands.common import EXIT_USAGE, engine_options, open_output, pop_engine_kw, stdout
from tcpanalyze.errors import OutputError
from tcpanalyze import engine as E
from tcpanalyze.policy import (FileResult, Policy, PolicyError, baseline_view, evaluate, exit_code, file_views,
                               load_policy, parse_tolerances, validate_baseline)
from tcpanalyze.report import ci
from tcpanalyze.session import AnalyzeOptions, analyze_file, engine_kwargs, thresholds_from


class CheckUsageError(click.ClickException):
    """Bad policy, option or baseline: one line on stderr, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None):
        click.echo(f"tcpanalyze: error: {self.format_message()}", err=True)


def _check_engine_options(f):
    """``engine_options`` without ``--max-connections`` (here a rule), which becomes
    ``--max-live-connections``."""
    f = engine_options(f)
    f.__click_params__ = [p for p in f.__click_params__ if p.name != "max_connections"]
    return click.option("--max-live-connections", "live_connections", type=click.IntRange(min=1),
                        default=E.K_MAX_CONNECTIONS, show_default=True,
                        help="Live connections the engine keeps (analyze's --max-connections).")(f)


def rule_options(f):
    opts = [
        click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
                     help="Policy file (TOML); the options below override its top-level rules."),
        click.option("--max-rst", type=click.IntRange(min=0), default=None,
                     help="Reset connections allowed per file."),
        click.option("--max-rst-per-port", type=click.IntRange(min=0), default=None,
                     help="Reset connections allowed per server port."),
        click.option("--forbid", multiple=True, metavar="KIND",
                     help="Finding kind (or kind/subkind) that must not appear; repeat or comma-separate "
                          "(replaces the policy's list)."),
        click.option("--max-retransmission-rate", type=click.FloatRange(0, 100), default=None, metavar="PERCENT",
                     help="Retransmitted data segments, percent of all data segments."),
        click.option("--max-time-wait", type=click.IntRange(min=0), default=None,
                     help="Connections in TIME_WAIT at once on one host (peak)."),
        click.option("--max-handshake-rtt-ms", type=click.FloatRange(min=0), default=None,
                     help="Largest handshake RTT (SYN to ACK of SYN/ACK), ms."),
        click.option("--max-handshake-rtt-p95-ms", type=click.FloatRange(min=0), default=None,
                     help="95th percentile of the handshake RTTs, ms."),
        click.option("--max-zero-window-ms", type=click.FloatRange(min=0), default=None,
                     help="Longest zero-window episode, ms."),
        click.option("--require-complete/--no-require-complete", default=None,
                     help="Every connection opened (handshake) and closed cleanly (FIN both ways, no RST)."),
        click.option("--allow-server-active-close/--no-allow-server-active-close", default=None,
                     help="Whether the server may send the first FIN (and so hold TIME_WAIT)."),
        click.option("--min-connections", type=click.IntRange(min=0), default=None,
                     help="Fewest connections per file."),
        click.option("--max-connections", type=click.IntRange(min=0), default=None,
                     help="Most connections per file."),
        click.option("--baseline", type=click.Path(dir_okay=False), default=None,
                     help="'analyze --json' document to compare with: fail when a metric got worse by more "
                          "than its tolerance."),
        click.option("--tolerance", multiple=True, metavar="METRIC=VALUE",
                     help="Baseline tolerance, e.g. retransmission_rate=0.5 (points); 'off' skips the metric."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


_RULE_OPTS = ("max_rst", "max_rst_per_port", "forbid", "max_retransmission_rate", "max_time_wait",
              "max_handshake_rtt_ms", "max_handshake_rtt_p95_ms", "max_zero_window_ms", "require_complete",
              "allow_server_active_close", "min_connections", "max_connections")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@rule_options
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), default=None,
              help="Write JUnit XML here: one testsuite per file, one testcase per rule.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of the summary.")
@click.option("-o", "--output", default=None, help="Write the summary (or JSON) to this file instead of stdout.")
@click.option("--github", is_flag=True, help="Print GitHub Actions ::error annotations (stdout).")
@click.option("-q", "--quiet", is_flag=True, help="Summary: list failed rules only.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write a self-contained HTML report (rule results, findings, interactive graphs) to FILE. "
                   "Needs plotly: pip install 'tcpanalyze[html]'.")
@click.option("--html-connections", type=click.IntRange(min=0), default=10, show_default=True, metavar="N",
              help="--html: connections with per-packet graphs: the N worst by findings and the N longest "
                   "transfers.")
@click.option("--html-rows", type=click.IntRange(min=0), default=300, show_default=True, metavar="N",
              help="--html: rows of the connections table, the worst first (0: every connection; the page "
                   "says how many are not listed).")
@threshold_options
@_check_engine_options
def check(files, policy_path, junit_path, as_json, output, github, quiet, html_path, html_connections, html_rows, baseline,
          tolerance, live_connections, **kw):
    """Check capture FILES against a policy; exit 1 when a rule fails.  For CI.

    \b
    Rules (policy keys; options override the policy's top level):
      max_rst, max_rst.per_port, forbid, max_retransmission_rate, max_time_wait,
      max_handshake_rtt_ms (p95, max), max_zero_window_ms, require_complete,
      allow_server_active_close, min_connections, max_connections;
      [[rule]] tables add rules for a host, port, stream or file; [baseline] compares
      with an 'analyze --json' document.  See docs/check.md.

    \b
    Exit codes (the first that applies):
      2 usage or policy error (bad option, policy key or value: the message names key and line);
      4 the summary, the -o file, the --junit or the --html file could not be written;
      3 a file could not be read (the other files are still checked and reported);
      1 a rule failed;
      0 every rule passed.
    """
    rule_kw = {k: kw.pop(k) for k in _RULE_OPTS}
    if not rule_kw["forbid"]:
        rule_kw["forbid"] = None
    try:
        policy = load_policy(policy_path) if policy_path else Policy()
        policy = policy.with_overrides(**rule_kw)
        if baseline is not None:
            policy.baseline = baseline
        if tolerance:
            if policy.baseline is None:
                raise PolicyError("--tolerance needs a baseline (--baseline FILE or [baseline] file = ...)")
            policy.tolerance = parse_tolerances(tolerance, policy.tolerance)
        if policy.empty():
            raise PolicyError("no rules to check: give --policy FILE and/or rule options (see --help)")
        if github and as_json and (output is None or output == "-"):
            raise PolicyError("--github and --json both write to stdout: write the JSON with -o FILE")
        base_doc = _load_baseline(policy.baseline) if policy.baseline is not None else None
        html = None
        if html_path is not None:
            from tcpanalyze.report.html import HtmlCollector, HtmlDependencyError, check_dependency

            try:
                check_dependency()
            except HtmlDependencyError as e:
                raise PolicyError(str(e)) from None
            html = HtmlCollector(connections=html_connections, rows=html_rows)
    except PolicyError as e:
        raise CheckUsageError(str(e)) from None

    th = thresholds_from(kw)
    ek = pop_engine_kw(kw)
    ek["max_connections"] = live_connections
    options = AnalyzeOptions(engine=engine_kwargs(ek), thresholds=th, keep_connections=None)
    reports: list | None = [] if html is not None else None
    results = [_check_one(path, options, policy, base_doc, evaluate, reports, html) for path in files]

    if junit_path:
        try:
            with open(junit_path, "wb") as fh:
                ci.write_junit(results, fh, policy.source)
        except OSError as e:
            raise OutputError.from_oserror(junit_path, e) from None
    if github:
        so = stdout()
        for line in ci.github_annotations(results):
            so.write(line + "\n")
    out, close = open_output(output)
    try:
        if as_json:
            json.dump(ci.check_document(results, policy), out, indent=2, default=str)
            out.write("\n")
        else:
            out.write(ci.text_summary(results, policy.source, verbose=not quiet))
    finally:
        if close:
            out.close()
        else:
            out.flush()
    if html is not None and reports:
        from tcpanalyze.report.html import html_report, policy_results
        from tcpanalyze.session import merge_reports

        size = html_report(html_path, merge_reports(reports), html, options, policy_results(results),
                           title="tcpanalyze check")
        click.echo(f"tcpanalyze: wrote {html_path} ({size / 1e6:.1f} MB)", err=True)
    sys.exit(exit_code(results))


def _load_baseline(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as e:
        raise PolicyError(f"cannot read baseline {path}: {e.strerror or e}", key="baseline") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise PolicyError(f"baseline {path} is not JSON: {e}", key="baseline") from None
    try:
        validate_baseline(doc)
    except PolicyError as e:
        raise PolicyError(f"{path}: {e}", key="baseline") from None
    return file_views(doc)


def _check_one(path: str, options, policy, base_views, evaluate, reports=None, html=None):
    t0 = time.perf_counter()
    if html is not None:
        from tcpanalyze.report.html import run_file

        rep, tw = run_file(path, options)
        html.add(tw)
    else:
        rep = analyze_file(path, options)
    if reports is not None:
        reports.append(rep)
    elapsed = time.perf_counter() - t0
    stderr_notes(rep)
    view = file_views(rep)[0]
    view.file = path
    entry = rep.files[0]
    if entry.get("error"):
        return FileResult(file=path, error=entry["error"], time=elapsed, summary={})
    base = baseline_view(base_views, path) if base_views is not None else None
    res = FileResult(file=path, results=evaluate(view, policy, base), time=elapsed, summary=view.summary)
    # corrupt past a point: the rules saw what could be read, and the file still counts as unreadable
    res.error = view.error
    return res
