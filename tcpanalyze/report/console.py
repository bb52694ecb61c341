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

from tcpanalyze.engine import K_MSL_S
from tcpanalyze.findings import SEVERITIES, SEVERITY_RANK
from tcpanalyze.session import Report

SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_SPARK = "▁▂▃▄▅▆▇█"
K_MESSAGE_CHARS = 160
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


def _header(summary: dict, title: str, files: list[dict]) -> Table:
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
    g.add_row("Duration", _dur(summary.get("duration", 0.0)))
    g.add_row("Packets", f"{_num(summary.get('packets', 0))} ({_num(summary.get('tcp_segments', 0))} TCP segments)")
    g.add_row("Connections", _num(summary.get("connections", 0)))
    g.add_row("Bytes", f"{_num(summary.get('bytes', 0))} ({_bytes(summary.get('bytes', 0))}) of TCP payload")
    fd = summary.get("findings", {})
    line = _finding_counts(summary)
    if fd.get("reported", 0) < fd.get("total", 0):
        line.append(f"  ({fd['reported']} of {fd['total']} listed: capped per kind)")
    g.add_row("Findings", line)
    return g


def _where(f: dict) -> str:
    if f.get("stream") is not None:
        return f"#{f['stream']}"
    if f.get("host") is not None:
        a = f["host"]
        a = f"[{a}]" if ":" in a and f.get("port") is not None else a
        return f"{a}:{f['port']}" if f.get("port") is not None else a
    return "capture"


def findings_table(findings: list[dict], summary: dict) -> Table | None:
    if not findings:
        return None
    groups: dict[tuple[str, str], list[dict]] = {}
    for f in findings:
        label = f"{f['kind']}/{f['subkind']}" if f.get("subkind") else f["kind"]
        groups.setdefault((label, f["severity"]), []).append(f)
    rows = sorted(groups.items(), key=lambda kv: (-SEVERITY_RANK[kv[0][1]], -len(kv[1]), kv[0][0]))
    t = Table(title="Findings", box=box.SIMPLE_HEAD, title_justify="left", expand=True, pad_edge=False)
    t.add_column("Severity", no_wrap=True)
    t.add_column("Count", justify="right", no_wrap=True)
    t.add_column("Finding (rule and values of the first example)", ratio=1)
    t.add_column("Where", max_width=24)
    for (label, sev), fs in rows:
        worst = sorted(fs, key=_evidence_weight, reverse=True)
        seen = []
        for f in worst:
            w = _where(f)
            if w not in seen:
                seen.append(w)
        where = " ".join(seen[:K_STREAMS_SHOWN]) + (" …" if len(seen) > K_STREAMS_SHOWN else "")
        msg = worst[0]["message"]
        prefix = label.replace("/", " ") + ": "
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
        if len(msg) > K_MESSAGE_CHARS:
            msg = msg[: K_MESSAGE_CHARS - 1] + "…"
        cell = Text(label, style="bold")
        cell.append("\n" + msg, style="dim")
        t.add_row(_sev_text(sev), _num(len(fs)), cell, Text(where))
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
    t = Table(title=f"TIME_WAIT per host (2*MSL = {2 * tw.get('msl_s', K_MSL_S):g} s)", box=box.SIMPLE_HEAD,
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


def connections_table(conns: list[dict], top: int) -> Table | None:
    bad = [c for c in conns if c.get("score")]
    if not bad or top <= 0:
        return None
    bad.sort(key=lambda c: (-c["score"], -c.get("retransmissions", 0), c["stream"]))
    t = Table(title=f"Worst connections (top {min(top, len(bad))} of {len(bad)} with findings)",
              box=box.SIMPLE_HEAD, title_justify="left", expand=True, pad_edge=False)
    t.add_column("Stream", justify="right", no_wrap=True)
    t.add_column("Client → server", ratio=2)
    t.add_column("State", no_wrap=True)
    t.add_column("Duration", justify="right", no_wrap=True)
    t.add_column("Bytes", justify="right", no_wrap=True)
    t.add_column("Rtx", justify="right", no_wrap=True)
    t.add_column("Findings", ratio=3)
    for c in bad[:top]:
        pair = f"{_endpoint(c['orig_h'], c['orig_p'])} → {_endpoint(c['resp_h'], c['resp_p'])}"
        t.add_row(str(c["stream"]), Text(pair),
                  c["conn_state"], _dur(c["duration"]), _num(c["orig_bytes"] + c["resp_bytes"]),
                  str(c.get("retransmissions", 0)),
                  Text(", ".join(c.get("findings", [])), style=SEV_STYLE.get(c.get("severity") or "", "")))
    return t


def _rate(bps: float | None) -> str:
    if not bps:
        return "-"
    for unit, k in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= k:
            return f"{bps / k:.3g} {unit}"
    return f"{bps:.0f} bit/s"


def slowest_table(conns: list[dict], top: int) -> Table | None:
    """The connections with the longest transfers (first to last data byte of the direction
    that took longer): throughput, RTT and what limited it (docs/diagnosis.md)."""
    rows = []
    for c in conns:
        side = max(("orig", "resp"), key=lambda k: c[k].get("transfer_s") or 0.0)
        s = c[side]
        if s.get("transfer_s"):
            rows.append((s["transfer_s"], -c["stream"], side, c))
    if not rows or top <= 0:
        return None
    rows.sort(reverse=True)
    t = Table(title=f"Slowest connections (longest transfers, top {min(top, len(rows))})", box=box.SIMPLE_HEAD,
              title_justify="left", expand=True, pad_edge=False)
    t.add_column("Stream", justify="right", no_wrap=True)
    t.add_column("Sender → receiver", ratio=2)
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
        t.add_row(str(c["stream"]), Text(pair), _dur(transfer), _rate(s.get("goodput_bps")),
                  "-" if rtt is None else f"{rtt:.3g} ms", why)
    return t


def _section(console: Console, title: str, files: list[dict], summary: dict, findings: list[dict],
             conns: list[dict], top: int, time_wait: bool = True, slowest: list[dict] | None = None) -> None:
    console.print(_header(summary, title, files))
    parts = []
    ft = findings_table(findings, summary)
    if ft is not None:
        parts.append(ft)
    else:
        parts.append(Text("No findings.", style="green"))
    if time_wait:
        tw = time_wait_table(summary, summary.get("start"), console.width)
        if tw is not None:
            parts.append(tw)
    ct = connections_table(conns, top)
    if ct is not None:
        parts.append(ct)
    st = slowest_table(slowest if slowest is not None else conns, top)
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
             slowest=_slowest(report))


def _slowest(report: Report) -> list[dict]:
    """The records to rank by transfer time: the report's slowest (a top-N report), else all."""
    return getattr(report, "slowest", None) or list(report.connections)
