"""``jsontext``'s walk writes the standard encoder's bytes (compact, ensure_ascii=False,
allow_nan=False), and raises its errors, for records and for every unusual value.

Run in both builds (CI runs the suite compiled and with TCPANALYZE_PURE=1), this checks the
compiled walk and its plain-Python source alike."""
from __future__ import annotations

import enum
import math
import random
import json
import struct
from pathlib import Path

import pytest

from tcpanalyze import jsontext
from tcpanalyze.records import dumps

ROOT = Path(__file__).resolve().parent.parent


def standard(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


class Number(float):
    pass


VALUES = [
    {}, [], (), "", 0, -1, 1023, 1024, 1025, -1024, 2 ** 63, -(2 ** 70), 0.0, -0.0, 1.5, -2.25, 1e300, 5e-324,
    1700000056.7028449, 0.000137333, True, False, None,
    "plain", 'quote " and back\\slash', "control \x00\x01\x1f\t\n\r\b\f", "é ü ß ∞ µs", "emoji \U0001F600",
    "lone surrogate \ud800", "x" * 41, "y" * 40,
    {"a": 1, "b": [1, 2.5, None, True, "s"], "c": {"d": {}, "e": []}, "f": (1, (2, 3))},
    {"first": {"first": 1, "second": 2}, "second": [{"first": 0}]},
    [{"k": v} for v in (0, 1, -0.0, "é", None)],
    {"é": 1, "\"": 2, "\n": 3},
    {1: "int key", 2.5: "float key", True: "bool key", None: "None key", "s": 0},
    {"enum": Color.RED}, [Color.RED], {"sub": Text("text")}, {Text("key"): 1}, {"f": Number(1.25)},
    {"tuple in list": [(1, 2), ()]},
]


@pytest.mark.parametrize("obj", VALUES, ids=range(len(VALUES)))
def test_walk_writes_the_standard_bytes(obj):
    assert jsontext.walk(obj) == standard(obj)
    assert jsontext.compact(obj) == standard(obj)
    assert dumps(obj) == standard(obj)


@pytest.mark.parametrize("obj", VALUES, ids=range(len(VALUES)))
def test_bytes_are_the_standard_text(obj):
    try:
        text = standard(obj)
    except UnicodeEncodeError:
        text = None
    if text is None or any(0xD800 <= ord(c) < 0xE000 for c in text):
        with pytest.raises(UnicodeEncodeError):
            jsontext.encode_bytes(obj)
    else:
        assert jsontext.encode_bytes(obj) == text.encode()
    # flows --format jsonl: \u escapes for anything not ASCII, NaN allowed
    assert jsontext.encode_bytes(obj, ascii_only=True) == json.dumps(obj, separators=(",", ":")).encode()


@pytest.mark.parametrize("obj", [{"nan": float("nan")}, [float("inf"), -float("inf")], {"k": "é \"q\""},
                                 {"é": 1}, ["ascii \n", "€"]])
def test_ascii_bytes_leave_the_unusual_to_the_standard_encoder(obj):
    assert jsontext.encode_bytes(obj, ascii_only=True) == json.dumps(obj, separators=(",", ":")).encode()


def test_walk_writes_the_same_text_twice():
    # the second time the keys and short strings come from the walk's caches
    obj = {"orig": {"state": "ESTABLISHED", "n": 3}, "resp": {"state": "ESTABLISHED", "n": 4}}
    assert jsontext.walk(obj) == jsontext.walk(obj) == standard(obj)


def test_deep_nesting_goes_to_the_standard_encoder():
    deep: list = []
    for i in range(jsontext.K_DEPTH_MAX + 50):
        deep = [deep] if i % 2 else [{"k": deep}]
    assert jsontext.walk(deep) == standard(deep)


@pytest.mark.parametrize("obj", [float("nan"), {"a": [float("inf")]}, {"a": -float("inf")}, {"a": object()},
                                 {"a": {1, 2}}, {(1, 2): "tuple key"}, b"bytes"])
def test_walk_raises_the_standard_error(obj):
    with pytest.raises((ValueError, TypeError)) as std:
        standard(obj)
    with pytest.raises(std.type) as walked:
        jsontext.walk(obj)
    assert str(walked.value) == str(std.value)
    with pytest.raises(std.type):
        dumps(obj)


def _floats(r):
    """Floats of every kind the records hold, and the edges of the walk's decimal path."""
    two51 = 2.0 ** 51
    edges = [1e-4, 0.0001, 1e-5, 9.999999999999999e-05, two51, two51 - 1, two51 - 0.5, two51 - 0.25, two51 + 2,
             1e15, 1e16, 1e17, 9999999999999998.0, 123456789012345.6, 0.1, 0.2, 0.30000000000000004, 1 / 3, 2 / 3,
             5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1700000000.788324, 1700000000.8012621]
    for x in edges:
        yield x
        yield -x
        yield math.nextafter(x, 0)
        yield math.nextafter(x, math.inf)
    for _ in range(20000):
        k = r.randrange(0, 26)
        m = r.randrange(1, 2 ** r.randrange(1, 54))
        x = m / 10 ** k                        # a short decimal (the nearest double to it)
        yield x
        yield math.nextafter(x, math.inf)       # and a float next to one
        yield r.randrange(0, 2 ** 62) / 1e9     # seconds from integer nanoseconds
        yield round(r.random() * 10 ** r.randrange(-6, 12), r.choice((1, 2, 3, 4, 6, 9)))
        yield r.random() * 10 ** r.randrange(-25, 18)
        yield struct.unpack("<d", struct.pack("<Q", r.getrandbits(63)))[0]


def test_floats_are_written_as_repr():
    r = random.Random(29)
    values = [x for x in _floats(r) if math.isfinite(x)]
    values += [-x for x in values[::7]]
    assert jsontext.walk(values) == standard(values)
    for x in values[:5000]:
        assert jsontext.walk(x) == repr(x)


def test_encode_into_writes_the_standard_bytes_after_what_is_there():
    buf = bytearray(b"head")
    records = [{"a": 1.5, "b": ["x" * 50, None]}, {"c": "é\n"}, {"first": {"first": 1}}, {1: "int key"}]
    n = 4
    for rec in records:
        n = jsontext.encode_into(buf, n, rec)
    want = b"head" + b"".join(standard(rec).encode() for rec in records)
    assert bytes(buf[:n]) == want
    small = bytearray(b"0123456789")                # text written over what the buffer held
    assert bytes(small[:jsontext.encode_into(small, 2, {"k": 1})]) == b'01{"k":1}'
    with pytest.raises(UnicodeEncodeError):
        jsontext.encode_into(bytearray(), 0, {"s": "lone surrogate \ud800"})
    with pytest.raises(ValueError):
        jsontext.encode_into(bytearray(), 0, {"x": float("nan")})


def test_records_of_the_samples():
    from tcpanalyze.session import AnalyzeOptions, analyze_file

    captures = sorted((ROOT / "samples").glob("*.pcap"))
    assert captures
    n = 0
    for path in captures:
        report = analyze_file(str(path), AnalyzeOptions())
        doc = report.to_dict()
        for rec in [*doc["connections"], *doc["findings"], *doc["files"], doc["summary"], doc]:
            assert jsontext.walk(rec) == standard(rec)
            n += 1
    assert n > 100


def _near_ties(r):
    """Decimal halves and their neighbours (where rounding is decided by the last bit)."""
    for k in (1, 2, 3, 4, 6, 9):
        base = r.randrange(0, 10 ** 8) * 10 + 5
        x = base / 10 ** (k + 1)
        for v in (x, math.nextafter(x, 0), math.nextafter(x, math.inf)):
            yield v, k


def test_fround_is_round():
    r = random.Random(17)
    values = [(v, k) for v in (0.0, -0.0, 2.675, 1.0005, 0.0005, -0.0005, 0.5, 1.5, 2.5, -2.5, 1e-300, 5e-324,
                               1e15, 2.0 ** 51, 2.0 ** 52 + 1, 1e300, -1e300, math.inf, -math.inf, math.nan)
              for k in range(10)]
    for _ in range(50000):
        x = r.random() * 10 ** r.randrange(-8, 13)
        values.append((x if r.random() < 0.9 else -x, r.choice((1, 2, 3, 4, 6, 9))))
        values.extend(_near_ties(r))
    for x, k in values:
        want, got = round(x, k), jsontext.fround(x, k)
        assert (want == got and math.copysign(1, want) == math.copysign(1, got)) or (want != want and got != got), \
            (x, k, want, got)
        assert repr(want) == repr(got)
