"""``--jobs`` on one file read once: the packed segment records, the flow hash, the capture
clock sent to the workers, checksum drops, a failing worker and standard input.  (The
documents of the split against one process, on every public trace and generated captures,
are compared in test_parallel.py for both ways of splitting.)"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from tcpanalyze import fanout
from tcpanalyze.engine import K_RETIRE_EVERY_NS, K_SWEEP_EVERY_NS
from tcpanalyze import parallel as P
from tcpanalyze.model import Segment
from tcpanalyze.session import AnalyzeOptions, analyze_file

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"


def _doc(rep) -> dict:
    return json.loads(json.dumps(rep.to_dict()))


def _fields(seg: Segment) -> tuple:
    return tuple((name, getattr(seg, name)) for name, *_ in Segment.FIELDS)


def _segments():
    v4 = (b"\x0a\x00\x00\x01", b"\xc0\xa8\x01\xfe")
    v6 = (bytes(range(16)), bytes(range(100, 116)))
    yield Segment(1, 1_700_000_000_123_456_789, *v4, 40000, 80, 0xFFFFFFFF, 0, 0x002, 64240, 0,
                  1460, 7, True, None, 0xFFFFFFFF, 0)
    yield Segment(2, 5, *v6, 443, 65535, 12345, 0x80000000, 0x1FF, 0, 9000, -1, -1, False,
                  ((1, 2), (0xFFFFFFF0, 0xFFFFFFFF), (5, 6), (7, 8)), -1, -1, True)
    yield Segment(3, 0, *v4, 1, 2, 3, 4, 0x010, 5, 6, -1, -1, False, ((10, 20),), 100, 200, False)
    yield Segment(1 << 40, -7, *v6, 0, 0, 0, 0, 0, 0, 0, 65535, 14, False, (), 0, 0, False)


def test_records_round_trip_and_layout():
    """A record holds every field of a segment; compiled (C stores) or not (struct), its
    bytes are those of the documented layout (fanout._REC)."""
    mem = bytearray(fanout.REC_SIZE * 4)
    assert fanout._REC.size == fanout.REC_SIZE
    for kind in (fanout.K_SEG, fanout.K_DROP):
        for i, seg in enumerate(_segments()):
            off = i * fanout.REC_SIZE
            fanout.write_record(mem, off, kind, 42 + i, seg)
            back = fanout.read_record(mem, off)
            assert _fields(back) == _fields(seg)
            assert type(back.sack_perm) is bool and type(back.truncated) is bool
            v = fanout._REC.unpack_from(mem, off)
            assert v[:3] == (seg.frame, seg.ts_ns, 42 + i) and v[14] == kind
            assert v[15] == len(seg.src) and v[19][:v[15]] == seg.src and v[20][:v[15]] == seg.dst
            assert v[16] == (255 if seg.sack is None else len(seg.sack))


def _recorder(keep: bool):
    """An analyzer for ``fanout.consume`` that keeps (a reference to, or the fields of) every
    segment fed to it instead of analysing it (an ``engine.Analyzer``, as the compiled loop
    requires)."""
    from tcpanalyze.engine import Analyzer

    class Recorder(Analyzer):
        def feed(self, seg):
            fed.append(seg if keep else _fields(seg))
            return None

    fed: list = []
    return Recorder(), fed


def test_consume_never_rewrites_a_segment_someone_holds():
    """The worker loop writes a record into the segment it fed last once nothing else holds
    it (compiled): segments an analyzer keeps keep their fields, and every segment is the
    record's, addresses included, whether the loop hands out a cached address bytes object
    or a new one."""
    segs = list(_segments()) * 3
    # addresses with the same last byte (one cache slot): other lengths, other bytes
    for src, dst in ((b"\x0a\x00\x00\x0f", b"\x0b\x00\x00\x0f"), (bytes(range(16)), bytes(range(1, 17))),
                     (b"\x0b\x00\x00\x0f", b"\x0a\x00\x00\x0f"), (bytes(range(1, 17)), bytes(range(16))),
                     (b"\x0a\x00\x00\x0f", b"\x0c\x00\x00\x0f")):
        segs.append(Segment(9, 9, src, dst, 1, 2, 3, 4, 0x10, 5, 6))
    mem = bytearray(fanout.REC_SIZE * len(segs))
    for i, seg in enumerate(segs):
        fanout.write_record(mem, i * fanout.REC_SIZE, fanout.K_SEG, 0, seg)
    want = [_fields(s) for s in segs]
    for keep in (True, False):
        an, fed = _recorder(keep)
        assert fanout.consume(mem, 0, len(mem), an) == len(segs)
        assert ([_fields(s) for s in fed] if keep else fed) == want
        if keep:
            assert len({id(s) for s in fed}) == len(segs)


def test_record_refuses_more_than_four_sack_blocks():
    seg = Segment(1, 0, b"\1\2\3\4", b"\5\6\7\x08", 1, 2, 3, 4, 0x10, 5, 0, sack=((1, 2),) * 5)
    with pytest.raises(ValueError):
        fanout.write_record(bytearray(fanout.REC_SIZE), 0, fanout.K_SEG, 0, seg)


def test_dispatch_hash_is_symmetric_and_spread():
    """Both directions of a 4-tuple fall in one bucket; buckets of random 4-tuples spread
    evenly; a lane table gives each lane its share of the buckets."""
    rnd = random.Random(7)
    hits = [0] * fanout.K_BUCKETS
    for _ in range(40000):
        a = bytes(rnd.randrange(256) for _ in range(rnd.choice((4, 16))))
        b = bytes(rnd.randrange(256) for _ in range(len(a)))
        sp, dp = rnd.randrange(1024, 65536), rnd.choice((80, 443, rnd.randrange(65536)))
        seg = Segment(1, 0, a, b, sp, dp, 0, 0, 0x10, 0, 0)
        back = Segment(2, 0, b, a, dp, sp, 0, 0, 0x10, 0, 0)
        k = fanout.bucket(seg)
        assert k == fanout.bucket(back) and 0 <= k < fanout.K_BUCKETS
        hits[k] += 1
    assert max(hits) < 3 * 40000 / fanout.K_BUCKETS and min(hits) > 0
    for weights in ([1, 1], [0.375, 0.375, 0.25], [1, 1, 0], [3, 1], [1] * 7):
        table = fanout.lane_table(weights)
        assert len(table) == fanout.K_BUCKETS
        for lane, w in enumerate(weights):
            assert abs(table.count(lane) / fanout.K_BUCKETS - w / sum(weights)) < 0.002
    with pytest.raises(ValueError):
        fanout.lane_table([1, -1])


def test_lane_weights_keep_the_reader_as_busy_as_a_worker():
    for jobs in (2, 3, 4, 8):
        for cost in (0.1, 0.5, 0.9):
            w = P.lane_weights(jobs, cost)
            assert len(w) == jobs and abs(sum(w) - 1) < 1e-9 and min(w) >= 0
            if w[-1] > 0:           # this process: reading plus its share = a worker's share
                assert abs(cost + w[-1] - w[0]) < 1e-9
            else:
                assert cost >= w[0]
    assert P.lane_weights(2, 0.5) == [0.75, 0.25] and P.lane_weights(3, 0.6) == [0.5, 0.5, 0.0]


def test_clock_ticks_reach_every_other_worker(tmp_path):
    """Each worker gets its own segments and, for another worker's segment at which the
    clock sweeps (the first one, then one per sweep interval), a tick; the reader's clock is
    the single analyzer's."""
    path = TRACES / "206_example_b.pcap"
    lanes = P._KeptLanes(3)
    table = fanout.lane_table([1, 1, 1])
    shared = P._read_once(str(path), None, lanes, table)
    lanes.mem.close()
    one = analyze_file(str(path))
    assert shared["clock"]["first_ns"] is not None
    assert shared["stats"]["frames"] == one.files[0]["frames"]
    segs, ticks = [], [set(), set(), set()]
    for k in range(3):
        recs = [fanout._REC.unpack_from(b, o) for b in lanes.kept[k] for o in range(0, len(b), fanout.REC_SIZE)]
        frames = [r[0] for r in recs]
        assert frames == sorted(frames), "a lane is in frame order"
        for r in recs:
            if r[14] == fanout.K_SEG:
                seg = Segment(r[0], r[1], r[19][:r[15]], r[20][:r[15]], r[12], r[13], 0, 0, 0, 0, 0)
                assert fanout.owner(seg, table) == k
                segs.append((r[0], r[1], r[2], k))
            else:
                assert r[14] == fanout.K_TICK
                ticks[k].add((r[0], r[1], r[2]))
    assert len(segs) == one.files[0]["tcp_segments"]
    # Analyzer.advance's clock over all segments: where it sweeps, the others get a tick
    segs.sort()
    last = nxt = nl = nr = 0
    want: list[set] = [set(), set(), set()]
    for frame, ts, before, k in segs:
        assert before == last, "a record carries the clock before its segment"
        if ts >= last:
            last = ts
            if ts >= nxt:
                if nxt == 0:
                    nl, nr = ts + K_SWEEP_EVERY_NS, ts + K_RETIRE_EVERY_NS
                else:
                    nl = ts + K_SWEEP_EVERY_NS if ts >= nl else nl
                    nr = ts + K_RETIRE_EVERY_NS if ts >= nr else nr
                nxt = min(nl, nr)
                for j in range(3):
                    if j != k:
                        want[j].add((frame, ts, before))
    assert ticks == want
    assert sum(map(len, ticks)) >= 4
    assert shared["clock"]["last_ns"] == last


def test_checksum_drop_and_verify_equal_one_process(tmp_path):
    """--checksums drop: a bad segment goes to its worker as a drop record (Zeek's 'C'
    history), and only the clock moves elsewhere."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_checksums import HTTP, _frames, _with_checksum, _write
    finally:
        sys.path.pop(0)
    frames = _frames(TRACES / "bruteforce.pcap")
    out = [(fr, ts, lt, _with_checksum(d, lambda old, f: old ^ 0x5A5A) if fr % 7 == 3 else d, wl)
           for fr, ts, lt, d, wl in frames]
    path = _write(tmp_path, "bad.pcap", out)
    assert HTTP.exists()
    for mode in ("verify", "drop"):
        opts = AnalyzeOptions(engine={"checksums": mode})
        one = _doc(analyze_file(str(path), opts))
        assert one["files"][0]["tcp_checksums"]["bad"] > 0
        if mode == "drop":
            assert one["files"][0]["tcp_checksums"]["dropped"] > 0
        for n in (2, 3):
            assert _doc(P.analyze_fanout(str(path), opts, n, inline=True)) == one, (mode, n)
        assert _doc(P.analyze_fanout(str(path), opts, 2)) == one, mode


@pytest.mark.parametrize("weights", [[1, 0], [0, 1], [0, 0, 1], [0.2, 0.3, 0.5], [1, 1, 1, 0]])
def test_any_share_of_the_reader_gives_one_process(weights):
    """The reading process analyses the connections of the buckets given to it from its own
    lane (all, none or some) and the workers the rest: always the document of one process."""
    path = TRACES / "206_example_b.pcap"
    opts = AnalyzeOptions()
    one = _doc(analyze_file(str(path), opts))
    assert _doc(P.analyze_fanout(str(path), opts, len(weights), inline=True, weights=weights)) == one
    if len(weights) == 2:
        assert _doc(P.analyze_fanout(str(path), opts, 2, weights=weights)) == one


def test_failing_worker_raises_instead_of_hanging(monkeypatch):
    parent = os.getpid()
    real = P.consume

    def broken(*a, **k):
        if os.getpid() != parent:           # the forked workers inherit it; this process's own lane works
            raise ZeroDivisionError("worker broke")
        return real(*a, **k)

    monkeypatch.setattr(P, "consume", broken)
    for weights in ([0.8, 0.2], [1, 0]):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            P.analyze_fanout(str(TRACES / "bruteforce.pcap"), None, 2, weights=weights)


def test_unreadable_file_is_a_failed_report(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    rep = P.analyze_fanout(str(bad), None, 2)
    assert rep.failed and rep.files[0]["error"] == analyze_file(str(bad)).files[0]["error"]
    rep = P.analyze_fanout(str(tmp_path / "missing.pcap"), None, 2)
    assert rep.failed


def test_cli_standard_input_is_split_too():
    path = TRACES / "206_example_b.pcap"

    def run(*args):
        with open(path, "rb") as f:
            r = subprocess.run([sys.executable, "-m", "tcpanalyze", "analyze", "--json", *args], stdin=f,
                               capture_output=True, text=True)
        assert r.returncode in (0, 3), r.stderr
        return json.loads(r.stdout)

    one = run("-")
    assert one["files"][0]["tcp_segments"] > 0
    assert run("-", "--jobs", "2") == one


@pytest.mark.parametrize("name", ["206_example_b.pcap", "Teredo.pcap", "fragmented-syn.pcap", "bruteforce.pcap"])
def test_dispatch_over_batches_equals_dispatch_over_frames(name, tmp_path):
    """The dispatcher fed a reader's batches (frames decoded where they lie in the read
    window) writes the same lane records, counts and clock as fed the reader's frames; a
    truncated copy of the capture too."""
    from array import array

    from tcpanalyze.pipeline import K_BATCH, RunStats
    from tcpanalyze.sources.pcap import open_capture

    whole = (TRACES / name).read_bytes()
    cut = tmp_path / ("cut-" + name)
    cut.write_bytes(whole[:len(whole) * 2 // 3])
    table = fanout.lane_table([1, 2])
    for path in (TRACES / name, cut):
        runs = []
        for batched in (False, True):
            lanes = P._KeptLanes(2)
            stats = RunStats(str(path))
            fanout.prepare(stats, "ignore")
            reader = open_capture(str(path))
            out = array("q", bytes(40 * K_BATCH))
            frames = reader.batches(out) if batched else iter(reader)
            assert frames is not None
            clock = fanout.dispatch(frames, stats, table, lanes.mem, lanes.pos, lanes.lim, lanes.flush,
                                    False, out if batched else None)
            lanes.end(clock[1])
            damage = str(reader.damage)
            reader.close()
            lanes.mem.close()
            runs.append((clock, stats.frames, stats.tcp, dict(stats.errors), damage,
                         [b"".join(k) for k in lanes.kept]))
        assert runs[0] == runs[1]
        assert path == cut or runs[0][2] > 0


def _runs(rng, nparts, n, top):
    """Per part, ascending first frames (some equal across parts)."""
    return [array("q", sorted(rng.randint(0, top) for _ in range(rng.randint(0, n)))) for _ in range(nparts)]


def test_first_frame_ranks_merge_the_parts_runs():
    """Global stream numbers: the rank of each part's first frames over all parts, equal
    frames in part order then local order (the order a sort of (frame, part, stream) gives)."""
    rng = random.Random(5)
    for trial in range(300):
        runs = _runs(rng, rng.randint(1, 5), 30, 40 if trial % 2 else 10_000)
        keyed = sorted((ff, k, s) for k, run in enumerate(runs) for s, ff in enumerate(run))
        want = [[0] * len(run) for run in runs]
        for g, (_ff, k, s) in enumerate(keyed):
            want[k][s] = g
        got = fanout.first_frame_ranks(runs)
        assert [list(r) for r in got] == want and all(type(r) is array for r in got)
    assert fanout.first_frame_ranks([]) == [] and [list(r) for r in fanout.first_frame_ranks([[], [3]])] == [[], [0]]


def test_finalization_keys_order_as_place_then_stream():
    """The keys order the global streams as (finalization place, stream) does, places of the
    end of the input after every other; None when they would not fit in 64 bits."""
    rng = random.Random(6)
    end = (1 << 60) * 4
    for trial in range(200):
        nparts = rng.randint(1, 4)
        sizes = [rng.randint(0, 25) for _ in range(nparts)]
        total = sum(sizes)
        perm = list(range(total))
        rng.shuffle(perm)
        ranks, fins, it = [], [], iter(perm)
        for n in sizes:
            ranks.append(array("q", [next(it) for _ in range(n)]))
            fins.append(array("q", [end + 3 if rng.random() < 0.2 else rng.randint(0, 50) * 4 + rng.randint(0, 3)
                                    for _ in range(n)]))
        keys = fanout.finalization_keys(ranks, fins, end)
        place = {g: code for r, f in zip(ranks, fins) for g, code in zip(r, f)}
        want = sorted(range(total), key=lambda g: (place[g], g))
        assert sorted(range(total), key=keys.__getitem__) == want
        assert len(set(keys)) == total
    huge = [array("q", [(1 << 62) - 1, 5])]
    assert fanout.finalization_keys([array("q", [0, 1])], huge, 1 << 62) is None


def test_order_by_keys_sorts_streams_and_values_together():
    rng = random.Random(7)
    for n in (0, 1, 2, 3, 7, 64, 1000):
        keys = array("q", rng.sample(range(10 * n + 10), n + 5))
        streams = array("q", rng.sample(range(n + 5), n))
        values = array("q", [rng.randint(-5, 10**12) for _ in range(n)])
        s, v = fanout.order_by_keys(keys, streams, values)
        want = sorted(zip(streams, values), key=lambda sv: keys[sv[0]])
        assert list(zip(s, v)) == want and type(s) is array and type(v) is array


# ---------------------------------------------------------------------------- placement
_M64 = (1 << 64) - 1


def _ref_mix(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _ref_end(addr: bytes, port: int) -> int:
    """An IPv4 address as a 4-byte word, an IPv6 one as two 8-byte words XORed."""
    words = [addr] if len(addr) == 4 else [addr[:8], addr[8:]]
    v = 0
    for w in words:
        v ^= int.from_bytes(w, sys.byteorder)
    return _ref_mix(v ^ ((port * 0x9E3779B97F4A7C15) & _M64))


def test_pair_hash_is_symmetric_and_the_same_in_both_builds():
    """The connection hash the placement remembers moved connections by: both directions
    give one value, the value this reference computes (so both builds place alike)."""
    rnd = random.Random(11)
    for _ in range(2000):
        a = bytes(rnd.randrange(256) for _ in range(rnd.choice((4, 16))))
        b = bytes(rnd.randrange(256) for _ in range(len(a)))
        sp, dp = rnd.randrange(65536), rnd.randrange(65536)
        seg = Segment(1, 0, a, b, sp, dp, 0, 0, 0x10, 0, 0)
        back = Segment(2, 0, b, a, dp, sp, 0, 0, 0x10, 0, 0)
        want = _ref_mix((_ref_end(a, sp) + _ref_end(b, dp)) & _M64)
        assert fanout.pair_hash(seg) == fanout.pair_hash(back) == want


def _lanes_of(path, place, nlanes):
    """Run the dispatcher into kept lanes: per unordered 4-tuple, the set of lanes its
    records went to; and the number of segment records per lane."""
    lanes = P._KeptLanes(nlanes)
    P._read_once(str(path), None, lanes, place)
    lanes.mem.close()
    owners: dict = {}
    per_lane = [0] * nlanes
    for k in range(nlanes):
        for blob in lanes.kept[k]:
            for o in range(0, len(blob), fanout.REC_SIZE):
                r = fanout._REC.unpack_from(blob, o)
                if r[14] == fanout.K_TICK:
                    continue
                per_lane[k] += 1
                n = r[15]
                owners.setdefault(tuple(sorted(((r[19][:n], r[12]), (r[20][:n], r[13])))), set()).add(k)
    return owners, per_lane


def _twice(gen, tmp_path) -> Path:
    """The generated capture twice over, unshifted: every 4-tuple comes back with new SYNs."""
    data = gen.read_bytes()
    out = tmp_path / "twice.pcap"
    out.write_bytes(data + data[24:])
    return out


@pytest.fixture(scope="module")
def gen_small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("place") / "g.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(out), "--conns", "300",
                    "--conn-rate", "50", "--seed", "3", "--refused", "0.05", "--loss", "0.02"],
                   check=True, capture_output=True)
    return out


def test_placement_moves_new_connections_and_keeps_each_four_tuple_on_one_lane(gen_small, tmp_path):
    """With every bucket on lane 0 and no slack, most new connections are moved; every
    4-tuple's segments still go to one lane, also when the 4-tuples come back with new SYNs
    (a 4-tuple seen is never moved), and the counts are the records sent."""
    names = ["bruteforce.pcap", "206_example_b.pcap", "zeek-tracker.pcap", "missing-syn.pcap"]
    for path in [TRACES / n for n in names] + [gen_small, _twice(gen_small, tmp_path)]:
        for n in (2, 3):
            place = fanout.Placement([1] * n, table=bytes(fanout.K_BUCKETS), slack=0)
            owners, per_lane = _lanes_of(path, place, n)
            assert all(len(ks) == 1 for ks in owners.values()), path.name
            assert list(place.count) == per_lane + [sum(per_lane)]
            if path.name in ("bruteforce.pcap", "g.pcap", "twice.pcap"):
                assert place.moved > 0 and min(per_lane) > 0, path.name
    # the second copy's SYNs reuse seen 4-tuples: moved no more often than the first copy's
    once = fanout.Placement([1, 1], table=bytes(fanout.K_BUCKETS), slack=0)
    _lanes_of(gen_small, once, 2)
    twice = fanout.Placement([1, 1], table=bytes(fanout.K_BUCKETS), slack=0)
    _lanes_of(_twice(gen_small, tmp_path), twice, 2)
    assert twice.moved == once.moved


def test_placement_makes_up_for_a_skewed_table(gen_small):
    """A table that puts every bucket on lane 0: placed by the table alone every segment
    goes there; with the weights [1, 1] about half go to lane 1, and [3, 1] a quarter."""
    static = fanout.Placement(table=bytes(fanout.K_BUCKETS), nlanes=2)
    _owners, per_lane = _lanes_of(gen_small, static, 2)
    assert per_lane[1] == 0 and static.moved == 0
    for weights, want in (([1, 1], 0.5), ([3, 1], 0.25)):
        place = fanout.Placement(weights, table=bytes(fanout.K_BUCKETS), slack=64)
        _owners, per_lane = _lanes_of(gen_small, place, 2)
        assert abs(per_lane[1] / sum(per_lane) - want) < 0.05, (weights, per_lane)


def test_moved_table_grows_then_stops_moving(gen_small, monkeypatch):
    """The moved table doubles at half full; at its largest size no connection is moved any
    more, and every 4-tuple still stays on one lane with the report of one process."""
    monkeypatch.setattr(fanout, "K_MOVED_START", 8)
    monkeypatch.setattr(fanout, "K_MOVED_MAX", 32)
    place = fanout.Placement([1, 1], table=bytes(fanout.K_BUCKETS), slack=0)
    owners, _per_lane = _lanes_of(gen_small, place, 2)
    assert place.full and place.moved == 16 and len(place.keys) == 32
    assert all(len(ks) == 1 for ks in owners.values())
    assert sorted(e & 255 for e in place.keys if e) == sorted(
        place.lane_of_key(e) for e in place.keys if e)
    place = fanout.Placement([1, 1], table=bytes(fanout.K_BUCKETS), slack=0)
    one = _doc(analyze_file(str(gen_small)))
    assert _doc(P._fanout_inline(str(gen_small), None, 2, place)) == one
    assert place.full


def test_steer_sets_a_workers_share_by_its_backlog():
    """A worker with few slots out gets more than its weight, one with most out less; the
    reader's own lane has the rest; reads-only, the workers' shares add up to 1; a worker of
    weight 0 and the reader's lane are not steered; the counts age by an eighth."""
    place = fanout.Placement([0.66, 0.34])
    place.count[0], place.count[1], place.count[2] = 800, 160, 960
    place.steer(0, 1, 24)
    assert place.share[0] == pytest.approx(0.66 + 0.4 * (0.5 - 1 / 24))
    assert place.share[0] + place.share[1] == pytest.approx(1.0)
    assert list(place.count) == [700, 140, 840]
    place.steer(0, 24, 24)
    assert place.share[0] == pytest.approx(0.46) and place.share[1] == pytest.approx(0.54)
    before = list(place.share)
    place.steer(1, 24, 24)
    place.steer(0, 12, 24)
    assert place.share[0] == pytest.approx(0.66) and before[0] == pytest.approx(0.46)
    three = fanout.Placement([1, 1, 1], own=False)
    three.steer(0, 1, 24)
    assert sum(three.share) == pytest.approx(1.0) and three.share[0] > three.share[1] == three.share[2]
    zero = fanout.Placement([0, 1])
    zero.steer(0, 1, 24)
    assert list(zero.share) == [0.0, 1.0]
    static = fanout.Placement(table=fanout.lane_table([1, 1]), nlanes=2)
    static.steer(0, 1, 24)
    assert list(static.share) == [0.0, 0.0]


def test_forked_run_steered_at_random_equals_one_process(gen_small, monkeypatch, tmp_path):
    """Forked workers, every bucket on lane 0, no slack, and at every slot handed over new
    shares drawn at random: the placement changes all the time, the report does not."""
    rnd = random.Random(1)
    calls = []

    def steer(self, k, behind, slots):
        calls.append(behind)
        w = [rnd.random() + 0.01 for _ in self.share]
        for i, x in enumerate(w):
            self.share[i] = x / sum(w)

    made = []

    def placement(weights, own=True):
        made.append(fanout.Placement(weights, table=bytes(fanout.K_BUCKETS), slack=0, own=own))
        return made[-1]

    monkeypatch.setattr(fanout.Placement, "steer", steer)
    monkeypatch.setattr(P, "Placement", placement)
    monkeypatch.setattr(P, "K_SLOT_RECORDS", 64)
    path = _twice(gen_small, tmp_path)
    opts = AnalyzeOptions()
    one = _doc(analyze_file(str(path), opts))
    for jobs in (2, 3):
        assert _doc(P.analyze_fanout(str(path), opts, jobs)) == one, jobs
        assert made[-1].moved > 0
    assert len(calls) > 20
