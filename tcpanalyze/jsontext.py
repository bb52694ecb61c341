"""Compact JSON text of a record: exactly ``json.dumps(obj, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)``, made faster for the connection records.

A connection record repeats the same 150 keys and a few short strings ("orig", state
names, addresses) in every record; the standard library's C encoder escapes each of them
again every time.  Compiled (setup.py), ``compact`` walks the record itself and keeps the
encoded text of the keys and short strings it has seen; numbers are written by ``repr``,
as the standard encoder does.  Anything else (a subclass of int, str or float, a key that
is not a string, NaN or an infinity, a type JSON has no form for) sends the whole object
to the standard encoder, which then writes it or raises its own error.

As plain Python that walk is slower than the standard C encoder, so the pure build uses the
standard encoder directly; tests/test_jsontext.py checks that the walk writes the same
bytes as the standard encoder, in both builds.
"""
from __future__ import annotations

import json
from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

#: the standard encoder with the options every writer uses, made once
STANDARD = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)
#: the standard library's string escaping for ensure_ascii=False (its C function when present)
_escape = json.encoder.encode_basestring

#: encoded keys ('{"key":' or ',"key":') and short strings ('"text"'), up to this many of each
K_CACHE_MAX = 4096
#: strings up to this many characters are kept once encoded
K_SHORT = 40
#: nesting deeper than this goes to the standard encoder (no C recursion without a bound)
K_DEPTH_MAX = 100
_FIRST_KEYS: dict = {}
_KEYS: dict = {}
_STRS: dict = {}
_INF = float("inf")
#: the text of the small non-negative ints (most of a record's counters)
K_SMALL_INTS = 1024
_SMALL_INTS = [str(i) for i in range(K_SMALL_INTS)]


class _Unusual(Exception):
    """A value the walk leaves to the standard encoder."""


@cython.cfunc
def _value(o: object, parts: list, depth: cython.Py_ssize_t) -> None:
    t = type(o)
    if t is str:
        s = _STRS.get(o)
        if s is None:
            s = _escape(o)
            if len(o) <= K_SHORT and len(_STRS) < K_CACHE_MAX:
                _STRS[o] = s
        parts.append(s)
    elif t is int:
        parts.append(_SMALL_INTS[o] if 0 <= o < K_SMALL_INTS else repr(o))
    elif t is float:
        if o != o or o == _INF or o == -_INF:
            raise _Unusual
        parts.append(repr(o))
    elif t is dict:
        _object(o, parts, depth + 1)
    elif t is list or t is tuple:
        _array(o, parts, depth + 1)
    elif o is None:
        parts.append("null")
    elif o is True:
        parts.append("true")
    elif o is False:
        parts.append("false")
    else:
        raise _Unusual


@cython.cfunc
def _object(d: dict, parts: list, depth: cython.Py_ssize_t) -> None:
    if depth > K_DEPTH_MAX:
        raise _Unusual
    if not d:
        parts.append("{}")
        return
    keys = _FIRST_KEYS       # '{"key":' for the first key, ',"key":' for the others
    for k, v in d.items():
        if type(k) is not str:
            raise _Unusual
        kt = keys.get(k)
        if kt is None:
            kt = ("{" if keys is _FIRST_KEYS else ",") + _escape(k) + ":"
            if len(keys) < K_CACHE_MAX:
                keys[k] = kt
        parts.append(kt)
        _value(v, parts, depth)
        keys = _KEYS
    parts.append("}")


@cython.cfunc
def _array(seq: object, parts: list, depth: cython.Py_ssize_t) -> None:
    if depth > K_DEPTH_MAX:
        raise _Unusual
    if not seq:
        parts.append("[]")
        return
    sep = "["
    for v in seq:
        parts.append(sep)
        _value(v, parts, depth)
        sep = ","
    parts.append("]")


def walk(obj: Any) -> str:
    """The walk's text of ``obj`` (the standard encoder's for anything unusual)."""
    parts: list = []
    try:
        _value(obj, parts, 0)
    except _Unusual:
        return STANDARD.encode(obj)
    return "".join(parts)


def compact(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``."""
    if cython.compiled:
        return walk(obj)
    return STANDARD.encode(obj)


#: 10 ** k for the decimals ``fround`` takes
_POW10 = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)


@cython.ccall
def fround(x: cython.double, k: cython.int) -> cython.double:
    """``round(x, k)`` for a float ``x`` and 0 <= k <= 9, as the records write their numbers.

    Compiled, when ``x * 10**k`` is below 2**51 and not within its rounding error of a
    half, the nearest integer over ``10**k`` is the same double (both are the double nearest
    to the same decimal number); any other value goes to ``round``
    (tests/test_jsontext.py compares them)."""
    if cython.compiled and x != 0.0 and 0 <= k <= 9:
        p: cython.double = _POW10[k]
        y: cython.double = x * p
        a: cython.double = -y if y < 0 else y
        if a < 2251799813685248.0:                  # 2**51
            rf: cython.double = cython.cast(cython.longlong, a + 0.5)
            if (a - rf if a >= rf else rf - a) < 0.5 - a * 2.3e-16:
                return -rf / p if y < 0 else rf / p
    return round(x, k)

