"""``--jobs``: one file split by connection gives the same report as one process; many files
side by side; directory/glob inputs; and the engine's memory bound on many short connections."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from tcpanalyze import parallel as P
from tcpanalyze.findings import Finding, Tallies, Thresholds
from tcpanalyze.pipeline import owner
from tcpanalyze.session import AnalyzeOptions, analyze_file, merge_reports

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"
BENCH = ROOT / "bench"

#: public traces with several connections, port reuse, RSTs, damage, IPv6, pcapng, gzip
SOME_TRACES = [
    "206_example_b.pcap", "bruteforce.pcap", "missing-syn.pcap", "pcapplusplus-ldap.pcapng",
    "pcapplusplus-one_ipv6_http_stream.pcap", "retransmit-fast009.pcap", "tcp-badsegments.pcap",
    "zeek-smb_many_open_files_500.pcap.gz", "suricata-tcp-rst-unacked-stream-03-gap-input.pcap",
    "zeek-tracker.pcap", "wireshark-rsasnakeoil2.pcap", "Teredo.pcap",
]


def _doc(rep) -> dict:
    """The JSON document as written (no timing fields exist in it)."""
    return json.loads(json.dumps(rep.to_dict()))


def _parts(path, opts, n):
    """The split where every worker reads the whole file, run in this process (no pool: fast,
    and coverage sees it)."""
    return P.merge_parts(str(path), opts, [P.analyze_part(str(path), opts, k, n) for k in range(n)])


def _fanout(path, opts, n):
    """The split read once and fanned out (the records of the worker processes), its workers
    run one after the other in this process."""
    return P.analyze_fanout(str(path), opts, n, inline=True)


def _skewed(n):
    """A placement whose lane table puts every bucket on lane 0 and that moves a new
    connection whenever its lane is over its share at all: most connections are moved."""
    from tcpanalyze.fanout import K_BUCKETS, Placement

    return Placement([1] * n, table=bytes(K_BUCKETS), slack=0)


def _moved(path, opts, n):
    """The split read once and fanned out with ``_skewed``'s placement, its workers run one
    after the other in this process."""
    return P._fanout_inline(str(path), opts, n, _skewed(n))


@pytest.fixture(params=["whole", "fanout", "moved"])
def split(request):
    """The ways of splitting one file: every worker reads it all / one reader fans out by the
    flow hash / one reader fans out and moves new connections off their hash lane."""
    return {"whole": _parts, "fanout": _fanout, "moved": _moved}[request.param]


def _gen(out: Path, *args: str) -> Path:
    subprocess.run([sys.executable, str(BENCH / "gen_capture.py"), str(out), *args], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def gen_pcap(tmp_path_factory) -> Path:
    """A generated capture: IPv4 and IPv6, loss, RSTs, refused and unanswered SYNs, and a second
    copy of the same 4-tuples with new ISNs 1 s later (port reuse, SYN in TIME_WAIT)."""
    d = tmp_path_factory.mktemp("gen")
    a = _gen(d / "a.pcap", "--conns", "400", "--conn-rate", "40", "--seed", "5", "--refused", "0.03",
             "--unanswered", "0.03", "--loss", "0.02")
    b = _gen(d / "b.pcap", "--conns", "400", "--conn-rate", "40", "--seed", "6")
    sys.path.insert(0, str(BENCH))
    try:
        import concat_pcap
    finally:
        sys.path.remove(str(BENCH))
    out = d / "ab.pcap"
    concat_pcap.concat(str(out), [str(a), str(b)], gap_s=1.0)
    return out


@pytest.mark.parametrize("name", SOME_TRACES)
def test_jobs_equal_on_public_traces(name, split):
    path = TRACES / name
    assert path.exists()
    opts = AnalyzeOptions()
    one = _doc(analyze_file(str(path), opts))
    for n in (2, 3):
        assert _doc(split(path, opts, n)) == one, f"{name}: {n} parts differ from one process"


def test_jobs_equal_on_all_public_traces_small_caps(split):
    """Every public trace, with caps and thresholds low enough that the merge's ordering
    (which findings are kept), the aggregates and the idle timeout all matter."""
    opts = AnalyzeOptions(thresholds=Thresholds(max_findings_per_kind=2, time_wait_peak=1, syn_flood=2),
                          engine={"idle_timeout_ns": 2_000_000_000, "msl_s": 5.0})
    names = sorted(p for p in os.listdir(TRACES) if p.endswith((".pcap", ".pcapng", ".gz")))
    assert len(names) > 50
    for name in names:
        path = TRACES / name
        assert _doc(split(path, opts, 2)) == _doc(analyze_file(str(path), opts)), name


@pytest.mark.parametrize("keep", [None, 5])
@pytest.mark.parametrize("cap", [1000, 3])
@pytest.mark.parametrize("msl", [60.0, 3.0])
def test_jobs_equal_on_generated_capture(gen_pcap, keep, cap, msl, split):
    # with a short MSL and a low TIME_WAIT threshold many hosts get time_wait_buildup, of which
    # the cap keeps the first ones in order of first TIME_WAIT entry
    opts = AnalyzeOptions(keep_connections=keep, engine={"msl_s": msl},
                          thresholds=Thresholds(max_findings_per_kind=cap, time_wait_peak=1 if msl < 60 else 5))
    one = _doc(analyze_file(str(gen_pcap), opts))
    kinds = one["summary"]["findings"]["by_kind"]
    # the capture exercises what the merge must get right
    want = ["retransmissions", "rst", "handshake", "time_wait_buildup", "server_active_close", "port_reuse"]
    if msl == 60.0:
        want.append("syn_in_time_wait")
    for k in want:
        assert kinds.get(k, {}).get("total"), k
    if cap == 3:
        assert any(v["total"] > v["reported"] for v in kinds.values())
        if msl < 60:
            assert kinds["time_wait_buildup"]["total"] > 3
    for n in (2, 4):
        assert _doc(split(gen_pcap, opts, n)) == one


def test_jobs_with_backwards_timestamps(gen_pcap, tmp_path, split):
    """The same records twice, unshifted: timestamps step back, every 4-tuple reappears."""
    data = gen_pcap.read_bytes()
    path = tmp_path / "twice.pcap"
    path.write_bytes(data + data[24:])
    opts = AnalyzeOptions(engine={"msl_s": 2.0})
    one = _doc(analyze_file(str(path), opts))
    assert one["summary"]["capture_quality"]["timestamps_backwards"] > 0
    assert _doc(split(path, opts, 2)) == one


def test_partition_uses_unordered_four_tuple():
    from tcpanalyze.model import Segment

    a = Segment(1, 0, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 40000, 80, 1, 0, 2, 100, 0)
    b = Segment(2, 0, b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x01", 80, 40000, 5, 2, 0x12, 100, 0)
    for n in (2, 3, 7):
        assert owner(a, n) == owner(b, n)
    # spread: 1000 client ports over 2 workers
    owners = [owner(Segment(1, 0, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 1024 + 2 * i, 80, 1, 0, 2, 1, 0), 2)
              for i in range(1000)]
    assert 400 < sum(owners) < 600


def test_merge_knows_every_tally_field():
    """A new field in findings.Tallies must be merged by parallel._merge_tallies too."""
    assert set(vars(Tallies())) == P.TALLY_FIELDS


def test_jobs_failed_file(tmp_path, split):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    rep = split(bad, None, 2)
    assert rep.files[0]["error"] and rep.failed


def test_jobs_pool_end_to_end(gen_pcap):
    """The real processes give the document of one process: the forked workers fed through
    shared memory, and the pool whose workers read the whole file."""
    opts = AnalyzeOptions()
    one = _doc(analyze_file(str(gen_pcap), opts))
    assert P.fanout_available()
    assert _doc(P.analyze_partitioned(str(gen_pcap), opts, 2)) == one
    assert _doc(P.analyze_fanout(str(gen_pcap), opts, 3)) == one
    assert _doc(P.analyze_whole(str(gen_pcap), opts, 2)) == one


@pytest.mark.parametrize("max_tw_hosts", [20, 150])
def test_jobs_equal_when_time_wait_hosts_are_folded(gen_pcap, max_tw_hosts, split, tmp_path, monkeypatch):
    """Past max_tw_hosts the engine folds hosts away as it goes; the workers log their
    TIME_WAIT entries and the parent replays them in frame order, so the folding (and the
    time_wait summary) is that of one process."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))     # only this test's logs, not another run's
    opts = AnalyzeOptions(engine={"max_tw_hosts": max_tw_hosts})
    one = _doc(analyze_file(str(gen_pcap), opts))
    assert one["summary"]["time_wait"].get("untracked_hosts", 0) > 0
    for n in (2, 3):
        assert _doc(split(gen_pcap, opts, n)) == one
    assert not list(Path(tempfile.gettempdir()).glob("tcpanalyze-tw-*")), "TIME_WAIT logs left behind"


@pytest.mark.parametrize("max_tw_hosts", [20, 150])
def test_forked_time_wait_table_equals_one_process(gen_pcap, max_tw_hosts, tmp_path, monkeypatch):
    """With real workers the reader builds the TIME_WAIT table while the run goes on, from
    its own part's entries and those the workers send with their slots (``_TwMerge``): the
    folding and the time_wait summary are still one process's, nothing replays a log, and
    no log is written."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    opts = AnalyzeOptions(engine={"max_tw_hosts": max_tw_hosts})
    one = _doc(analyze_file(str(gen_pcap), opts))
    assert one["summary"]["time_wait"]["hosts"] and one["summary"]["time_wait"].get("untracked_hosts", 0) > 0
    parent = os.getpid()
    replays, acks = [], []
    real_replay, real_add = P._replay_logs, P._TwMerge.add

    def replay(paths, max_hosts, hold):
        replays.append((os.getpid(), len(paths)))
        return real_replay(paths, max_hosts, hold)

    def add(self, k, frame, entries):
        acks.append((k, frame, len(entries)))
        return real_add(self, k, frame, entries)

    monkeypatch.setattr(P, "_replay_logs", replay)
    monkeypatch.setattr(P._TwMerge, "add", add)
    for weights in ([0.6, 0.4], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]):
        acks.clear()
        assert _doc(P.analyze_fanout(str(gen_pcap), opts, len(weights), weights=weights)) == one, weights
        # every worker said how far it got, with entries, before its part
        for k in range(len(weights) - 1):
            mine = [a for a in acks if a[0] == k]
            assert len(mine) > 1 and any(n for _k, _f, n in mine[:-1]), (weights, k)
    assert not replays, "a log was replayed"
    assert not list(Path(tempfile.gettempdir()).glob("tcpanalyze-tw-*")), "TIME_WAIT logs written"
    assert os.getpid() == parent


def test_time_wait_merge_enters_in_frame_order_as_far_as_every_worker_got():
    """``_TwMerge`` enters an entry only once every worker has fed its records up to its frame,
    in frame order over all parts (equal frames in part order): the same calls, in the same
    order, as the replay of the parts' logs."""
    calls = []

    class Table:
        def enter(self, host, port, now, frame):
            calls.append((frame, host, port, now))

    m = P._TwMerge(3, 2, 10, 5)
    m.table = Table()
    own = m.own_enter(2)
    pack = P._TW_REC.pack

    def rec(frame, host, port=80, now=0):
        return pack(frame, now, port, len(host), host)

    own(b"\x0a\x00\x00\x03", 443, 7, 4)          # the reader's own part: frames 4 and 9
    own(b"\x0a\x00\x00\x03", 443, 8, 9)
    m.add(0, 6, rec(2, b"\x01\x02\x03\x04") + rec(5, b"\x01\x02\x03\x05"))
    assert calls == []                               # worker 1 has not said how far it got
    m.add(1, 3, rec(3, bytes(range(16)), 22))
    assert [c[0] for c in calls] == [2, 3]           # up to frame 3: both workers got there
    m.add(1, 12, rec(9, b"\x09\x09\x09\x09"))
    assert [c[0] for c in calls] == [2, 3, 4, 5]     # up to frame 6 (worker 0)
    m.add(0, 20, b"")
    assert [c[0] for c in calls] == [2, 3, 4, 5, 9, 9]
    assert calls[-2][1] == b"\x09\x09\x09\x09" and calls[-1][1] == b"\x0a\x00\x00\x03"   # equal frames: part order
    assert calls[1][1] == bytes(range(16)) and calls[1][2] == 22
    own(b"\x0b\x00\x00\x01", 1, 30, 25)
    assert m.finish() is m.table and calls[-1][0] == 25 and all(not p for p in m.pending)


def test_worker_failing_while_the_table_is_built_raises(tmp_path, monkeypatch):
    """A worker whose slot acknowledgement cannot be taken in (TIME_WAIT entries that are not
    records) makes the run raise instead of hanging; a worker that fails after its part
    was sent too."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    parent = os.getpid()
    real_pack = P._TW_REC.pack

    class BadRecord:
        size = P._TW_REC.size
        iter_unpack = P._TW_REC.iter_unpack

        @staticmethod
        def pack(*a):
            return real_pack(*a)[:-1] if os.getpid() != parent else real_pack(*a)

    monkeypatch.setattr(P, "_TW_REC", BadRecord)
    with pytest.raises(Exception, match="buffer size|unpack"):
        P.analyze_fanout(str(TRACES / "bruteforce.pcap"), None, 2)
    monkeypatch.undo()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    real_result = P._Part.result

    def broken(self, *a, **k):
        if os.getpid() != parent:
            raise ZeroDivisionError("part broke")
        return real_result(self, *a, **k)

    monkeypatch.setattr(P._Part, "result", broken)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        P.analyze_fanout(str(TRACES / "bruteforce.pcap"), None, 2)
    assert not list(Path(tempfile.gettempdir()).glob("tcpanalyze-tw-*"))


def test_packed_findings_round_trip():
    """A part carries its findings as tuples of their slots; unpacked they are the same."""
    f = Finding("rst", "warning", subkind="aborted", stream=3, frames=[7, 9], ts_ns=12,
                values={"previous_stream": 1, "x": [1, 2]}, terms={"frame": 7}, cause="c")
    [packed] = P._pack_findings([f])
    assert isinstance(packed, tuple)
    g = P._unpack_finding(packed)
    assert type(g) is Finding
    assert all(getattr(g, n) == getattr(f, n) for n in Finding.__slots__)


def test_cli_jobs_single_file_and_many(gen_pcap, tmp_path):
    def run(*args):
        r = subprocess.run([sys.executable, "-m", "tcpanalyze", "analyze", *args], capture_output=True, text=True)
        assert r.returncode in (0, 3), r.stderr
        return r

    one = json.loads(run(str(gen_pcap), "--json").stdout)
    two = json.loads(run(str(gen_pcap), "--json", "--jobs", "2").stdout)
    assert one == two
    # many files: a directory and a glob, side by side, in input order, with the total
    d = tmp_path / "caps"
    d.mkdir()
    names = ["206_example_b.pcap", "bruteforce.pcap", "zeek-tracker.pcap"]
    for n in names:
        (d / n).write_bytes((TRACES / n).read_bytes())
    (d / "notes.txt").write_text("not a capture")
    seq = json.loads(run(str(d), "--json").stdout)
    par = json.loads(run(str(d / "*.pcap"), "--json", "-j", "2").stdout)
    assert seq == par
    assert [f["source"] for f in par["files"]] == [str(d / n) for n in sorted(names)]
    want = merge_reports([analyze_file(str(d / n)) for n in sorted(names)])
    assert par["summary"] == _doc(want)["summary"]
    jl = run(str(d), "--jsonl", "-j", "2").stdout.splitlines()
    assert json.loads(jl[-1])["type"] == "summary"


def test_expand_inputs(tmp_path):
    (tmp_path / "b.pcap").write_bytes(b"")
    (tmp_path / "a.pcapng").write_bytes(b"")
    (tmp_path / "c.txt").write_bytes(b"")
    assert P.expand_inputs([str(tmp_path)]) == [str(tmp_path / "a.pcapng"), str(tmp_path / "b.pcap")]
    assert P.expand_inputs([str(tmp_path / "*.pcap")]) == [str(tmp_path / "b.pcap")]
    assert P.expand_inputs(["-", "missing.pcap", str(tmp_path / "nomatch*.pcap")]) == \
        ["-", "missing.pcap", str(tmp_path / "nomatch*.pcap")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert P.expand_inputs([str(empty)]) == [str(empty)]


# ---------------------------------------------------------------------------- memory bound
def test_live_table_bounded_with_many_short_connections():
    """200k short connections over ~17 minutes of capture time: with the default linger (120 s)
    the closed ones are released, so the live table never holds more than the last ~2 minutes'
    worth, and every connection is handed to on_conn_done exactly once."""
    from tcpanalyze.engine import K_LINGER_NS, K_SWEEP_EVERY_NS, Analyzer, Config
    from tcpanalyze.model import ACK, FIN, RST, SYN, Segment

    n_conns = 200_000
    rate = 200                      # new connections per second of capture time
    gap = 1_000_000_000 // rate
    seen = []
    an = Analyzer(Config(), keep_timeline=False, on_conn_done=lambda c: seen.append(c.stream))
    srv = b"\x0a\xc8\x00\x02"
    feed = an.feed
    frame = 0
    peak_table = 0
    t = 1_700_000_000_000_000_000
    for i in range(n_conns):
        cli = bytes((10, 1 + (i >> 16) % 8, (i >> 8) & 255, i & 255))
        sp = 1024 + i % 60000
        isn = (i * 2654435761) & 0xFFFFFFFF
        frame += 1
        feed(Segment(frame, t, cli, srv, sp, 80, isn, 0, SYN, 64240, 0))
        if i % 4:                 # three in four refused: RST/ACK
            frame += 1
            feed(Segment(frame, t + 100_000, srv, cli, 80, sp, 0, isn + 1, RST | ACK, 0, 0))
        else:                     # the others: SYN/ACK, ACK, FIN/ACK both ways, last ACK
            s = 7 * i & 0xFFFFFFFF
            for dt, fwd, seq, ack, fl in ((100_000, False, s, isn + 1, SYN | ACK), (200_000, True, isn + 1, s + 1, ACK),
                                          (300_000, True, isn + 1, s + 1, FIN | ACK),
                                          (400_000, False, s + 1, isn + 2, FIN | ACK),
                                          (500_000, True, isn + 2, s + 2, ACK)):
                frame += 1
                if fwd:
                    feed(Segment(frame, t + dt, cli, srv, sp, 80, seq, ack, fl, 502, 0))
                else:
                    feed(Segment(frame, t + dt, srv, cli, 80, sp, seq, ack, fl, 502, 0))
        t += gap
        if i % 1000 == 0:
            peak_table = max(peak_table, len(an.table) // 2)
    bound = (K_LINGER_NS + K_SWEEP_EVERY_NS) // gap + 1000
    assert an.live_peak <= bound, (an.live_peak, bound)
    assert peak_table <= bound
    assert len(an.table) // 2 <= bound
    assert an.live_peak < n_conns // 5
    an.finish()
    assert len(seen) == n_conns == len(set(seen))
    assert an.evicted == 0


def test_jobs_option_in_help():
    r = subprocess.run([sys.executable, "-m", "tcpanalyze", "analyze", "--help"], capture_output=True, text=True)
    assert "--jobs" in r.stdout


def test_thresholds_replace_keeps_msl(split):
    """The merge applies the engine's MSL to the thresholds as analyze_file does."""
    opts = AnalyzeOptions(engine={"msl_s": 7.0})
    rep = split(TRACES / "206_example_b.pcap", opts, 2)
    assert rep.summary["time_wait"]["msl_s"] == replace(Thresholds(), msl_s=7.0).msl_s


def test_spilled_worker_records_equal_in_memory(gen_pcap, tmp_path, split, monkeypatch):
    """analyze --json --jobs N: each worker spills its connection records to a file of its
    own and the parent adopts them, renumbering the streams in the stored text
    (tcpanalyze.records).  The document must be the in-memory one byte for byte, also for a
    record that an aggregate finding changes after the merge, and no file may be left."""
    from io import StringIO

    from tcpanalyze.report.jsonout import write_json
    from test_analyze_cli import _rtt_outlier_capture

    rtt = _rtt_outlier_capture(tmp_path / "rtt.pcap")
    spills = tmp_path / "spills"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))       # only this test's files, not another run's
    for path in (gen_pcap, rtt):
        want = StringIO()
        write_json(analyze_file(str(path), AnalyzeOptions()), want)
        for n in (2, 3):
            rep = split(path, AnalyzeOptions(spill_records=True), n)
            assert not isinstance(rep.connections, list)
            got = StringIO()
            write_json(rep, got)
            assert got.getvalue() == want.getvalue(), (path.name, n)
    assert '"handshake/rtt_outlier"' in got.getvalue()
    assert not list(Path(tempfile.gettempdir()).glob("tcpanalyze-records-*")), "spill files left behind"


def test_meanwhile_runs_in_the_reader_before_the_merge(monkeypatch):
    """``meanwhile`` is called once, in the reading process, after it read the file and
    before the parts are merged; the table report passes the imports of its rendering."""
    from click.testing import CliRunner

    from tcpanalyze.cli import cli
    from tcpanalyze.commands import analyze as A

    path = str(TRACES / "bruteforce.pcap")
    events = []
    real_merge = P.merge_parts

    def merge(*a, **k):
        events.append("merge")
        return real_merge(*a, **k)

    monkeypatch.setattr(P, "merge_parts", merge)
    rep = P.analyze_fanout(path, None, 2, meanwhile=lambda: events.append(("meanwhile", os.getpid())))
    assert events == [("meanwhile", os.getpid()), "merge"]
    assert _doc(rep) == _doc(analyze_file(path))
    monkeypatch.undo()

    seen = []
    real_iter = A.iter_reports

    def spy(files, options, jobs, meanwhile=None):
        seen.append(meanwhile)
        return real_iter(files, options, jobs, meanwhile=meanwhile)

    monkeypatch.setattr(A, "iter_reports", spy)
    for args, want in ((["--jobs", "2"], A._render_imports), (["--jobs", "2", "--json"], None)):
        res = CliRunner().invoke(cli, ["analyze", *args, path])
        assert res.exit_code == 0, res.output
        assert seen.pop() is want


def test_findings_sent_with_the_slots_equal_one_process(gen_pcap, monkeypatch):
    """A worker sends the findings it kept with each slot's acknowledgement, and the rest
    with its part: the findings (set, order, counts) are still one process's."""
    opts = AnalyzeOptions(thresholds=replace(Thresholds(), max_findings_per_kind=7))
    one = _doc(analyze_file(str(gen_pcap), opts))
    early = []
    real = P._Received.ack

    def ack(self, k, frame, entries, found):
        early.append(len(found))
        return real(self, k, frame, entries, found)

    monkeypatch.setattr(P._Received, "ack", ack)
    for weights in ([0.7, 0.3], [0.4, 0.4, 0.2]):
        early.clear()
        assert _doc(P.analyze_fanout(str(gen_pcap), opts, len(weights), weights=weights)) == one, weights
        assert sum(1 for n in early if n) > 1, weights
