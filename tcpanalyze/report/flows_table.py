"""Rich rendering of connection summaries and of one connection's two state timelines."""
from __future__ import annotations

from tcpanalyze.report.richout import OutConsole as Console
from rich.table import Table

_STATE_STYLE = {"ESTABLISHED": "green", "TIME_WAIT": "yellow", "CLOSE_WAIT": "magenta", "CLOSED": "dim",
                "SYN_SENT": "cyan", "SYN_RECEIVED": "cyan", "LISTEN": "cyan"}


def _console(out, width: int | None = None) -> Console:
    return Console(file=out, width=width or (None if out.isatty() else 140), highlight=False,
                   color_system="auto" if out.isatty() else None)


def render_flows(recs: list[dict], out, detail: bool = False, width: int | None = None) -> None:
    con = _console(out, width)
    t = Table(title=f"{len(recs)} connection(s)", title_justify="left")
    for col, just in (("stream", "right"), ("client", "left"), ("server", "left"), ("client state", "left"),
                      ("server state", "left"), ("zeek", "left"), ("history", "left"), ("pkts c/s", "right"),
                      ("bytes c/s", "right"), ("rtx", "right"), ("closed by", "left"), ("end", "left"),
                      ("goodput", "right"), ("rtt", "right"), ("limited by", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    for r in recs:
        t.add_row(str(r["stream"]), f"{r['orig_h']}:{r['orig_p']}", f"{r['resp_h']}:{r['resp_p']}",
                  _styled(r["orig_state"]), _styled(r["resp_state"]), r["conn_state"], r["history"],
                  f"{r['orig_pkts']}/{r['resp_pkts']}", f"{r['orig_bytes']}/{r['resp_bytes']}",
                  str(r["retransmissions"]), r["close_initiator"] or "-",
                  r["end_reason"] + ("" if r["handshake_seen"] else " (no handshake)"), *_limits(r))
    con.print(t)
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


def _styled(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def _render_timelines(con: Console, r: dict) -> None:
    """Both endpoints' transitions side by side, merged in time order."""
    tl = r.get("timeline") or {}
    rows = [(e["frame"], e["time"], "orig", e) for e in tl.get("orig", [])]
    rows += [(e["frame"], e["time"], "resp", e) for e in tl.get("resp", [])]
    rows.sort(key=lambda x: (x[0], x[2] != "orig"))
    t0 = r["start"]
    t = Table(title=f"stream {r['stream']}: client {r['orig_h']}:{r['orig_p']}  server {r['resp_h']}:{r['resp_p']}"
                    + ("" if r["handshake_seen"] else "  (handshake not captured: states inferred)"),
              title_justify="left")
    t.add_column("time", justify="right")
    t.add_column("frame", justify="right")
    t.add_column("client", no_wrap=True)
    t.add_column("server", no_wrap=True)
    for frame, ts, who, e in rows:
        cell = f"{_styled(e['from'])} -> {_styled(e['to'])}\n[dim]{e['cause']}[/]"
        t.add_row(f"{ts - t0:.6f}", str(frame), cell if who == "orig" else "", cell if who == "resp" else "")
    con.print(t)
    con.print(f"final: client {_styled(r['orig_state'])}, server {_styled(r['resp_state'])}; "
              f"zeek {r['conn_state']} {r['history']}")
    for u in r.get("unexpected", []):
        con.print(f"[yellow]unexpected[/]: frame {u['frame']} ({u['endpoint']}): {u['anomaly']}")
