"""Rich rendering of a Report into a ``rich.console.Console`` (the default ``analyze`` output).

Per file: a header (file, duration, packets, connections, bytes, findings), the findings
table sorted by severity with counts and the top connections of each, the TIME_WAIT peak per
host with a sparkline, and the worst connections.  With several files a Total section follows.
Tests render with ``Console(file=StringIO(), width=100, color_system=None)``.
"""
from __future__ import annotations

import os

from rich import box
from rich.console import Console, Group
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from tcpanalyze.engine import K_MSL_S, time_wait_name
from tcpanalyze.findings import SEVERITIES, SEVERITY_RANK
from tcpanalyze.session import Report

SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_SPARK = "▁▂▃▄▅▆▇█"
K_STREAMS_SHOWN = 5
K_TW_HOSTS = 10


def sparkline(values: list[int], peak: int | None = None) -> str:
    """One block character per value, scaled to ``peak`` (a zero is a space)."""
    top = peak if peak else max(values, default=0)
    if not top:
        return " " * len(values)
    out = []
    for v in values:
        if v <= 0:
            out.append(" ")
        else:
            out.append(_SPARK[min(len(_SPARK) - 1, (v * len(_SPARK) - 1) // top)])
    return "".join(out)


def _num(n: int) -> str:
    return f"{n:,}"


def _bytes(n: int) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{n} B"


def _dur(s: float) -> str:
    return f"{s:.3f} s"


def _clock(t: float) -> str:
    """Seconds since the epoch as a UTC date and time to the microsecond."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _rel(t: float | None, base: float | None) -> str:
    if t is None or base is None:
        return "-"
    return f"+{t - base:.3f} s"


def _sev_text(sev: str | None) -> Text:
    return Text(sev or "-", style=SEV_STYLE.get(sev or "", ""))


def _finding_counts(summary: dict) -> Text:
    by = summary.get("findings", {}).get("by_severity", {})
    t = Text()
    parts = [(sev, by.get(sev, 0)) for sev in reversed(SEVERITIES)]
    for i, (sev, n) in enumerate(parts):
        if i:
            t.append(", ")
        t.append(f"{n} {sev}", style=SEV_STYLE[sev] if n else "")
    return t


def _utc(t: float) -> str:
    import datetime as _dt

    try:
        return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{t:.6f}"


def _time_wait_length(summary: dict) -> tuple[str, str | None]:
    """How long a TIME_WAIT lasts in this report (``60 s``) and the systems that hold it that
    long (``linux``, from ``engine.TIME_WAIT_PRESETS``) or None."""
    tw = summary.get("time_wait") or {}
    length = tw.get("length_s", 2 * tw.get("msl_s", K_MSL_S))
    return f"{length:g} s", tw.get("system", time_wait_name(length))


def _header(summary: dict, title: str, files: list[dict], several: bool = False) -> Table:
    """The header; ``several``: the total of several files (their durations are not added up:
    each file's is in its own section, and the total gives the time its packets span)."""
    g = Table.grid(padding=(0, 2))
    g.add_column(style="bold")
    g.add_column()
    g.add_row("File" if len(files) == 1 else "Files", Text(title))
    for f in files:
        if f.get("error"):
            g.add_row("Error", Text(f["error"], style="bold red"))
        elif (f.get("damage") or {}).get("message"):
            g.add_row("Damage", Text(f["damage"]["message"], style="yellow"))
    if len(files) == 1 and files[0].get("format"):
        g.add_row("Format", Text(files[0]["format"]))
    if summary.get("start") is not None and not several:
        g.add_row("Start", _clock(summary["start"]))
    if several:
        start, end = summary.get("start"), summary.get("end")
        g.add_row("Duration", "per file" + (
            "" if start is None or end is None else f"; packets from {_utc(start)} to {_utc(end)} UTC"))
    else:
        g.add_row("Duration", _dur(summary.get("duration", 0.0)))
    g.add_row("Packets", f"{_num(summary.get('packets', 0))} ({_num(summary.get('tcp_segments', 0))} TCP segments)")
    g.add_row("Connections", _num(summary.get("connections", 0)))
    g.add_row("Bytes", f"{_num(summary.get('bytes', 0))} ({_bytes(summary.get('bytes', 0))}) of TCP payload")
    length, system = _time_wait_length(summary)
    g.add_row("TIME_WAIT", f"{length} per connection" + (f" ({system})" if system else ""))
    fd = summary.get("findings", {})
    line = _finding_counts(summary)
    if fd.get("reported", 0) < fd.get("total", 0):
        line.append(f"  ({fd['reported']} of {fd['total']} listed: capped per kind)")
    g.add_row("Findings", line)
    return g


def _where(f: dict, name_files: dict[str, str] | None = None) -> str:
    if name_files and f.get("file") in name_files:
        w = _where(f)
        return f"{name_files[f['file']]} {w}" if w != "capture" else name_files[f["file"]]
    if f.get("stream") is not None:
        return f"#{f['stream']}"
    if f.get("host") is not None:
        a = f["host"]
        a = f"[{a}]" if ":" in a and f.get("port") is not None else a
        return f"{a}:{f['port']}" if f.get("port") is not None else a
    return "capture"


def finding_counts(findings: list[dict], summary: dict) -> dict[tuple[str, str], int]:
    """(label, severity) -> how many findings there are: the summary's totals (``by_kind``,
    ``by_subkind``), which count every finding, not only those listed under the per-kind cap."""
    fd = summary.get("findings") or {}
    by_kind = fd.get("by_kind") or {}
    by_sub = fd.get("by_subkind")
    counts: dict[tuple[str, str], int] = {}
    if not by_kind or by_sub is None:
        # a summary without totals: count the listed findings
        for f in findings:
            label = f"{f['kind']}/{f['subkind']}" if f.get("subkind") else f["kind"]
            counts[(label, f["severity"])] = counts.get((label, f["severity"]), 0) + 1
        return counts
    for kind, c in by_kind.items():
        left = {sev: c.get(sev, 0) for sev in SEVERITIES}
        for label, sc in by_sub.items():
            if label.split("/", 1)[0] == kind:
                for sev in SEVERITIES:
                    if sc.get(sev):
                        counts[(label, sev)] = sc[sev]
                        left[sev] -= sc[sev]
        for sev, n in left.items():
            if n > 0:
                counts[(kind, sev)] = n
    return counts


def findings_table(findings: list[dict], summary: dict, name_files: dict[str, str] | None = None) -> Table | None:
    """The findings grouped by rule and severity: the true count of each, the message of its
    worst listed example and where.  ``name_files``: path -> the name shown with each stream
    (a report of several files)."""
    counts = finding_counts(findings, summary)
    if not counts:
        return None
    groups: dict[tuple[str, str], list[dict]] = {key: [] for key in counts}
    for f in findings:
        label = f"{f['kind']}/{f['subkind']}" if f.get("subkind") else f["kind"]
        groups.setdefault((label, f["severity"]), []).append(f)
    for key, fs in groups.items():
        counts[key] = max(counts.get(key, 0), len(fs))
    rows = sorted(groups.items(), key=lambda kv: (-SEVERITY_RANK[kv[0][1]], -counts[kv[0]], kv[0][0]))
    t = Table(title="Findings", box=box.SIMPLE_HEAD, title_justify="left", expand=True, pad_edge=False)
    t.add_column("Severity", no_wrap=True)
    t.add_column("Count", justify="right", no_wrap=True)
    t.add_column("Finding (rule and values of the first example)", ratio=1, overflow="fold")
    t.add_column("Where", max_width=32 if name_files else 24, overflow="fold")
    for (label, sev), fs in rows:
        worst = sorted(fs, key=_evidence_weight, reverse=True)
        seen: list[str] = []
        for f in worst:
            w = _where(f, name_files)
            if w not in seen:
                seen.append(w)
                if len(seen) > K_STREAMS_SHOWN:     # enough to know there are more
                    break
        where = " ".join(seen[:K_STREAMS_SHOWN]) + (" …" if len(seen) > K_STREAMS_SHOWN else "")
        if not worst:
            cell = Text(label, style="bold")
            cell.append("\n(no example listed: the per-kind cap was reached)", style="dim")
            t.add_row(_sev_text(sev), _num(counts[(label, sev)]), cell, Text(""))
            continue
        msg = worst[0]["message"]
        prefix = label.replace("/", " ") + ": "
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
        cell = Text(label, style="bold")
        cell.append("\n" + msg, style="dim")
        t.add_row(_sev_text(sev), _num(counts[(label, sev)]), cell, Text(where))
    capped = [(k, v) for k, v in summary.get("findings", {}).get("by_kind", {}).items() if v["reported"] < v["total"]]
    if capped:
        t.caption = "capped: " + ", ".join(f"{k} {v['reported']} of {v['total']} listed" for k, v in capped)
        t.caption_justify = "left"
    return t


def _evidence_weight(f: dict) -> tuple:
    d = f.get("data") or {}
    for k in ("segments", "unanswered", "peak", "connections", "total", "duration_s", "idle_s", "total_bytes"):
        v = d.get(k)
        if isinstance(v, (int, float)):
            return (v, -(f.get("stream") or 0))
    return (0, -(f.get("stream") or 0))


def _resample(values: list[int], n: int) -> list[int]:
    """At most ``n`` points, each the maximum of the values it stands for."""
    if len(values) <= n or n <= 0:
        return list(values)
    out = []
    for k in range(n):
        lo = k * len(values) // n
        hi = max(lo + 1, (k + 1) * len(values) // n)
        out.append(max(values[lo:hi]))
    return out


def time_wait_table(summary: dict, base: float | None, width: int = 100) -> Table | None:
    tw = summary.get("time_wait") or {}
    hosts = [h for h in tw.get("hosts", []) if h.get("peak")]
    if not hosts:
        return None
    length, system = _time_wait_length(summary)
    t = Table(title=f"TIME_WAIT per host (each lasts {length}" + (f", {system})" if system else ")"), box=box.SIMPLE_HEAD,
              title_justify="left", pad_edge=False)
    t.add_column("Host", no_wrap=True)
    t.add_column("Peak", justify="right", no_wrap=True)
    t.add_column("At", justify="right", no_wrap=True)
    t.add_column("At end", justify="right", no_wrap=True)
    t.add_column("Total", justify="right", no_wrap=True)
    t.add_column("Top port", no_wrap=True)
    t.add_column("Over the capture", no_wrap=True, overflow="crop")
    shown = hosts[:K_TW_HOSTS]
    fixed = (max(len(h["host"]) for h in shown) + 6 + 12 + 7 + 6 + 14 + 2 * 6
             + max(len(_num(h["peak"])) + len(_num(h["total"])) for h in shown))
    points = max(8, min(48, width - fixed - 2))
    for h in shown:
        top = h["ports"][0] if h.get("ports") else None
        t.add_row(Text(h["host"]), _num(h["peak"]), _rel(h.get("peak_time"), base), _num(h["at_end"]),
                  _num(h["total"]), f"{top['port']} ({top['peak']})" if top else "-",
                  Text(sparkline(_resample(h.get("series", []), points), h["peak"]), style="magenta"))
    if len(hosts) > K_TW_HOSTS:
        t.caption = f"{len(hosts) - K_TW_HOSTS} more host(s) with TIME_WAIT"
        t.caption_justify = "left"
    return t


def _endpoint(h: str, p: int) -> str:
    return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"


#: the worst-connections columns that may be left out to fit the width, the first first
_CONN_OPTIONAL = ("Bytes", "Duration", "State", "Rtx")
#: the width the findings column needs at least
K_FINDINGS_MIN = 24
#: the widest the Stream column gets when it names files ("file #stream" folds onto more lines)
K_STREAM_MAX = 18


def connections_table(conns: list[dict], top: int, with_findings: int | None = None,
                      name_files: dict[str, str] | None = None, width: int = 100) -> Table | None:
    """The ``top`` worst connections of ``conns``; ``with_findings``: how many connections have
    findings in all (the summary's count: ``conns`` may hold only the worst few);
    ``name_files``: path -> the name shown with each stream (a report of several files).
    Endpoints are never cut: the pair goes on two lines when one is too wide, and the columns
    of ``_CONN_OPTIONAL`` are left out (named in the caption) until the rest fits ``width``."""
    bad = [c for c in conns if c.get("score")]
    if not bad or top <= 0:
        return None
    bad.sort(key=lambda c: (-c["score"], -c.get("retransmissions", 0), c["stream"]))
    rows = []
    for c in bad[:top]:
        stream = str(c["stream"])
        if name_files and c.get("file") in name_files:
            stream = f"{name_files[c['file']]} #{stream}"
        rows.append({"Stream": stream, "client": _endpoint(c["orig_h"], c["orig_p"]),
                     "server": _endpoint(c["resp_h"], c["resp_p"]), "State": c["conn_state"],
                     "Duration": _dur(c["duration"]), "Bytes": _num(c["orig_bytes"] + c["resp_bytes"]),
                     "Rtx": str(c.get("retransmissions", 0)), "Findings": c.get("findings", []),
                     "severity": c.get("severity")})
    need = {h: max([len(h)] + [len(r[h]) for r in rows]) for h in ("Stream",) + _CONN_OPTIONAL}
    if name_files:
        need["Stream"] = min(need["Stream"], K_STREAM_MAX)
    one_line = max(len(r["client"]) + 3 + len(r["server"]) for r in rows)
    two_lines = max(max(len(r["client"]), 2 + len(r["server"])) for r in rows)
    labels = max((len(f) for r in rows for f in r["Findings"]), default=0)
    findings_min = min(K_FINDINGS_MIN, max(8, labels))

    def total(pair: int, shown: list[str]) -> int:
        # the columns, 3 cells between two of them (padding and the box's blank rule) and
        # the box's blank edges
        cols = [need["Stream"], pair, findings_min] + [need[h] for h in shown]
        return sum(cols) + 3 * (len(cols) - 1) + 2

    shown = list(_CONN_OPTIONAL)
    pair = max(len("Client → server"), one_line)
    split = total(pair, shown) > width
    if split:
        pair = max(len("Client → server"), two_lines)
    left_out = []
    for h in _CONN_OPTIONAL:
        if total(pair, shown) <= width:
            break
        shown.remove(h)
        left_out.append(h)
    total_bad = max(len(bad), with_findings or 0)
    t = Table(title=f"Worst connections (top {min(top, len(bad))} of {_num(total_bad)} with findings)",
              box=box.SIMPLE_HEAD, title_justify="left", expand=True, pad_edge=False)
    if name_files:
        t.add_column("Stream", justify="right", max_width=K_STREAM_MAX, overflow="fold")
    else:
        t.add_column("Stream", justify="right", no_wrap=True)
    t.add_column("Client → server", no_wrap=True, min_width=pair, overflow="fold")
    for h in ("State", "Duration", "Bytes", "Rtx"):
        if h in shown:
            t.add_column(h, justify="left" if h == "State" else "right", no_wrap=True)
    t.add_column("Findings", ratio=1, overflow="fold")
    for r in rows:
        sep = "\n→ " if split else " → "
        cells = [r["Stream"], Text(r["client"] + sep + r["server"])]
        cells += [r[h] for h in ("State", "Duration", "Bytes", "Rtx") if h in shown]
        cells.append(Text(", ".join(r["Findings"]), style=SEV_STYLE.get(r["severity"] or "", "")))
        t.add_row(*cells)
    if left_out:
        t.caption = f"left out to fit {width} columns: {', '.join(left_out)}"
        t.caption_justify = "left"
    return t


def _rate(bps: float | None) -> str:
    if not bps:
        return "-"
    for unit, k in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= k:
            return f"{bps / k:.3g} {unit}"
    return f"{bps:.0f} bit/s"


def slowest_table(conns: list[dict], top: int, name_files: dict[str, str] | None = None) -> Table | None:
    """The connections with the longest transfers (first to last data byte of the direction
    that took longer): throughput, RTT and what limited it (docs/diagnosis.md).  Endpoints
    are never cut (they fold onto another line); ``name_files`` as for connections_table."""
    rows = []
    for c in conns:
        side = max(("orig", "resp"), key=lambda k: c[k].get("transfer_s") or 0.0)
        s = c[side]
        if s.get("transfer_s"):
            rows.append((s["transfer_s"], -c["stream"], side, c))
    if not rows or top <= 0:
        return None
    rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
    t = Table(title=f"Slowest connections (longest transfers, top {min(top, len(rows))})", box=box.SIMPLE_HEAD,
              title_justify="left", expand=True, pad_edge=False)
    if name_files:
        t.add_column("Stream", justify="right", max_width=K_STREAM_MAX, overflow="fold")
    else:
        t.add_column("Stream", justify="right", no_wrap=True)
    t.add_column("Sender → receiver", ratio=2, overflow="fold")
    t.add_column("Transfer", justify="right", no_wrap=True)
    t.add_column("Goodput", justify="right", no_wrap=True)
    t.add_column("RTT", justify="right", no_wrap=True)
    t.add_column("Limited by: why", ratio=3)
    for transfer, _s, side, c in rows[:top]:
        s = c[side]
        o, r = _endpoint(c["orig_h"], c["orig_p"]), _endpoint(c["resp_h"], c["resp_p"])
        pair = f"{o} → {r}" if side == "orig" else f"{r} → {o}"
        rtt = s.get("rtt_avg_ms")
        why = Text(s.get("limited_by") or "-", style="bold")
        if s.get("limited_by_reason"):
            why.append(f": {s['limited_by_reason']}", style="")
        stream = str(c["stream"])
        if name_files and c.get("file") in name_files:
            stream = f"{name_files[c['file']]} #{stream}"
        t.add_row(stream, Text(pair), _dur(transfer), _rate(s.get("goodput_bps")),
                  "-" if rtt is None else f"{rtt:.3g} ms", why)
    return t


def _section(console: Console, title: str, files: list[dict], summary: dict, findings: list[dict],
             conns: list[dict], top: int, time_wait: bool = True, name_files: dict[str, str] | None = None,
             slowest: list[dict] | None = None) -> None:
    console.print(_header(summary, title, files, several=name_files is not None))
    parts = []
    ft = findings_table(findings, summary, name_files)
    if ft is not None:
        parts.append(ft)
    else:
        parts.append(Text("No findings.", style="green"))
    if time_wait:
        tw = time_wait_table(summary, summary.get("start"), console.width)
        if tw is not None:
            parts.append(tw)
    ct = connections_table(conns, top, summary.get("connections_with_findings"), name_files, console.width)
    if ct is not None:
        parts.append(ct)
    st = slowest_table(slowest if slowest is not None else conns, top, name_files)
    if st is not None:
        parts.append(st)
    console.print()
    console.print(Group(*parts))


def render(report: Report, console: Console, *, top: int = 10) -> None:
    """The whole report: one section per file, and a total when there are several."""
    files = report.files
    if len(files) <= 1:
        name = os.path.basename(files[0]["source"]) if files else "-"
        _section(console, name, files, report.summary, report.findings, report.connections, top,
                 slowest=_slowest(report))
        return
    for f in files:
        src = f["source"]
        console.print(Rule(Text(os.path.basename(src), style="bold"), align="left"))
        summ = f.get("summary") or {}
        _section(console, src, [f], summ, [x for x in report.findings if x.get("file") == src],
                 [c for c in report.connections if c.get("file") == src], top,
                 slowest=[c for c in _slowest(report) if c.get("file") == src])
        console.print()
    console.print(Rule(Text(f"Total: {len(files)} files", style="bold"), align="left"))
    failed = report.summary.get("files_failed", 0)
    title = f"{len(files)} files" + (f" ({failed} unreadable)" if failed else "")
    _section(console, title, [], report.summary, report.findings, report.connections, top, time_wait=False,
             name_files=file_names([f["source"] for f in files]), slowest=_slowest(report))


def file_names(paths: list[str]) -> dict[str, str]:
    """The short name of each file of a report of several: its base name, or the path as
    given when two files share a base name."""
    base = [os.path.basename(p) or p for p in paths]
    return {p: b if base.count(b) == 1 else p for p, b in zip(paths, base)}


def _slowest(report: Report) -> list[dict]:
    """The records to rank by transfer time: the report's slowest (a top-N report), else all."""
    return getattr(report, "slowest", None) or list(report.connections)
