"""``tcpanalyze live``: capture on an interface, analyze packet by packet, end with the analyze report.
``tcpanalyze interfaces``: list the capture interfaces.

One thread captures and analyses (the backend's kernel ring buffer, or dumpcap's pipe, is the
queue in front of it); the live view, when on, is drawn by rich's refresh thread from a
snapshot the analysis loop publishes a few times a second (never more than ~5 % of its time).
The clock of the engine is the packets' own timestamps.  See docs/live.md.
"""
from __future__ import annotations

import signal
import sys
import time

import click

from tcpanalyze.commands.reporting import FAIL_ON, engine_kwargs, thresholds_from, threshold_options
from tcpanalyze.commands.common import (EXIT_FAIL, EXIT_OK, InputError, UsageProblem, engine_options,
                                        open_output, pop_engine_kw, stdout, warn)

#: default --idle-timeout of ``live`` (s): an open connection idle this long expires (bounded memory)
K_LIVE_IDLE_TIMEOUT_S = 300.0
#: live-view snapshot period (s) and its cost bound (fraction of the analysis loop's time)
K_SNAPSHOT_S = 0.25
K_SNAPSHOT_SHARE = 0.05


def _live_engine_options(f):
    f = engine_options(f)
    for p in getattr(f, "__click_params__", ()):
        if p.name == "idle_timeout":
            p.default = K_LIVE_IDLE_TIMEOUT_S
            p.help = (f"Seconds of capture time after which an idle open connection expires (live default "
                      f"{K_LIVE_IDLE_TIMEOUT_S:g} s, so a long capture keeps bounded memory; 0: never).")
    return f


# ---------------------------------------------------------------------------- the report of a run
class LiveSession:
    """``session.ReportBuilder`` fed packet by packet, plus two live counters for the view:
    ``report(stats)`` builds the same ``Report`` analyze builds."""

    def __init__(self, source: str, options):
        from tcpanalyze.session import ReportBuilder

        self.source = source
        self.options = options
        self.builder = ReportBuilder(source, options)
        self.th = self.builder.th
        self.det = self.builder.det
        self.conns = self.builder.conns
        self.analyzer = self.builder.analyzer
        self.rst = 0
        self.rtx = 0
        self.on_segment = self._make_on_segment()

    def _make_on_segment(self):
        from tcpanalyze import analysis as A
        from tcpanalyze.model import RST

        examined = self.det.on_segment
        rtx_bits = A.RETRANSMISSION_FAMILY
        me = self

        def on_segment(seg, a):
            # the detectors' callback, plus two live counters of the segments it examined
            if examined(seg, a):
                if seg.flags & RST:
                    me.rst += 1
                if a.verdict.analysis & rtx_bits:
                    me.rtx += 1

        return on_segment

    def report(self, stats):
        """Finish the engine and build the Report."""
        return self.builder.build(stats)

    # ------------------------------------------------------------------ live view data
    def snapshot(self, now_wall: float, started: float, frames: int, nbytes: int, pps: float,
                 drops: dict | None, backend: str) -> dict:
        """What the live view shows (computed in the analysis thread: the view only formats it)."""
        from tcpanalyze.model import addr_str

        an = self.analyzer
        states: dict[str, int] = {}
        active = 0
        n_open = 0
        for conn, d in an.table.values():
            if d:
                continue
            active += 1
            if conn.end_reason == "open":
                n_open += 1
            o = conn.orig
            a, b = conn.state[o], conn.state[o ^ 1]
            key = a.name if a is b else f"{a.name} / {b.name}"
            states[key] = states.get(key, 0) + 1
        tw = [(n, addr_str(host)) for n, host in an.time_wait_now()]
        tw.sort(reverse=True)
        kept = self.det.sink.kept
        newest = [(f.severity, f.label, f.message) for f in kept[-6:]][::-1]
        by_sev = {"info": 0, "warning": 0, "error": 0}
        for v in self.det.sink.by_kind.values():
            for s in by_sev:
                by_sev[s] += v[s]
        return {
            "backend": backend, "elapsed": now_wall - started, "frames": frames, "bytes": nbytes, "pps": pps,
            "tcp": an.segments, "drops": drops, "active": active, "open": n_open,
            "states": sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))[:10],
            "closed": self.conns.n, "expired": an.expired, "evicted": an.evicted,
            "rst": self.rst, "rtx": self.rtx, "time_wait": tw[:6], "findings": by_sev, "newest": newest,
        }


# ---------------------------------------------------------------------------- the command
@click.command()
@click.option("-i", "--interface", "iface", required=True, help="Interface to capture on ('tcpanalyze interfaces').")
@click.option("-f", "--filter", "bpf", default=None, metavar="BPF",
              help="Kernel capture filter (tcpdump syntax), e.g. 'tcp port 443'.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many packets.")
@click.option("-w", "--write", "write_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the packets analyzed to this pcap file (nanosecond timestamps).")
@click.option("--backend", type=click.Choice(["scapy", "tshark"]), default="scapy", show_default=True,
              help="scapy: libpcap in-process (needs root/CAP_NET_RAW, see --user); "
                   "tshark: a dumpcap process (tcpanalyze itself needs no privileges).")
@click.option("--user", default=None, metavar="NAME",
              help="scapy backend: switch to this user (setgid/setuid) right after the capture is opened.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True,
              help="Final report: table (rich), json (one document), jsonl (one record per line).")
@click.option("--json", "fmt", flag_value="json", help="Shorthand for --format json.")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="Shorthand for --format jsonl.")
@click.option("-o", "--output", default=None, help="Write the final report to this file instead of stdout.")
@click.option("--no-live", is_flag=True, help="No live view (it is also off when stdout is not a terminal).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="never", show_default=True,
              help="Exit 1 when a finding of this severity or worse is found.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Worst connections listed in the table report.")
@threshold_options
@_live_engine_options
def live(iface, bpf, duration, count, write_path, backend, user, fmt, output, no_live, fail_on, top, **kw):
    """Capture on interface IFACE and analyze live; stop on --duration, --count, Ctrl-C or SIGTERM.

    \b
    The final report is the one `tcpanalyze analyze` gives (table, --json or --jsonl), and
    --write leaves a valid pcap holding exactly the packets analyzed, so
    `tcpanalyze analyze --idle-timeout 300 out.pcap` reproduces it.

    \b
    Exit codes: 0 ok; 1 a finding at or above --fail-on; 2 bad capture filter or options;
    3 the capture cannot start (no permission, unknown interface, tshark missing);
    4 the report or the --write file could not be written.
    """
    from tcpanalyze.findings import severity_at_least
    from tcpanalyze.session import AnalyzeOptions
    from tcpanalyze.sources import live as L

    th = thresholds_from(kw)
    engine = engine_kwargs(pop_engine_kw(kw))
    options = AnalyzeOptions(engine=engine, thresholds=th, keep_connections=top if fmt == "table" else None)
    if user and backend != "scapy":
        raise UsageProblem("--user applies to the scapy backend; with --backend tshark run tcpanalyze as the "
                           "user itself and give dumpcap the capture capabilities (see docs/live.md)")

    be = L.make_backend(backend, iface, bpf)
    try:
        be.open()
    except L.CaptureError as e:
        _capture_error(e)
    try:
        if user:
            _preload(fmt, not no_live and sys.stdout.isatty())
            try:
                uid, _gid = L.drop_privileges(user)
            except L.CaptureError as e:
                raise InputError(str(e)) from None
            click.echo(f"tcpanalyze: capture opened; now running as user {user} (uid {uid})", err=True)
        writer = None
        if write_path:
            writer = L.PcapWriter(write_path, nanoseconds=True)     # OutputError: exit 4
        out, close_out = _open_report_output(fmt, output)
        report, info = _capture(be, writer, options, iface, bpf, duration, count, no_live, fmt, output)
    finally:
        be.close()
    _notes(report, info)
    try:
        _write_report(report, fmt, out, output, top)
    finally:
        if close_out:
            out.close()
        else:
            out.flush()
    worst = report.worst_severity
    if fail_on != "never" and worst is not None and severity_at_least(worst, fail_on):
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_OK)


def _preload(fmt: str, view: bool) -> None:
    """Import (and exercise) everything the run needs later: after --user drops privileges the
    interpreter's own directories (e.g. a Python under /root) may no longer be readable."""
    import io

    from tcpanalyze.pipeline import RunStats
    from tcpanalyze.session import AnalyzeOptions

    sess = LiveSession("preload", AnalyzeOptions())
    rep = sess.report(RunStats("preload"))
    buf = io.StringIO()
    import tcpanalyze.report.jsonout as J

    J.write_json(rep, buf)
    J.write_jsonl(rep, buf)
    if fmt == "table" or view:
        from tcpanalyze.report.richout import OutConsole as Console

        from tcpanalyze.report.console import render

        render(rep, Console(file=buf, width=120, color_system=None), top=10)
        render(rep, Console(file=buf, width=120, force_terminal=True, color_system="truecolor"), top=10)
    if view:
        from tcpanalyze.report.richout import OutConsole as Console

        from tcpanalyze.report.liveview import LiveView, render_snapshot

        snap = sess.snapshot(0.0, 0.0, 0, 0, 0.0, {"dropped": 0}, "preload")
        Console(file=buf, width=120, force_terminal=True).print(render_snapshot(snap))
        LiveView(console=Console(file=buf))
    import encodings.idna  # noqa: F401 - used by socket name look-ups


def _capture_error(e) -> None:
    if e.kind == "filter":
        raise UsageProblem(str(e))
    raise InputError(str(e))


def _open_report_output(fmt: str, output: str | None):
    return open_output(output)


class _Stop:
    """Signal state: the first SIGINT/SIGTERM asks for a clean stop, a second one stops at once."""

    def __init__(self):
        self.requested = 0
        self.signame = None

    def __call__(self, signum, _frame):
        self.requested += 1
        self.signame = signal.Signals(signum).name


def _capture(be, writer, options, iface, bpf, duration, count, no_live, fmt, output):
    from tcpanalyze.pipeline import RunStats, run_packets

    source = f"live:{iface}"
    sess = LiveSession(source, options)
    stats = RunStats(source)
    stats.format = f"live ({be.describe})" if be.describe else "live"
    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    view = None
    show_view = not no_live and sys.stdout.isatty()
    if show_view:
        from tcpanalyze.report.liveview import LiveView

        view = LiveView(title=f"tcpanalyze live: {iface}" + (f"  filter: {bpf}" if bpf else ""))
    flt = f", filter {bpf!r}" if bpf else ""
    click.echo(f"tcpanalyze: capturing on {iface} ({be.describe}{flt}); "
               f"{'Ctrl-C' if sys.stdin.isatty() else 'SIGINT/SIGTERM'} stops", err=True)
    info = {"frames": 0, "bytes": 0, "reason": "end of capture", "started": time.monotonic(), "linktypes": set()}
    started = info["started"]
    deadline = started + duration if duration else None

    def frames():
        frame = 0
        nbytes = 0
        lt = be.linktype
        next_snap = started + K_SNAPSHOT_S if view is not None else float("inf")
        last_frames, last_t = 0, started
        pps = 0.0
        stopping = False
        try:
            while True:
                if not stopping:
                    if stop.requested:
                        info["reason"] = f"{stop.signame}"
                        stopping = True
                        be.stop()
                    elif deadline is not None and time.monotonic() >= deadline:
                        info["reason"] = f"--duration {duration:g} s"
                        stopping = True
                        be.stop()
                elif stop.requested > 1:
                    info["reason"] = f"{stop.signame} (twice: no drain)"
                    return
                timeout = 0.1
                if deadline is not None and not stopping:
                    timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                batch = be.read(timeout)
                if batch is None:
                    return
                if batch:
                    if lt is None:
                        lt = be.linktype if be.linktype is not None else 1
                    for ts, data, wirelen in batch:
                        frame += 1
                        nbytes += wirelen
                        if writer is not None:
                            if writer.linktype is None:
                                writer.header(lt)
                            writer.write(ts, data, wirelen)
                        yield (frame, ts, lt, data, wirelen)
                        if count is not None and frame >= count:
                            info["reason"] = f"--count {count}"
                            return
                    info["frames"] = frame
                    info["bytes"] = nbytes
                now = time.monotonic()
                if now >= next_snap:
                    dt = now - last_t
                    if dt > 0.2:
                        pps = (frame - last_frames) / dt
                        last_frames, last_t = frame, now
                    t0 = time.perf_counter()
                    view.update(sess.snapshot(now, started, frame, nbytes, pps, be.stats(), be.describe))
                    cost = time.perf_counter() - t0
                    next_snap = now + max(K_SNAPSHOT_S, cost / K_SNAPSHOT_SHARE)
        finally:
            info["frames"] = frame
            info["bytes"] = nbytes
            if lt is not None:
                info["linktypes"].add(lt)

    try:
        if view is not None:
            view.start()
        try:
            run_packets(frames(), sess.analyzer, stats, on_segment=sess.on_segment)
        finally:
            if view is not None:
                view.stop()
            for s, h in old.items():
                signal.signal(s, h)
    except Exception as e:
        from tcpanalyze.sources.live import CaptureError

        if isinstance(e, CaptureError):
            raise InputError(str(e)) from None
        raise
    finally:
        if writer is not None:
            writer.close(be.linktype)
    info["elapsed"] = time.monotonic() - started
    return _capture_report(be, writer, sess, stats, info, iface, bpf), info


def _capture_report(be, writer, sess, stats, info: dict, iface: str, bpf):
    """After the capture: stop the backend, note its drops and errors in ``stats``, and
    build the report with its ``capture`` section."""
    be.stop()
    drops = be.stats()
    be.close()                       # dumpcap prints its statistics when it exits
    drops = be.stats() or drops
    info["drops"] = drops
    stats.linktypes = sorted(info["linktypes"])
    if drops and drops.get("dropped"):
        stats.warnings.append(f"the kernel dropped {drops['dropped']} packet(s) during the capture: "
                              f"the analysis misses them")
    if be.error:
        stats.warnings.append(be.error)
        if info["reason"] == "end of capture":
            info["reason"] = "capture failed"
    if getattr(be, "read_error", None):
        stats.warnings.append(f"capture stream: {be.read_error}")
    reader = getattr(be, "reader", None)
    if reader is not None and reader.damage is not None:
        stats.warnings.append(f"capture stream: {reader.damage}")
    rep = sess.report(stats)
    entry = rep.files[0]
    entry["capture"] = {"interface": iface, "filter": bpf, "backend": be.name, "method": be.describe,
                        "stopped_by": info["reason"], "elapsed_s": round(info["elapsed"], 3),
                        "kernel": drops, "written": writer.path if writer is not None else None,
                        "written_frames": writer.frames if writer is not None else None}
    return rep


def _notes(report, info) -> None:
    e = report.files[0]
    for w in e.get("warnings", ()):
        warn(w)
    errs = e.get("decode_errors") or {}
    if errs:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(errs.items()))
        warn(f"{sum(errs.values())} frame(s) could not be decoded ({kinds})")
    d = info.get("drops")
    dropped = "" if not d else f"; kernel dropped {d.get('dropped', 0)}"
    click.echo(f"tcpanalyze: stopped ({info['reason']}) after {info['elapsed']:.1f} s: {info['frames']} packets "
               f"captured and analyzed, {report.summary.get('tcp_segments', 0)} TCP segments{dropped}", err=True)


def _write_report(report, fmt, out, output, top) -> None:
    if fmt == "json":
        from tcpanalyze.report.jsonout import write_json

        write_json(report, out)
    elif fmt == "jsonl":
        from tcpanalyze.report.jsonout import write_jsonl

        write_jsonl(report, out)
    else:
        from tcpanalyze.report.richout import OutConsole as Console

        from tcpanalyze.report.console import render

        if output is None or output == "-":
            console = Console(file=out)
        else:
            console = Console(file=out, width=120, color_system=None, force_terminal=False)
        render(report, console, top=top)


# ---------------------------------------------------------------------------- interfaces
@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def interfaces(as_json):
    """List capture interfaces: name, index, state, addresses (the names `live -i` accepts)."""
    from tcpanalyze.sources.live import list_interfaces

    rows = list_interfaces()
    if as_json:
        import json

        stdout().write(json.dumps(rows, indent=2) + "\n")
        return
    from tcpanalyze.report.richout import OutConsole as Console
    from rich.table import Table

    t = Table(title=None, box=None, pad_edge=False)
    for col in ("name", "index", "state", "mtu", "addresses"):
        t.add_column(col, justify="right" if col in ("index", "mtu") else "left")
    for r in rows:
        st = ("up" if r["up"] else "down") + ("" if r["running"] or not r["up"] else " (no carrier)")
        t.add_row(r["name"], str(r["index"]), st + (", loopback" if r["loopback"] else ""),
                  str(r["mtu"] or "-"), ", ".join(r["addresses"]) or "-")
    Console(file=stdout()).print(t)


__all__ = ["live", "interfaces", "LiveSession", "K_LIVE_IDLE_TIMEOUT_S"]
