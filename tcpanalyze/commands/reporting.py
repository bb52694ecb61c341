"""Options and helpers shared by the commands that build a report (analyze, check, live)."""
from __future__ import annotations

import click

from tcpanalyze.commands.common import warn  # noqa: F401 - the commands import it from here
from tcpanalyze.findings import (K_CLOSE_WAIT_S, K_HS_RTT_FACTOR, K_HS_RTT_MIN_S, K_MAX_FINDINGS_PER_KIND,
                                 K_RETRANS_MIN_SEGMENTS, K_RETRANS_RATE, K_SYN_FLOOD, K_TIME_WAIT_PEAK,
                                 K_ZERO_WINDOW_S)
from tcpanalyze.findings.base import THRESHOLDS
from tcpanalyze.session import engine_kwargs, thresholds_from  # noqa: F401 - commands.live imports them from here

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
    for t in THRESHOLDS.values():      # declared by the detector modules (findings.base.declare_threshold)
        opts.append(click.option(f"--{t.name.replace('_', '-')}", t.name, type=t.type, default=t.default,
                                 show_default=True, help=t.help))
    for o in reversed(opts):
        f = o(f)
    return f


def stderr_notes(rep) -> None:
    """What ``run_capture`` prints for one file: errors, damage, decode errors (stderr)."""
    for f in rep.files:
        src = f["source"]
        if f.get("error"):
            name = "standard input" if src == "-" else src
            msg = f["error"] if name in f["error"] else f"{name}: {f['error']}"
            click.echo(f"tcpanalyze: error: {msg}", err=True)
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
