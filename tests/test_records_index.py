"""The in-memory indexes of records kept on disk: ``records.WaitingIndex`` (the lines of
``flows --format jsonl`` that wait for an earlier stream) and the stream order of spilled
records (``records._stream_order``), both arrays with no Python object per record."""
from __future__ import annotations

import random
from array import array

from tcpanalyze import records as R


def test_waiting_index_is_a_dict_of_the_streams_after_the_next_one():
    rng = random.Random(5)
    w = R.WaitingIndex()
    model: dict[int, tuple[int, int]] = {}
    nxt = 0
    for step in range(20000):
        if rng.random() < 0.6:
            s = nxt + 1 + rng.randrange(300)
            at = (rng.randrange(1 << 40), rng.randrange(1 << 20))
            w.put(s, *at)
            model[s] = at
        else:
            # the writer takes out the next streams that wait, then moves on
            while True:
                got = w.pop(nxt)
                assert got == model.pop(nxt, None)
                if got is None and rng.random() < 0.5:
                    break
                nxt += 1
            w.advance(nxt)
        assert len(w) == len(model)
        assert w.pop(nxt - 1) is None
    # the room kept is about the span of streams that may still wait, not every stream seen
    assert len(w._offs) <= 2 * (max(model, default=nxt) - nxt + 1) + 1
    for s in sorted(model):
        assert w.pop(s) == model[s]
    assert len(w) == 0


def test_stream_order():
    for streams in ([], [0], [3, 1, 2, 0], [10, 5, 7, 6], [9, 9, 1], [1 << 40, 3, 7], list(range(1000, 0, -1))):
        a = array("q", streams)
        assert list(R._stream_order(a)) == sorted(range(len(streams)), key=streams.__getitem__)
    rng = random.Random(2)
    streams = list(range(50000))
    rng.shuffle(streams)
    del streams[::7]
    a = array("q", streams)
    order = R._stream_order(a)
    assert type(order) is array and list(order) == sorted(range(len(streams)), key=streams.__getitem__)
