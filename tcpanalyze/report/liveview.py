"""The live view of ``tcpanalyze live``: a rich ``Live`` display refreshed a few times a second.

The analysis loop publishes a plain-dict snapshot (``LiveSession.snapshot``) with ``update``;
rich's own refresh thread calls ``render`` on the latest one, so drawing never blocks the
capture.  The display is transient: it disappears when the capture stops and the final report
is printed in its place.
"""
from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
K_REFRESH_PER_SECOND = 4


def _bytes(n: float) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{int(n)} B"


def render_snapshot(snap: dict | None, title: str = "tcpanalyze live") -> Group:
    """The view of one snapshot (a pure function: tests render it into a string console)."""
    if snap is None:
        return Group(Text(f"{title}: waiting for packets ...", style="bold"))
    head = Text()
    head.append(title, style="bold")
    head.append(f"   {snap['elapsed']:.1f} s   ")
    head.append(f"{snap['frames']:,} packets", style="bold")
    head.append(f" ({snap['pps']:,.0f}/s)   {snap['tcp']:,} TCP segments   {_bytes(snap['bytes'])}")
    d = snap.get("drops")
    if d:
        drop = d.get("dropped", 0)
        head.append(f"   kernel drops: {drop:,}", style="bold red" if drop else "green")
    counters = Text()
    counters.append(f"connections: {snap['open']:,} open, {snap['active']:,} tracked, {snap['closed']:,} finished")
    if snap.get("expired"):
        counters.append(f", {snap['expired']:,} expired (idle)")
    if snap.get("evicted"):
        counters.append(f", {snap['evicted']:,} evicted", style="yellow")
    counters.append("   RST: ")
    counters.append(f"{snap['rst']:,}", style="bold red" if snap["rst"] else "")
    counters.append("   retransmissions: ")
    counters.append(f"{snap['rtx']:,}", style="yellow" if snap["rtx"] else "")
    f = snap["findings"]
    counters.append("   findings: ")
    for sev in ("error", "warning", "info"):
        counters.append(f"{f[sev]} {sev}  ", style=SEV_STYLE[sev] if f[sev] else "dim")

    states = Table(box=box.SIMPLE_HEAD, pad_edge=False, min_width=44)
    states.add_column("tracked connections by state (orig / resp)")
    states.add_column("n", justify="right")
    for name, n in snap["states"]:
        states.add_row(name, f"{n:,}")
    if not snap["states"]:
        states.add_row(Text("none", style="dim"), "")
    tw = Table(box=box.SIMPLE_HEAD, pad_edge=False, min_width=36)
    tw.add_column("TIME_WAIT now, per host")
    tw.add_column("n", justify="right")
    for n, host in snap["time_wait"]:
        tw.add_row(host, f"{n:,}")
    if not snap["time_wait"]:
        tw.add_row(Text("none", style="dim"), "")
    side = Table.grid(padding=(0, 4))
    side.add_row(states, tw)

    newest = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    newest.add_column("severity", no_wrap=True)
    newest.add_column("newest findings (of closed connections)", overflow="ellipsis", no_wrap=True)
    for sev, label, msg in snap["newest"]:
        newest.add_row(Text(sev, style=SEV_STYLE.get(sev, "")), msg)
    if not snap["newest"]:
        newest.add_row("", Text("none yet", style="dim"))
    return Group(head, counters, side, newest)


class LiveView:
    """rich Live around ``render_snapshot``; ``update`` is cheap (a reference swap)."""

    def __init__(self, title: str = "tcpanalyze live", console: Console | None = None,
                 refresh_per_second: float = K_REFRESH_PER_SECOND):
        from rich.live import Live

        self.title = title
        self.snap: dict | None = None
        self.console = console or Console()
        self.live = Live(get_renderable=self.render, console=self.console, refresh_per_second=refresh_per_second,
                         transient=True, redirect_stdout=False, redirect_stderr=False)

    def update(self, snap: dict) -> None:
        self.snap = snap

    def render(self):
        return render_snapshot(self.snap, self.title)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()
