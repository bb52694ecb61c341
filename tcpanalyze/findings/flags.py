"""``invalid_flags``: segments with a flag combination no legal TCP segment carries (RFC 9293
gives no meaning to them; scanners send them)."""
from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.engine import Conn
from tcpanalyze.findings.base import SEG_ODD, Finding, add_evidence, conn_detector, declare_kind, segment_detector
from tcpanalyze.model import ACK, FIN, PSH, RST, SYN, URG, Segment

_XMAS = FIN | PSH | URG
#: subkind -> how the message names it
INVALID_FLAG_NAMES = {"syn_fin": "SYN+FIN", "syn_rst": "SYN+RST", "null": "no flags", "xmas": "Xmas (FIN+PSH+URG)"}


def invalid_flag_kinds(flags: int) -> list[str]:
    """Names of the invalid combinations in ``flags`` (empty for a legal segment)."""
    out = []
    if flags & SYN and flags & FIN:
        out.append("syn_fin")
    if flags & SYN and flags & RST:
        out.append("syn_rst")
    if not flags & (FIN | SYN | RST | PSH | ACK | URG):
        out.append("null")
    if flags & _XMAS == _XMAS:
        out.append("xmas")
    return out


#: (subkind, its key in a connection's evidence)
_EVIDENCE_KEYS = tuple((name, "flags_" + name) for name in INVALID_FLAG_NAMES)


def render(f: Finding) -> str:
    return (f"invalid_flags: {f.values['segments']} segment(s) with {INVALID_FLAG_NAMES[f.subkind]} (first frame "
            f"{f.terms['first_frame']}): no legal TCP segment carries this combination (scan or broken stack)")


INVALID_FLAGS = declare_kind("invalid_flags", render, subkinds=tuple(INVALID_FLAG_NAMES), severity="warning",
                             description="segments with SYN+FIN, SYN+RST, no flags, or Xmas (FIN+PSH+URG)")


@conn_detector(70)
@cython.locals(conn=Conn)
def invalid_flags(conn, th, acc, end_ns, out) -> None:
    ev = conn.events
    if not ev:
        return
    for name, key in _EVIDENCE_KEYS:
        e = ev.get(key)
        if e is None:
            continue
        out.append(Finding(
            "invalid_flags", "warning", subkind=name, stream=conn.stream, frames=e.frames, ts_ns=e.first_ns,
            values={"flags": name, "segments": e.count}, terms={"first_frame": e.frames[0]}))


@segment_detector(20, on=SEG_ODD)
@cython.locals(seg=Segment, fl=cython.longlong)
def count_invalid_flags(seg, verdict, conn, events, th) -> None:
    fl = seg.flags
    # invalid_flag_kinds' tests on the C int first (SYN 0x02, FIN 0x01, RST 0x04, the six flags
    # 0x3F, Xmas 0x29), since most segments that come here are legal
    if (fl & 0x02 and fl & 0x05) or not fl & 0x3F or fl & 0x29 == 0x29:
        for name in invalid_flag_kinds(fl):
            add_evidence(events, "flags_" + name, seg.frame, seg.ts_ns, th.evidence_frames)
