"""The HTML report (``analyze --html FILE``, ``check --html FILE``): one self-contained file.

Everything is inline: the page's style and script, plotly.js (once per file, from the
``plotly`` package: the ``[html]`` extra) and the report's data as one JSON block.  The page
makes no request to any server, so it works offline and as a CI artifact.

Sections: the header (files, totals, policy results for ``check``), the findings by
severity and kind, each finding expandable to its evidence (frames, values, the kind's
explanation); the TIME_WAIT-per-host chart (the real build-up solid, what follows the end of
the capture dashed on a shaded background); the connections table (sortable, filterable by
host, port, state, finding kind and ``limited_by``); and for the connections chosen by
``htmldata.choose`` their ladder diagram (SVG), endpoint states, time-sequence,
window/bytes-in-flight, RTT and throughput graphs, drawn when the connection is opened.

:class:`HtmlCollector` gathers what the page needs while the files are analysed
(``run_file`` keeps each file's TIME_WAIT periods from the engine), :func:`render_html`
builds the document and :func:`write_html` writes it.
"""
from __future__ import annotations

import html as _html
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from tcpanalyze._version import __version__
from tcpanalyze.errors import OutputError
from tcpanalyze.model import addr_str
from tcpanalyze.report import htmldata as HD
from tcpanalyze.report.plots import time_wait_series

#: rows of the connections table by default (the worst by findings, then bytes); the rest are
#: counted; ``--html-rows 0`` lists every connection
K_HTML_ROWS = 300
#: findings listed per kind (the summary counts them all)
K_FINDINGS_PER_KIND = 50
#: hosts drawn in the TIME_WAIT chart (per file)
K_TW_HOSTS = 8
#: a TIME_WAIT series with more steps than this is drawn as the maximum per slice
K_TW_STEPS = 4000


class HtmlDependencyError(Exception):
    """plotly (the ``[html]`` extra) is not installed."""


def plotly_js() -> str:
    """plotly.js (minified) from the installed plotly package, read as a file (no import of
    plotly's Python API)."""
    try:
        from importlib.resources import files

        return (files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    except (ImportError, ModuleNotFoundError, FileNotFoundError, OSError):
        raise HtmlDependencyError("--html needs plotly: pip install 'tcpanalyze[html]'") from None


def check_dependency() -> None:
    """Raise ``HtmlDependencyError`` before any work when plotly is missing."""
    try:
        from importlib.util import find_spec

        spec = find_spec("plotly")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise HtmlDependencyError("--html needs plotly: pip install 'tcpanalyze[html]'")


@dataclass
class FileTimeWait:
    """The TIME_WAIT periods of the hosts drawn, for one file."""

    source: str
    first_ns: int | None
    last_ns: int | None
    hold_ns: int
    starts: dict[str, list[int]] = field(default_factory=dict)      # host -> sorted start times (ns)


def run_file(path: str, options, progress=None):
    """``session.analyze_file`` that also keeps the TIME_WAIT start times of the hosts the
    report lists (for the chart).  Returns (Report, FileTimeWait or None)."""
    from tcpanalyze.errors import SourceError
    from tcpanalyze.pipeline import analyze_source, gc_tuned
    from tcpanalyze.session import ReportBuilder, failed_report, no_captures_message

    b = ReportBuilder(path, options)
    if path != "-" and os.path.isdir(path):
        return failed_report(path, no_captures_message(path), b.th), None
    with gc_tuned(off=path != "-"):
        try:
            stats = analyze_source(path, b.analyzer, on_segment=b.on_segment, progress=progress,
                                   notable_only=b.selected is None)
        except SourceError as e:
            return failed_report(path, str(e), b.th), None
        except OSError as e:
            return failed_report(path, f"{path}: {e.strerror or e}", b.th), None
        rep = b.build(stats)
    an = b.analyzer
    hosts = [h["host"] for h in rep.summary.get("time_wait", {}).get("hosts", [])][:K_TW_HOSTS]
    tw = FileTimeWait(path, an.first_ns, an.last_ns, int(rep.summary["time_wait"]["length_s"] * 1e9))
    want = set(hosts)
    for host, starts in an.tw_starts.items():
        name = addr_str(host)
        if name in want:
            tw.starts[name] = sorted(starts)
    return rep, tw


class HtmlCollector:
    """What the page needs besides the merged Report: per file, the TIME_WAIT periods."""

    def __init__(self, connections: int = HD.K_HTML_CONNECTIONS, rows: int = K_HTML_ROWS):
        self.connections = connections
        self.rows = rows
        self.time_wait: dict[str, FileTimeWait] = {}

    def add(self, tw: FileTimeWait | None) -> None:
        if tw is not None:
            self.time_wait[tw.source] = tw


# ------------------------------------------------------------------------------ data
def _limited_by(rec: dict) -> str:
    o, r = rec.get("orig") or {}, rec.get("resp") or {}
    side = o if (o.get("data_bytes") or 0) >= (r.get("data_bytes") or 0) else r
    return side.get("limited_by") or ""


def _row(rec: dict, detailed: bool) -> dict:
    return {"file": rec.get("file"), "stream": rec["stream"], "client": rec["orig_h"], "cport": rec["orig_p"],
            "server": rec["resp_h"], "sport": rec["resp_p"], "state": rec.get("conn_state") or "",
            "states": f"{rec.get('orig_state')}/{rec.get('resp_state')}", "history": rec.get("history") or "",
            "bytes": rec["orig_bytes"] + rec["resp_bytes"], "packets": rec["orig_pkts"] + rec["resp_pkts"],
            "duration": rec.get("duration") or 0.0, "transfer": round(HD._transfer(rec), 6),
            "rtx": rec.get("retransmissions", 0), "rtt_ms": None if rec.get("handshake_rtt") is None
            else round(rec["handshake_rtt"] * 1e3, 3),
            "findings": rec.get("findings") or [], "severity": rec.get("severity") or "",
            "score": rec.get("score", 0), "limited_by": _limited_by(rec),
            "end": rec.get("end_reason") or "", "detail": detailed}


def _tw_chart(col: HtmlCollector, report, threshold: int) -> dict:
    """The TIME_WAIT-per-host figure: solid up to the end of each capture, dashed after it."""
    tws = [t for t in col.time_wait.values() if t.starts and t.first_ns is not None]
    multi = len(col.time_wait) > 1
    data, shapes, annotations = [], [], []
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    real_end = 0.0
    full_end = 0.0
    peak = 0
    k = 0
    for tw in tws:
        base = tw.first_ns                  # each file on its own clock
        end_s = (tw.last_ns - base) / 1e9
        real_end = max(real_end, end_s)
        name_file = os.path.basename(tw.source)
        for host, starts in tw.starts.items():
            xs, ys = time_wait_series(starts, tw.hold_ns)
            peak = max([peak] + ys)
            label = f"{host}" + (f" ({name_file})" if multi else "")
            colour = palette[k % len(palette)]
            k += 1
            rx, ry, px, py = [0.0], [0], [], []
            count = 0
            for t, c in zip(xs, ys):
                if t <= tw.last_ns:
                    rx.append((t - base) / 1e9)
                    ry.append(c)
                    count = c
                else:
                    px.append((t - base) / 1e9)
                    py.append(c)
            rx.append(end_s)
            ry.append(count)
            step_note = ""
            if len(rx) > K_TW_STEPS:
                rx, ry = _envelope(rx, ry, K_TW_STEPS // 2)
                step_note = " (maximum per slice)"
            data.append({"type": "scatter", "mode": "lines", "name": f"{label}: in the capture{step_note}",
                         "x": [round(x, 6) for x in rx], "y": ry, "line": {"shape": "hv", "color": colour, "width": 2},
                         "legendgroup": label, "meta": "real",
                         "hovertemplate": "%{x:.3f} s: %{y} in TIME_WAIT<extra>" + _html.escape(label) + "</extra>"})
            if px:
                full_end = max(full_end, px[-1])
                data.append({"type": "scatter", "mode": "lines", "name": f"{label}: after the end (projected)",
                             "x": [round(end_s, 6)] + [round(x, 6) for x in px], "y": [count] + py,
                             "line": {"shape": "hv", "color": colour, "width": 1.5, "dash": "dash"}, "opacity": 0.6,
                             "legendgroup": label, "meta": "projection",
                             "hovertemplate": "%{x:.3f} s: %{y} projected<extra>" + _html.escape(label) + "</extra>"})
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": end_s, "x1": end_s, "y0": 0, "y1": 1,
                       "line": {"color": "#555", "dash": "dot", "width": 1}})
        if multi:
            annotations.append({"x": end_s, "y": 1, "xref": "x", "yref": "paper", "showarrow": False,
                                "text": f"end of {_html.escape(name_file)}", "textangle": -90, "xanchor": "right",
                                "yanchor": "top", "font": {"size": 10, "color": "#555"}})
        elif full_end > end_s:
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": end_s, "x1": full_end, "y0": 0,
                           "y1": 1, "fillcolor": "rgba(120,120,120,0.10)", "line": {"width": 0}, "layer": "below"})
    if tws:
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": threshold,
                       "y1": threshold, "line": {"color": "#d62728", "dash": "dash", "width": 1}})
        data.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "hoverinfo": "skip",
                     "name": f"threshold {threshold}", "line": {"color": "#d62728", "dash": "dash"}})
    if not tws and not col.time_wait:
        # the files ran in worker processes (--jobs): the report's per-slice maxima, no projection
        k, peak, real_end = _tw_from_summary(report, data, palette)
        if k:
            tws = [None]
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": threshold,
                           "y1": threshold, "line": {"color": "#d62728", "dash": "dash", "width": 1}})
    hold = report.summary.get("time_wait", {}).get("length_s", 0)
    title = f"Connections in TIME_WAIT per host (each for 2*MSL = {hold:g} s)"
    if any(t.get("meta") == "projection" for t in data):
        title += ("<br>dashed" + ("" if multi else ", on grey") + ": after the end of the capture (projected: no new "
                  "connection, each running out its 2*MSL; double-click to see it all)")
    lay = HD._base_layout(title, f"time since the {'file' if multi else 'capture'}'s first packet (s)",
                          "connections in TIME_WAIT", shapes=shapes, annotations=annotations, height=480)
    lay["legend"]["y"] = -0.2
    lay["margin"]["b"] = 70
    # the initial view is the capture itself; zooming out (double-click) shows the projection
    lay["xaxis"]["range"] = [0, max(real_end * 1.04, 1e-3)]
    lay["yaxis"]["range"] = [0, max(peak, threshold) * 1.12 + 1]
    lay["title"]["font"]["size"] = 13
    return {"data": data, "layout": lay, "empty": not tws,
            "counts": {"hosts": k, "real_end": round(real_end, 6), "projection_end": round(full_end, 6)}}


def _tw_from_summary(report, data: list, palette: list) -> tuple[int, int, float]:
    """TIME_WAIT traces from the report's ``series`` (maximum per slice of each file)."""
    spans = {f.get("source"): f.get("summary") or {} for f in report.files}
    starts = [s["start"] for s in spans.values() if s.get("start") is not None]
    if not starts:
        return 0, 0, 0.0
    k = peak = 0
    real_end = 0.0
    multi = len(report.files) > 1
    for h in report.summary.get("time_wait", {}).get("hosts", []):
        src = h.get("file") or (report.files[0].get("source") if report.files else None)
        fs = spans.get(src) or {}
        if fs.get("start") is None or not h.get("series"):
            continue
        n = len(h["series"])
        width = (fs["end"] - fs["start"]) / n
        base = fs["start"]
        xs = [round(i * width, 6) for i in range(n)] + [round(fs["end"] - base, 6)]
        ys = list(h["series"]) + [h["series"][-1]]
        real_end = max(real_end, fs["end"] - base)
        peak = max([peak] + ys)
        label = h["host"] + (f" ({os.path.basename(src or '')})" if multi else "")
        data.append({"type": "scatter", "mode": "lines", "name": f"{label}: in the capture (maximum per slice)",
                     "x": xs, "y": ys, "line": {"shape": "hv", "color": palette[k % len(palette)], "width": 2},
                     "meta": "real"})
        k += 1
    return k, peak, real_end


def _envelope(xs: list[float], ys: list[int], bins: int) -> tuple[list[float], list[int]]:
    """Step series reduced to the maximum of each of ``bins`` equal slices (keeps every peak)."""
    lo, hi = xs[0], xs[-1]
    width = (hi - lo) / bins or 1.0
    best = [0] * (bins + 1)
    prev = 0
    j = 0
    for k in range(bins + 1):
        a = lo + k * width
        b = a + width
        m = prev
        while j < len(xs) and xs[j] < b:
            m = max(m, ys[j])
            prev = ys[j]
            j += 1
        best[k] = m
    return [round(lo + k * width, 6) for k in range(bins + 1)], best


def _kind_explanations() -> dict[str, str]:
    from tcpanalyze.findings.base import KINDS

    return {k: v.description for k, v in KINDS.items()}


def _json_for_script(obj: Any) -> str:
    s = json.dumps(obj, separators=(",", ":"), default=str, allow_nan=False)
    return s.replace("</", "<\\/").replace("<!--", "<\\!--")


def build_data(report, col: HtmlCollector, details: dict, policy_results=None, title: str = "") -> dict:
    """The page's data (one JSON block)."""
    recs = list(report.connections)
    recs.sort(key=lambda r: (HD._rank(r), -r["stream"]), reverse=True)
    shown = recs[:col.rows] if col.rows else recs
    keys = {(r.get("file"), r["stream"]) for r in shown}
    for (f, s), _d in details.items():          # chosen connections are always rows
        if (f, s) not in keys:
            shown.append(_d.record)
            keys.add((f, s))
    rows = [_row(r, (r.get("file"), r["stream"]) in details) for r in shown]
    file_ids = {f.get("source"): i for i, f in enumerate(report.files)}
    detail_out = {}
    for (f, s), d in details.items():
        detail_out[f"{file_ids.get(f, 0)}:{s}"] = HD.connection_detail(d)
    for r in rows:
        r["fid"] = file_ids.get(r["file"], 0)
    summ = report.summary
    finds = []
    per_kind: dict[str, int] = {}
    for f in report.findings:
        k = f["kind"]
        per_kind[k] = per_kind.get(k, 0) + 1
        if per_kind[k] > K_FINDINGS_PER_KIND:
            continue
        g = dict(f)
        g["fid"] = file_ids.get(f.get("file"), 0)
        finds.append(g)
    th = summ.get("thresholds", {}).get("time_wait_peak", 100)
    return {"title": title, "version": __version__, "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "files": [{"source": f.get("source"), "format": f.get("format"), "frames": f.get("frames"),
                       "tcp_segments": f.get("tcp_segments"), "error": f.get("error"),
                       "damage": (f.get("damage") or {}).get("message") if isinstance(f.get("damage"), dict) else None,
                       "summary": {k: (f.get("summary") or {}).get(k) for k in
                                   ("connections", "bytes", "duration", "start", "worst_severity",
                                    "connections_with_findings")}}
                      for f in report.files],
            "summary": {k: summ.get(k) for k in ("files", "files_failed", "packets", "tcp_segments", "connections",
                                                 "connections_with_findings", "bytes", "start", "end", "duration",
                                                 "conn_states", "worst_severity")},
            "by_severity": summ.get("findings", {}).get("by_severity", {}),
            "by_kind": summ.get("findings", {}).get("by_kind", {}),
            "findings_total": summ.get("findings", {}).get("total", 0),
            "findings": finds, "per_kind_listed": K_FINDINGS_PER_KIND,
            "explanations": _kind_explanations(),
            "time_wait": _tw_chart(col, report, th),
            "tw_hosts": summ.get("time_wait", {}).get("hosts", []),
            "rows": rows, "rows_total": summ.get("connections", len(recs)), "rows_listed": len(rows),
            "details": detail_out, "detail_limit": col.connections,
            "policy": policy_results}


def collect_report_details(report, col: HtmlCollector, options) -> dict:
    """The second pass over each readable file for its chosen connections:
    {(file, stream): ConnDetail}."""
    recs = list(report.connections)
    picks = HD.choose(recs, list(report.slowest or ()), col.connections)
    by_file: dict[str, list[dict]] = {}
    for r in picks:
        by_file.setdefault(r.get("file"), []).append(r)
    out = {}
    for path, rs in by_file.items():
        if path is None or path == "-" or not os.path.isfile(path):
            continue
        found = HD.collect_details(path, rs, options.engine, options.thresholds)
        for s, d in found.items():
            out[(path, s)] = d
    return out


def policy_results(results) -> list[dict]:
    """``check``'s FileResults as plain data for the page's "Policy checks" section."""
    out = []
    for fr in results:
        out.append({"file": fr.file, "status": fr.status, "error": fr.error,
                    "results": [{"rule": r.rule, "status": r.status, "message": r.message,
                                 "measured": r.measured, "limit": r.limit} for r in fr.results]})
    return out


def render_html(data: dict) -> str:
    """The document: style, plotly.js, the data block and the page script, all inline."""
    from tcpanalyze.report.htmlpage import PAGE_CSS, PAGE_JS

    title = data.get("title") or "tcpanalyze report"
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        # no request may leave the page: only inline scripts, styles, images and fonts
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
        "font-src data:; connect-src 'none'\">\n",
        f"<title>{_html.escape(title)}</title>\n<style>{PAGE_CSS}</style>\n",
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n",
        "<script>", plotly_js(), "</script>\n</head>\n<body>\n<div id=\"app\"></div>\n",
        "<script type=\"application/json\" id=\"tcpa-data\">", _json_for_script(data), "</script>\n",
        "<script>", PAGE_JS, "</script>\n</body>\n</html>\n",
    ]
    return "".join(parts)


def write_html(path: str, doc: str) -> int:
    """Write the document; raises ``OutputError`` (exit code 4).  Returns its size in bytes."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(doc)
    except OSError as e:
        raise OutputError.from_oserror(path, e) from None
    return len(doc.encode("utf-8"))


def html_report(path: str, report, col: HtmlCollector, options, policy_results=None, title: str = "") -> int:
    """Collect the chosen connections' detail, build the page and write it to ``path``."""
    details = collect_report_details(report, col, options)
    data = build_data(report, col, details, policy_results, title)
    return write_html(path, render_html(data))
