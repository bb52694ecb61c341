"""The batch walk of a pcap capture (``CaptureReader.batches``) and the loop over it
(``pipeline.run_batches``) give what iteration and ``run_packets`` give: the same frames,
damage, warnings and counts, and the same analysis.  Run in both builds."""
from __future__ import annotations

import io
import os
import struct
import sys
from array import array
from pathlib import Path

import pytest

from tcpanalyze import _loader
from tcpanalyze.engine import Analyzer, Config
from tcpanalyze.pipeline import RunStats, analyze_source, finish_stats, run_batches, run_packets
from tcpanalyze.sources.pcap import open_capture

from test_reader import CAPTURES, TRACES, _Stdin, _Trickle, boundaries, pcap_header, pcap_record, write_pcap

PCAPS = [p for p in CAPTURES if p.name.endswith(".pcap")]
SAMPLES = sorted((Path(__file__).resolve().parents[1] / "samples").glob("*.pcap"))


def _state(r):
    d = r.damage
    return (r.frames, r.bytes_read, list(r.warnings), sorted(r.linktypes), r.format,
            d and (str(d), d.offset, d.frame, d.fatal))


def _iterated(open_it):
    """Each frame with the reader's frames/bytes_read after it, and the final state."""
    with open_it() as r:
        recs = []
        for rec in r:
            recs.append((tuple(rec), r.frames, r.bytes_read))
    return recs, _state(r)


def _batched(open_it, size):
    """The same from batches of at most ``size`` records: positions as after each batch's last frame."""
    out = array("q", bytes(40 * size))
    with open_it() as r:
        b = r.batches(out)
        assert b is not None
        recs = []
        for window, lt, k in b:
            assert type(window) is bytes and 0 < k <= size
            for i in range(k):
                frame, ts, off, caplen, wirelen = out[5 * i:5 * i + 5]
                recs.append(((frame, ts, lt, window[off:off + caplen], wirelen), r.frames, r.bytes_read))
            assert recs[-1][0][0] == r.frames
    return recs, _state(r)


def _same(open_it, size):
    it, st = _iterated(open_it)
    bt, sb = _batched(open_it, size)
    assert sb == st
    assert [x[0] for x in bt] == [x[0] for x in it]
    # positions are exact after each batch, i.e. after its last frame
    last = {x[0][0]: x[1:] for x in it}
    for x in bt:
        assert x[1] == x[0][0] or x[1:] == last[x[1]]
    return it


@pytest.mark.parametrize("size", [1, 3, 4096])
@pytest.mark.parametrize("path", PCAPS + SAMPLES[:4], ids=lambda p: p.name)
def test_batches_are_the_frames(path, size):
    assert _same(lambda: open_capture(str(path)), size)


def test_batches_through_damage(tmp_path, monkeypatch):
    """Cut anywhere in the last records, a corrupt captured length, and a stream refilling its
    window at every place: the same frames, damage and counts as iteration."""
    data = (TRACES / "pop3.pcap").read_bytes()
    bounds = boundaries(data)
    path = tmp_path / "cut.pcap"
    for cut in range(bounds[-4], len(data) + 1):
        path.write_bytes(data[:cut])
        _same(lambda: open_capture(str(path)), 2)
    for e in "<>":
        recs = [(1_000_000_000 + i, bytes([i]) * (60 + i), 60 + i) for i in range(20)]
        raw = bytearray(pcap_header(e) + b"".join(pcap_record(e, ts, d, w) for ts, d, w in recs))
        off = boundaries(bytes(raw))[9]
        struct.pack_into(e + "I", raw, off + 8, 0x7FFFFFFF)
        path.write_bytes(bytes(raw))
        for size in (1, 4, 100):
            it = _same(lambda: open_capture(str(path)), size)
            assert len(it) == 9
    trimmed = (TRACES / "zeek-get-to-ssh-server.pcap").read_bytes()[:-5]
    for blob in (data, trimmed):
        for seed in range(3):
            def trickle():
                stdin = _Stdin(b"")
                stdin.buffer = _Trickle(blob, seed)
                monkeypatch.setattr(sys, "stdin", stdin)
                return open_capture("-")
            it, st = _iterated(trickle)
            bt, sb = _batched(trickle, 5)
            assert sb == st and [x[0] for x in bt] == [x[0] for x in it]
    # a gzip-compressed capture
    import gzip
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(data))
    _same(lambda: open_capture(str(gz)), 64)


def test_batches_only_for_pcap_and_unread(tmp_path):
    out = array("q", bytes(400))
    with open_capture(str(TRACES / "pcapplusplus-ldap.pcapng")) as r:
        assert r.batches(out) is None
        assert len(list(r)) > 0
    with open_capture(str(TRACES / "pop3.pcap")) as r:
        next(iter(r))
        assert r.batches(out) is None          # iteration began
    with open_capture(str(TRACES / "pop3.pcap")) as r:
        assert r.batches(array("q", bytes(32))) is None     # no room for one record
        assert r.batches(out) is not None
        assert r.batches(out) is None          # one pass
    r = open_capture(str(TRACES / "pop3.pcap"))
    r.close()
    assert r.batches(out) is None and list(r) == []      # closed: nothing either way


def _run(path, batched, size=4096, cfg=None):
    """Everything an analysis gives per segment, the run's stats and the connections."""
    an = Analyzer(cfg or Config())
    seen = []

    def on_segment(seg, a):
        v = a.verdict
        seen.append((seg.frame, seg.ts_ns, seg.src, seg.dst, seg.sport, seg.dport, seg.seq, seg.ack, seg.flags,
                     seg.win, seg.paylen, seg.mss, seg.wscale, seg.sack_perm, seg.sack, seg.tsval, seg.tsecr,
                     seg.truncated, v.analysis, v.direction, v.conn.stream, a.cur_frame))

    stats = RunStats(str(path))
    reader = open_capture(str(path))
    try:
        if batched:
            out = array("q", bytes(40 * size))
            run_batches(reader.batches(out), out, an, stats, on_segment, finite=True)
        else:
            run_packets(iter(reader), an, stats, on_segment, finite=True)
    finally:
        finish_stats(stats, reader)
    conns = []
    for c in an.finish():
        conns.append((c.stream, c.key, c.frames, c.end_reason, tuple(c.state), c.first_frame, c.last_frame))
    return seen, stats.to_dict(), conns


@pytest.mark.parametrize("path", PCAPS + SAMPLES, ids=lambda p: p.name)
def test_run_batches_is_run_packets(path):
    assert _run(path, True) == _run(path, False)
    assert _run(path, True, size=1) == _run(path, False)


def test_run_batches_undecodable_and_truncated(tmp_path):
    """Decode errors, skipped frames and a cut-short tail count the same."""
    eth = bytes(12) + b"\x08\x00"
    frames = [eth + b"\x45" + bytes(5),                                   # truncated IPv4
              eth + b"\x45\x00\x00\x14" + bytes(5) + b"\x11" + bytes(10),  # UDP: skipped
              bytes(6)]                                                   # too short for Ethernet
    raw = pcap_header("<") + b"".join(pcap_record("<", 10**9 + i, f, len(f)) for i, f in enumerate(frames))
    raw += (TRACES / "pop3.pcap").read_bytes()[24:-7]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(raw)
    a = _run(path, True, size=2)
    b = _run(path, False)
    assert a == b
    assert a[1]["damage"] is not None and a[1]["decode_errors"]
    other = tmp_path / "lt.pcap"
    other.write_bytes(pcap_header("<", linktype=147) + pcap_record("<", 10**9, bytes(60), 60))
    assert _run(other, True) == _run(other, False)
    assert _run(other, True)[1]["unsupported_linktypes"] == {"147": 1}


def test_run_batches_checksums_refused():
    an = Analyzer(Config(checksums="verify"))
    with open_capture(str(TRACES / "pop3.pcap")) as r:
        out = array("q", bytes(400))
        with pytest.raises(ValueError):
            run_batches(r.batches(out), out, an, RunStats("x"))


def test_analyze_source_same_with_either_loop(monkeypatch):
    """analyze_source (batches when compiled) and the frame loop give the same results."""
    import tcpanalyze.sources.pcap as pcap

    def run(no_batches):
        if no_batches:
            monkeypatch.setattr(pcap.CaptureReader, "batches", lambda self, out: None)
        an = Analyzer(Config())
        seen = []
        stats = analyze_source(str(SAMPLES[0]), an, on_segment=lambda s, a: seen.append((s.frame, a.verdict.analysis)))
        monkeypatch.undo()
        return seen, stats.to_dict()

    assert run(False) == run(True)


def _big_capture(tmp_path, megabytes: int) -> Path:
    """A pcap of ``megabytes`` MB: records of varied lengths, each with its own bytes, so a
    window rewritten under a frame would show."""
    recs = []
    size = 0
    i = 0
    while size < megabytes << 20:
        n = 60 + (i * 7919) % 1441
        recs.append((i * 1000, (i.to_bytes(4, "big") * (n // 4 + 1))[:n], None))
        size += n + 16
        i += 1
    path = tmp_path / f"big{megabytes}.pcap"
    path.write_bytes(write_pcap(recs))
    return path


def test_windows_held_by_the_caller_are_never_rewritten(tmp_path):
    """The reader recycles a read window only when nothing else holds it: windows a caller
    keeps (here all of them, and one hashed then let go) keep their bytes, and the frames
    are those of iteration, whether the caller keeps the windows or not."""
    path = _big_capture(tmp_path, 9)
    it, st = _iterated(lambda: open_capture(str(path)))
    out = array("q", bytes(40 * 4096))
    for keep in (True, False):
        kept, frames = [], []
        with open_capture(str(path)) as r:
            for window, lt, k in r.batches(out):
                for i in range(k):
                    frame, ts, off, caplen, wirelen = out[5 * i:5 * i + 5]
                    frames.append((frame, ts, lt, window[off:off + caplen], wirelen))
                if keep:
                    kept.append((window, bytearray(window)))
                elif len(frames) < 2000:
                    hash(window)                # a hashed window is not recycled either
            state = _state(r)
        assert frames == [x[0] for x in it] and state == st
        assert len(kept) > 3 if keep else not kept
        assert all(w == snap for w, snap in kept)


_FAULTS = """
import resource, sys
from array import array
from tcpanalyze.sources import pcap
if sys.argv[2] == "fresh":
    pcap._WINDOW = 1
out = array("q", bytes(40 * 4096))
n = 0
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with pcap.open_capture(sys.argv[1]) as r:
    for _window, _lt, k in r.batches(out):
        n += k
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not _loader.compiled_modules(),
                    reason="the compiled reader reads into its window; the .py joins chunks")
@pytest.mark.skipif(sys.platform != "linux", reason="page faults counted with getrusage as Linux counts them")
def test_read_window_is_recycled(tmp_path):
    """Reading a large capture (48 MB) touches the same two windows' memory again and again
    instead of a fresh window per refill: it faults in about the two windows' pages, where
    fresh windows (``_WINDOW`` set below any window's size turns recycling off) fault in
    several times as many.  Each reading runs in a new interpreter, whose allocator has not
    kept large freed blocks."""
    import subprocess

    path = _big_capture(tmp_path, 48)
    root = str(Path(__file__).resolve().parents[1])

    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS, str(path), mode], capture_output=True, text=True,
                              check=True, cwd=root, env={**os.environ, "PYTHONPATH": root})
        n, f = map(int, done.stdout.split())
        assert n > 30000
        return f

    from tcpanalyze.sources.pcap import _WINDOW

    # recycled, the two windows' pages are faulted in once (plus a little of the reading)
    two_windows = 2 * _WINDOW // 4096 + 512
    recycled = faults("recycled")
    fresh = faults("fresh")
    if fresh < 2 * two_windows:
        pytest.skip(f"this allocator keeps freed windows mapped ({fresh} faults for fresh windows): nothing to compare")
    assert recycled < two_windows, (recycled, fresh)
