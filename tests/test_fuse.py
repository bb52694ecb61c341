"""The pure build's inliner (tcpanalyze/_fuse.py): Analyzer.feed runs fused, gives what the
functions as written give on real captures, and the transformer writes calls out exactly
(or leaves them) on small functions made for each case."""
from __future__ import annotations

import enum
import importlib.util
import sys
import textwrap
import traceback
from array import array
from pathlib import Path

import pytest

from tcpanalyze import _fuse, engine, tomb
from tcpanalyze.engine import Analyzer, Config
from tcpanalyze.pipeline import analyze_source

ROOT = Path(__file__).resolve().parent.parent
FEED = "tcpanalyze.engine.Analyzer.feed"
PURE = engine.__file__.endswith(".py")
needs_pure = pytest.mark.skipif(not PURE, reason="the compiled build runs the C functions; nothing is fused")


# ---------------------------------------------------------------------- the engine

@needs_pure
def test_feed_is_fused_with_every_listed_helper():
    if not _fuse.enabled():
        pytest.skip("TCPANALYZE_NOFUSE is set in this environment")
    report = _fuse.status()[FEED]
    assert report["fused"], report["error"]
    assert report["error"] is None
    assert Analyzer.feed.__code__.co_filename == f"<fused {FEED}>"
    assert Analyzer.feed.__wrapped__ is _fuse.original(FEED)
    assert Analyzer.feed.__qualname__ == "Analyzer.feed"
    # every helper the engine lists is written out somewhere, none left a call
    assert set(report["inlined"]) == set(engine._FUSE_INLINE)
    assert report["refused"] == {}
    src = _fuse.source(FEED)
    for name in engine._FUSE_INLINE:
        assert f"{name}(" not in src, name
    assert report["seconds"] < 1.0


@needs_pure
def test_the_tombstone_store_is_fused_with_every_listed_helper():
    """tomb.py's lookups, stores, sweep and packing are one Python call each: every index
    function is written out, none is left a call in the entries that run per connection."""
    if not _fuse.enabled():
        pytest.skip("TCPANALYZE_NOFUSE is set in this environment")
    inlined = set()
    for entry in tomb._FUSE_ENTRIES:
        report = _fuse.status()[f"tcpanalyze.tomb.{entry}"]
        assert report["fused"], (entry, report["error"])
        assert report["refused"] == {}, entry
        inlined |= set(report["inlined"])
    assert inlined == set(tomb._FUSE_INLINE)
    assert tomb.pack is tomb._pack and tomb._pack.__code__.co_filename == "<fused tcpanalyze.tomb._pack>"
    for entry in ("TombStore.find", "TombStore.put", "_walk"):
        src = _fuse.source(f"tcpanalyze.tomb.{entry}")
        for name in tomb._FUSE_INLINE:
            assert f"{name}(" not in src, (entry, name)


def _captures() -> list[Path]:
    found = sorted((ROOT / "samples").glob("*.pcap"))
    for sub in ("traces", "real", "crafted"):
        d = ROOT / "tests" / "data" / sub
        found += sorted(p for p in d.glob("*") if p.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")))
    return found


def _snap(x, seen: set, depth: int = 0):
    """A comparable picture of an engine value (records field by field)."""
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return x
    if isinstance(x, enum.Enum):
        return repr(x)
    if isinstance(x, (list, tuple)):
        return [_snap(v, seen, depth + 1) for v in x]
    if isinstance(x, array):
        return list(x)
    if isinstance(x, dict):
        return {repr(k): _snap(v, seen, depth + 1) for k, v in x.items()}
    if id(x) in seen or depth > 8:
        return f"<{type(x).__name__}>"
    seen = seen | {id(x)}
    names = []
    for cls in type(x).__mro__:
        names += [n for n in getattr(cls, "__slots__", ()) if n not in names]
    names += [n for n in getattr(x, "__dict__", {}) if n not in names]
    return (type(x).__name__, {n: _snap(getattr(x, n, "<unset>"), seen, depth + 1) for n in names})


def _run(path: Path, feed, **kw):
    cfg = Config(explain=True)
    a = Analyzer(cfg, keep_timeline=True, keep_rtt=True, **kw)
    a.feed = feed.__get__(a)            # this analyzer's feed: fused or as written
    rows = []

    def seen(seg, analyzer):
        v = analyzer.verdict
        rows.append((seg.frame, v.conn.stream, v.direction, v.analysis, v.rel_seq, v.rel_ack, v.win, v.ack_rtt,
                     v.acks_frame, v.bytes_in_flight, v.dupack_num, v.dupack_frame,
                     dict(v.reasons) if v.reasons is not None else None))
    analyze_source(str(path), a, on_segment=seen)
    conns = a.finish()
    ends = {"streams": a.streams, "late": a.late_packets, "evicted": a.evicted, "expired": a.expired,
            "ts_backwards": a.ts_backwards, "syn_in_tw": list(a.syn_in_time_wait), "rst": a.rst_no_conn,
            "tw": _snap(a.tw_hosts, set())}
    return rows, [_snap(c, set()) for c in conns], ends


@needs_pure
@pytest.mark.parametrize("path", _captures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fused_feed_gives_the_same_verdicts_and_records(path):
    if not _fuse.status()[FEED]["fused"]:
        pytest.fail(f"feed is not fused: {_fuse.status()[FEED]['error']}")
    fused = _run(path, Analyzer.feed)
    written = _run(path, _fuse.original(FEED))
    assert len(fused[0]) == len(written[0])
    for a, b in zip(fused[0], written[0]):
        assert a == b, f"frame {a[0]}"
    assert fused[1] == written[1]
    assert fused[2] == written[2]


@needs_pure
def test_fused_feed_without_detail_and_diagnosis():
    path = ROOT / "samples" / "lossy_bulk.pcap"
    for kw in ({"detail": False}, {"diagnose": False}):
        fused = _run(path, Analyzer.feed, **kw)
        assert len(fused[0]) > 1000 and fused[1]
        assert fused == _run(path, _fuse.original(FEED), **kw)


def test_tracebacks_name_the_fused_code(tmp_path):
    mod = _module(tmp_path, "fz_trace", """
        def helper(x):
            y = x + 1
            return 10 // y

        def entry(x):
            z = helper(x)
            return z
        """)
    _fuse.fuse(mod.__dict__, ["entry"], ["helper"])
    assert mod.entry(1) == 5
    with pytest.raises(ZeroDivisionError) as info:
        mod.entry(-1)
    frame = traceback.extract_tb(info.tb)[-1]
    assert frame.filename == "<fused fz_trace.entry>"
    assert frame.lineno == 4            # the helper's statement, in its own file's numbering


# ---------------------------------------------------------------------- the decoder and the packet loop

DECODE = "tcpanalyze.decode.decode"
TCP = "tcpanalyze.decode._tcp"
LOOP = "tcpanalyze.pipeline._run_plain"


@needs_pure
def test_decoder_and_packet_loop_are_fused():
    if not _fuse.enabled():
        pytest.skip("TCPANALYZE_NOFUSE is set in this environment")
    from tcpanalyze import decode as D, pipeline as P
    status = _fuse.status()
    for key, fn, helpers in ((DECODE, D.decode, {"new_segment"}), (TCP, D._tcp, {"new_segment"}),
                             (LOOP, P._run_plain, {"decode", "new_segment"})):
        report = status[key]
        assert report["fused"], (key, report["error"])
        assert fn.__code__.co_filename == f"<fused {key}>"
        assert set(report["inlined"]) == helpers, key
        assert report["refused"] == {}, key
        src = _fuse.source(key)
        for name in helpers:
            assert f"{name}(" not in src, (key, name)


def _segments(path: Path, dec):
    """Every frame of a capture decoded by ``dec``: the segment's fields, None, or the error."""
    from tcpanalyze.decode import DecodeState
    from tcpanalyze.errors import DecodeError
    from tcpanalyze.model import Segment
    from tcpanalyze.sources.pcap import open_capture
    out = []
    counts = DecodeState()
    with open_capture(str(path)) as r:
        for frame, ts, lt, data, wirelen in r:
            try:
                seg = dec(frame, ts, lt, data, counts, wirelen)
            except DecodeError as e:
                out.append((e.kind, e.offset, e.detail))
                continue
            out.append(None if seg is None else [getattr(seg, f[0]) for f in Segment.FIELDS])
    return out, dict(counts)


@needs_pure
@pytest.mark.parametrize("path", _captures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fused_decoder_and_loop_give_the_same_segments(path, monkeypatch):
    from tcpanalyze import decode as D, pipeline as P
    assert _segments(path, D.decode) == _segments(path, _fuse.original(DECODE))
    fused = _run(path, Analyzer.feed)
    monkeypatch.setattr(D, "_tcp", _fuse.original(TCP))
    monkeypatch.setattr(P, "_run_plain", _fuse.original(LOOP))
    assert _segments(path, D.decode) == _segments(path, _fuse.original(DECODE))
    assert fused == _run(path, Analyzer.feed)


# ---------------------------------------------------------------------- the transformer

def _module(tmp_path: Path, name: str, text: str):
    """Imports ``text`` as module ``name`` from a file (the fuser reads its source)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _fused(tmp_path, name, text, entries, inline):
    mod = _module(tmp_path, name, text)
    before = {e: getattr(mod, e) for e in entries}
    _fuse.fuse(mod.__dict__, entries, inline)
    report = _fuse.status()[f"{name}.{entries[0]}"]
    return mod, before, report


def test_early_and_trailing_returns(tmp_path):
    mod, before, report = _fused(tmp_path, "fz_ret", """
        def sign(x):
            if x > 0:
                return 1
            if x == 0:
                return 0
            y = -1
            return y

        def nested(x):
            if x:
                if x > 5:
                    return 100
                x += 1
            return x * 2

        def entry(a):
            s = sign(a)
            t = nested(a)
            t += nested(s)
            return s, t
        """, ["entry"], ["sign", "nested"])
    assert report["fused"] and report["inlined"] == {"sign": 1, "nested": 2} and not report["refused"]
    src = _fuse.source("fz_ret.entry")
    assert "sign(" not in src and "nested(" not in src
    assert "while True" in src           # nested's return inside an if that falls through
    for a in range(-3, 9):
        assert mod.entry(a) == before["entry"](a)


def test_argument_shadowing_and_callee_locals(tmp_path):
    mod, before, report = _fused(tmp_path, "fz_names", """
        def swap_sub(b, a):
            t = b - a
            a = t * 10          # assigns a parameter: the caller's variable must not change
            return a + b

        def entry(a, b):
            t = 7
            r = swap_sub(a, b)
            q = swap_sub(b, t)
            return a, b, t, r, q
        """, ["entry"], ["swap_sub"])
    assert report["fused"] and report["inlined"] == {"swap_sub": 2}
    src = _fuse.source("fz_names.entry")
    assert "swap_sub(" not in src
    for a, b in ((1, 2), (5, -3), (0, 0)):
        assert mod.entry(a, b) == before["entry"](a, b)


def test_expression_helpers(tmp_path):
    mod, before, report = _fused(tmp_path, "fz_expr", """
        MASK = 0xFFFF

        def dist(a, b):
            return (a - b) & MASK

        def delta(a, b):
            d = (a - b) & MASK
            return d - 0x10000 if d >= 0x8000 else d

        def entry(x, y, o):
            if x and delta(o.v, dist(y, 3)) > 0:
                return dist(x, y) + delta(x + 1, y)
            return -1
        """, ["entry"], ["dist", "delta"])
    assert report["fused"] and not report["refused"], report
    src = _fuse.source("fz_expr.entry")
    assert "dist(" not in src and "delta(" not in src
    assert ":=" in src                   # delta's d, used three times, bound where first evaluated

    class O:
        v = 5
    for x in (0, 1, 3, 70000):
        for y in (0, 2, 65535, 9):
            assert mod.entry(x, y, O) == before["entry"](x, y, O)


def test_refused_calls_stay_calls(tmp_path):
    mod, before, report = _fused(tmp_path, "fz_refuse", """
        def star(*args):
            return sum(args)

        def loop_return(xs):
            for x in xs:
                if x > 2:
                    return x
            return None

        def twice_sometimes(a, b):
            return b if a else b + b

        def entry(xs):
            a = star(1, 2)
            b = loop_return(xs)
            c = 1 + twice_sometimes(len(xs), xs[0] + 1)
            return a, b, c
        """, ["entry"], ["star", "loop_return", "twice_sometimes"])
    assert report["fused"]
    assert set(report["refused"]) == {"star", "loop_return", "twice_sometimes"}
    assert "*args" in report["refused"]["star"]
    assert "return" in report["refused"]["loop_return"]
    src = _fuse.source("fz_refuse.entry")
    for name in ("star(", "loop_return(", "twice_sometimes("):
        assert name in src
    for xs in ([1, 5], [0], [3, 3]):
        assert mod.entry(xs) == before["entry"](xs)


def test_globals_of_another_module(tmp_path):
    _module(tmp_path, "fz_lib", """
        try:
            import cython
        except ImportError:
            from tcpanalyze import _cyshim as cython
        LIMIT = 7
        STEP = cython.declare(cython.longlong, 3)

        def over(x):
            return x > LIMIT

        def step(x):
            return x + STEP
        """)
    mod, before, report = _fused(tmp_path, "fz_user", """
        from fz_lib import over, step

        def entry(x):
            y = step(x)
            return over(y), y
        """, ["entry"], ["over", "step"])
    # LIMIT is another module's global the entry's module does not have: the call stays;
    # STEP is a declared constant: step() is written out with its value
    assert report["inlined"] == {"step": 1}
    assert "another object" in report["refused"]["over"]
    assert "x + 3" in _fuse.source("fz_user.entry")
    assert mod.entry(5) == (True, 8) == before["entry"](5)


def test_a_fused_helper_is_written_out_from_its_source(tmp_path):
    """A helper that is another module's fused entry (decode() in the packet loop) is
    written out as its source has it, with its own helpers written into it again."""
    _module(tmp_path, "fz_inner", """
        from tcpanalyze import _fuse

        def twice(x):
            return x + x

        def inner(x):
            if x < 0:
                return 0
            y = twice(x)
            return y + 1

        _fuse.fuse(globals(), ("inner",), ("twice",))
        """)
    mod, before, report = _fused(tmp_path, "fz_outer", """
        from fz_inner import inner, twice

        def entry(x):
            r = inner(x)
            return r * 10
        """, ["entry"], ["inner", "twice"])
    assert report["inlined"] == {"inner": 1, "twice": 1}
    assert report["refused"] == {}
    assert "inner(" not in _fuse.source("fz_outer.entry")
    assert [mod.entry(x) for x in (-3, 0, 4)] == [before["entry"](x) for x in (-3, 0, 4)] == [0, 10, 90]


def test_a_failing_fusion_keeps_the_function(tmp_path, monkeypatch):
    mod = _module(tmp_path, "fz_fail", """
        def entry(x):
            return x
        """)
    _fuse.fuse(mod.__dict__, ["entry", "missing"], [])
    assert _fuse.status()["fz_fail.missing"]["fused"] is False
    assert "KeyError" in _fuse.status()["fz_fail.missing"]["error"]
    mod2 = _module(tmp_path, "fz_off", """
        def h(x):
            return x + 1

        def entry(x):
            return h(x)
        """)
    monkeypatch.setenv("TCPANALYZE_NOFUSE", "1")
    original = mod2.entry
    _fuse.fuse(mod2.__dict__, ["entry"], ["h"])
    assert mod2.entry is original
    assert _fuse.status()["fz_off.entry"]["fused"] is False


def test_the_cache_gives_the_same_function_until_a_source_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = """
        def h(x):
            if x > 1:
                return x * 3
            return -x

        def entry(x):
            y = h(x)
            return y + 1
        """
    runs = []
    for _ in range(2):
        mod = _module(tmp_path, "fz_cache", text)
        _fuse.fuse(mod.__dict__, ["entry"], ["h"], cache=True)
        report = _fuse.status()["fz_cache.entry"]
        assert report["fused"], report["error"]
        runs.append((report["cached"], [mod.entry(x) for x in range(-2, 4)], _fuse.source("fz_cache.entry")))
    assert [r[0] for r in runs] == [False, True]
    assert runs[0][1] == runs[1][1] == [3, 2, 1, 0, 7, 10]
    assert runs[0][2] == runs[1][2] and "h(" not in runs[1][2]
    assert len(list((tmp_path / "cache" / "tcpanalyze" / "fused").iterdir())) == 1
    # the helper's source changes: the cache no longer applies
    mod = _module(tmp_path, "fz_cache", text.replace("x * 3", "x * 4"))
    _fuse.fuse(mod.__dict__, ["entry"], ["h"], cache=True)
    assert _fuse.status()["fz_cache.entry"]["cached"] is False
    assert mod.entry(3) == 13


def test_the_cache_file_changes_with_the_transformer(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    globs = {"__name__": "m", "__file__": str(tmp_path / "m.py")}
    first = _fuse._cache_path(globs, "entry", ["h"])
    changed = tmp_path / "_inline.py"
    changed.write_bytes(Path(_fuse._TRANSFORMER).read_bytes() + b"\n# another transformer\n")
    monkeypatch.setattr(_fuse, "_TRANSFORMER", str(changed))
    assert _fuse._cache_path(globs, "entry", ["h"]) != first
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert _fuse._cache_path(globs, "entry", ["h"]) == first
    assert _fuse._cache_path(dict(globs, __file__=str(tmp_path / "other" / "m.py")), "entry", ["h"]) != first


@needs_pure
def test_the_fused_source_does_not_depend_on_the_hash_seed(tmp_path):
    """The copies' local names are numbered in one order whatever the string hash seed, so the
    fused source (and a traceback through it) is the same in every process."""
    import os
    import subprocess
    code = ("from tcpanalyze import engine, _fuse\n"
            f"assert not _fuse.status()[{FEED!r}].get('cached')\n"
            f"print(_fuse.source({FEED!r}))\n")
    out = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, TCPANALYZE_PURE="1", XDG_CACHE_HOME=str(tmp_path / seed))
        env.pop("TCPANALYZE_NOFUSE", None)
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        out.append(run.stdout)
    assert "__" in out[0] and out[0] == out[1]
