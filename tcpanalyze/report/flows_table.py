"""Rich rendering of connection summaries and of one connection's two state timelines.

The summary table fits the console's width without cutting an endpoint: the stream and
both endpoints are always shown whole (an IPv6 address in brackets before its port); the
other columns are added in ``PRIORITY`` order as long as they fit, and the caption names
those left out.
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from tcpanalyze.model import endpoint_str
from tcpanalyze.report.richout import OutConsole as Console

_STATE_STYLE = {"ESTABLISHED": "green", "TIME_WAIT": "yellow", "CLOSE_WAIT": "magenta", "CLOSED": "dim",
                "SYN_SENT": "cyan", "SYN_RECEIVED": "cyan", "LISTEN": "cyan"}

#: (header, justify) of every column, in display order
COLUMNS = (("stream", "right"), ("client", "left"), ("server", "left"), ("client state", "left"),
           ("server state", "left"), ("zeek", "left"), ("history", "left"), ("pkts c/s", "right"),
           ("bytes c/s", "right"), ("rtx", "right"), ("closed by", "left"), ("end", "left"),
           ("goodput", "right"), ("rtt", "right"), ("limited by", "left"))
#: columns that are never left out
KEEP = ("stream", "client", "server")
#: the others, most wanted first
PRIORITY = ("client state", "server state", "end", "limited by", "goodput", "rtt", "zeek", "rtx", "pkts c/s",
            "bytes c/s", "closed by", "history")


def make_console(out, width: int | None = None) -> Console:
    """A console on ``out``: a terminal's width, else rich's convention for other outputs
    (``COLUMNS`` when set, else 80 columns); ``width`` overrides both."""
    tty = out.isatty()
    return Console(file=out, width=width, highlight=False, color_system="auto" if tty else None)


def _cells(r: dict) -> dict[str, str]:
    return {"stream": str(r["stream"]), "client": endpoint_str(r["orig_h"], r["orig_p"]),
            "server": endpoint_str(r["resp_h"], r["resp_p"]), "client state": r["orig_state"],
            "server state": r["resp_state"], "zeek": r["conn_state"], "history": r["history"],
            "pkts c/s": f"{r['orig_pkts']}/{r['resp_pkts']}", "bytes c/s": f"{r['orig_bytes']}/{r['resp_bytes']}",
            "rtx": str(r["retransmissions"]), "closed by": r["close_initiator"] or "-",
            "end": (r["end_reason"] or "-") + ("" if r["handshake_seen"] else " (no handshake)"),
            **dict(zip(("goodput", "rtt", "limited by"), _limits(r)))}


def fit_columns(rows: list[dict[str, str]], width: int) -> tuple[list[str], list[str]]:
    """(shown, left out) in display order: the ``KEEP`` columns, then each column of
    ``PRIORITY`` whose widest cell still fits ``width`` with the table's borders and padding
    (3 cells per column, and 1)."""
    need = {h: max([len(h)] + [len(c[h]) for c in rows]) for h, _j in COLUMNS}
    room = width - 1 - sum(need[h] + 3 for h in KEEP)
    taken = set(KEEP)
    for h in PRIORITY:
        if need[h] + 3 <= room:
            taken.add(h)
            room -= need[h] + 3
    order = [h for h, _j in COLUMNS]
    return [h for h in order if h in taken], [h for h in order if h not in taken]


def render_flows(recs: list[dict], out, detail: bool = False, width: int | None = None,
                 title: str | None = None, console: Console | None = None) -> None:
    con = console or make_console(out, width)
    cells = [_cells(r) for r in recs]
    shown, dropped = fit_columns(cells, con.width)
    t = Table(title=title or f"{len(recs)} connection(s)", title_justify="left")
    just = dict(COLUMNS)
    for h in shown:
        # an endpoint folds onto a second line rather than lose characters, should even the
        # three kept columns not fit
        t.add_column(h, justify=just[h], no_wrap=h not in KEEP, overflow="fold" if h in KEEP else "ellipsis",
                     min_width=max(len(h), max((len(c[h]) for c in cells), default=0)) if h in KEEP else None)
    for c in cells:
        t.add_row(*(_styled(c[h]) if h in ("client state", "server state") else Text(c[h]) for h in shown))
    if dropped:
        t.caption = (f"left out to fit {con.width} columns: {', '.join(dropped)} "
                     "(a wider terminal or COLUMNS=N shows them; --format jsonl has every field)")
        t.caption_justify = "left"
    con.print(t, crop=False)        # a console narrower than the endpoints: longer lines, never cut ones
    if detail:
        for r in recs:
            _render_timelines(con, r)


def _limits(r: dict) -> tuple[str, str, str]:
    """Goodput, RTT and limited_by of the direction that carried more data ("c>" client to
    server, "s>" server to client); dashes without data (docs/diagnosis.md)."""
    o, s = r.get("orig") or {}, r.get("resp") or {}
    if not (o.get("data_bytes") or s.get("data_bytes")):
        return "-", "-", "-"
    who, d = ("c>", o) if (o.get("data_bytes") or 0) >= (s.get("data_bytes") or 0) else ("s>", s)
    bps = d.get("goodput_bps")
    rate = "-"
    if bps:
        rate = next((f"{bps / k:.3g} {u}" for u, k in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)) if bps >= k),
                    f"{bps:.0f} bit/s")
    rtt = d.get("rtt_avg_ms")
    return f"{who} {rate}", "-" if rtt is None else f"{rtt:.3g} ms", f"{who} {d.get('limited_by') or '-'}"


def _styled(state: str) -> Text:
    style = _STATE_STYLE.get(state)
    return Text(state, style=style or "")


def _markup(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def _render_timelines(con: Console, r: dict) -> None:
    """Both endpoints' transitions side by side, merged in time order."""
    tl = r.get("timeline") or {}
    rows = [(e["frame"], e["time"], "orig", e) for e in tl.get("orig", [])]
    rows += [(e["frame"], e["time"], "resp", e) for e in tl.get("resp", [])]
    rows.sort(key=lambda x: (x[0], x[2] != "orig"))
    t0 = r["start"]
    client = endpoint_str(r["orig_h"], r["orig_p"])
    server = endpoint_str(r["resp_h"], r["resp_p"])
    t = Table(title=f"stream {r['stream']}: client {client}  server {server}"
                    + ("" if r["handshake_seen"] else "  (handshake not captured: states inferred)"),
              title_justify="left")
    t.add_column("time", justify="right")
    t.add_column("frame", justify="right")
    t.add_column("client", no_wrap=True)
    t.add_column("server", no_wrap=True)
    for frame, ts, who, e in rows:
        cell = f"{_markup(e['from'])} -> {_markup(e['to'])}\n[dim]{e['cause']}[/]"
        t.add_row(f"{ts - t0:.6f}", str(frame), cell if who == "orig" else "", cell if who == "resp" else "")
    con.print(t)
    con.print(f"final: client {_markup(r['orig_state'])}, server {_markup(r['resp_state'])}; "
              f"zeek {r['conn_state']} {r['history']}")
    for u in r.get("unexpected", []):
        con.print(f"[yellow]unexpected[/]: frame {u['frame']} ({u['endpoint']}): {u['anomaly']}")
