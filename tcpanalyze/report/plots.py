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
    One panel per data direction, each on its own byte scale: the sender's bytes in flight
    and the receiver's advertised (calculated) window over time; the receiver's zero-window
    episodes shaded, its window shrinks marked.
``rtt``
    Per-segment RTT samples (Karn's rule applied: no sample from an ACK of retransmitted
    data) of each direction's data, as points over time.
``timewait``
    Connections in TIME_WAIT per host over the whole capture: each TIME_WAIT lasts 2*MSL
    from its start (``Analyzer.tw_starts``); a threshold line; after the last packet the
    curve is a projection, drawn dashed.

Byte axes are labelled in B/kB/MB/GB (powers of 1000).  Every plot function takes an optional
``time_range`` (``plot_tseq`` also ``seq_range``) and returns a :class:`PlotInfo`.
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


# ------------------------------------------------------------------------------ ranges and units
class PlotInfo(dict):
    """What a plot function drew: counts by name (the command prints them), and in ``figure``
    the matplotlib Figure itself (its axes, limits and artists) for a caller that inspects it."""

    figure = None


def parse_range(text: str, what: str = "time") -> tuple[float | None, float | None]:
    """``A:B`` -> (A, B), either end None when left open (``A:``, ``:B``).  ``what`` is "time"
    (seconds, an optional ``s`` suffix) or "seq" (bytes, optional decimal suffix k/M/G with or
    without B: ``1.5M``, ``200kB``).  Raises ``ValueError`` with the reason."""
    t = text.strip()
    if t.count(":") != 1:
        raise ValueError("expected A:B (either end may be left open, as in A: or :B)")
    ends = []
    for part in t.split(":"):
        part = part.strip()
        if not part:
            ends.append(None)
            continue
        ends.append(_range_number(part, what))
    lo, hi = ends
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"the end ({hi:g}) must be greater than the start ({lo:g})")
    return lo, hi


_SEQ_SUFFIX = {"": 1, "b": 1, "k": 1_000, "kb": 1_000, "m": 1_000_000, "mb": 1_000_000,
               "g": 1_000_000_000, "gb": 1_000_000_000}


def _range_number(part: str, what: str) -> float:
    low = part.lower()
    if what == "time":
        num, scale = low.removesuffix("s"), 1
    else:
        i = len(low)
        while i and low[i - 1].isalpha():
            i -= 1
        num, suffix = low[:i], low[i:]
        if suffix not in _SEQ_SUFFIX:
            raise ValueError(f"{part!r}: unknown unit {suffix!r} (use bytes, or k, M, G: 1000s)")
        scale = _SEQ_SUFFIX[suffix]
    try:
        v = float(num) * scale
    except ValueError:
        unit = "seconds" if what == "time" else "bytes"
        raise ValueError(f"{part!r} is not a number of {unit}") from None
    if not v >= 0 or v == float("inf"):
        raise ValueError(f"{part!r}: must be a finite number >= 0")
    return v


#: decimal byte units of the byte axes (kB = 1000 bytes, as the reports count)
BYTE_UNITS = ((1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "kB"))


def byte_tick(value: float, top: float, step: float) -> str:
    """Label of a tick at ``value`` bytes on an axis whose largest visible magnitude is ``top``
    and whose ticks are ``step`` apart: in the largest unit not above ``top``, with as many
    decimals as the step needs (``0``, ``500 kB``, ``1.25 MB``)."""
    if value == 0:
        return "0"
    scale, unit = 1, "B"
    for s, u in BYTE_UNITS:
        if top >= s:
            scale, unit = s, u
            break
    q = abs(step) / scale if step else 1.0
    decimals = 0
    while decimals < 6 and abs(round(q, decimals) - q) > q * 1e-6:
        decimals += 1
    return f"{value / scale:.{decimals}f} {unit}"


_BYTES_FORMATTER = None


def _bytes_axis(axis) -> None:
    """Tick labels of a matplotlib axis of byte counts in B/kB/MB/GB."""
    global _BYTES_FORMATTER
    if _BYTES_FORMATTER is None:
        from matplotlib.ticker import Formatter

        class BytesFormatter(Formatter):
            ticks: list = []

            def set_locs(self, locs):
                self.ticks = sorted(locs)

            def __call__(self, x, pos=None):
                lo, hi = self.axis.get_view_interval()
                t = self.ticks
                step = min((b - a for a, b in zip(t, t[1:]) if b > a), default=0)
                return byte_tick(x, max(abs(lo), abs(hi)), step)

        _BYTES_FORMATTER = BytesFormatter
    axis.set_major_formatter(_BYTES_FORMATTER())


def _fit(values, pad: float = 0.04, floor: float | None = None):
    """(low, high) around ``values`` with a margin (low not under ``floor``); None for none."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    m = (hi - lo) * pad or max(abs(hi) * pad, 1.0)
    lo, hi = lo - m, hi + m
    if floor is not None:
        lo = max(lo, floor)
    return lo, hi


def _within(xs, lo, hi) -> list[int]:
    """Indexes of ``xs`` in [lo, hi] (None: open), and of the last one before ``lo`` (a step
    line drawn from it still shows at ``lo``)."""
    out, before = [], None
    for i, x in enumerate(xs):
        if lo is not None and x < lo:
            before = i
        elif hi is None or x <= hi:
            out.append(i)
    if before is not None:
        out.append(before)
    return out


def _set_xlim(ax, time_range, lo_default: float, hi_default: float) -> tuple[float, float]:
    """x limits from ``time_range`` (an open end: the default); returns them."""
    lo, hi = time_range if time_range else (None, None)
    lo = lo_default if lo is None else lo
    hi = hi_default if hi is None else hi
    if hi <= lo:
        hi = lo + 1e-3
    ax.set_xlim(lo, hi)
    return lo, hi


# ------------------------------------------------------------------------------ matplotlib
def _figure(rows: int = 1, figsize=None):
    """A Figure with ``rows`` stacked axes sharing the x axis (one axes, or a list)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or (11, 6.2 if rows == 1 else 8.6), dpi=100, layout="constrained")
    axes = []
    for i in range(rows):
        ax = fig.add_subplot(rows, 1, i + 1, sharex=axes[0] if axes else None)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        axes.append(ax)
    return fig, (axes[0] if rows == 1 else axes)


def _save(fig, path: str) -> None:
    """Raises ``OutputError`` when the image cannot be written."""
    try:
        fig.savefig(path, dpi=110 if not path.lower().endswith((".svg", ".pdf")) else None)
    except OSError as e:
        raise OutputError.from_oserror(path, e) from None


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="#777777")


def endpoint(rec: StreamRecorder, d: int) -> str:
    """``client 10.0.0.1:40734`` for flow ``d`` of the recorded connection."""
    return f"{rec.side(d)} {addr_port(rec.conn, d)}"


def _title(rec: StreamRecorder, what: str) -> str:
    """``what`` and the connection: its stream index, who is the client and who the server."""
    c = rec.conn
    return f"{what} — tcp.stream {c.stream}: {endpoint(rec, c.orig)}, {endpoint(rec, c.orig ^ 1)}"


def _direction_title(rec: StreamRecorder, what: str, d: int) -> str:
    """``what`` for the data flow ``d``: sender → receiver with their addresses."""
    return f"{what}: {endpoint(rec, d)} → {endpoint(rec, d ^ 1)} data — tcp.stream {rec.conn.stream}"


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


def plot_tseq(rec: StreamRecorder, path: str, direction: str = "auto", stalls: list[tuple] | None = None,
              time_range=None, seq_range=None) -> PlotInfo:
    """Time-sequence graph of one direction; returns counts of what was drawn.  ``stalls``:
    ``(direction, start_ns, end_ns, ...)`` of the connection's stalls; the drawn direction's
    are shaded.  ``time_range`` (seconds since the connection's first segment) and
    ``seq_range`` (relative sequence numbers): ``(low, high)``, either None for open; with
    only one of them the other axis fits what lies inside it."""
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
            ax.annotate(m, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8, color="#444444",
                        annotation_clip=True)
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

    # the visible range: what was asked for, the other axis fitted to what lies inside it
    end = (ts[-1] - t0) / 1e9 if len(ts) else 1.0
    if time_range or seq_range:
        ys_all = (data_lo, data_hi, rtx_lo, rtx_hi, ack_y, wnd_y, sack_lo, sack_hi)
        xs_all = (data_x, data_x, rtx_x, rtx_x, ack_x, ack_x, sack_x, sack_x)
        if time_range:
            lo, hi = _set_xlim(ax, time_range, 0.0, end)
            if not seq_range:
                inside = [y for xs, ys, step in zip(xs_all, ys_all, (0, 0, 0, 0, 1, 1, 0, 0))
                          for y in _within_values(xs, ys, lo, hi, step=step)]
                fit = _fit(inside)
                if fit:
                    ax.set_ylim(*fit)
        if seq_range:
            top = max((max(ys) for ys in ys_all if ys), default=1)
            lo = 0.0 if seq_range[0] is None else seq_range[0]
            hi = top if seq_range[1] is None else seq_range[1]
            ax.set_ylim(lo, hi if hi > lo else lo + 1)
            if not time_range:
                # the times of the segments (and ACKs) that overlap the sequence range
                inside = [x for x, a, b in zip(data_x + rtx_x, data_lo + rtx_lo, data_hi + rtx_hi)
                          if b >= lo and a <= hi]
                inside += [x for x, y in zip(ack_x, ack_y) if lo <= y <= hi]
                fit = _fit(inside, floor=0.0)
                if fit:
                    ax.set_xlim(*fit)
    ax.set_xlabel("time since the connection's first segment (s)")
    ax.set_ylabel(f"relative sequence number of the {rec.side(d)}'s data")
    _bytes_axis(ax.yaxis)
    ax.set_title(_direction_title(rec, "Time–sequence graph", d), fontsize=11)
    _save(fig, path)
    info = PlotInfo(segments=len(data_x) + len(rtx_x), retransmissions=len(rtx_x), acks=len(ack_x),
                    sack_blocks=len(sack_x), stalls=len(shaded))
    info.figure = fig
    return info


def plot_window(rec: StreamRecorder, path: str, time_range=None) -> PlotInfo:
    """One panel per data direction, each on its own byte scale: the sender's bytes in flight
    and the receiver's advertised (calculated) window, the receiver's zero-window episodes
    shaded and its window shrinks marked.  ``time_range``: seconds since the connection's
    first segment, ``(low, high)`` either None for open; each panel's y axis fits it."""
    fig, axes = _figure(rows=2)
    conn = rec.conn
    t0 = rec.t0()
    ts, dirs, wins, bifs, flags, frames = rec.ts, rec.dir, rec.win, rec.bif, rec.flags, rec.frame
    info = PlotInfo(zero_window_episodes=0, shrinks=0)
    end = (ts[-1] - t0) / 1e9 if len(ts) else 1.0
    for ax, s in zip(axes, (conn.orig, conn.orig ^ 1)):
        r = s ^ 1                               # the receiver, whose window limits the sender
        s_colour = C_SIDE[0 if s == conn.orig else 1]
        r_colour = C_SIDE[0 if r == conn.orig else 1]
        wx, wy, bx, by = [], [], [], []
        win_at: dict[int, int] = {}
        for i in range(len(ts)):
            t = (ts[i] - t0) / 1e9
            if dirs[i] == r:
                if not flags[i] & (SYN | RST):
                    wx.append(t)
                    wy.append(wins[i])
                    win_at[frames[i]] = wins[i]
            elif bifs[i] >= 0:
                bx.append(t)
                by.append(bifs[i])
        if wx:
            ax.step(wx, wy, where="post", color=r_colour, linewidth=1.4,
                    label=f"{rec.side(r)}'s advertised window")
        if bx:
            ax.plot(bx, by, linestyle="none", marker=".", markersize=3, color=s_colour, alpha=0.6,
                    label=f"{rec.side(s)}'s bytes in flight")
        f = conn.flows[r]
        for k, (_sf, s_ns, _ef, e_ns, _probes) in enumerate(f.track.zw_episodes or ()):
            stop = e_ns if e_ns is not None else conn.last_ns
            ax.axvspan((s_ns - t0) / 1e9, (stop - t0) / 1e9, color=r_colour, alpha=0.15,
                       label=f"{rec.side(r)} zero window" if k == 0 else None)
            info["zero_window_episodes"] += 1
        sx, sy = [], []
        for frame, s_ns, _bytes in f.track.shrinks or ():
            sx.append((s_ns - t0) / 1e9)
            sy.append(win_at.get(frame, 0))
        if sx:
            ax.plot(sx, sy, linestyle="none", marker="v", markersize=8, color="tab:red",
                    markeredgecolor="black", label=f"{rec.side(r)} window shrink")
            info["shrinks"] += len(sx)
        if not (wx or bx):
            _empty_note(ax, "no segments")
        lo, hi = _set_xlim(ax, time_range, 0.0, end) if time_range else (None, None)
        fit = _fit(_within_values(wx, wy, lo, hi, step=True) + _within_values(bx, by, lo, hi), floor=0.0)
        ax.set_ylim(0, fit[1] if fit else 1)
        ax.set_ylabel("bytes")
        _bytes_axis(ax.yaxis)
        ax.set_title(f"{endpoint(rec, s)} → {endpoint(rec, r)} data", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=9)
    axes[-1].set_xlabel("time since the connection's first segment (s)")
    fig.suptitle(_title(rec, "Advertised window and bytes in flight"), fontsize=11)
    _save(fig, path)
    info.figure = fig
    return info


def _within_values(xs, ys, lo, hi, step: bool = False) -> list:
    """The ``ys`` whose ``xs`` lie in [lo, hi] (None: open); with ``step`` also the one before
    ``lo`` (a step line shows its value there)."""
    if lo is None and hi is None:
        return list(ys)
    idx = _within(xs, lo, hi)
    if not step and lo is not None and idx and xs[idx[-1]] < lo:
        idx.pop()
    return [ys[i] for i in idx]


def plot_rtt(rec: StreamRecorder, path: str, time_range=None) -> PlotInfo:
    """RTT samples of each direction's data over time (ms), as points: a sample is a measurement
    at one ACK, not a curve between ACKs.  ``time_range`` as in :func:`plot_tseq`."""
    fig, ax = _figure()
    conn = rec.conn
    t0 = rec.t0()
    n = 0
    visible = []
    lo, hi = time_range if time_range else (None, None)
    for d in (conn.orig, conn.orig ^ 1):
        samples = conn.flows[d].track.rtt_samples or []
        if not samples:
            continue
        x = [(s[0] - t0) / 1e9 for s in samples]
        y = [s[2] / 1e6 for s in samples]
        colour = C_SIDE[0 if d == conn.orig else 1]
        ax.plot(x, y, linestyle="None", marker="o", markersize=4, color=colour,
                label=f"{rec.side(d)} → {rec.side(d ^ 1)} data ({len(y)} samples)")
        n += len(y)
        visible += _within_values(x, y, lo, hi)
    if conn.irtt:
        ax.axhline(conn.irtt / 1e6, color="#777777", linestyle=":", linewidth=1,
                   label=f"handshake RTT {conn.irtt / 1e6:.3f} ms")
        visible.append(conn.irtt / 1e6)
    if not n:
        _empty_note(ax, "no RTT samples (no acknowledged data, or only retransmitted data: Karn's rule)")
    if time_range:
        _set_xlim(ax, time_range, 0.0, (conn.last_ns - t0) / 1e9)
        fit = _fit(visible, floor=0.0)
        ax.set_ylim(0, fit[1] if fit else 1)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("time of the ACK since the connection's first segment (s)")
    ax.set_ylabel("RTT (ms)")
    ax.set_title(_title(rec, "RTT samples"), fontsize=11)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=9)
    _save(fig, path)
    info = PlotInfo(samples=n)
    info.figure = fig
    return info


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


def split_at(xs: list, ys: list, cut) -> tuple[tuple[list, list], tuple[list, list]]:
    """A step series (value ``ys[i]`` from ``xs[i]`` on) cut at ``cut``: the part up to it
    (ending with a point at ``cut``) and the part after it (starting with one at ``cut``)."""
    before_x, before_y, after_x, after_y = [], [], [], []
    for x, y in zip(xs, ys):
        if x <= cut:
            before_x.append(x)
            before_y.append(y)
        else:
            after_x.append(x)
            after_y.append(y)
    level = before_y[-1] if before_y else 0
    if after_x:
        before_x.append(cut)
        before_y.append(level)
        after_x.insert(0, cut)
        after_y.insert(0, level)
    return (before_x, before_y), (after_x, after_y)


#: with no --time-range, the TIME_WAIT plot shows this share of the capture's span after its end
TW_AFTER_SHARE = 0.25


def plot_timewait(analyzer, path: str, threshold: int = 100, top: int = 8, time_range=None) -> PlotInfo:
    """Connections in TIME_WAIT per host over the capture; the ``top`` hosts by peak.

    After the last packet the curve is a projection (every TIME_WAIT runs out its 2*MSL; no
    packet shows it): drawn dashed on a grey background behind a line at the end of the
    capture.  Without ``time_range`` the x axis ends a quarter of the capture's span after its
    end (so the projection of a short capture does not crush it), with a note saying where the
    projection ends; ``time_range`` (seconds since the first segment; an open end is the end
    of the projection) shows any part of it."""
    from matplotlib.lines import Line2D

    fig, ax = _figure()
    life = analyzer.cfg.msl_ns * 2
    t0 = analyzer.first_ns or 0
    last = (analyzer.last_ns - t0) / 1e9
    series = []
    for host, starts in analyzer.tw_starts.items():
        xs, ys = time_wait_series(starts, life)
        series.append((max(ys) if ys else 0, addr_str(host), xs, ys))
    series.sort(key=lambda s: (-s[0], s[1]))
    proj_end = last
    projected = False
    for k, (peak, name, xs, ys) in enumerate(series[:top]):
        x = [0.0] + [(t - t0) / 1e9 for t in xs]
        y = [0] + list(ys)
        (rx, ry), (px, py) = split_at(x, y, last)
        colour = f"C{k % 10}"
        ax.step(rx, ry, where="post", linewidth=1.4, color=colour, label=f"{name} (peak {peak})")
        if px:
            ax.step(px, py, where="post", linewidth=1.2, color=colour, linestyle="--", alpha=0.7)
            proj_end = max(proj_end, px[-1])
            projected = True
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1.2, label=f"threshold {threshold}")
    handles, _labels = ax.get_legend_handles_labels()
    if not series:
        _empty_note(ax, "no connection entered TIME_WAIT in this capture")
    if time_range:
        lo, hi = _set_xlim(ax, time_range, 0.0, proj_end)
    else:
        hi = min(proj_end, last + max(last * TW_AFTER_SHARE, 1e-3)) if projected else max(last, 1e-3)
        lo, hi = _set_xlim(ax, None, 0.0, hi)
    if projected:
        ax.axvspan(last, max(hi, proj_end), color="#eeeeee", linewidth=0, zorder=0)
        ax.axvline(last, color="#555555", linestyle=":", linewidth=1.2)
        handles += [Line2D([], [], color="#555555", linestyle=":", linewidth=1.2, label="end of capture"),
                    Line2D([], [], color="#777777", linestyle="--", linewidth=1.2,
                           label="projection after the capture (each TIME_WAIT runs out its 2*MSL)")]
        if proj_end > hi:
            ax.annotate(f"projection continues to {proj_end:.3g} s →", xy=(0.995, 0.985),
                        xycoords="axes fraction", ha="right", va="top", fontsize=9, color="#555555")
    ax.set_ylim(bottom=0, top=max([threshold] + [s[0] for s in series]) * 1.12 + 1)
    ax.set_xlabel("time since the capture's first segment (s)")
    ax.set_ylabel("connections in TIME_WAIT")
    more = f"; {len(series) - top} more host(s) not drawn" if len(series) > top else ""
    ax.set_title(f"Connections in TIME_WAIT per host (each lasts 2*MSL = {life / 1e9:g} s){more}", fontsize=11)
    ax.legend(handles=handles, loc="upper left", fontsize=9)
    _save(fig, path)
    info = PlotInfo(hosts=len(series), peak=series[0][0] if series else 0,
                    over_threshold=sum(1 for s in series if s[0] >= threshold))
    info.figure = fig
    return info
