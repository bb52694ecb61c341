"""Sequence-number arithmetic modulo 2**32.

TCP sequence numbers live on a circle of 2**32 values (RFC 9293 §3.4,
https://www.rfc-editor.org/rfc/rfc9293#section-3.4).  Comparisons are therefore
*serial* comparisons (RFC 1982): ``a`` is "after" ``b`` when the forward distance from
``b`` to ``a`` is less than 2**31.  Wireshark's ``GT_SEQ``/``LT_SEQ`` macros compute the
same thing as ``(int32)(b - a) < 0``.

Every mod-2**32 computation of the package goes through this module.  Compiled, the
helpers are C functions on ``long long`` (``seq.pxd`` declares them for the modules that
cimport them; they stay callable from Python); as plain Python they are ordinary functions.
"""
from __future__ import annotations

try:
    import cython
except ImportError:  # plain Python without Cython installed: the declarations are no-ops
    from tcpanalyze import _cyshim as cython

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31
# the same as C constants when compiled (Cython reads a literal past 2**31 as a Python int)
_MASK = cython.declare(cython.longlong, MASK)
_HALF = cython.declare(cython.longlong, HALF)
_MOD = cython.declare(cython.longlong, MOD)


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, n=cython.longlong)
@cython.returns(cython.longlong)
def seq_add(a, n):
    """``a + n`` on the sequence circle."""
    return (a + n) & _MASK


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, b=cython.longlong)
@cython.returns(cython.longlong)
def seq_dist(a, b):
    """Forward distance from ``b`` to ``a`` (0 .. 2**32-1): ``a`` relative to the base ``b``."""
    return (a - b) & _MASK


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, b=cython.longlong, c=cython.longlong, d=cython.longlong)
@cython.returns(tuple[cython.longlong, cython.longlong])
def seq_dist2(a, b, c, d):
    """``(seq_dist(a, b), seq_dist(c, d))`` in one call (a C pair when compiled): a segment's
    SEQ and ACK relative to their bases."""
    return (a - b) & _MASK, (c - d) & _MASK


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(lo=cython.longlong, hi=cython.longlong, base=cython.longlong)
@cython.returns(cython.longlong)
def seq_span(lo, hi, base):
    """``seq_dist(hi, base) - seq_dist(lo, base)``: from ``lo`` to ``hi``, both taken
    relative to ``base`` (negative when ``hi`` comes first)."""
    return ((hi - base) & _MASK) - ((lo - base) & _MASK)


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, b=cython.longlong, d=cython.longlong)
@cython.returns(cython.longlong)
def seq_delta(a, b):
    """Signed distance from ``b`` to ``a``: positive when ``a`` is after ``b`` (range -2**31 .. 2**31-1)."""
    d = (a - b) & _MASK
    return d - _MOD if d >= _HALF else d


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, b=cython.longlong, d=cython.longlong)
@cython.returns(cython.bint)
def seq_gt(a, b):
    """``a`` strictly after ``b`` (Wireshark GT_SEQ)."""
    d = (a - b) & _MASK
    return 0 < d < _HALF


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, b=cython.longlong, d=cython.longlong)
@cython.returns(cython.bint)
def seq_lt(a, b):
    """``a`` strictly before ``b`` (Wireshark LT_SEQ)."""
    d = (b - a) & _MASK
    return 0 < d < _HALF


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, b=cython.longlong)
@cython.returns(cython.bint)
def seq_ge(a, b):
    return not seq_lt(a, b)


@cython.ccall
@cython.inline
@cython.exceptval(check=False)
@cython.locals(a=cython.longlong, b=cython.longlong)
@cython.returns(cython.bint)
def seq_le(a, b):
    return not seq_gt(a, b)


class SeqUnwrapper:
    """Turns raw 32-bit sequence numbers into a monotonic 64-bit offset from an ISN.

    For any ``isn`` and any ``k`` with ``0 <= k < 2**31``, feeding the numbers of a
    connection in order gives ``unwrap((isn + k) % 2**32) == k``; later numbers keep
    counting past 4 GiB because the unwrapper follows the highest value seen.
    """

    __slots__ = ("isn", "high")

    def __init__(self, isn: int):
        self.isn = isn & MASK
        self.high = 0

    def unwrap(self, seq: int) -> int:
        rel = self.high + seq_delta(seq, (self.isn + self.high) & MASK)
        if rel > self.high:
            self.high = rel
        return rel
