"""Robustness: untrusted input in, only values and counted decode errors out.

The oracle is ``fuzz/harness.py``, shared with the long-running atheris fuzzer
``fuzz/fuzz_capture.py``: the reader (file and stdin walks agree), the decoder (never
needs its safety net; the Ethernet fast path agrees with the general path), the engine
(never raises, keeps its bounds, finalizes every stream) and ``summarize`` (JSON values).

Here, with a bounded number of hypothesis examples (a few thousand in all, < 60 s):

* random bytes and mutated real captures through reader -> decoder -> engine -> summaries,
  as a file, on standard input and gzip-compressed (what ``tests/test_reader.py`` does for the
  reader alone, extended to the whole pipeline);
* every link type's decoder on mutated frames with random wire lengths;
* random segment sequences straight into ``Analyzer.feed``/``finish`` and ``summarize``;
* the CLI (``packets``, ``flows``) on mutated captures: exit 0 or 3, never a traceback;
* untrusted length fields (4 GiB records, 2^32-1 snaplen, 4 GiB blocks) never size an
  allocation: peak memory is measured;
* damage reported by the CLI for pcapng resynchronisation, stdin and gzip input;
* pcapng timestamps beyond int64 nanoseconds are clamped by the reader (analyze keeps working).
"""
from __future__ import annotations

import gzip
import json
import random
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

import harness  # noqa: E402  (fuzz/harness.py)
import make_corpus  # noqa: E402  (fuzz/make_corpus.py)

from tcpanalyze.cli import cli  # noqa: E402
from tcpanalyze.engine import Analyzer, Config  # noqa: E402
from tcpanalyze.model import ACK, AE, CWR, ECE, FIN, PSH, RST, SYN, URG, Segment  # noqa: E402
from tcpanalyze.sources import pcap as pcapmod  # noqa: E402
from tcpanalyze.sources.pcap import open_capture  # noqa: E402
from tcpanalyze.summary import summarize  # noqa: E402

TRACES = ROOT / "tests" / "data" / "traces"
_HC = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]


# --------------------------------------------------------------------------- inputs
def _small(name: str, limit: int = 6000) -> bytes:
    data = (TRACES / name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return make_corpus.cut_capture(data, limit)


#: one small real capture per format / link type (see fuzz/make_corpus.py)
CAPTURES = [_small(n) for n in make_corpus.CAPTURES]
FRAMES = make_corpus.frames()
LT_INDEX = {lt: i for i, lt in enumerate(harness.LINKTYPES)}


def mutate(data: bytes, ops) -> bytes:
    """Apply (kind, position, value) edits: bit flips, inserts, deletes, 32-bit overwrites."""
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b:
            b.append(val)
            continue
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= 1 << (val & 7)
        elif kind == "byte":
            b[i] = val
        elif kind == "insert":
            b[i:i] = bytes([val]) * (1 + val % 7)
        elif kind == "delete":
            del b[i:i + 1 + val % 13]
        else:   # "u32": an interesting 32-bit value (lengths are 32-bit fields)
            v = (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFF, 0x10000, val)[val & 7]
            b[i:i + 4] = struct.pack("<I" if val & 8 else ">I", v)
    return bytes(b)


_ops = st.lists(st.tuples(st.sampled_from(["flip", "byte", "insert", "delete", "u32"]),
                          st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz"))


# --------------------------------------------------------------------------- the whole pipeline
@settings(max_examples=400, deadline=None, suppress_health_check=_HC)
@given(selector=st.integers(0, 255), body=st.binary(max_size=700))
def test_pipeline_random_bytes(workdir, selector, body):
    """Random bytes (and random bytes behind a real file header) through every source mode."""
    if selector & 0x10:
        body = (b"\x0a\x0d\x0d\x0a" if selector & 0x20 else b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00") + body
    harness.one_input(bytes([selector]) + body, workdir)


@settings(max_examples=700, deadline=None, suppress_health_check=_HC)
@given(idx=st.integers(0, len(CAPTURES) - 1), selector=st.integers(0, 255), ops=_ops)
def test_pipeline_mutated_captures(workdir, idx, selector, ops):
    """Mutated real captures (every format and captured link type) as file, stdin and gzip."""
    harness.one_input(bytes([selector & ~3 | (selector % 3)]) + mutate(CAPTURES[idx], ops), workdir)


def test_pipeline_seeded_sweep(workdir):
    """A deterministic sweep: every capture, every source mode, heavier mutation."""
    rnd = random.Random(10)
    for i in range(240):
        data = CAPTURES[i % len(CAPTURES)]
        ops = [(rnd.choice(["flip", "byte", "insert", "delete", "u32"]), rnd.randrange(1 << 20), rnd.randrange(256))
               for _ in range(rnd.randrange(1, 12))]
        harness.one_input(bytes([i % 3 | rnd.choice((0, 4, 8, 12, 0x80))]) + mutate(data, ops), workdir)


# --------------------------------------------------------------------------- every link type
@pytest.mark.parametrize("linktype", sorted({lt for lt, _ in FRAMES}))
@settings(max_examples=60, deadline=None, suppress_health_check=_HC)
@given(data=st.data(), ops=_ops, wirelen=st.one_of(st.just(0), st.integers(0, 0xFFFF), st.just(0xFFFFFFFF)),
       cut=st.integers(0, 300))
def test_linktype_decoder_mutated(linktype, data, ops, wirelen, cut):
    """Each link type's decoder (and the tunnels behind it) on mutated frames, any wire length:
    a Segment, a counted skip or a DecodeError -- never its safety net, never another exception."""
    frames = [f for lt, f in FRAMES if lt == linktype]
    frame = mutate(data.draw(st.sampled_from(frames)), ops)
    if cut:
        frame = frame[:cut]
    counts: dict = {}
    seg = harness.check_frame(1, 0, linktype, frame, wirelen, counts)
    if seg is not None:
        harness.run_engine([seg, seg], Config())


def test_every_supported_linktype_has_a_seed_frame():
    from tcpanalyze import decode as decmod

    assert set(decmod._LINKTYPES) <= {lt for lt, _ in FRAMES}
    for lt, f in FRAMES:
        if lt in decmod._LINKTYPES:
            assert isinstance(harness.check_frame(1, 0, lt, f, 0, {}), Segment), lt


# --------------------------------------------------------------------------- the engine
_ADDRS = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", b"\xc0\x00\x02\x07",
          b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01", b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x02")
_PORTS = (80, 443, 40000, 40001)
_FLAGS = (SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, SYN | FIN, SYN | RST, 0,
          FIN | SYN | RST | PSH | ACK | URG | ECE | CWR | AE, URG | ACK, ECE | CWR | SYN)
_WRAP = (0, 1, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFF, 0xFFFFFC00)


def segment_run(seed: int, n: int) -> list[Segment]:
    """``n`` random Segments on few 4-tuples (so they collide into connections): sequence and
    acknowledgment numbers near the ISNs or at the wrap boundaries, random flags, windows,
    options and SACK blocks, timestamps mostly advancing, sometimes going back.

    Drawn from ``random.Random(seed)`` rather than element by element from hypothesis:
    hypothesis then only picks (seed, n), which is ~20x faster to generate."""
    rnd = random.Random(seed)
    r = rnd.random
    ri = rnd.randrange

    def num(base):
        x = r()
        if x < 0.5:
            return (base + ri(-3000, 70000)) & 0xFFFFFFFF
        if x < 0.8:
            return rnd.choice(_WRAP)
        return ri(1 << 32)

    isn = [rnd.choice(_WRAP) if r() < 0.5 else ri(1 << 32) for _ in range(2)]
    ts = ri(2 * 10**18)
    out = []
    for frame in range(1, n + 1):
        pool = _ADDRS[3:] if r() < 0.3 else _ADDRS[:3]
        side = ri(2)
        x = r()
        ts += ri(10**6) if x < 0.8 else ri(-10**9, 10**9) if x < 0.9 else ri(200 * 10**9)
        out.append(Segment(
            frame, ts, rnd.choice(pool), rnd.choice(pool), rnd.choice(_PORTS), rnd.choice(_PORTS),
            num(isn[side]), num(isn[side ^ 1]),
            rnd.choice(_FLAGS) if r() < 0.7 else ri(0x200),
            rnd.choice((0, 1, 512, 65535)) if r() < 0.5 else ri(0x10000),
            rnd.choice((0, 0, 1, 1460, 65495)) if r() < 0.6 else ri(0x10000) if r() < 0.95 else 0xFFFFFFFF,
            rnd.choice((-1, 0, 536, 1460, 0xFFFF)), rnd.choice((-1, 0, 7, 14, 15, 255)), r() < 0.3,
            None if r() < 0.6 else tuple((num(isn[side ^ 1]), num(isn[side ^ 1])) for _ in range(ri(5))),
            rnd.choice((-1, 0, 0xFFFFFFFF)), rnd.choice((-1, 0, 5)), r() < 0.1))
    return out


@settings(max_examples=500, deadline=None, suppress_health_check=_HC)
@given(seed=st.integers(0, (1 << 64) - 1), n=st.integers(1, 60), tiny=st.booleans(), explain=st.booleans())
def test_engine_never_raises(seed, n, tiny, explain):
    """Any decoded-segment sequence: feed() and finish() never raise; every connection is
    summarised into JSON values; the bounds hold after every segment."""
    segs = segment_run(seed, n)
    cfg = Config(explain=explain, **(harness.TINY if tiny else {}))
    harness.run_engine(segs, cfg, explain_rows=explain)
    # The collecting mode (no on_conn_done) too, with timelines: what `flows` uses.
    a = Analyzer(cfg, keep_timeline=True)
    for s in segs:
        a.feed(s)
    conns = a.finish()
    for c in conns:
        json.dumps(summarize(c, timelines=True), allow_nan=False)
    assert len(conns) <= a.streams


def test_engine_long_random_runs():
    """Longer runs (thousands of segments, so tiny bounds are hit again and again)."""
    for seed in range(6):
        harness.run_engine(segment_run(seed, 3000), Config(**harness.TINY), explain_rows=bool(seed & 1))


def test_self_connection_is_summarised():
    """A LAND-style segment (src:port == dst:port) is a connection like any other."""
    a = Analyzer(Config(), keep_timeline=False)
    ip = b"\x0a\x00\x00\x05"
    a.feed(Segment(1, 10, ip, ip, 139, 139, 7, 0, SYN, 1024, 0))
    a.feed(Segment(2, 20, ip, ip, 139, 139, 7, 8, SYN | ACK, 1024, 0))
    conns = a.finish()
    assert [c.stream for c in conns] == [0]
    assert summarize(conns[0])["orig_pkts"] + summarize(conns[0])["resp_pkts"] == 2


# --------------------------------------------------------------------------- the CLI
_CLI_CAPTURES = [c for c in CAPTURES if len(c) > 200]


@settings(max_examples=80, deadline=None, suppress_health_check=_HC)
@given(idx=st.integers(0, len(_CLI_CAPTURES) - 1), ops=_ops, command=st.sampled_from(["packets", "flows"]),
       extra=st.sampled_from([(), ("--format", "jsonl"), ("--max-connections", "2", "--max-unacked", "3")]))
def test_cli_on_mutated_captures(tmp_path_factory, idx, ops, command, extra):
    """`packets` / `flows` on mutated real captures: exit 0 or 3, never a traceback."""
    path = tmp_path_factory.getbasetemp() / "cli-mutated.pcap"
    path.write_bytes(mutate(_CLI_CAPTURES[idx], ops))
    r = CliRunner().invoke(cli, [command, str(path), *extra])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exc_info
    assert r.exit_code in (0, 3), (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    if r.exit_code == 3:
        assert "byte " in r.stderr or "tcpanalyze: error:" in r.stderr


def _run(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "tcpanalyze", *map(str, args)], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=120)


def test_cli_subprocess_mutated_no_traceback(tmp_path):
    """A few mutated captures through the real entry point (file and stdin)."""
    rnd = random.Random(3)
    for i in range(4):
        data = mutate(_CLI_CAPTURES[i * 3 % len(_CLI_CAPTURES)],
                      [(rnd.choice(["flip", "u32", "delete"]), rnd.randrange(1 << 16), rnd.randrange(256))
                       for _ in range(4)])
        f = tmp_path / f"m{i}.pcap"
        f.write_bytes(data)
        r = _run("flows" if i % 2 else "packets", f) if i < 2 else _run("packets", "-", stdin=data)
        err = r.stderr.decode()
        assert r.returncode in (0, 3) and "Traceback" not in err, err


# --------------------------------------------------------------------------- CLI damage reports
def _ng(e, btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def _pcapng_with_bad_block(n_before=3, n_after=4):
    """SHB, IDB, n_before EPBs, one EPB with a corrupt total length, n_after EPBs."""
    frames = [f for lt, f in FRAMES if lt == 1][:n_before + n_after + 1]
    e = "<"
    out = _ng(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)) + _ng(e, 1, struct.pack(e + "HHI", 1, 0, 0))

    def epb(i, f):
        return _ng(e, 6, struct.pack(e + "IIIII", 0, 0, 1_000_000 * (i + 1), len(f), len(f)) + f)

    for i in range(n_before):
        out += epb(i, frames[i])
    bad_off = len(out)
    bad = bytearray(epb(n_before, frames[n_before]))
    struct.pack_into(e + "I", bad, 4, 0x00FFFF00)       # total length: 16 MiB, inconsistent
    out += bytes(bad)
    for i in range(n_before + 1, n_before + 1 + n_after):
        out += epb(i, frames[i])
    return out, bad_off


@pytest.mark.parametrize("command", ["packets", "flows"])
def test_cli_pcapng_bad_block_length_resynchronises(tmp_path, command):
    data, off = _pcapng_with_bad_block()
    f = tmp_path / "resync.pcapng"
    f.write_bytes(data)
    r = _run(command, f, "--format", "jsonl")
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if f"byte {off}" in ln]
    assert lines and all("frame 4" in ln and "resynchronised at byte" in ln for ln in lines), err
    if command == "packets":
        frames = [json.loads(ln)["frame"] for ln in r.stdout.decode().splitlines()]
        # The damaged region is no frame: numbering goes on from 4 with the next good block.
        assert frames == [1, 2, 3, 4, 5, 6, 7]
    else:
        assert sum(json.loads(ln)["orig_pkts"] + json.loads(ln)["resp_pkts"]
                   for ln in r.stdout.decode().splitlines()) == 7


def test_cli_resynchronisation_is_reported_once(tmp_path):
    data, off = _pcapng_with_bad_block()
    f = tmp_path / "resync.pcapng"
    f.write_bytes(data)
    err = _run("packets", f).stderr.decode()
    assert len([ln for ln in err.splitlines() if f"byte {off}" in ln]) == 1, err
    assert "up to the cut" not in err


def test_cli_damage_on_stdin_and_gzip(tmp_path):
    """Truncated gzip stream and truncated stdin: exit 0, the warning names offset and frame;
    corrupt record on stdin: exit 3 after the frames before it."""
    raw = (TRACES / "fin_retransmission.pcap").read_bytes()       # 5 frames, records at 24 118 200 282 358
    gz = gzip.compress(raw)
    for data in (raw[:-10], gz[:-12]):
        r = _run("packets", "-", stdin=data)
        err = r.stderr.decode()
        assert r.returncode == 0 and "Traceback" not in err, err
        line, = [ln for ln in err.splitlines() if "truncated" in ln]
        assert "byte 358" in line and "frame 5" in line, err
        assert len(r.stdout.decode().splitlines()) == 1 + 4
    bad = bytearray(raw)
    struct.pack_into("<I", bad, 200 + 8, 0xFFFFFFFF)
    r = _run("flows", "-", "--format", "jsonl", stdin=bytes(bad))
    err = r.stderr.decode()
    assert r.returncode == 3 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.strip()] == [ln for ln in err.splitlines() if "byte 200" in ln]
    assert "frame 3" in err
    assert sum(json.loads(ln)["orig_pkts"] + json.loads(ln)["resp_pkts"] for ln in r.stdout.decode().splitlines()) == 2


def _future_pcapng(tsoffset_s: int = 0) -> bytes:
    """A handshake on interface 0 (if_tsresol 0: seconds) whose final ACK comes 10**10 s later,
    then a RST on interface 1 with a negative if_tsoffset: timestamps beyond 2**63 ns and below 0."""
    def ip_tcp(src, dst, sp, dp, seq, ack, fl):
        return (struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
                + struct.pack("!HHIIHHHH", sp, dp, seq, ack, 0x5000 | fl, 1000, 0, 0))

    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    data = _SHB + _ng("<", 1, struct.pack("<HHI", 228, 0, 0) + struct.pack("<HH", 9, 1) + b"\0\0\0\0" + b"\0" * 4)
    data += _ng("<", 1, struct.pack("<HHI", 228, 0, 0) + struct.pack("<HH", 14, 8)
                + struct.pack("<q", -10**10) + b"\0" * 4)
    for iid, ts, p in [(0, 1, ip_tcp(a, b, 1000, 80, 1, 0, 0x02)), (0, 2, ip_tcp(b, a, 80, 1000, 9, 2, 0x12)),
                       (0, 10**10, ip_tcp(a, b, 1000, 80, 2, 10, 0x10)), (1, 5, ip_tcp(a, b, 1000, 80, 2, 10, 0x04))]:
        data += _ng("<", 6, struct.pack("<IIIII", iid, ts >> 32, ts & 0xFFFFFFFF, len(p), len(p)) + p)
    return data


def test_timestamps_outside_int64_are_clamped(tmp_path):
    """pcapng timestamps can exceed 2**63 ns (coarse if_tsresol) or go below 0 (negative
    if_tsoffset); the reader clamps them to [0, 2**63) with one warning, so that analyze, check
    and plot (int64 arrays, handshake-RTT tallies) keep working."""
    from tcpanalyze.session import analyze_file

    f = tmp_path / "future.pcapng"
    f.write_bytes(_future_pcapng())
    with open_capture(str(f)) as r:
        ts = [rec[1] for rec in r]
    assert ts == [10**9, 2 * 10**9, (1 << 62) - 1, 0]
    assert len(r.warnings) == 1 and "frame 3" in r.warnings[0] and "clamped" in r.warnings[0]
    rep = analyze_file(str(f))
    json.dumps(rep.to_dict(), allow_nan=False)
    assert rep.summary["connections"] == 1
    r = _run("analyze", f)
    assert r.returncode == 0 and "Traceback" not in r.stderr.decode(), r.stderr.decode()


# --------------------------------------------------------------------------- untrusted lengths
def _pcap(snaplen, records, linktype=1):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for caplen, data in records:
        out += struct.pack("<IIII", 1, 0, caplen, caplen) + data
    return out


_F = FRAMES[3][1]          # an Ethernet/IPv4/TCP frame
_SHB = _ng("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
_IDB = _ng("<", 1, struct.pack("<HHI", 1, 0, 0))
_EPB = _ng("<", 6, struct.pack("<IIIII", 0, 0, 0, len(_F), len(_F)) + _F)

HOSTILE = {
    # a record claiming 4 GiB, under a SnapLen of 2^32-1
    "pcap-4GiB-record": _pcap(0xFFFFFFFF, [(len(_F), _F), (0xFFFFFFF0, b"x" * 2000)]),
    # a record claiming 200 MiB (under the 256 MiB max_record bound) that is not there
    "pcap-200MiB-record": _pcap(0xFFFFFFFF, [(len(_F), _F), (200 << 20, b"x" * 2000)]),
    # a pcapng block claiming 4 GiB, one claiming 200 MiB, a packet claiming 4 GiB
    "pcapng-4GiB-block": _SHB + _IDB + _EPB + struct.pack("<II", 6, 0xFFFFFFFC) + b"z" * 3000,
    "pcapng-200MiB-block": _SHB + _IDB + _EPB + struct.pack("<II", 6, 200 << 20) + b"z" * 3000 + _EPB,
    "pcapng-4GiB-caplen": _SHB + _IDB + _ng("<", 6, struct.pack("<IIIII", 0, 0, 0, 0xFFFFFFFF, 4) + b"abcd") + _EPB,
    # an interface block whose option claims 64 KiB; a run of zero-length blocks
    "pcapng-idb-option": _SHB + _ng("<", 1, struct.pack("<HHIHH", 1, 0, 0, 9, 0xFFFF) + b"\x06") + _EPB,
    "pcapng-zero-blocks": _SHB + _IDB + _EPB + b"\0" * 5000,
}


@pytest.mark.parametrize("mode", ["file", "stdin", "gzip"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_untrusted_lengths_do_not_size_allocations(monkeypatch, tmp_path, name, mode):
    data = HOSTILE[name]
    if mode == "gzip":
        data = gzip.compress(data)
    if mode == "file":
        p = tmp_path / "hostile.cap"
        p.write_bytes(data)
        path = str(p)
    else:
        monkeypatch.setattr(sys, "stdin", harness._Stdin(data))
        path = "-"
    tracemalloc.start()
    try:
        reader = open_capture(path)
        recs = [bytes(r[3]) for r in reader]
        reader.close()
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A stream read asks for at most _MAX_READ (16 MiB) at once; nothing else is sized by the file.
    assert peak < pcapmod._MAX_READ + (4 << 20), f"{peak / 1e6:.1f} MB"
    assert recs and recs[0] == _F
    if reader.damage is not None:
        assert f"byte {reader.damage.offset}" in str(reader.damage)
    else:
        assert reader.warnings and "byte " in reader.warnings[0]        # an option overran its block


def test_damaged_block_flood_is_bounded_and_linear(tmp_path):
    """20000 damaged packet blocks: warnings stay at 100 + 1, one damage summary counts them all."""
    bad = struct.pack("<IIIII", 6, 32, 7, 0, 0) + struct.pack("<III", 0, 0xFFFF, 32)   # EPB, undefined iid 7
    p = tmp_path / "flood.pcapng"
    p.write_bytes(_SHB + _IDB + bad * 20000 + _EPB)
    with open_capture(str(p)) as r:
        recs = list(r)
    assert len(recs) == 1 and r.frames == 1 and len(r.warnings) == 101
    assert not r.damage.fatal and r.damage.frame == 1 and "19999 more" in str(r.damage)


def test_stream_window_is_bounded_on_a_long_pipe(monkeypatch):
    """A long stream is read through a sliding window: memory does not grow with the input."""
    frame = _F
    rec = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    n = 60_000                                                  # ~4.8 MB of records
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + rec * n
    monkeypatch.setattr(sys, "stdin", harness._Stdin(data))
    tracemalloc.start()
    try:
        reader = open_capture("-")
        count = sum(1 for _ in reader)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    assert peak < 4 * pcapmod._CHUNK + (1 << 20), f"{peak / 1e6:.1f} MB"
