"""Integer nanoseconds divided by 1e9 need no rounding to 9 decimals: ``round(ns / 1e9, 9)
== ns / 1e9`` for every integer (the quotient is the double nearest to the 9-decimal
number, or, from 2**23 s on, no 9-decimal number near it maps to another double).  The
connection records rely on it (``summary._s``, ``transfer_s``)."""
from __future__ import annotations

import random

import pytest

RANGES = [(0, 10**4), (0, 10**7), (0, 10**10), (2**22 * 10**9 - 10**9, 2**24 * 10**9), (10**15, 10**16),
          (2**52, 2**54), (10**18, 2 * 10**18), (2**62, 2**63)]


@pytest.mark.parametrize("lo,hi", RANGES)
def test_seconds_of_integer_nanoseconds_are_already_rounded(lo, hi):
    r = random.Random(lo ^ hi)
    for _ in range(5000):
        ns = r.randrange(lo, hi)
        # also the exact 9-decimal ties and half-millisecond values
        for v in (ns, -ns, ns - ns % 1000 + 500, ns - ns % 10**6 + 500000):
            assert round(v / 1e9, 9) == v / 1e9, v


def test_every_nanosecond_of_the_first_millisecond():
    assert all(round(v / 1e9, 9) == v / 1e9 for v in range(1_000_000))

