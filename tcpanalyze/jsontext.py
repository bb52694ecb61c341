"""Compact JSON text of a record: exactly ``json.dumps(obj, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)``, written as UTF-8 bytes straight into a buffer.

A connection record has about 130 keys, 30 floats and 70 ints in 2.6 KB of text, and there is
one per connection.  Compiled (setup.py), ``encode_into`` walks the record and writes its
UTF-8 text at the end of a caller's ``bytearray``: keys and strings are copied from the
UTF-8 form Python keeps with each string, escaped by the standard library only when they
hold a quote, a backslash or a control character; ints are formatted in C, floats by
Python's own ``repr`` routine (``PyOS_double_to_string``); no text object is made per value
or per record.  Anything else (a subclass of int, str or float, a key that is not a string,
NaN or an infinity, a string that is not valid UTF-8, a type JSON has no form for) sends the
whole object to the standard encoder, which then writes it or raises its own error.

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
#: ``json.dumps(obj, separators=(",", ":"))`` (\u escapes, NaN allowed): ``flows --format jsonl``'s lines
ASCII = json.JSONEncoder(separators=(",", ":"))
#: the standard library's string escaping for ensure_ascii=False (its C function when present)
_escape = json.encoder.encode_basestring

#: nesting deeper than this goes to the standard encoder (no C recursion without a bound)
K_DEPTH_MAX = 100
#: ``walk``'s buffer is made anew after text longer than this (it is kept between calls)
K_SCRATCH_KEEP = 1 << 20
_INF = float("inf")

# The buffer the walk writes: its text ends at _n; compiled, _p is its address and _cap its
# size (it is grown by half again, or more, when a value does not fit).
_buf = cython.declare(bytearray, None)
_n = cython.declare(cython.Py_ssize_t, 0)
_p = cython.declare(cython.p_char)
_cap = cython.declare(cython.Py_ssize_t, 0)
#: a string that is not ASCII goes to the standard encoder (ASCII's \u escapes)
_ascii = cython.declare(cython.bint, False)
_scratch = bytearray(4096)


class _Unusual(Exception):
    """A value the walk leaves to the standard encoder."""


@cython.cfunc
@cython.exceptval(-1)
def _reserve(k: cython.Py_ssize_t) -> cython.int:
    """Compiled: room for ``k`` more bytes after ``_n``."""
    global _p, _cap
    if _n + k > _cap:
        size: cython.Py_ssize_t = _cap + (_cap >> 1)
        if size < _n + k + 256:
            size = _n + k + 256
        PyByteArray_Resize(_buf, size)
        _p = PyByteArray_AS_STRING(_buf)
        _cap = size
    return 0


@cython.cfunc
@cython.exceptval(-1)
def _put_char(c: cython.char) -> cython.int:
    global _n
    if cython.compiled:
        if _n >= _cap:
            _reserve(1)
        _p[_n] = c
    else:
        _buf[_n:_n + 1] = bytes((c,))
    _n += 1
    return 0


@cython.cfunc
@cython.exceptval(-1)
def _put(s: bytes) -> cython.int:
    global _n
    k: cython.Py_ssize_t = len(s)
    if cython.compiled:
        _reserve(k)
        memcpy(_p + _n, cython.cast(cython.p_char, s), k)
    else:
        _buf[_n:_n + k] = s
    _n += k
    return 0


@cython.cfunc
@cython.exceptval(-1)
@cython.locals(u=cython.p_char, size=cython.Py_ssize_t, i=cython.Py_ssize_t, c=cython.uchar)
def _put_str(o: str) -> cython.int:
    """``o`` quoted, as UTF-8 (UnicodeEncodeError for a string UTF-8 cannot hold)."""
    global _n
    if not cython.compiled:
        if _ascii and not o.isascii():
            raise _Unusual
        return _put(_escape(o).encode())
    u = cython.cast(cython.p_char, PyUnicode_AsUTF8AndSize(o, cython.address(size)))
    for i in range(size):
        c = u[i]
        if c < 0x20 or c == 0x22 or c == 0x5C:      # a control character, '"' or '\'
            if _ascii and not o.isascii():
                raise _Unusual
            return _put(_escape(o).encode())
        if c >= 0x80 and _ascii:
            raise _Unusual
    _reserve(size + 2)
    _p[_n] = ord('"')
    memcpy(_p + _n + 1, u, size)
    _p[_n + size + 1] = ord('"')
    _n += size + 2
    return 0


@cython.cfunc
@cython.exceptval(-1)
@cython.locals(v=cython.longlong, u=cython.ulonglong, overflow=cython.int, digits=cython.char[24],
               i=cython.Py_ssize_t)
def _put_int(o: object) -> cython.int:
    """An int, as ``repr`` writes it."""
    global _n
    if not cython.compiled:
        return _put(repr(o).encode())
    overflow = 0
    v = PyLong_AsLongLongAndOverflow(o, cython.address(overflow))
    if overflow:
        return _put(repr(o).encode())
    u = cython.cast(cython.ulonglong, -(v + 1)) + 1 if v < 0 else v
    i = 24
    while True:
        i -= 1
        digits[i] = ord("0") + cython.cast(cython.char, u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        digits[i] = ord("-")
    _reserve(24 - i)
    memcpy(_p + _n, cython.address(digits[i]), 24 - i)
    _n += 24 - i
    return 0


#: 2**51: below it, a float's nearest integer and its neighbours are exact doubles (``_put_float``)
_TWO51 = cython.declare(cython.double, 2251799813685248.0)


@cython.cfunc
@cython.exceptval(-1)
@cython.locals(x=cython.double, a=cython.double, y=cython.double, p=cython.double, m=cython.longlong,
               k=cython.int, s=cython.p_char, n=cython.Py_ssize_t)
def _put_float(o: object) -> cython.int:
    """A finite float, as ``repr`` writes it.

    Compiled, a float ``x`` is first tried as a decimal of k = 0, 1, 2 ... 22 places (10**k is
    an exact double up to there): while ``|x| * 10**k`` is below 2**51, the integer m nearest
    to it is the only one whose ``m / 10**k`` can be ``x`` (the rounding interval of ``x``,
    scaled, is at most half a unit wide, and the product is off by at most an eighth).  The
    first k where ``m / 10**k == |x|`` gives the shortest decimal that reads back as ``x``,
    which is what ``repr`` writes: with its digits, in fixed notation from 1e-4 (below 2**51
    it never reaches 1e16, where ``repr`` uses an exponent again), with an exponent below.
    A float no such decimal reads back as goes to ``PyOS_double_to_string``, the function
    ``repr`` calls."""
    global _n
    if not cython.compiled:
        if o != o or o == _INF or o == -_INF:
            raise _Unusual
        return _put(repr(o).encode())
    x = PyFloat_AS_DOUBLE(o)
    if not isfinite(x):
        raise _Unusual
    if x == 0.0:
        return _put(b"-0.0" if signbit(x) else b"0.0")
    a = -x if x < 0 else x
    p = 1.0
    k = 0
    y = a
    while y < _TWO51 and k <= 22:
        m = cython.cast(cython.longlong, y + 0.5)
        if m != 0 and m / p == a:
            return _put_decimal(x < 0, m, k, a >= 1e-4)
        k += 1
        p *= 10.0
        y = a * p
    s = PyOS_double_to_string(x, ord("r"), 0, Py_DTSF_ADD_DOT_0, cython.NULL)
    n = strlen(s)
    if _n + n > _cap:
        try:
            _reserve(n)
        except BaseException:
            PyMem_Free(s)
            raise
    memcpy(_p + _n, s, n)
    PyMem_Free(s)
    _n += n
    return 0


@cython.cfunc
@cython.exceptval(-1)
@cython.locals(text=cython.char[40], i=cython.Py_ssize_t, j=cython.int, digits=cython.int, e=cython.int)
def _put_decimal(neg: cython.bint, m: cython.longlong, k: cython.int, fixed: cython.bint) -> cython.int:
    """Compiled: the decimal ``m / 10**k`` (m > 0, not a multiple of 10 unless k = 0) as repr
    writes it: fixed (``12.5``, ``0.0005``, ``1200.0``) or with an exponent (``1.25e-05``)."""
    global _n
    i = 40
    if fixed:
        if k == 0:
            i -= 2
            text[i] = ord(".")
            text[i + 1] = ord("0")
        else:
            for j in range(k):
                i -= 1
                text[i] = ord("0") + cython.cast(cython.char, m % 10)
                m //= 10
            i -= 1
            text[i] = ord(".")
        while True:
            i -= 1
            text[i] = ord("0") + cython.cast(cython.char, m % 10)
            m //= 10
            if m == 0:
                break
    else:
        i = 36                              # text[36:40] is the exponent, e-05 to e-22
        digits = 0
        while True:
            i -= 1
            text[i] = ord("0") + cython.cast(cython.char, m % 10)
            m //= 10
            digits += 1
            if m == 0:
                break
        if digits > 1:                      # d.ddd: the point after the first digit
            i -= 1
            text[i] = text[i + 1]
            text[i + 1] = ord(".")
        e = k - digits + 1                  # the value is d.ddd * 10**-e
        text[36] = ord("e")
        text[37] = ord("-")
        text[38] = ord("0") + cython.cast(cython.char, e // 10)
        text[39] = ord("0") + cython.cast(cython.char, e % 10)
    if neg:
        i -= 1
        text[i] = ord("-")
    _reserve(40 - i)
    memcpy(_p + _n, cython.address(text[i]), 40 - i)
    _n += 40 - i
    return 0


@cython.cfunc
@cython.exceptval(-1)
def _value(o: object, depth: cython.Py_ssize_t) -> cython.int:
    t = type(o)
    if t is str:
        return _put_str(o)
    if t is int:
        return _put_int(o)
    if t is float:
        return _put_float(o)
    if t is dict:
        return _object(o, depth + 1)
    if t is list or t is tuple:
        return _array(o, depth + 1)
    if o is None:
        return _put(b"null")
    if o is True:
        return _put(b"true")
    if o is False:
        return _put(b"false")
    raise _Unusual


@cython.cfunc
@cython.exceptval(-1)
@cython.locals(sep=cython.char)
def _object(d: dict, depth: cython.Py_ssize_t) -> cython.int:
    if depth > K_DEPTH_MAX:
        raise _Unusual
    if not d:
        return _put(b"{}")
    sep = ord("{")
    for k, v in d.items():
        if type(k) is not str:
            raise _Unusual
        _put_char(sep)
        _put_str(k)
        _put_char(ord(":"))
        _value(v, depth)
        sep = ord(",")
    return _put_char(ord("}"))


@cython.cfunc
@cython.exceptval(-1)
@cython.locals(sep=cython.char)
def _array(seq: object, depth: cython.Py_ssize_t) -> cython.int:
    if depth > K_DEPTH_MAX:
        raise _Unusual
    if not seq:
        return _put(b"[]")
    sep = ord("[")
    for v in seq:
        _put_char(sep)
        _value(v, depth)
        sep = ord(",")
    return _put_char(ord("]"))


@cython.ccall
def _walk(buf: bytearray, n: cython.Py_ssize_t, obj: object, ascii_only: cython.bint) -> cython.Py_ssize_t:
    """The walk: ``obj``'s text at ``buf[n:]``; returns where it ends.  Raises _Unusual, or
    UnicodeEncodeError (a string with a lone surrogate), for the standard encoder's cases."""
    global _buf, _n, _p, _cap, _ascii
    _buf = buf
    _n = n
    _ascii = ascii_only
    if cython.compiled:
        _p = PyByteArray_AS_STRING(buf)
        _cap = PyByteArray_GET_SIZE(buf)
    try:
        _value(obj, 0)
        return _n
    finally:
        _buf = None


def encode_into(buf: bytearray, n: int, obj: Any, ascii_only: bool = False) -> int:
    """Write the UTF-8 bytes of ``compact(obj)`` (``ascii_only``: of ``ASCII.encode(obj)``) into
    ``buf`` from index ``n`` (n <= len(buf); ``buf`` grows as needed) and return the index
    where they end.  What ``buf`` holds beyond that index is left over from earlier use: the
    caller keeps its own length."""
    if cython.compiled:
        try:
            return _walk(buf, n, obj, ascii_only)
        except (_Unusual, UnicodeEncodeError):
            pass
    data = (ASCII if ascii_only else STANDARD).encode(obj).encode()
    buf[n:n + len(data)] = data
    return n + len(data)


def encode_bytes(obj: Any, ascii_only: bool = False) -> bytes:
    """``encode_into``'s bytes, as a bytes object."""
    global _scratch
    if not cython.compiled:
        return (ASCII if ascii_only else STANDARD).encode(obj).encode()
    buf = _scratch
    end = encode_into(buf, 0, obj, ascii_only)
    data = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(buf), end)
    if len(buf) > K_SCRATCH_KEEP:
        _scratch = bytearray(4096)
    return data


def walk(obj: Any) -> str:
    """The walk's text of ``obj`` (the standard encoder's for anything unusual)."""
    global _scratch
    buf = _scratch
    try:
        end = _walk(buf, 0, obj, False)
    except (_Unusual, UnicodeEncodeError):
        return STANDARD.encode(obj)
    if cython.compiled:
        text = PyUnicode_DecodeUTF8(PyByteArray_AS_STRING(buf), end, cython.NULL)
    else:
        text = buf[:end].decode()
    if len(buf) > K_SCRATCH_KEEP:
        _scratch = bytearray(4096)
    return text


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
