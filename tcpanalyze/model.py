"""Core value types shared by sources, decoder and engine.

Timestamps are integer nanoseconds since the Unix epoch.  Frame numbers are 1-based and
count every frame of the capture, TCP or not, like Wireshark's ``frame.number``.
"""
from __future__ import annotations

import ipaddress
from socket import AF_INET as _AF_INET, AF_INET6 as _AF_INET6, inet_ntop as _ntop
from typing import NamedTuple

from tcpanalyze._fields import slots

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

# TCP header flag bits (RFC 9293 §3.1; AE is RFC 3540's former NS bit, bit 8).
FIN = 0x001
SYN = 0x002
RST = 0x004
PSH = 0x008
ACK = 0x010
URG = 0x020
ECE = 0x040
CWR = 0x080
AE = 0x100

# Order of the letters in the ``flags`` column ("S A F R P U E C").
_FLAG_LETTERS = ((SYN, "S"), (ACK, "A"), (FIN, "F"), (RST, "R"), (PSH, "P"), (URG, "U"), (ECE, "E"), (CWR, "C"))
_FLAG_STR_CACHE: dict[int, str] = {}


def flag_str(flags: int) -> str:
    """Letters of the set flags, e.g. ``SA``, ``AP``, ``AF``, ``R``."""
    s = _FLAG_STR_CACHE.get(flags)
    if s is None:
        s = "".join(ch for bit, ch in _FLAG_LETTERS if flags & bit)
        _FLAG_STR_CACHE[flags] = s
    return s


_FLAG_NAME = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"), (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))


def flag_names(flags: int) -> str:
    """Textbook style: ``SYN, ACK`` / ``FIN, ACK`` (PSH is left out as the seed notes do)."""
    return ", ".join(n for bit, n in _FLAG_NAME if flags & bit and bit != PSH) or "NONE"


_ADDR_CACHE: dict[bytes, str] = {}


def addr_str(raw: bytes) -> str:
    """Printable form of a 4- or 16-byte packed address (cached: a capture has few hosts)."""
    s = _ADDR_CACHE.get(raw)
    if s is None:
        if len(_ADDR_CACHE) > 65536:
            _ADDR_CACHE.clear()
        # inet_ntop is 5x faster than ipaddress and writes the same text (RFC 5952), except
        # that it writes IPv4-mapped and -compatible IPv6 addresses in dotted form, which
        # ipaddress does not: those go to ipaddress
        if len(raw) == 4:
            s = _ntop(_AF_INET, raw)
        else:
            s = _ntop(_AF_INET6, raw)
            if "." in s:
                s = str(ipaddress.ip_address(raw))
        _ADDR_CACHE[raw] = s
    return s


def endpoint_str(host: str, port) -> str:
    """``host:port``, or ``[host]:port`` for an IPv6 address (RFC 3986 §3.2.2)."""
    return f"[{host}]:{port}" if host and ":" in host else f"{host}:{port}"


class RawPacket(NamedTuple):
    """What every source yields (readers may yield plain tuples in this order)."""

    frame: int
    ts_ns: int
    linktype: int
    data: bytes | memoryview
    wirelen: int


class Segment:
    """One decoded TCP segment: the only per-packet object the core creates.

    ``src``/``dst`` are packed addresses (4 or 16 bytes) of the innermost IP header.
    ``paylen`` is computed from the IP length, so snaplen-cut frames still count bytes;
    ``truncated`` says the captured payload is shorter than ``paylen``.
    Options: ``mss``/``wscale``/``tsval``/``tsecr`` are -1 when absent, ``sack`` is a tuple
    of (left, right) raw sequence pairs or None, ``sack_perm`` a bool.
    """

    # The fields, declared once (tcpanalyze/_fields.py): __slots__ and, compiled, the C fields
    # setup.py adds to model.pxd come from this table.  The __init__ below is written out
    # rather than taken from init(): mypy --strict, which checks the public API reading these
    # attributes, sees a record's attributes only in the assignments of an __init__.
    # tests/test_fields.py checks that it takes every field, in this order, with these defaults.
    FIELDS = (("frame", "long long"), ("ts_ns", "long long"), ("src", "object"), ("dst", "object"),
              ("sport", "long long"), ("dport", "long long"), ("seq", "long long"), ("ack", "long long"),
              ("flags", "long long"), ("win", "long long"), ("paylen", "long long"),
              ("mss", "long long", -1), ("wscale", "long long", -1), ("sack_perm", "object", False),
              ("sack", "object", None), ("tsval", "long long", -1), ("tsecr", "long long", -1),
              ("truncated", "object", False))
    __slots__ = slots(FIELDS)

    def __init__(self, frame, ts_ns, src, dst, sport, dport, seq, ack, flags, win, paylen,
                 mss=-1, wscale=-1, sack_perm=False, sack=None, tsval=-1, tsecr=-1, truncated=False):
        self.frame = frame
        self.ts_ns = ts_ns
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.win = win
        self.paylen = paylen
        self.mss = mss
        self.wscale = wscale
        self.sack_perm = sack_perm
        self.sack = sack
        self.tsval = tsval
        self.tsecr = tsecr
        self.truncated = truncated

    def __repr__(self) -> str:
        return (f"Segment(frame={self.frame}, {addr_str(self.src)}:{self.sport} -> {addr_str(self.dst)}:{self.dport}, "
                f"seq={self.seq}, ack={self.ack}, flags={flag_str(self.flags) or '-'}, win={self.win}, len={self.paylen})")


@cython.locals(seg=Segment)
def new_segment(frame, ts_ns, src, dst, sport, dport, seq, ack, flags, win, paylen,
                mss, wscale, sack_perm, sack, tsval, tsecr, truncated):
    """``Segment(...)`` with every field given, made without a call of ``__init__``: the
    decoder's constructor.  As plain Python, the decoder has this written into it
    (decode.py, ``_FUSE_INLINE``), so a segment costs an allocation and the stores, not the
    class call's argument tuple and ``__init__`` frame; compiled, the stores are C stores.
    tests/test_fields.py checks that it sets every field, in FIELDS order."""
    seg = Segment.__new__(Segment)
    seg.frame = frame
    seg.ts_ns = ts_ns
    seg.src = src
    seg.dst = dst
    seg.sport = sport
    seg.dport = dport
    seg.seq = seq
    seg.ack = ack
    seg.flags = flags
    seg.win = win
    seg.paylen = paylen
    seg.mss = mss
    seg.wscale = wscale
    seg.sack_perm = sack_perm
    seg.sack = sack
    seg.tsval = tsval
    seg.tsecr = tsecr
    seg.truncated = truncated
    return seg
