"""Plots of one connection, and of TIME_WAIT over a whole capture (needs matplotlib).

Everything is drawn from the single pass of the engine: :class:`StreamRecorder` is the
``on_segment`` callback that keeps the per-packet verdicts of the selected stream only (in
compact arrays: about 80 bytes a segment), and the plot functions read it together with what
the engine keeps per flow (``zw_episodes``, ``shrinks``, ``rtt_samples``) or per host
(``Analyzer.tw_starts``).  No second decode.

matplotlib is imported inside the plot functions only (``[plot]`` extra), with the Agg
backend; this module itself imports nothing heavy.

Kinds
-----
``tseq``
    Stevens-style time-sequence graph of one direction's data: a vertical bar from SEQ to
    SEQ+LEN per data segment (retransmissions in red), the receiver's ACK line and its
    receive-window line (ACK + calculated window), and the SACK blocks it reported.
``window``
    Both endpoints' advertised (calculated) window and each sender's bytes in flight over
    time; zero-window episodes shaded, window shrinks marked.
``rtt``
    Per-segment RTT samples (Karn's rule applied: no sample from an ACK of retransmitted
    data) of each direction's data, over time.
``timewait``
    Connections in TIME_WAIT per host over the whole capture: each TIME_WAIT lasts 2*MSL
    from its start (``Analyzer.tw_starts``); a threshold line.
"""
from __future__ import annotations

from array import array

from tcpanalyze import analysis as A
from tcpanalyze.engine import addr_port
from tcpanalyze.errors import OutputError
from tcpanalyze.model import ACK, FIN, RST, SYN, addr_str
from tcpanalyze.seq import SeqUnwrapper, seq_add, seq_delta

KINDS = ("tseq", "window", "rtt", "timewait")

# colours (matplotlib's tab10 names, readable in print)
C_DATA = "tab:blue"
C_RTX = "tab:red"
C_ACK = "tab:green"
C_WIN = "tab:olive"
C_SACK = "tab:purple"
C_STALL = "tab:orange"
C_SIDE = ("tab:blue", "tab:orange")      # client, server


class _Unwrap:
    """Relative numbers on a continuous integer line past 2**32: the first value as it is,
    the later ones offset from it by seq.py's SeqUnwrapper."""

    __slots__ = ("first", "unwrapper")

    def __init__(self):
        self.first = 0
        self.unwrapper = None

    def __call__(self, v: int) -> int:
        if self.unwrapper is None:
            self.first = v
            self.unwrapper = SeqUnwrapper(v)
        return self.first + self.unwrapper.unwrap(v)


class StreamRecorder:
    """``on_segment`` callback: the per-packet verdicts of one stream, every segment, compactly.

    Columns (``array('q')``): ``ts`` (ns), ``dir`` (flow index in the Conn), ``flags``, ``seq``
    and ``ack`` (relative, unwrapped past 2**32), ``len``, ``win`` (calculated), ``aflags``,
    ``bif`` (-1 none), ``frame``; ``sack`` maps a row index to its SACK blocks (relative to
    the acknowledged direction, unwrapped like its ACK).  Also switches on the engine's RTT
    sample lists (``Flow.track.rtt_samples``) for this stream's two flows.
    """

    def __init__(self, stream: int):
        self.stream = stream
        self.conn = None
        self.ts = array("q")
        self.dir = array("b")
        self.flags = array("H")
        self.seq = array("q")
        self.ack = array("q")
        self.len = array("q")
        self.win = array("q")
        self.aflags = array("I")
        self.bif = array("q")
        self.frame = array("q")
        self.sack: dict[int, tuple[tuple[int, int], ...]] = {}
        self._useq = (_Unwrap(), _Unwrap())
        self._uack = (_Unwrap(), _Unwrap())

    def __len__(self) -> int:
        return len(self.ts)

    def __call__(self, seg, a) -> None:
        conn = a.verdict.conn
        if conn.stream != self.stream:
            return
        if self.conn is None:
            self.conn = conn
            for f in conn.flows:
                if f.track.rtt_samples is None:
                    f.track.rtt_samples = []
        d = a.verdict.direction
        flags = seg.flags
        self.ts.append(seg.ts_ns)
        self.dir.append(d)
        self.flags.append(flags)
        self.seq.append(self._useq[d](a.verdict.rel_seq))
        ack = self._uack[d](a.verdict.rel_ack) if flags & ACK else (self.ack[-1] if self.ack else 0)
        self.ack.append(ack)
        self.len.append(seg.paylen)
        self.win.append(a.verdict.win)
        self.aflags.append(a.verdict.analysis)
        self.bif.append(a.verdict.bytes_in_flight)
        self.frame.append(seg.frame)
        if seg.sack and flags & ACK:
            base = conn.flows[d ^ 1].base_seq
            raw_ack = seq_add(a.verdict.rel_ack, base)
            blocks = []
            for left, right in seg.sack:
                blocks.append((ack + seq_delta(left, raw_ack), ack + seq_delta(right, raw_ack)))
            self.sack[len(self.ts) - 1] = tuple(blocks)

    # helpers for the plots
    def side(self, d: int) -> str:
        conn = self.conn
        return "client" if d == conn.orig else "server"

    def t0(self) -> int:
        return self.conn.first_ns


# ------------------------------------------------------------------------------ matplotlib
def _figure(figsize=(11, 6.2)):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _save(fig, path: str) -> None:
    """Raises ``OutputError`` when the image cannot be written."""
    try:
        fig.savefig(path, dpi=110 if not path.lower().endswith((".svg", ".pdf")) else None)
    except OSError as e:
        raise OutputError.from_oserror(path, e) from None


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="#777777")


def _title(rec: StreamRecorder, what: str) -> str:
    c = rec.conn
    o = c.orig
    return f"{what} — tcp.stream {c.stream}: {addr_port(c, o)} → {addr_port(c, o ^ 1)}"


def data_direction(rec: StreamRecorder, direction: str = "auto") -> int:
    """Flow index of the data sender: 'client', 'server', or 'auto' (the one that sent more bytes)."""
    conn = rec.conn
    if direction == "client":
        return conn.orig
    if direction == "server":
        return conn.orig ^ 1
    f0, f1 = conn.flows
    if f0.stats.bytes == f1.stats.bytes:
        return conn.orig
    return 0 if f0.stats.bytes > f1.stats.bytes else 1


def plot_tseq(rec: StreamRecorder, path: str, direction: str = "auto", stalls: list[tuple] | None = None) -> dict:
    """Time-sequence graph of one direction; returns counts of what was drawn.  ``stalls``:
    ``(direction, start_ns, end_ns, ...)`` of the connection's stalls; the drawn direction's
    are shaded."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, ax = _figure()
    d = data_direction(rec, direction)
    t0 = rec.t0()
    ts, dirs, seqs, lens, flags, af = rec.ts, rec.dir, rec.seq, rec.len, rec.flags, rec.aflags
    acks, wins = rec.ack, rec.win
    data_x, data_lo, data_hi, rtx_x, rtx_lo, rtx_hi = [], [], [], [], [], []
    ack_x, ack_y, wnd_y = [], [], []
    sack_x, sack_lo, sack_hi = [], [], []
    ctl_x, ctl_y, ctl_m = [], [], []
    for i in range(len(ts)):
        t = (ts[i] - t0) / 1e9
        if dirs[i] == d:
            n = lens[i]
            if n:
                if af[i] & A.RETRANSMISSION_FAMILY:
                    rtx_x.append(t)
                    rtx_lo.append(seqs[i])
                    rtx_hi.append(seqs[i] + n)
                else:
                    data_x.append(t)
                    data_lo.append(seqs[i])
                    data_hi.append(seqs[i] + n)
            if flags[i] & (SYN | FIN | RST):
                ctl_x.append(t)
                ctl_y.append(seqs[i] + n)
                ctl_m.append("S" if flags[i] & SYN else ("R" if flags[i] & RST else "F"))
        elif flags[i] & ACK and not flags[i] & RST:
            ack_x.append(t)
            ack_y.append(acks[i])
            wnd_y.append(acks[i] + wins[i])
            blocks = rec.sack.get(i)
            if blocks:
                for lo, hi in blocks:
                    sack_x.append(t)
                    sack_lo.append(lo)
                    sack_hi.append(hi)
    handles = []
    if data_x:
        ax.vlines(data_x, data_lo, data_hi, colors=C_DATA, linewidth=1.6)
        ax.plot(data_x, data_hi, linestyle="none", marker="_", markersize=5, color=C_DATA)
        handles.append(Line2D([], [], color=C_DATA, lw=2, label="data segment (SEQ..SEQ+LEN)"))
    if rtx_x:
        ax.vlines(rtx_x, rtx_lo, rtx_hi, colors=C_RTX, linewidth=2.4)
        ax.plot(rtx_x, rtx_hi, linestyle="none", marker="x", markersize=6, color=C_RTX)
        handles.append(Line2D([], [], color=C_RTX, lw=2, marker="x", label="retransmission"))
    if ack_x:
        ax.step(ack_x, ack_y, where="post", color=C_ACK, linewidth=1.2)
        handles.append(Line2D([], [], color=C_ACK, lw=1.2, label="ACK"))
        ax.step(ack_x, wnd_y, where="post", color=C_WIN, linewidth=1.0, linestyle="--")
        handles.append(Line2D([], [], color=C_WIN, lw=1, ls="--", label="receive window (ACK + WIN)"))
    if sack_x:
        ax.vlines(sack_x, sack_lo, sack_hi, colors=C_SACK, linewidth=4, alpha=0.55)
        handles.append(Line2D([], [], color=C_SACK, lw=4, alpha=0.55, label="SACK block"))
    if ctl_x:
        for x, y, m in zip(ctl_x, ctl_y, ctl_m):
            ax.annotate(m, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8, color="#444444")
        ax.plot(ctl_x, ctl_y, linestyle="none", marker="o", markersize=3, color="#444444")
    shaded = [st for st in stalls or () if st[0] == d]
    for st in shaded:
        ax.axvspan((st[1] - t0) / 1e9, (st[2] - t0) / 1e9, color=C_STALL, alpha=0.18, linewidth=0)
    if shaded:
        handles.append(Patch(color=C_STALL, alpha=0.18, label="stall (unacknowledged data, nothing sent)"))
    if not (data_x or rtx_x):
        _empty_note(ax, f"no data from the {rec.side(d)} in this stream")
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=9)
    ax.set_xlabel("time since the connection's first segment (s)")
    ax.set_ylabel(f"relative sequence number, {rec.side(d)} data (bytes)")
    ax.set_title(_title(rec, f"Time–sequence graph ({rec.side(d)} → {rec.side(d ^ 1)} data)"), fontsize=11)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    _save(fig, path)
    return {"segments": len(data_x) + len(rtx_x), "retransmissions": len(rtx_x), "acks": len(ack_x),
            "sack_blocks": len(sack_x), "stalls": len(shaded)}


def plot_window(rec: StreamRecorder, path: str) -> dict:
    """Advertised window and bytes in flight of both sides; zero-window episodes and shrinks."""
    fig, ax = _figure()
    conn = rec.conn
    t0 = rec.t0()
    ts, dirs, wins, bifs, flags, frames = rec.ts, rec.dir, rec.win, rec.bif, rec.flags, rec.frame
    counts = {"zero_window_episodes": 0, "shrinks": 0}
    win_at: list[dict[int, int]] = [{}, {}]
    for d in (conn.orig, conn.orig ^ 1):
        side = rec.side(d)
        colour = C_SIDE[0 if d == conn.orig else 1]
        wx, wy, bx, by = [], [], [], []
        for i in range(len(ts)):
            if dirs[i] != d:
                continue
            t = (ts[i] - t0) / 1e9
            if not flags[i] & (SYN | RST):
                wx.append(t)
                wy.append(wins[i])
                win_at[d][frames[i]] = wins[i]
            if bifs[i] >= 0:
                bx.append(t)
                by.append(bifs[i])
        if wx:
            ax.step(wx, wy, where="post", color=colour, linewidth=1.4, label=f"{side} advertised window")
        if bx:
            ax.plot(bx, by, linestyle="none", marker=".", markersize=3, color=colour, alpha=0.6,
                    label=f"{side} bytes in flight")
        f = conn.flows[d]
        for k, (_sf, s_ns, _ef, e_ns, probes) in enumerate(f.track.zw_episodes or ()):
            end = e_ns if e_ns is not None else conn.last_ns
            ax.axvspan((s_ns - t0) / 1e9, (end - t0) / 1e9, color=colour, alpha=0.15,
                       label=f"{side} zero window" if k == 0 else None)
            counts["zero_window_episodes"] += 1
        sx, sy = [], []
        for frame, s_ns, _bytes in f.track.shrinks or ():
            sx.append((s_ns - t0) / 1e9)
            sy.append(win_at[d].get(frame, 0))
        if sx:
            ax.plot(sx, sy, linestyle="none", marker="v", markersize=8, color="tab:red",
                    markeredgecolor="black", label=f"{side} window shrink")
            counts["shrinks"] += len(sx)
    if not len(ts):
        _empty_note(ax, "no segments")
    ax.set_xlabel("time since the connection's first segment (s)")
    ax.set_ylabel("bytes")
    ax.set_ylim(bottom=0)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.set_title(_title(rec, "Advertised window and bytes in flight"), fontsize=11)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=9)
    _save(fig, path)
    return counts


def plot_rtt(rec: StreamRecorder, path: str) -> dict:
    """RTT samples of each direction's data over time (ms)."""
    fig, ax = _figure()
    conn = rec.conn
    t0 = rec.t0()
    n = 0
    for d in (conn.orig, conn.orig ^ 1):
        samples = conn.flows[d].track.rtt_samples or []
        if not samples:
            continue
        x = [(s[0] - t0) / 1e9 for s in samples]
        y = [s[2] / 1e6 for s in samples]
        colour = C_SIDE[0 if d == conn.orig else 1]
        ax.plot(x, y, marker="o", markersize=3, linewidth=0.8, color=colour,
                label=f"{rec.side(d)} → {rec.side(d ^ 1)} data ({len(y)} samples)")
        n += len(y)
    if conn.irtt:
        ax.axhline(conn.irtt / 1e6, color="#777777", linestyle=":", linewidth=1,
                   label=f"handshake RTT {conn.irtt / 1e6:.3f} ms")
    if not n:
        _empty_note(ax, "no RTT samples (no acknowledged data, or only retransmitted data: Karn's rule)")
    ax.set_xlabel("time of the ACK since the connection's first segment (s)")
    ax.set_ylabel("RTT (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(_title(rec, "RTT samples"), fontsize=11)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=9)
    _save(fig, path)
    return {"samples": n}


def time_wait_series(starts: list[int], lifetime_ns: int) -> tuple[list[int], list[int]]:
    """Step series (times, counts) of TIME_WAIT periods ``[start, start + lifetime)``."""
    events = sorted([(s, 1) for s in starts] + [(s + lifetime_ns, -1) for s in starts], key=lambda e: (e[0], e[1]))
    xs, ys = [], []
    n = 0
    for t, delta in events:
        n += delta
        if xs and xs[-1] == t:
            ys[-1] = n
        else:
            xs.append(t)
            ys.append(n)
    return xs, ys


def plot_timewait(analyzer, path: str, threshold: int = 100, top: int = 8) -> dict:
    """Connections in TIME_WAIT per host over the whole capture; the ``top`` hosts by peak."""
    fig, ax = _figure()
    life = analyzer.cfg.msl_ns * 2
    t0 = analyzer.first_ns or 0
    series = []
    for host, starts in analyzer.tw_starts.items():
        xs, ys = time_wait_series(starts, life)
        series.append((max(ys) if ys else 0, addr_str(host), xs, ys))
    series.sort(key=lambda s: (-s[0], s[1]))
    end = analyzer.last_ns
    for peak, name, xs, ys in series[:top]:
        x = [(t - t0) / 1e9 for t in xs]
        ax.step([0.0] + x, [0] + ys, where="post", linewidth=1.4, label=f"{name} (peak {peak})")
        end = max(end, xs[-1])
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1.2, label=f"threshold {threshold}")
    if series and end > analyzer.last_ns:
        # past the last packet the curve is a projection: every TIME_WAIT runs out its 2*MSL
        ax.axvline((analyzer.last_ns - t0) / 1e9, color="#777777", linestyle=":", linewidth=1,
                   label="end of capture")
    if not series:
        _empty_note(ax, "no connection entered TIME_WAIT in this capture")
    ax.set_xlim(0, max((end - t0) / 1e9, 1e-3))
    ax.set_ylim(bottom=0, top=max([threshold] + [s[0] for s in series]) * 1.12 + 1)
    ax.set_xlabel("time since the capture's first segment (s)")
    ax.set_ylabel("connections in TIME_WAIT")
    more = f"; {len(series) - top} more host(s) not drawn" if len(series) > top else ""
    ax.set_title(f"Connections in TIME_WAIT per host (each lasts 2*MSL = {life / 1e9:g} s){more}", fontsize=11)
    ax.legend(loc="upper left", fontsize=9)
    _save(fig, path)
    return {"hosts": len(series), "peak": series[0][0] if series else 0,
            "over_threshold": sum(1 for s in series if s[0] >= threshold)}
