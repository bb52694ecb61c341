"""Per-connection detail for the HTML report: a second pass over a capture that keeps only the
chosen connections, and the chart data (Plotly figure dicts) drawn from it.

The first pass (``analyze``) builds the summary records of every connection; from those the
report picks a bounded number of connections (:func:`choose`: the worst by findings and the
longest transfers).  :func:`collect_details` then reads the capture again: every frame is
decoded, but only the segments of the chosen connections (their 4-tuple, inside their first
and last frame) reach a fresh engine, which keeps their state timelines, and per connection a
:class:`~tcpanalyze.report.plots.StreamRecorder` (every segment's verdict), a
:class:`~tcpanalyze.report.ladder.LadderCollector` and the stall watch run.  Decoding alone
costs a fraction of the full analysis, so the second pass adds little to the run time.

Frame numbers are those of the file (the reader counts every frame); stream numbers are
mapped back to the first pass's (the engine of the second pass numbers only what it sees).

The figure functions return plain dicts in Plotly's JSON figure format (``data``, ``layout``);
nothing here imports plotly.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from tcpanalyze import analysis as A
from tcpanalyze.engine import Analyzer, Config, addr_port
from tcpanalyze.findings import Detectors
from tcpanalyze.findings.stall import stall_spans
from tcpanalyze.model import ACK, FIN, RST, SYN
from tcpanalyze.pipeline import RunStats, finish_stats, open_capture, run_packets
from tcpanalyze.report.ladder import LadderCollector, analysis_notes, render_svg
from tcpanalyze.report.plots import StreamRecorder, data_direction

#: default number of connections chosen by findings, and again by transfer time
K_HTML_CONNECTIONS = 10
#: segments of one connection drawn in full; past it, 1 in k ordinary segments (every
#: segment with an analysis flag, SYN/FIN/RST or SACK blocks is drawn while they are fewer
#: than half of this; past that, 1 in k of every segment)
K_MAX_POINTS = 5000

C_SIDE = ("#1f77b4", "#ff7f0e")         # client, server
C_RTX = "#d62728"
C_ACK = "#2ca02c"
C_WIN = "#8c8c1a"
C_SACK = "#9467bd"
C_STALL = "rgba(255,127,14,0.18)"
C_ZW = "rgba(148,103,189,0.20)"


def _transfer(rec: dict) -> float:
    return max((rec.get("orig") or {}).get("transfer_s") or 0.0, (rec.get("resp") or {}).get("transfer_s") or 0.0)


def _rank(rec: dict) -> tuple:
    return (rec.get("score", 0), rec.get("retransmissions", 0), rec["orig_bytes"] + rec["resp_bytes"])


def choose(records: list[dict], slowest: list[dict], n: int) -> list[dict]:
    """The connections that get per-packet detail: the ``n`` worst by findings (score,
    retransmissions, bytes; only those with findings) and the ``n`` longest transfers, without
    repeats, worst first.  At most ``2 n``."""
    if n <= 0:
        return []
    worst = sorted((r for r in records if r.get("score")), key=lambda r: (_rank(r), -r["stream"]), reverse=True)[:n]
    pool = {(r.get("file"), r["stream"]): r for r in list(records) + list(slowest)}
    slow = sorted((r for r in pool.values() if _transfer(r) > 0), key=lambda r: (_transfer(r), -r["stream"]),
                  reverse=True)[:n]
    out, seen = [], set()
    for r in worst + slow:
        k = (r.get("file"), r["stream"])
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


@dataclass
class ConnDetail:
    """What the second pass kept of one chosen connection."""

    record: dict
    stream: int = -1                    # the second pass's stream number
    rec: StreamRecorder | None = None
    ladder: LadderCollector | None = None
    conn: Any = None
    stalls: list = field(default_factory=list)


def _packed(host: str) -> bytes:
    return ipaddress.ip_address(host).packed


def collect_details(path: str, picks: list[dict], engine_kw: dict | None = None, th=None,
                    ladder_packets: int = 40) -> dict[int, ConnDetail]:
    """Read ``path`` again and keep the segments of the ``picks`` (records of this file):
    returns {first-pass stream: ConnDetail} for those found."""
    if not picks:
        return {}
    cfg = Config(**(engine_kw or {}))
    analyzer = Analyzer(cfg, keep_timeline=True)
    det = Detectors(th) if th is not None else Detectors()
    by_ports: dict[tuple[int, int], list] = {}
    for r in picks:
        a = (_packed(r["orig_h"]), r["orig_p"])
        b = (_packed(r["resp_h"]), r["resp_p"])
        key = (a, b) if a <= b else (b, a)
        ports = (min(a[1], b[1]), max(a[1], b[1]))
        by_ports.setdefault(ports, []).append((key, r["first_frame"], r["last_frame"], ConnDetail(r)))
    slots: dict[int, ConnDetail] = {}
    found: dict[int, ConnDetail] = {}

    def match(seg):
        sp, dp = seg.sport, seg.dport
        cands = by_ports.get((sp, dp) if sp <= dp else (dp, sp))
        if cands is None:
            return None
        a = (seg.src, sp)
        b = (seg.dst, dp)
        key = (a, b) if a <= b else (b, a)
        fr = seg.frame
        for k, lo, hi, d in cands:
            if k == key and lo <= fr <= hi:
                return d
        return None

    def keep(seg) -> bool:
        return match(seg) is not None

    def on_segment(seg, a) -> None:
        conn = a.verdict.conn
        d = slots.get(conn.stream)
        if d is None:
            d = match(seg)
            if d is None or d.rec is not None:     # a second connection inside the range: not ours
                return
            d.stream = conn.stream
            d.rec = StreamRecorder(conn.stream)
            d.ladder = LadderCollector(conn.stream, max_packets=ladder_packets)
            slots[conn.stream] = d
            found[d.record["stream"]] = d
        d.rec(seg, a)
        d.ladder(seg, a)
        det.on_segment(seg, a)

    # only the frames inside a chosen connection's first..last frame are decoded; reading
    # stops after the last of them
    spans = _merge_spans(sorted((r["first_frame"], r["last_frame"]) for r in picks))
    stats = RunStats(path)
    reader = open_capture(path)
    try:
        run_packets(_frames_in(iter(reader), spans), analyzer, stats, on_segment, keep, finite=True)
    finally:
        finish_stats(stats, reader)
    analyzer.finish()
    for d in found.values():
        d.conn = d.rec.conn
        d.stalls = [st for side in (0, 1) for st in stall_spans(d.conn, det.th, side)]
    return found


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def _frames_in(packets, spans: list[tuple[int, int]]):
    """The packets whose frame number lies in one of the (sorted, disjoint) ``spans``."""
    if not spans:
        return
    k = 0
    lo, hi = spans[0]
    for pkt in packets:
        fr = pkt[0]
        if fr < lo:
            continue
        while fr > hi:
            k += 1
            if k == len(spans):
                return
            lo, hi = spans[k]
        if fr >= lo:
            yield pkt


# ------------------------------------------------------------------------------ figures
def _verdict(aflags: int) -> str:
    notes = analysis_notes(aflags)
    return ", ".join(n.text for n in notes) if notes else "ok"


def _flags(fl: int) -> str:
    names = [n for bit, n in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (ACK, "ACK")) if fl & bit]
    return ",".join(names) or "none"


def _rows(rec: StreamRecorder, max_points: int) -> tuple[list[int], int]:
    """Indices of the segments drawn, and the decimation step of ordinary ones (1 = all)."""
    n = len(rec)
    if n <= max_points:
        return list(range(n)), 1
    special = [i for i in range(n) if rec.aflags[i] or rec.flags[i] & (SYN | FIN | RST) or i in rec.sack]
    if len(special) * 2 > max_points:
        # even the marked segments are too many: 1 in k of every segment
        step = -(-n // max_points)
        return list(range(0, n, step)), step
    step = max(2, -(-(n - len(special)) // max(1, max_points - len(special))))
    keep = set(special)
    keep.update(range(0, n, step))
    return sorted(keep), step


def _base_layout(title: str, xtitle: str, ytitle: str, **extra) -> dict:
    lay = {"title": {"text": title, "font": {"size": 14}}, "height": 420,
           "margin": {"l": 70, "r": 20, "t": 50, "b": 50},
           "xaxis": {"title": {"text": xtitle}, "zeroline": False},
           "yaxis": {"title": {"text": ytitle}, "zeroline": False},
           "hovermode": "closest", "dragmode": "zoom", "legend": {"orientation": "h", "y": -0.18},
           "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff"}
    lay.update(extra)
    return lay


def _spans(spans: list[tuple[float, float]], colour: str, label: str, yref: str = "paper") -> tuple[list, list]:
    """Shaded rectangles (layout shapes) and one legend entry standing for them."""
    shapes = [{"type": "rect", "xref": "x", "yref": yref if yref != "paper" else "paper", "x0": a, "x1": b,
               "y0": 0, "y1": 1, "fillcolor": colour, "line": {"width": 0}, "layer": "below"} for a, b in spans]
    legend = []
    if spans:
        legend.append({"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": label,
                       "marker": {"symbol": "square", "size": 12, "color": colour}, "hoverinfo": "skip"})
    return shapes, legend


def _r(x: float) -> float:
    return round(x, 6)


def tseq_figure(d: ConnDetail, max_points: int = K_MAX_POINTS) -> dict:
    """Stevens time-sequence graph of the direction that sent more data."""
    rec, conn = d.rec, d.conn
    t0 = rec.t0()
    s = data_direction(rec)
    who, peer = rec.side(s), rec.side(s ^ 1)
    idx, step = _rows(rec, max_points)
    cols = {k: ([], [], [], []) for k in ("data", "rtx", "ack", "sack")}     # x, y(top), minus, text
    win_x, win_y = [], []
    ctl = ([], [], [], [])
    for i in idx:
        t = _r((rec.ts[i] - t0) / 1e9)
        fr = rec.frame[i]
        af = rec.aflags[i]
        if rec.dir[i] == s:
            n = rec.len[i]
            if n:
                k = "rtx" if af & A.RETRANSMISSION_FAMILY else "data"
                c = cols[k]
                c[0].append(t)
                c[1].append(rec.seq[i] + n)
                c[2].append(n)
                c[3].append(f"frame {fr}<br>SEQ {rec.seq[i]}..{rec.seq[i] + n} ({n} B)<br>{_verdict(af)}")
            if rec.flags[i] & (SYN | FIN | RST):
                ctl[0].append(t)
                ctl[1].append(rec.seq[i] + n)
                ctl[2].append("SYN" if rec.flags[i] & SYN else ("RST" if rec.flags[i] & RST else "FIN"))
                ctl[3].append(f"frame {fr}: {_flags(rec.flags[i])}")
        elif rec.flags[i] & ACK and not rec.flags[i] & RST:
            c = cols["ack"]
            c[0].append(t)
            c[1].append(rec.ack[i])
            c[3].append(f"frame {fr}<br>ACK {rec.ack[i]}, WIN {rec.win[i]}<br>{_verdict(af)}")
            win_x.append(t)
            win_y.append(rec.ack[i] + rec.win[i])
            for lo, hi in rec.sack.get(i, ()):
                c = cols["sack"]
                c[0].append(t)
                c[1].append(hi)
                c[2].append(hi - lo)
                c[3].append(f"frame {fr}<br>SACK {lo}..{hi}")
    data = []
    for k, name, colour, sym in (("data", "data segment (SEQ..SEQ+LEN)", C_SIDE[0], "line-ew"),
                                 ("rtx", "retransmission", C_RTX, "x"),
                                 ("sack", "SACK block", C_SACK, "line-ew")):
        x, y, m, txt = cols[k]
        if not x:
            continue
        data.append({"type": "scattergl", "mode": "markers", "name": f"{name} ({len(x)})", "x": x, "y": y,
                     "text": txt, "hoverinfo": "text", "meta": k,
                     "marker": {"symbol": sym, "size": 7 if k != "rtx" else 8, "color": colour,
                                "line": {"color": colour, "width": 1.5}},
                     "error_y": {"type": "data", "symmetric": False, "array": [0] * len(x), "arrayminus": m,
                                 "width": 0, "color": colour, "thickness": 4 if k == "sack" else 1.6}})
    x, y, _m, txt = cols["ack"]
    if x:
        data.append({"type": "scattergl", "mode": "lines", "name": f"{peer}'s ACK", "x": x, "y": y, "text": txt,
                     "hoverinfo": "text", "meta": "ack", "line": {"shape": "hv", "color": C_ACK, "width": 1.2}})
        data.append({"type": "scattergl", "mode": "lines", "name": "receive window (ACK + WIN)", "x": win_x,
                     "y": win_y, "hoverinfo": "skip", "meta": "win",
                     "line": {"shape": "hv", "color": C_WIN, "width": 1, "dash": "dash"}})
    if ctl[0]:
        data.append({"type": "scatter", "mode": "markers+text", "name": "SYN/FIN/RST", "x": ctl[0], "y": ctl[1],
                     "text": ctl[2], "hovertext": ctl[3], "hoverinfo": "text", "textposition": "top right",
                     "marker": {"size": 6, "color": "#444"}, "meta": "ctl"})
    zw = [((e[1] - t0) / 1e9, ((e[3] if e[3] is not None else conn.last_ns) - t0) / 1e9)
          for e in conn.flows[s ^ 1].track.zw_episodes or ()]
    st = [((a - t0) / 1e9, (b - t0) / 1e9) for side, a, b, *_r2 in d.stalls if side == s]
    sh1, lg1 = _spans(zw, C_ZW, f"{peer} zero window ({len(zw)})")
    sh2, lg2 = _spans(st, C_STALL, f"stall: {who} data unacknowledged, nothing sent ({len(st)})")
    note = f" (1 in {step} segments drawn)" if step > 1 else ""
    lay = _base_layout(f"Time–sequence graph: {who} → {peer} data{note}",
                       "time since the connection's first segment (s)",
                       f"relative sequence number, {who} data", shapes=sh1 + sh2)
    lay["yaxis"].update({"tickformat": "~s", "ticksuffix": "B"})
    return {"data": data + lg1 + lg2, "layout": lay,
            "counts": {"segments": len(cols["data"][0]) + len(cols["rtx"][0]), "retransmissions": len(cols["rtx"][0]),
                       "sack_blocks": len(cols["sack"][0]), "zero_windows": len(zw), "stalls": len(st)}}


def window_figure(d: ConnDetail, max_points: int = K_MAX_POINTS) -> dict:
    """Each side's advertised window and bytes in flight, one panel (and scale) per side."""
    rec, conn = d.rec, d.conn
    t0 = rec.t0()
    idx, step = _rows(rec, max_points)
    data, shapes = [], []
    sides = (conn.orig, conn.orig ^ 1)
    for panel, s in enumerate(sides):
        ax = "" if panel == 0 else "2"
        who = rec.side(s)
        colour = C_SIDE[panel]
        wx, wy, wt, bx, by, bt = [], [], [], [], [], []
        for i in idx:
            if rec.dir[i] != s:
                continue
            t = _r((rec.ts[i] - t0) / 1e9)
            if not rec.flags[i] & (SYN | RST):
                wx.append(t)
                wy.append(rec.win[i])
                wt.append(f"frame {rec.frame[i]}<br>{who} WIN {rec.win[i]}<br>{_verdict(rec.aflags[i])}")
            if rec.bif[i] >= 0:
                bx.append(t)
                by.append(rec.bif[i])
                bt.append(f"frame {rec.frame[i]}<br>{who} bytes in flight {rec.bif[i]}<br>{_verdict(rec.aflags[i])}")
        if wx:
            data.append({"type": "scattergl", "mode": "lines", "name": f"{who} advertised window", "x": wx, "y": wy,
                         "text": wt, "hoverinfo": "text", "xaxis": "x", "yaxis": "y" + ax,
                         "line": {"shape": "hv", "color": colour, "width": 1.4}})
        if bx:
            data.append({"type": "scattergl", "mode": "markers", "name": f"{who} bytes in flight", "x": bx, "y": by,
                         "text": bt, "hoverinfo": "text", "xaxis": "x", "yaxis": "y" + ax,
                         "marker": {"size": 4, "color": colour, "opacity": 0.6, "symbol": "circle"}})
        zw = conn.flows[s].track.zw_episodes or ()
        for e in zw:
            end = e[3] if e[3] is not None else conn.last_ns
            shapes.append({"type": "rect", "xref": "x", "yref": f"y{ax} domain", "x0": (e[1] - t0) / 1e9,
                           "x1": (end - t0) / 1e9, "y0": 0, "y1": 1, "fillcolor": C_ZW, "line": {"width": 0},
                           "layer": "below"})
        if zw:
            data.append({"type": "scatter", "x": [None], "y": [None], "mode": "markers", "hoverinfo": "skip",
                         "name": f"{who} zero window ({len(zw)})", "xaxis": "x", "yaxis": "y" + ax,
                         "marker": {"symbol": "square", "size": 12, "color": C_ZW}})
        shr = conn.flows[s].track.shrinks or ()
        if shr:
            data.append({"type": "scatter", "mode": "markers", "name": f"{who} window shrink ({len(shr)})",
                         "x": [(x[1] - t0) / 1e9 for x in shr], "y": [0] * len(shr), "xaxis": "x", "yaxis": "y" + ax,
                         "text": [f"frame {x[0]}: window shrank by {x[2]} B" for x in shr], "hoverinfo": "text",
                         "marker": {"symbol": "triangle-down", "size": 10, "color": C_RTX}})
    note = f" (1 in {step} segments drawn)" if step > 1 else ""
    lay = _base_layout(f"Advertised window and bytes in flight, per side{note}",
                       "time since the connection's first segment (s)", "", shapes=shapes, height=520)
    ycommon = {"tickformat": "~s", "ticksuffix": "B", "rangemode": "tozero"}
    lay["yaxis"] = {**ycommon, "domain": [0.55, 1.0], "title": {"text": f"{rec.side(sides[0])} (bytes)"}}
    lay["yaxis2"] = {**ycommon, "domain": [0.0, 0.45], "title": {"text": f"{rec.side(sides[1])} (bytes)"}}
    lay["xaxis"]["anchor"] = "y2"
    return {"data": data, "layout": lay}


def rtt_figure(d: ConnDetail) -> dict:
    """RTT samples as points, per direction of data (Karn's rule: none from retransmitted data)."""
    rec, conn = d.rec, d.conn
    t0 = rec.t0()
    data = []
    for k, s in enumerate((conn.orig, conn.orig ^ 1)):
        samples = conn.flows[s].track.rtt_samples or []
        if not samples:
            continue
        data.append({"type": "scattergl", "mode": "markers", "name": f"{rec.side(s)} → {rec.side(s ^ 1)} data "
                     f"({len(samples)} samples)", "x": [_r((x[0] - t0) / 1e9) for x in samples],
                     "y": [round(x[2] / 1e6, 4) for x in samples],
                     "text": [f"ACK frame {x[1]}<br>RTT {x[2] / 1e6:.3f} ms" for x in samples], "hoverinfo": "text",
                     "marker": {"size": 5, "color": C_SIDE[k]}})
    shapes = []
    if conn.irtt:
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": conn.irtt / 1e6,
                       "y1": conn.irtt / 1e6, "line": {"color": "#777", "dash": "dot", "width": 1}})
        data.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "hoverinfo": "skip",
                     "name": f"handshake RTT {conn.irtt / 1e6:.3f} ms", "line": {"color": "#777", "dash": "dot"}})
    lay = _base_layout("RTT samples", "time of the ACK since the connection's first segment (s)", "RTT (ms)",
                       shapes=shapes)
    lay["yaxis"]["rangemode"] = "tozero"
    if not any(t.get("mode") == "markers" for t in data):
        lay["annotations"] = [{"text": "no RTT samples (no acknowledged data, or only retransmitted data)",
                               "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "showarrow": False}]
    return {"data": data, "layout": lay}


def throughput_figure(d: ConnDetail, bins: int = 200) -> dict:
    """Per direction: bits sent per time slice (retransmissions included) and bits acknowledged
    by the peer (goodput), in bit/s."""
    rec, conn = d.rec, d.conn
    t0 = rec.t0()
    span = max(conn.last_ns - t0, 1)
    width = max(span / bins, 1e6)                      # at least 1 ms per slice
    nb = int(span // width) + 1
    sent = ([0] * nb, [0] * nb)
    acked = ([0] * nb, [0] * nb)
    last_ack = [None, None]
    for i in range(len(rec)):
        k = int((rec.ts[i] - t0) // width)
        dd = rec.dir[i]
        side = 0 if dd == conn.orig else 1
        if rec.len[i]:
            sent[side][k] += rec.len[i]
        if rec.flags[i] & ACK:
            a = rec.ack[i]
            prev = last_ack[side]
            if prev is not None and a > prev:
                acked[1 - side][k] += a - prev          # this side acknowledges the other side's data
            last_ack[side] = a if prev is None or a > prev else prev
    xs = [_r((k + 0.5) * width / 1e9) for k in range(nb)]
    scale = 8e9 / width
    data = []
    for side in (0, 1):
        s = conn.orig if side == 0 else conn.orig ^ 1
        if not any(sent[side]):
            continue
        who, peer = rec.side(s), rec.side(s ^ 1)
        data.append({"type": "scatter", "mode": "lines", "name": f"{who} sent (incl. retransmissions)", "x": xs,
                     "y": [round(v * scale) for v in sent[side]], "line": {"color": C_SIDE[side], "width": 1.2},
                     "hovertemplate": "t %{x:.3f} s<br>%{y:.3s}bit/s<extra>" + who + " sent</extra>"})
        data.append({"type": "scatter", "mode": "lines", "name": f"{who} data acknowledged by the {peer} (goodput)",
                     "x": xs, "y": [round(v * scale) for v in acked[side]],
                     "line": {"color": C_SIDE[side], "width": 1.2, "dash": "dot"},
                     "hovertemplate": "t %{x:.3f} s<br>%{y:.3s}bit/s<extra>" + who + " acknowledged</extra>"})
    lay = _base_layout(f"Throughput (per {width / 1e6:.3g} ms slice)", "time since the connection's first segment (s)",
                       "bit/s")
    lay["yaxis"].update({"tickformat": "~s", "ticksuffix": "bit/s", "rangemode": "tozero"})
    return {"data": data, "layout": lay}


_STATE_COLOURS = {"LISTEN": "#c7c7c7", "SYN_SENT": "#aec7e8", "SYN_RECEIVED": "#98df8a", "ESTABLISHED": "#2ca02c",
                  "FIN_WAIT_1": "#ffbb78", "FIN_WAIT_2": "#ff9896", "CLOSE_WAIT": "#e377c2", "CLOSING": "#f7b6d2",
                  "LAST_ACK": "#c5b0d5", "TIME_WAIT": "#8c564b", "CLOSED": "#7f7f7f"}


def states_figure(d: ConnDetail) -> dict:
    """Both endpoints' RFC 9293 state over time: one bar per state held."""
    conn, rec = d.conn, d.rec
    t0 = conn.first_ns
    end = conn.last_ns
    traces: dict[str, dict] = {}
    for s in (conn.orig, conn.orig ^ 1):
        who = rec.side(s)
        tl = conn.timeline[s] if conn.timeline is not None else []
        spans = []
        cur = tl[0][2].name if tl else conn.state[s].name
        start, frame = t0, conn.first_frame
        for ts, fr, _old, new, *_rest in tl:
            spans.append((cur, start, ts, frame))
            cur, start, frame = new.name, ts, fr
        spans.append((cur, start, max(end, start), frame))
        for name, a, b, fr in spans:
            tr = traces.get(name)
            if tr is None:
                tr = traces[name] = {"type": "bar", "orientation": "h", "name": name, "x": [], "base": [], "y": [],
                                     "text": [], "hovertext": [], "hoverinfo": "text", "textposition": "inside",
                                     "insidetextanchor": "middle",
                                     "marker": {"color": _STATE_COLOURS.get(name, "#bcbd22")}}
            dur = max((b - a) / 1e9, 1e-6)
            tr["x"].append(round(dur, 9))
            tr["base"].append(_r((a - t0) / 1e9))
            tr["y"].append(who)
            tr["text"].append(name)
            tr["hovertext"].append(f"{who} {name} from frame {fr}, {(a - t0) / 1e9:.6f} s, for {dur:.6f} s")
    lay = _base_layout("Endpoint states", "time since the connection's first segment (s)", "", height=220,
                       barmode="overlay", showlegend=True)
    lay["yaxis"].update({"categoryorder": "array", "categoryarray": ["server", "client"]})
    return {"data": list(traces.values()), "layout": lay}


def ladder_svg(d: ConnDetail) -> str:
    """The ladder diagram (``tcpanalyze ladder --svg``), without its XML declaration, for inlining."""
    doc = render_svg(d.ladder.build(d.stalls))
    if doc.startswith("<?xml"):
        doc = doc.split("\n", 1)[1]
    return doc


def connection_detail(d: ConnDetail, max_points: int = K_MAX_POINTS) -> dict:
    """Everything the page shows for one chosen connection."""
    conn = d.conn
    o = conn.orig
    title = f"tcp.stream {d.record['stream']}: client {addr_port(conn, o)} → server {addr_port(conn, o ^ 1)}"
    return {"title": title,
            "segments": len(d.rec), "ladder": ladder_svg(d),
            "figures": {"states": states_figure(d), "tseq": tseq_figure(d, max_points),
                        "window": window_figure(d, max_points), "rtt": rtt_figure(d),
                        "throughput": throughput_figure(d)}}
