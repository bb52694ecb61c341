"""Ladder diagrams of one connection, as the lecture notes draw them.

Client on the left, server on the right, one arrow per segment in its direction, labelled
in the seed's wording::

    SYN(SEQ=0, LEN=0)
    SYN, ACK(SEQ=0, ACK=1, LEN=0)
    ACK(SEQ=1, ACK=1, LEN=0)
    ACK(SEQ=1, ACK=1, LEN=562)

* Flags come from :func:`tcpanalyze.model.flag_names` (joined by ", ", PSH left out; a
  segment without flags is ``NONE``).  ``ACK=`` is omitted when the ACK bit is clear.
* SEQ/ACK are relative (Wireshark's relative numbers) unless ``absolute`` is set.
* ``WIN=`` (the calculated window, scaling applied) is added when it differs from the
  window of the previous segment in the same direction.  SYN and RST segments neither show
  nor set it (a SYN's window is never scaled, a RST's is meaningless), so the handshake
  reads exactly like the seed.
* The engine keeps no payload bytes, so a data segment is labelled by its flags only
  (``PSH, ACK`` with 562 bytes is ``ACK(SEQ=1, ACK=1, LEN=562)``), never ``GET HTTP(...)``.
* The engine's per-packet analysis flags are marked beside the label (``[retransmission]``,
  ``[dup ACK #2]``, ``[zero window]`` ...), coloured, as are segments the endpoint state
  machines did not expect.
* Each endpoint's RFC 9293 state is written beside its lifeline on the row of the segment
  that changed it (from ``Conn.timeline``); the first row shows the initial states.
* Long connections are elided in the middle: by default the first 20 and the last 20
  segments, with one "… N segments elided …" row that also shows any state reached inside
  the elided run.  Only those rows are kept while reading (bounded memory).

The model (:class:`Ladder`) is built by :class:`LadderCollector` during the single pass of
the engine (``on_segment`` callback); :func:`render_lines`/:func:`print_ladder` draw it with
rich and :func:`render_svg` writes it as a small SVG document (one ``<line class="arrow">``
per segment shown).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tcpanalyze import analysis as A
from tcpanalyze.engine import addr_port
from tcpanalyze.model import ACK, RST, SYN, flag_names
from tcpanalyze.state import TcpState

#: Default number of segments drawn before the middle of a connection is elided.
K_MAX_PACKETS = 40

CLIENT, SERVER = 0, 1

# (bit, text, rich style, svg class) in the order the notes are written.
_NOTES = (
    (A.FAST_RETRANSMISSION, "fast retransmission", "bold red", "rtx"),
    (A.SPURIOUS_RETRANSMISSION, "spurious retransmission", "bold red", "rtx"),
    (A.RETRANSMISSION, "retransmission", "bold red", "rtx"),
    (A.OUT_OF_ORDER, "out-of-order", "yellow", "warn"),
    (A.LOST_SEGMENT, "previous segment not captured", "yellow", "warn"),
    (A.ACK_LOST_SEGMENT, "ACKed unseen segment", "yellow", "warn"),
    (A.DUPLICATE_ACK, "dup ACK", "yellow", "warn"),
    (A.ZERO_WINDOW, "zero window", "magenta", "zw"),
    (A.ZERO_WINDOW_PROBE, "zero window probe", "magenta", "zw"),
    (A.ZERO_WINDOW_PROBE_ACK, "zero window probe ACK", "magenta", "zw"),
    (A.WINDOW_FULL, "window full", "cyan", "info"),
    (A.WINDOW_UPDATE, "window update", "cyan", "info"),
    (A.KEEP_ALIVE, "keep-alive", "cyan", "info"),
    (A.KEEP_ALIVE_ACK, "keep-alive ACK", "cyan", "info"),
    (A.REUSED_PORTS, "port reused", "blue", "info"),
)


@dataclass
class Note:
    text: str
    style: str        # rich style
    cls: str          # svg class


@dataclass
class SegmentRow:
    frame: int
    rel_ns: int                       # time since the connection's first segment
    direction: int                    # CLIENT: client -> server, SERVER: server -> client
    label: str
    notes: list[Note] = field(default_factory=list)
    states: tuple[str | None, str | None] = (None, None)   # new (client, server) state at this row
    style: str = ""                   # arrow style (rich)
    cls: str = ""                     # arrow class (svg)


@dataclass
class ElisionRow:
    count: int
    states: tuple[str | None, str | None] = (None, None)   # last state reached inside the elided run


@dataclass
class Ladder:
    stream: int
    client: str
    server: str
    start_ns: int
    duration_ns: int
    total: int
    rows: list
    initial: tuple[str, str]
    final: tuple[str, str]
    inferred: bool = False
    absolute: bool = False
    end_reason: str = ""

    @property
    def shown(self) -> int:
        return sum(1 for r in self.rows if isinstance(r, SegmentRow))


def segment_label(flags: int, seq: int, ack: int, paylen: int, win: int | None = None) -> str:
    """The seed's arrow label: ``SYN, ACK(SEQ=0, ACK=1, LEN=0)``; ``WIN=`` only when given."""
    parts = [f"SEQ={seq}"]
    if flags & ACK:
        parts.append(f"ACK={ack}")
    parts.append(f"LEN={paylen}")
    if win is not None:
        parts.append(f"WIN={win}")
    return f"{flag_names(flags)}({', '.join(parts)})"


def analysis_notes(aflags: int, dupack_num: int = 0) -> list[Note]:
    """Notes for the engine's analysis bits; a fast/spurious retransmission is not also a plain one."""
    notes = []
    if not aflags:
        return notes
    for bit, text, style, cls in _NOTES:
        if not aflags & bit:
            continue
        if bit == A.RETRANSMISSION and aflags & (A.FAST_RETRANSMISSION | A.SPURIOUS_RETRANSMISSION):
            continue
        if bit == A.DUPLICATE_ACK and dupack_num:
            text = f"dup ACK #{dupack_num}"
        notes.append(Note(text, style, cls))
    return notes


class LadderCollector:
    """``on_segment`` callback keeping the rows of one stream: the first and last segments only.

    ``max_packets`` <= 0 keeps every segment.  Memory is O(max_packets) whatever the length
    of the connection or the capture.
    """

    def __init__(self, stream: int, max_packets: int = K_MAX_PACKETS, absolute: bool = False):
        self.stream = stream
        self.absolute = absolute
        if max_packets is None or max_packets <= 0:
            self.head_n = None
            self.tail = deque()
        else:
            self.head_n = (max_packets + 1) // 2
            self.tail = deque(maxlen=max_packets // 2)
        self.head: list[tuple] = []
        self.total = 0
        self.conn = None
        self._last_win = [None, None]

    def __call__(self, seg, a) -> None:
        conn = a.verdict.conn
        if conn.stream != self.stream:
            return
        if self.conn is None:
            self.conn = conn
        d = a.verdict.direction
        flags = seg.flags
        win = a.verdict.win
        shown = None
        if not flags & (SYN | RST):
            last = self._last_win[d]
            if last is not None and last != win:
                shown = win
            self._last_win[d] = win
        if self.absolute:
            s, k = seg.seq, (seg.ack if flags & ACK else 0)
        else:
            s, k = a.verdict.rel_seq, a.verdict.rel_ack
        rec = (seg.frame, seg.ts_ns, d, flags, s, k, seg.paylen, shown, a.verdict.analysis, a.verdict.dupack_num)
        self.total += 1
        if self.head_n is None:
            self.head.append(rec)
        elif len(self.head) < self.head_n:
            self.head.append(rec)
        else:
            self.tail.append(rec)

    def build(self, stalls: list[tuple] | None = None) -> Ladder:
        """The ladder of the collected stream (call after the capture was read).  ``stalls``:
        ``(direction, start_ns, end_ns, end_frame)`` of the connection's stalls, marked on the
        segment that ended each (the last segment for one the connection ended in)."""
        conn = self.conn
        if conn is None:
            raise LookupError(f"no stream {self.stream}")
        o = conn.orig
        eps = (o, o ^ 1)                           # endpoint index of client, server
        trans: list[list[tuple[int, str]]] = [[], []]
        initial = []
        for side, ep in enumerate(eps):
            tl = conn.timeline[ep] if conn.timeline is not None else []
            trans[side] = [(t[1], t[3].name) for t in tl]
            initial.append(tl[0][2].name if tl else conn.state[ep].name)
        at_frame = [dict(trans[0]), dict(trans[1])]
        odd: dict[int, list[Note]] = {}
        crossed: set = set()
        if conn.anomalies and conn.ending.reset_by >= 0:
            from tcpanalyze.findings.rst import rst_crossings

            crossed = set(rst_crossings(conn)[0])
        for frame, _ts, ep, name in conn.anomalies or ():
            who = "client" if ep == o else "server"
            text = f"{who}: {name}" + (", crossed the RST" if frame in crossed else "")
            odd.setdefault(frame, []).append(Note(text, "dim", "unexpected"))
        for st in stalls or ():
            who = "client" if st[0] == o else "server"
            odd.setdefault(st[3] or conn.last_frame, []).insert(
                0, Note(f"{who} stalled {(st[2] - st[1]) / 1e9:.3f} s", "yellow", "warn"))
        first = conn.first_ns

        def row(rec) -> SegmentRow:
            frame, ts, d, flags, s, k, paylen, win, aflags, dupn = rec
            notes = analysis_notes(aflags, dupn) + odd.get(frame, [])
            style, cls = "", ""
            if notes and notes[0].cls != "unexpected":
                style, cls = notes[0].style, notes[0].cls
            elif flags & RST:
                style, cls = "red", "rst"
            return SegmentRow(frame, ts - first, CLIENT if d == o else SERVER,
                              segment_label(flags, s, k, paylen, win), notes,
                              (at_frame[0].get(frame), at_frame[1].get(frame)), style, cls)

        rows: list = [row(r) for r in self.head]
        elided = self.total - len(self.head) - len(self.tail)
        if elided > 0:
            lo = self.head[-1][0] if self.head else -1
            hi = self.tail[0][0] if self.tail else 1 << 62
            st: list[str | None] = [None, None]
            for side in (0, 1):
                for frame, name in trans[side]:
                    if lo < frame < hi:
                        st[side] = name
            rows.append(ElisionRow(elided, (st[0], st[1])))
        rows.extend(row(r) for r in self.tail)
        return Ladder(stream=conn.stream, client=addr_port(conn, eps[0]), server=addr_port(conn, eps[1]),
                      start_ns=first, duration_ns=conn.last_ns - first, total=self.total, rows=rows,
                      initial=(initial[0], initial[1]), final=(conn.state[eps[0]].name, conn.state[eps[1]].name),
                      inferred=bool(conn.inferred), absolute=self.absolute, end_reason=conn.end_reason)


# ---------------------------------------------------------------------------------------- text
def _secs(ns: int) -> str:
    return f"{ns / 1e9:.6f}"


def _state_width(ladder: Ladder) -> int:
    try:
        names = [s.name for s in TcpState]
    except ImportError:  # pragma: no cover - state.py is part of the package
        names = []
    for r in ladder.rows:
        names.extend(s for s in r.states if s)
    names.extend(ladder.initial)
    return max(len("client"), *(len(n) for n in names))


_END = {"fin": "closed by FIN", "rst": "ended by RST", "open": "open at the end of the capture",
        "timeout": "expired (idle timeout)", "evicted": "evicted (connection limit)", "reused": "ended by port reuse"}


def summary_line(ladder: Ladder) -> str:
    n = ladder.total
    s = f"{n} segment{'s' if n != 1 else ''} in {_secs(ladder.duration_ns)} s"
    if ladder.shown < n:
        s += f" ({ladder.shown} shown)"
    s += f"; {'absolute' if ladder.absolute else 'relative'} SEQ/ACK"
    if ladder.end_reason:
        s += "; " + _END.get(ladder.end_reason, ladder.end_reason)
    if ladder.inferred:
        s += "; states inferred (no handshake seen)"
    return s


def render_lines(ladder: Ladder, width: int = 100) -> list:
    """The ladder as rich ``Text`` lines, each at most ``width`` cells when the labels fit."""
    from rich.text import Text

    times = [_secs(r.rel_ns) for r in ladder.rows if isinstance(r, SegmentRow)]
    tw = max([len("time (s)")] + [len(t) for t in times])
    sw = _state_width(ladder)
    aw = max(30, width - tw - 2 * sw - 6)          # cells between the two lifelines

    def line(t: str, cstate, sstate, middle, left="│", right="│", cstyle="bold", sstyle="bold") -> Text:
        txt = Text(f"{t:>{tw}}  ")
        txt.append(f"{cstate or '':>{sw}}", style=cstyle if cstate else "")
        txt.append(f" {left}")
        if isinstance(middle, Text):
            txt.append_text(middle)
        else:
            txt.append(middle)
        txt.append(f"{right} ")
        txt.append(f"{sstate or '':<{sw}}", style=sstyle if sstate else "")
        txt.rstrip()
        return txt

    def between(content: Text) -> Text:
        pad = aw - content.cell_len
        mid = Text(" " * (pad // 2))
        mid.append_text(content)
        mid.append(" " * (pad - pad // 2))
        return mid

    def note_text(notes: list[Note]) -> Text:
        t = Text()
        for i, nt in enumerate(notes):
            if i:
                t.append(" ")
            t.append(f"[{nt.text}]", style=nt.style)
        return t

    out = [
        Text(f"tcp.stream {ladder.stream}: client {ladder.client} → server {ladder.server}", style="bold"),
        Text(summary_line(ladder)),
        Text(""),
        line("time (s)", "client", "server", " " * aw, cstyle="bold", sstyle="bold"),
        line("", ladder.initial[0], ladder.initial[1], " " * aw, cstyle="", sstyle=""),
    ]
    for r in ladder.rows:
        if isinstance(r, ElisionRow):
            msg = Text(f"… {r.count} segment{'s' if r.count != 1 else ''} elided …", style="dim italic")
            out.append(line("", r.states[0], r.states[1], between(msg), "┆", "┆"))
            continue
        label = Text(r.label, style=r.style)
        notes = note_text(r.notes) if r.notes else None
        inline = label.copy()
        if notes is not None:
            inline.append(" ")
            inline.append_text(notes)
        extra: list[Text] = []
        if inline.cell_len + 4 <= aw:
            content = inline
        else:
            if label.cell_len + 4 <= aw:
                content = label
            else:
                content = None
                extra.append(label)
            if notes is not None:
                if notes.cell_len <= aw - 2:
                    extra.append(notes)
                else:
                    extra.extend(note_text([nt]) for nt in r.notes)
        shaft = aw - 1 - (content.cell_len + 2 if content is not None else 0)
        a_l = shaft // 2
        a_r = shaft - a_l
        mid = Text(style=r.style)
        if r.direction == CLIENT:
            mid.append("─" * a_l)
            if content is not None:
                mid.append(" ")
                mid.append_text(content)
                mid.append(" ")
            mid.append("─" * a_r + ">")
        else:
            mid.append("<" + "─" * a_l)
            if content is not None:
                mid.append(" ")
                mid.append_text(content)
                mid.append(" ")
            mid.append("─" * a_r)
        out.append(line(_secs(r.rel_ns), r.states[0], r.states[1], mid))
        for e in extra:
            for piece in e.wrap(_console(aw), aw - 2) if e.cell_len > aw - 2 else [e]:
                out.append(line("", None, None, between(piece)))
    out.append(Text(""))
    out.append(Text(f"end: client {ladder.final[0]}, server {ladder.final[1]}"))
    return out


_CONSOLES: dict[int, object] = {}


def _console(width: int):
    c = _CONSOLES.get(width)
    if c is None:
        from io import StringIO

        from rich.console import Console

        c = _CONSOLES[width] = Console(file=StringIO(), width=width, color_system=None)
    return c


def print_ladder(ladder: Ladder, console, width: int | None = None) -> None:
    """Print the ladder on a rich console (its width unless ``width`` is given)."""
    for ln in render_lines(ladder, width or console.width):
        console.print(ln, soft_wrap=True)


# ---------------------------------------------------------------------------------------- svg
def xml_escape(s: str) -> str:
    """Escape text or an attribute value for XML (the five predefined entities)."""
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


_SVG_STYLE = """
text { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px; fill: #222; }
.title { font-size: 14px; font-weight: bold; }
.summary, .time { fill: #555; }
.who { font-weight: bold; }
.state { font-weight: bold; fill: #1b5e20; }
.lifeline { stroke: #444; stroke-width: 2; }
.arrow { stroke: #1a237e; stroke-width: 1.4; fill: none; }
.arrow.rtx { stroke: #c62828; }
.arrow.warn { stroke: #ef6c00; }
.arrow.zw { stroke: #8e24aa; }
.arrow.info { stroke: #00838f; }
.arrow.rst { stroke: #c62828; stroke-dasharray: 5 3; }
.label.rtx, .note.rtx { fill: #c62828; }
.note.warn { fill: #ef6c00; }
.note.zw { fill: #8e24aa; }
.note.info { fill: #00838f; }
.note.unexpected { fill: #777; font-style: italic; }
.elided { fill: #777; font-style: italic; }
"""
_HEAD_COLOURS = {"": "#1a237e", "rtx": "#c62828", "warn": "#ef6c00", "zw": "#8e24aa", "info": "#00838f",
                 "rst": "#c62828"}


def render_svg(ladder: Ladder) -> str:
    """The ladder as a standalone SVG document (a string): one ``<line class="arrow ...">`` per
    segment shown, its label above it, analysis notes below it, states beside the lifelines."""
    row_h = 36            # height of a row; a row with notes gets ``note_h`` more
    note_h = 14
    slope = 10            # an arrow falls this much from sender to receiver (transit time)
    x_time = 12
    cx, sx = 270, 810
    width = 1080
    top = 118
    ys = []
    y = top + 14
    for r in ladder.rows:
        ys.append(y)
        y += row_h + (note_h if isinstance(r, SegmentRow) and r.notes else 0)
    bottom = y - 12
    height = bottom + 50
    out: list[str] = []
    w = out.append
    w('<?xml version="1.0" encoding="UTF-8"?>\n')
    w(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
      f'viewBox="0 0 {width} {height}">\n')
    title = f"tcp.stream {ladder.stream}: client {ladder.client} → server {ladder.server}"
    w(f"<title>{xml_escape(title)}</title>\n")
    w(f"<style>{_SVG_STYLE}</style>\n<defs>\n")
    for cls, colour in _HEAD_COLOURS.items():
        w(f'<marker id="head{"-" + cls if cls else ""}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
          f'markerHeight="7" orient="auto"><path class="head" d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>\n')
    w("</defs>\n")
    w('<rect width="100%" height="100%" fill="white"/>\n')
    w(f'<text class="title" x="{x_time}" y="22">{xml_escape(title)}</text>\n')
    w(f'<text class="summary" x="{x_time}" y="42">{xml_escape(summary_line(ladder))}</text>\n')
    for x, who, addr in ((cx, "client", ladder.client), (sx, "server", ladder.server)):
        w(f'<text class="who" x="{x}" y="72" text-anchor="middle">{who}</text>\n')
        w(f'<text class="summary" x="{x}" y="88" text-anchor="middle">{xml_escape(addr)}</text>\n')
    w(f'<text class="time" x="{x_time}" y="{top - 6}">time (s)</text>\n')
    for x in (cx, sx):
        w(f'<line class="lifeline" x1="{x}" y1="{top - 20}" x2="{x}" y2="{bottom}"/>\n')
    w(f'<text class="state" x="{cx - 8}" y="{top - 6}" text-anchor="end">{xml_escape(ladder.initial[0])}</text>\n')
    w(f'<text class="state" x="{sx + 8}" y="{top - 6}">{xml_escape(ladder.initial[1])}</text>\n')
    mid = (cx + sx) // 2
    for r, y in zip(ladder.rows, ys):
        c, s = r.states
        if isinstance(r, ElisionRow):
            msg = f"… {r.count} segment{'s' if r.count != 1 else ''} elided …"
            w(f'<text class="elided" x="{mid}" y="{y + 4}" text-anchor="middle">{xml_escape(msg)}</text>\n')
            yc = ys_ = y + 4
        else:
            if r.direction == CLIENT:
                x1, x2, yc, ys_ = cx, sx, y, y + slope
            else:
                x1, x2, yc, ys_ = sx, cx, y + slope, y
            cls = f"arrow {r.cls}".strip()
            head = f"head-{r.cls}" if r.cls else "head"
            w(f'<text class="time" x="{x_time}" y="{y + 4}">{_secs(r.rel_ns)}</text>\n')
            w(f'<line class="{cls}" x1="{x1}" y1="{y}" x2="{x2}" y2="{y + slope}" marker-end="url(#{head})">'
              f'<title>frame {r.frame}</title></line>\n')
            lab_cls = f"label {r.cls}".strip()
            w(f'<text class="{lab_cls}" x="{mid}" y="{y - 3}" text-anchor="middle">{xml_escape(r.label)}</text>\n')
            if r.notes:
                notes = " ".join(f'<tspan class="note {nt.cls}">[{xml_escape(nt.text)}]</tspan>' for nt in r.notes)
                w(f'<text x="{mid}" y="{y + slope + 14}" text-anchor="middle">{notes}</text>\n')
            yc += 4
            ys_ += 4
        if c:
            w(f'<text class="state" x="{cx - 8}" y="{yc}" text-anchor="end">{xml_escape(c)}</text>\n')
        if s:
            w(f'<text class="state" x="{sx + 8}" y="{ys_}">{xml_escape(s)}</text>\n')
    end = f"end: client {ladder.final[0]}, server {ladder.final[1]}"
    w(f'<text class="summary" x="{x_time}" y="{bottom + 30}">{xml_escape(end)}</text>\n')
    w("</svg>\n")
    return "".join(out)
