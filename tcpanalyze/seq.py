"""Sequence-number arithmetic modulo 2**32.

TCP sequence numbers live on a circle of 2**32 values (RFC 9293 §3.4,
https://www.rfc-editor.org/rfc/rfc9293#section-3.4).  Comparisons are therefore
*serial* comparisons (RFC 1982): ``a`` is "after" ``b`` when the forward distance from
``b`` to ``a`` is less than 2**31.  Wireshark's ``GT_SEQ``/``LT_SEQ`` macros compute the
same thing as ``(int32)(b - a) < 0``.  The engine inlines these expressions on its hot
path; this module is the reference and what the tests exercise.
"""
from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` on the sequence circle."""
    return (a + n) & MASK


def seq_delta(a: int, b: int) -> int:
    """Signed distance from ``b`` to ``a``: positive when ``a`` is after ``b`` (range -2**31 .. 2**31-1)."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


def seq_gt(a: int, b: int) -> bool:
    """``a`` strictly after ``b`` (Wireshark GT_SEQ)."""
    return 0 < ((a - b) & MASK) < HALF


def seq_lt(a: int, b: int) -> bool:
    """``a`` strictly before ``b`` (Wireshark LT_SEQ)."""
    return 0 < ((b - a) & MASK) < HALF


def seq_ge(a: int, b: int) -> bool:
    return not seq_lt(a, b)


def seq_le(a: int, b: int) -> bool:
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
