"""Retirement of closed connections: the heap in ``FlowTable.past_grace`` takes exactly the
connections a walk over every closed connection would take, at every tick, in the same
(stream) order; and ``SynRecords`` reads like the list of tuples it replaces."""
import random

import pytest

import tcpanalyze.engine as E
from tcpanalyze.model import ACK, Segment

CLI = b"\x0a\x00\x00\x01"
SRV = b"\x0a\x00\x00\x02"
GRACE = E.K_GRACE_NS


def _table():
    return E.FlowTable(1_000_000, E.K_LINGER_NS, 0, False, GRACE)


def _conn(table, stream, t):
    seg = Segment(stream + 1, t, CLI, SRV, 1024 + stream, 80, 1, 1, ACK, 502, 0)
    c = E.Conn(stream, seg, False)
    c.end_reason = "fin"
    table.closed.append(c)          # as the state machine does when both endpoints are done
    return c


def _walk(closed, now):
    """The reference: every closed connection looked at, the expired ones in stream order."""
    return sorted((c for c in closed if not c.done and now - c.last_ns > GRACE), key=lambda c: c.stream)


@pytest.mark.parametrize("seed", range(6))
def test_heap_retires_what_a_walk_retires(seed):
    rnd = random.Random(seed)
    table = _table()
    alive = []                      # closed, not retired (the reference's list)
    now = 10**9
    stream = 0
    backwards = 0
    retired = 0
    for _tick in range(400):
        # between two ticks: new closes, packets for closed connections (some with a
        # timestamp that went backwards), connections finalized by another path
        for _ in range(rnd.randrange(0, 12)):
            t = now + rnd.randrange(0, E.K_RETIRE_EVERY_NS)
            alive.append(_conn(table, stream, t))
            stream += 1
        for c in rnd.sample(alive, min(len(alive), rnd.randrange(0, 5))):
            if rnd.random() < 0.15:
                c.last_ns -= rnd.randrange(0, 3 * GRACE)     # a timestamp that went backwards
                table.disorder = True
                backwards += 1
            else:
                c.last_ns = max(c.last_ns, now + rnd.randrange(0, E.K_RETIRE_EVERY_NS))
        for c in rnd.sample(alive, min(len(alive), rnd.randrange(0, 2))):
            c.done = True           # evicted, or its 4-tuple reused
        now += E.K_RETIRE_EVERY_NS + rnd.randrange(-10, 10)
        want = _walk(alive, now)
        got = table.past_grace(now)
        assert [c.stream for c in got] == [c.stream for c in want]
        gone = {id(c) for c in got}
        alive = [c for c in alive if id(c) not in gone and not c.done]
        retired += len(got)
    assert backwards and retired > 100 and alive       # every case happened
    # what is left is exactly the closed connections not retired, each once
    left = sorted(e[2].stream for e in table.pending if not e[2].done)
    assert left == sorted(c.stream for c in alive)


def test_heap_keeps_a_connection_whose_last_packet_moved():
    table = _table()
    c = _conn(table, 0, 0)
    d = _conn(table, 1, 10)
    assert table.past_grace(GRACE) == []
    c.last_ns = GRACE                                   # a late FIN/ACK within the grace
    assert [x.stream for x in table.past_grace(GRACE + 11)] == [1]
    assert table.past_grace(2 * GRACE) == []               # exactly the grace: not more than it
    assert [x.stream for x in table.past_grace(2 * GRACE + 1)] == [0]
    assert table.pending == [] and table.closed == [] and d.stream == 1


def test_syn_records_read_like_a_list_of_tuples():
    r = E.SynRecords()
    ref = []
    assert len(r) == 0 and list(r) == [] and r == []
    for t in [(3, 40, 2**40), (7, 41, 5), (2**33, 2**34, -1)]:
        r.append(t)
        ref.append(t)
    assert len(r) == 3 and list(r) == ref and r == ref and r[-1] == ref[-1] and r[1][1] == 41
    assert r[0] == (3, 40, 2**40)
    with pytest.raises(IndexError):
        r[3]
    with pytest.raises(IndexError):
        r[-4]
    other = E.SynRecords()
    for t in ref:
        other.append(t)
    assert r == other and not (r == ref[:2])
    assert len(r.a) * r.a.itemsize == 72            # 24 bytes an entry
