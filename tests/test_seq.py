"""Sequence arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 1982 serial comparison)."""
from hypothesis import given
from hypothesis import strategies as st

from tcpanalyze.seq import (MOD, SeqUnwrapper, seq_add, seq_delta, seq_dist, seq_dist2, seq_ge, seq_gt, seq_le, seq_lt,
                            seq_span)

u32 = st.integers(0, MOD - 1)
near_wrap = st.one_of(st.integers(MOD - 100_000, MOD - 1), st.integers(0, 100_000), u32)


@given(isn=near_wrap, k=st.integers(0, 2**31 - 1))
def test_unwrap_counts_from_the_isn(isn, k):
    u = SeqUnwrapper(isn)
    assert u.unwrap(isn) == 0
    assert u.unwrap((isn + k) % MOD) == k


@given(isn=near_wrap, steps=st.lists(st.integers(0, 65535), min_size=1, max_size=200))
def test_unwrap_keeps_counting_past_4gib(isn, steps):
    u = SeqUnwrapper(isn)
    pos = 0
    for s in steps:
        pos += s * 1000            # up to ~13 GB in total: several wraps
        assert u.unwrap((isn + pos) % MOD) == pos


@given(a=u32, b=u32)
def test_delta_is_antisymmetric(a, b):
    d = seq_delta(a, b)
    if d != -(2**31):
        assert seq_delta(b, a) == -d
    assert seq_add(b, d) == a


@given(a=near_wrap, n=st.integers(1, 2**31 - 1))
def test_order_across_the_wrap(a, n):
    b = seq_add(a, n)
    assert seq_gt(b, a) and seq_lt(a, b) and seq_ge(b, a) and seq_le(a, b)
    assert not seq_gt(a, b) and not seq_lt(b, a)


def test_examples_at_the_wrap():
    assert seq_gt(5, MOD - 5)
    assert seq_delta(5, MOD - 5) == 10
    assert seq_lt(MOD - 1, 0)


@given(a=u32, b=u32, c=u32, d=u32)
def test_dist2_is_two_dists(a, b, c, d):
    assert seq_dist2(a, b, c, d) == (seq_dist(a, b), seq_dist(c, d))


@given(lo=u32, hi=u32, base=u32)
def test_span_is_the_difference_of_relative_positions(lo, hi, base):
    assert seq_span(lo, hi, base) == seq_dist(hi, base) - seq_dist(lo, base)


def test_span_examples_at_the_wrap():
    assert seq_span(MOD - 10, 20, MOD - 100) == 30         # both after the base, across the wrap
    assert seq_span(20, MOD - 10, MOD - 100) == -30        # hi before lo
    assert seq_dist2(5, MOD - 5, 0, 1) == (10, MOD - 1)
