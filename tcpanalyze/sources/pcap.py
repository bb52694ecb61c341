"""Streaming reader for pcap and pcapng captures, plain or gzip-compressed (stdlib only).

Spec references are to the IETF OPSAWG drafts "PCAP Capture File Format"
(draft-ietf-opsawg-pcap, cited as *pcap §...*) and "PCAP Next Generation (pcapng) Capture
File Format" (draft-ietf-opsawg-pcapng, cited as *pcapng §...*).

Design
------
* Every input -- a file, standard input, gzip -- is read in large chunks (``read1``, so a
  live ``tcpdump -w - |`` pipe is not held back waiting for a full chunk) into a sliding
  ``bytes`` window that only ever holds the record being parsed plus read-ahead:
  ``self._buf`` is the window, ``self._base`` the absolute offset of its first byte, and
  ``_ensure`` tops it up.  Records are walked with precompiled ``struct.Struct.unpack_from``
  calls on offsets into the window; compiled (setup.py), the pcap walk reads the record
  header with C byte access instead, and the stream reads straight into the window
  (``_fill``), which is recycled: the window before the current one, once nothing else
  holds it, is the next one, so reading a large file touches the same two windows' pages
  instead of fresh memory for every refill.
* Memory never grows with the file: nothing is collected, and no allocation is sized by a
  length read from the file unless that length passed a bound (``max_record``; for pcap
  also ``max(snaplen, 262144)``).
* Damage never raises out of iteration.  A truncated tail or corrupt data ends (or, for
  pcapng, resynchronises) the walk and is described by ``reader.damage``
  (a :class:`~tcpanalyze.errors.CaptureDamage`, not raised) and ``reader.warnings``.
  Only :func:`open_capture` raises, with :class:`~tcpanalyze.errors.SourceError`.
"""
from __future__ import annotations

import gzip
import os
import re
import stat
import struct
import sys
import zlib
from array import array
from typing import Iterator

from ..errors import CaptureDamage, SourceError
from .remote import is_url, open_url

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from .. import _cyshim as cython

__all__ = ["CaptureReader", "DEFAULT_MAX_RECORD", "capture_format", "open_capture"]

DEFAULT_MAX_RECORD = 256 * 1024 * 1024
_NS = 1_000_000_000

_GZIP_MAGIC = b"\x1f\x8b"

# pcap §4 "File Header": magic numbers as read in the file's own byte order.
_PCAP_US = 0xA1B2C3D4
_PCAP_NS = 0xA1B23C4D
_PCAP_KUZNETZOV = 0xA1B2CD34        # "modified" libpcap format: different record header
# A record's captured length up to libpcap's MAXIMUM_SNAPLEN is accepted whatever the
# header's SnapLen says (writers get SnapLen wrong; readers tolerate it).
_PCAP_SNAP_FLOOR = 262144

# pcapng §4 "Block Types" (the ones this reader knows by number).
_SHB = 0x0A0D0D0A                   # Section Header Block; same bytes in either order
_BOM = 0x1A2B3C4D                   # SHB Byte-Order Magic
_IDB = 1                            # Interface Description Block
_PB = 2                             # Packet Block (obsolete, appendix A)
_SPB = 3                            # Simple Packet Block
_NRB = 4                            # Name Resolution Block
_ISB = 5                            # Interface Statistics Block
_EPB = 6                            # Enhanced Packet Block
_SJE = 9                            # systemd Journal Export Block
_DSB = 10                           # Decryption Secrets Block
_CB = 0x00000BAD                    # Custom Block (copyable)
_CB_NOCOPY = 0x40000BAD             # Custom Block (do not copy)
# Types a resynchronisation scan accepts as "a real block starts here".
_RESYNC_TYPES = frozenset((_IDB, _PB, _SPB, _NRB, _ISB, _EPB, _SJE, _DSB, _CB, _CB_NOCOPY))
# Smallest legal total length per type (header 8 + fixed body + trailing length 4).
_MIN_BLEN = {_SHB: 28, _IDB: 20, _PB: 32, _SPB: 16, _EPB: 32}

# pcapng §4.2 "Interface Description Block" options.
_OPT_ENDOFOPT = 0
_IF_TSRESOL = 9
_IF_TSOFFSET = 14

_CHUNK = 1 << 20                    # stream read size
_WINDOW = _CHUNK + (64 << 10)       # the compiled reader's window (_fill): a read plus kept bytes
_MAX_READ = 16 << 20                # largest single read() request
_RESYNC_WINDOW = 16 << 20           # how far a pcapng resynchronisation scans
_MAX_WARNINGS = 100                 # keep reader.warnings bounded on pathological input
_MAX_INTERFACES = 1 << 16           # keep a section's interface table bounded likewise
# Timestamps are yielded as nanoseconds in [0, 2**62) (1970..2116), so that they, their
# differences and the engine's deadlines (a timestamp plus seconds) fit the int64 fields and
# array('q') storage consumers use.  pcap's unsigned 32-bit seconds
# always fit; a pcapng timestamp (64-bit units, if_tsresol, signed if_tsoffset) may not, and is
# clamped (with a warning).
_TS_MAX = (1 << 62) - 1


class _Order:
    """Precompiled structs for one pcapng byte order."""

    def __init__(self, e: str):
        self.hdr = struct.Struct(e + "II").unpack_from           # block type, total length
        self.u32 = struct.Struct(e + "I").unpack_from
        self.epb = struct.Struct(e + "IIIII").unpack_from        # if, ts hi, ts lo, caplen, len
        # Block header and EPB fixed fields in one call, for the fast path.
        self.epb_block = struct.Struct(e + "IIIIIII").unpack_from
        self.pb = struct.Struct(e + "HHIIII").unpack_from        # if, drops, ts hi, ts lo, caplen, len
        self.idb = struct.Struct(e + "HHI").unpack_from          # linktype, reserved, snaplen
        self.shb = struct.Struct(e + "IHH").unpack_from          # BOM, major, minor
        self.opt = struct.Struct(e + "HH").unpack_from           # option code, length
        self.i64 = struct.Struct(e + "q").unpack_from
        types = [struct.pack(e + "I", t) for t in sorted(_RESYNC_TYPES)]
        types.append(struct.pack(e + "I", _SHB))
        # Zero-width lookahead so overlapping candidates are all seen.
        self.candidates = re.compile(b"(?=" + b"|".join(re.escape(t) for t in types) + b")")


_LE = _Order("<")
_BE = _Order(">")


def _section_order(buf, p: int):
    """The byte order of the Section Header Block at ``p``, from its Byte-Order Magic
    (pcapng §4.1); None when the magic is neither."""
    bom = buf[p + 8:p + 12]
    if bom == _BOM_LE:
        return _LE
    if bom == _BOM_BE:
        return _BE
    return None


def _block_length_problem(btype: int, blen: int, limit: int) -> str | None:
    """What is wrong with a block's total length (pcapng §3.1), or None."""
    if blen < _MIN_BLEN.get(btype, 12):
        return f"block length {blen} too small"
    if blen & 3:
        return f"block length {blen} not a multiple of 4"
    if blen > limit:
        return f"block length {blen} exceeds the limit {limit}"
    return None
_BOM_LE = struct.pack("<I", _BOM)
_BOM_BE = struct.pack(">I", _BOM)


class _Prefixed:
    """Read-only stream: ``head`` (bytes already consumed while sniffing), then ``raw``.

    The end of ``raw`` is final: once a read returned nothing, ``raw`` is not read again (a
    terminal answers each read after Ctrl-D by waiting for more input; ``at_end`` says that
    sniffing ``head`` already met the end)."""

    def __init__(self, head: bytes, raw, at_end: bool = False):
        self._head = head
        self._raw = raw
        self._read1 = getattr(raw, "read1", raw.read)
        if hasattr(raw, "readinto1"):
            self.readinto1 = self._into1
        self._eof = at_end

    def _take(self, n: int) -> bytes:
        head = self._head
        if n is None or n < 0 or n >= len(head):
            self._head = b""
            return head
        self._head = head[n:]
        return head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            return self._take(n)
        if self._eof:
            return b""
        data = self._raw.read(n)
        if not data and n != 0:
            self._eof = True
        return data

    def read1(self, n: int = -1) -> bytes:
        if self._head:
            return self._take(n)
        if self._eof:
            return b""
        data = self._read1(n)
        if not data and n != 0:
            self._eof = True
        return data

    def _into1(self, b) -> int:
        """``readinto1`` (installed when ``raw`` has one): the sniffed bytes, then ``raw``'s,
        into the writable buffer ``b``; returns the number of bytes read."""
        if self._head:
            data = self._take(len(b))
            b[:len(data)] = data
            return len(data)
        if self._eof:
            return 0
        n = self._raw.readinto1(b) or 0
        if not n and len(b):
            self._eof = True
        return n


@cython.cfunc
@cython.inline
@cython.locals(h=cython.p_uchar, i=cython.Py_ssize_t, big=cython.bint)
@cython.returns(cython.longlong)
def _u32(h, i, big):
    """An unsigned 32-bit field at ``h[i]`` in the file's byte order (compiled reader only)."""
    if big:
        return ((cython.cast(cython.longlong, h[i]) << 24) | (cython.cast(cython.longlong, h[i + 1]) << 16)
                | (cython.cast(cython.longlong, h[i + 2]) << 8) | h[i + 3])
    return ((cython.cast(cython.longlong, h[i + 3]) << 24) | (cython.cast(cython.longlong, h[i + 2]) << 16)
            | (cython.cast(cython.longlong, h[i + 1]) << 8) | h[i])


class CaptureReader:
    """Iterate ``(frame, ts_ns, linktype, data, wirelen)`` tuples (see ``model.RawPacket``).

    Attributes: ``size`` (bytes, regular uncompressed files only, else None),
    ``bytes_read`` (offset reached, in uncompressed bytes), ``damage``
    (:class:`CaptureDamage` or None), ``warnings`` (list of one-line strings), ``format``
    (``pcap``, ``pcap-ns``, ``pcapng``, plus ``, gzip``), ``linktypes`` (set of link types
    seen so far; for pcapng it grows as interface blocks are read) and ``frames`` (frames
    yielded so far).  ``bytes_read`` and ``frames`` are exact whenever a frame has just
    been yielded and when iteration ends.  Iterate once; use :func:`open_capture`.
    """

    def __init__(self, name: str, *, stream, closers=(), compressed=False, size: int | None = None,
                 max_record: int = DEFAULT_MAX_RECORD):
        self.name = name
        self.size = size
        # frames yielded and bytes read, in one int64 array the compiled walk stores into
        # without making Python ints (the ``frames``/``bytes_read`` properties read it); as
        # plain Python a list, whose item stores the interpreter makes without a call
        self._pos = array("q", [0, 0]) if cython.compiled else [0, 0]
        self.damage: CaptureDamage | None = None
        self.warnings: list[str] = []
        self.format = ""
        self.linktypes: set[int] = set()
        self.max_record = max(int(max_record), 16)
        self._read = getattr(stream, "read1", stream.read)
        # when the stream has it (files, standard input) the compiled reader reads into its
        # window (_fill); a gzip stream's readinto1 would read1 and copy, which gains nothing
        self._readinto = None if compressed else getattr(stream, "readinto1", None)
        self._closers = tuple(closers)
        self._buf = b""
        self._spare = None                # the compiled reader's previous window (_fill)
        self._base = 0
        self._eof = False
        self._read_error: BaseException | None = None
        self._skips = 0
        self._first_skip: tuple[str, int, int] | None = None
        self._skip_damage: CaptureDamage | None = None
        self._ts_clamped = False
        self._gen: Iterator | None = None
        self._batchable = False           # a pcap capture: batches() walks it
        self._closed = False
        try:
            self._sniff(compressed)
        except BaseException:
            self.close()
            raise

    @property
    def frames(self) -> int:
        return self._pos[0]

    @frames.setter
    def frames(self, n: int) -> None:
        self._pos[0] = n

    @property
    def bytes_read(self) -> int:
        return self._pos[1]

    @bytes_read.setter
    def bytes_read(self, n: int) -> None:
        self._pos[1] = n

    # ------------------------------------------------------------------ I/O window

    def _ensure(self, start: int, n: int) -> bool:
        """Make absolute bytes ``[start, start+n)`` available in ``self._buf``.

        Returns False if the input ends first.  For a stream, data before ``start`` is
        dropped and ``self._base`` becomes ``start``; callers re-load buf/base after it.
        """
        buf = self._buf
        rel = start - self._base
        have = len(buf) - rel
        if have >= n:
            return True
        if self._eof:
            return False
        # Callers never ask for a start beyond the window's end (the walk only moves
        # forward over bytes it has seen), so ``have`` is never negative here.
        if cython.compiled and self._readinto is not None and type(buf) is bytes:
            return self._fill(start, rel, have, n)
        parts = [buf[rel:]] if have > 0 else []
        read = self._read
        while have < n:
            try:
                chunk = read(min(max(_CHUNK, n - have), _MAX_READ))
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                self._read_error = exc
                self._eof = True
                break
            if not chunk:
                self._eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._base = start
        return have >= n

    @cython.locals(start=cython.Py_ssize_t, rel=cython.Py_ssize_t, have=cython.Py_ssize_t, n=cython.Py_ssize_t,
                   cap=cython.Py_ssize_t, got=cython.Py_ssize_t, dst=cython.p_char, spare=bytes, old=bytes)
    def _fill(self, start, rel, have, n):
        """_ensure's reading, compiled: the stream reads straight into the new window (a
        bytes object, after the bytes kept from the old one) instead of into chunks joined
        afterwards, a second copy of every byte of the input.  The new window is the bytes
        kept plus a read of _CHUNK (more when a record needs it: at most _MAX_READ, so that
        no allocation is sized by a length from the file beyond what it holds), and at least
        _WINDOW bytes, so that windows have the same size whenever the bytes kept are few; it is the
        window before the old one when that has the size and nothing but this reader holds
        it (its reference count), else a new bytes object, so that a large file is read
        through the same memory instead of fresh pages for every refill (which the
        allocator would map and the kernel fault in each time).  Reads are ``readinto1``
        (at most one read of the input per call, like ``read1``); results and errors as the
        join."""
        if have <= 0:
            have = 0
        cap = have + min(max(_CHUNK, n - have), _MAX_READ)
        if cap < _WINDOW:
            cap = _WINDOW
        spare = self._spare
        self._spare = None
        if spare is not None and len(spare) == cap and Py_REFCNT(spare) == 1 and _bytes_unhashed(spare):
            win = spare                     # only this function holds it: its bytes can be rewritten
        else:
            win = PyBytes_FromStringAndSize(cython.NULL, cap)
        spare = None
        old = self._buf
        dst = PyBytes_AS_STRING(win)
        if have > 0:
            memcpy(dst, PyBytes_AS_STRING(self._buf) + rel, have)
        readinto = self._readinto
        while have < n:
            if have == cap:
                # a record longer than the window: a larger one, with room for the rest of it
                # (at most _MAX_READ more), the bytes read so far copied over
                cap = have + min(max(_CHUNK, n - have), _MAX_READ)
                grown = PyBytes_FromStringAndSize(cython.NULL, cap)
                memcpy(PyBytes_AS_STRING(grown), dst, have)
                win = grown
                dst = PyBytes_AS_STRING(win)
            view = PyMemoryView_FromMemory(dst + have, cap - have, PyBUF_WRITE)
            try:
                got = readinto(view) or 0
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                self._read_error = exc
                self._eof = True
                break
            finally:
                view.release()
            if got <= 0:
                self._eof = True
                break
            have += got
        self._buf = win if have == cap else win[:have]
        self._base = start
        if len(old) == _WINDOW:
            self._spare = old
        return have >= n

    # ------------------------------------------------------------------ header

    def _sniff(self, compressed: bool) -> None:
        """Identify the format from the first bytes; raise SourceError if unusable."""
        suffix = ", gzip" if compressed else ""
        inside = "gzip-compressed data is " if compressed else ""
        if not self._ensure(0, 4):
            n = len(self._buf)
            if self._read_error is not None:
                what = "gzip-compressed capture" if compressed else "capture"
                raise SourceError(f"cannot read {what}: {_reason(self._read_error)}")
            if n == 0:
                raise SourceError(f"{inside or 'file is '}empty: not a pcap or pcapng capture")
            raise SourceError(f"{inside}too short ({n} bytes) to be a pcap or pcapng capture"
                              if inside else f"file too short ({n} bytes) to be a pcap or pcapng capture")
        head = bytes(self._buf[0:4])
        le = struct.unpack("<I", head)[0]
        be = struct.unpack(">I", head)[0]
        if le == _SHB:
            self._sniff_pcapng(suffix)
        elif _PCAP_US in (le, be) or _PCAP_NS in (le, be):
            self._sniff_pcap(le, suffix)
        elif _PCAP_KUZNETZOV in (le, be):
            raise SourceError(f"unsupported capture format: modified (Kuznetzov) pcap (magic 0x{head.hex()})")
        else:
            raise SourceError(f"{inside}not a pcap or pcapng file (magic 0x{head.hex()})")

    def _sniff_pcap(self, le_magic: int, suffix: str) -> None:
        # pcap §4 "File Header": magic, major, minor, reserved1, reserved2, SnapLen,
        # LinkType and additional information (FCS bits in the high nibble).
        if not self._ensure(0, 24):
            raise SourceError(f"truncated pcap file header ({len(self._buf)} of 24 bytes)")
        e = "<" if le_magic in (_PCAP_US, _PCAP_NS) else ">"
        magic, major, minor, _r1, _r2, snaplen, ltfield = struct.unpack_from(e + "IHHIIII", self._buf, 0)
        if major != 2 or minor > 4:
            raise SourceError(f"unsupported pcap version {major}.{minor}")
        ns = magic == _PCAP_NS
        self.format = ("pcap-ns" if ns else "pcap") + suffix
        self._linktype = ltfield & 0xFFFF
        self.linktypes.add(self._linktype)
        self._snaplen = snaplen
        self._frac_mul = 1 if ns else 1000
        self._rec = struct.Struct(e + "IIII")        # pcap §5 "Packet Record" header
        self._big = e == ">"
        self._caplen_limit = min(max(snaplen, _PCAP_SNAP_FLOOR), self.max_record)
        self._walk = self._iter_pcap
        self._batchable = True

    def _sniff_pcapng(self, suffix: str) -> None:
        # pcapng §4.1 "Section Header Block": type, length, BOM, major, minor, ...
        if not self._ensure(0, 16):
            raise SourceError(f"truncated pcapng section header ({len(self._buf)} bytes)")
        bom = bytes(self._buf[8:12])
        if bom == _BOM_LE:
            order = _LE
        elif bom == _BOM_BE:
            order = _BE
        else:
            raise SourceError(f"pcapng: bad byte-order magic 0x{bom.hex()} in section header")
        _bom, major, minor = order.shb(self._buf, 8)
        if major != 1:
            raise SourceError(f"unsupported pcapng version {major}.{minor}")
        self.format = "pcapng" + suffix
        self._order = order
        self._walk = self._iter_pcapng

    # ------------------------------------------------------------------ damage bookkeeping

    def _warn(self, message: str) -> None:
        n = len(self.warnings)
        if n < _MAX_WARNINGS:
            self.warnings.append(message)
        elif n == _MAX_WARNINGS:
            self.warnings.append("further warnings suppressed")

    def _skip(self, message: str, offset: int, frame: int) -> None:
        """A damaged region was skipped and reading goes on (non-fatal damage + warning)."""
        self._warn(message)
        self._skips += 1
        if self._skips == 1:
            self._first_skip = (message, offset, frame)
        if self.damage is None or self.damage is self._skip_damage:
            first, off, fr = self._first_skip
            if self._skips > 1:
                first = f"{first} (and {self._skips - 1} more damaged region(s))"
            self._skip_damage = self.damage = CaptureDamage(first, off, fr, False)

    def _stop(self, message: str, offset: int, frame: int, fatal: bool) -> None:
        """Iteration ends here: this damage supersedes any skip summary."""
        self.damage = CaptureDamage(message, offset, frame, fatal)

    def _end(self, offset: int, frame: int, leftover: int, yielded: int) -> None:
        """Input exhausted at ``offset`` with ``leftover`` bytes of an incomplete record.

        ``frame`` is the last frame number assigned, ``yielded`` the frames yielded.
        """
        self.bytes_read = offset + leftover
        self.frames = yielded
        err = self._read_error
        if leftover:
            why = f" ({_reason(err)})" if err is not None else ""
            self._stop(f"capture truncated: record at byte {offset} (frame {frame + 1}) cut short{why}",
                       offset, frame + 1, False)
        elif isinstance(err, EOFError):
            self._stop(f"capture truncated: compressed stream ends early at byte {offset} (frame {frame + 1})",
                       offset, frame + 1, False)
        elif err is not None:
            self._stop(f"read error at byte {offset} (frame {frame + 1}): {_reason(err)}",
                       offset, frame + 1, True)

    # ------------------------------------------------------------------ pcap

    @cython.locals(p=cython.Py_ssize_t, q=cython.Py_ssize_t, r=cython.Py_ssize_t, end=cython.Py_ssize_t,
                   base=cython.Py_ssize_t, frame=cython.longlong, sec=cython.longlong, frac=cython.longlong,
                   caplen=cython.longlong, wirelen=cython.longlong, fmul=cython.longlong,
                   limit=cython.longlong, big=cython.bint, fast=cython.bint, h=cython.p_uchar,
                   pos=cython.longlong[::1])
    def _iter_pcap(self):
        # pcap §5 "Packet Record": ts seconds, ts micro/nanoseconds, CapLen, OrigLen, data.
        # Compiled, while the window is a bytes object (always, for the streams this reader
        # reads), the header is read with C byte access and the frame is copied out of the
        # window directly: no struct tuple, no slice object, no Python int per field.
        unpack = self._rec.unpack_from
        big = self._big
        lt = self._linktype
        fmul = self._frac_mul
        limit = self._caplen_limit
        ensure = self._ensure
        pos = self._pos
        buf = self._buf
        base = self._base
        end = len(buf)
        fast = cython.compiled and type(buf) is bytes
        if fast:
            h = buf
        p = 24 - base
        frame = 0
        while True:
            q = p + 16
            if q > end:
                ok = ensure(base + p, 16)
                p += base - self._base
                base = self._base
                buf = self._buf
                end = len(buf)
                fast = cython.compiled and type(buf) is bytes
                if fast:
                    h = buf
                if not ok:
                    self._end(base + p, frame, end - p, frame)
                    return
                q = p + 16
            if fast:
                sec = _u32(h, p, big)
                frac = _u32(h, p + 4, big)
                caplen = _u32(h, p + 8, big)
                wirelen = _u32(h, p + 12, big)
            else:
                sec, frac, caplen, wirelen = unpack(buf, p)
            if caplen > limit:
                pos[0] = frame
                pos[1] = base + p
                self._stop(f"corrupt record at byte {base + p} (frame {frame + 1}): captured length "
                           f"{caplen} exceeds the limit {limit} (snaplen {self._snaplen})",
                           base + p, frame + 1, True)
                return
            r = q + caplen
            if r > end:
                ok = ensure(base + p, 16 + caplen)
                p += base - self._base
                base = self._base
                buf = self._buf
                end = len(buf)
                fast = cython.compiled and type(buf) is bytes
                if fast:
                    h = buf
                if not ok:
                    self._end(base + p, frame, end - p, frame)
                    return
                q = p + 16
                r = q + caplen
            frame += 1
            pos[0] = frame
            pos[1] = base + r
            if fast:
                yield (frame, sec * 1000000000 + frac * fmul, lt, cython.cast(cython.p_char, h)[q:r], wirelen)
            else:
                yield (frame, sec * 1000000000 + frac * fmul, lt, buf[q:r], wirelen)
            p = r

    @cython.locals(p=cython.Py_ssize_t, q=cython.Py_ssize_t, r=cython.Py_ssize_t, end=cython.Py_ssize_t,
                   base=cython.Py_ssize_t, frame=cython.longlong, sec=cython.longlong, frac=cython.longlong,
                   caplen=cython.longlong, wirelen=cython.longlong, fmul=cython.longlong,
                   limit=cython.longlong, big=cython.bint, fast=cython.bint, h=cython.p_uchar,
                   pos=cython.longlong[::1], out=cython.longlong[::1], k=cython.Py_ssize_t,
                   kmax=cython.Py_ssize_t, o=cython.Py_ssize_t)
    def _batches_pcap(self, out):
        # The walk of _iter_pcap (the same records, checks and damage), in batches: each
        # record entirely in the window is noted in ``out`` (frame, ts_ns, offset in the
        # window, caplen, wirelen) and the window is yielded with the count before the window
        # moves on and whenever ``out`` is full, so no frame is copied out of the window.
        unpack = self._rec.unpack_from
        big = self._big
        lt = self._linktype
        fmul = self._frac_mul
        limit = self._caplen_limit
        ensure = self._ensure
        pos = self._pos
        kmax = len(out) // 5
        buf = self._buf
        base = self._base
        end = len(buf)
        fast = cython.compiled and type(buf) is bytes
        if fast:
            h = buf
        p = 24 - base
        frame = 0
        k = 0
        while True:
            q = p + 16
            if q > end:
                if k:
                    pos[0] = frame
                    pos[1] = base + p
                    yield buf, lt, k
                    k = 0
                ok = ensure(base + p, 16)
                p += base - self._base
                base = self._base
                buf = self._buf
                end = len(buf)
                fast = cython.compiled and type(buf) is bytes
                if fast:
                    h = buf
                if not ok:
                    self._end(base + p, frame, end - p, frame)
                    return
                q = p + 16
            if fast:
                sec = _u32(h, p, big)
                frac = _u32(h, p + 4, big)
                caplen = _u32(h, p + 8, big)
                wirelen = _u32(h, p + 12, big)
            else:
                sec, frac, caplen, wirelen = unpack(buf, p)
            if caplen > limit:
                if k:
                    pos[0] = frame
                    pos[1] = base + p
                    yield buf, lt, k
                    k = 0
                pos[0] = frame
                pos[1] = base + p
                self._stop(f"corrupt record at byte {base + p} (frame {frame + 1}): captured length "
                           f"{caplen} exceeds the limit {limit} (snaplen {self._snaplen})",
                           base + p, frame + 1, True)
                return
            r = q + caplen
            if r > end:
                if k:
                    pos[0] = frame
                    pos[1] = base + p
                    yield buf, lt, k
                    k = 0
                ok = ensure(base + p, 16 + caplen)
                p += base - self._base
                base = self._base
                buf = self._buf
                end = len(buf)
                fast = cython.compiled and type(buf) is bytes
                if fast:
                    h = buf
                if not ok:
                    self._end(base + p, frame, end - p, frame)
                    return
                q = p + 16
                r = q + caplen
            frame += 1
            o = 5 * k
            out[o] = frame
            out[o + 1] = sec * 1000000000 + frac * fmul
            out[o + 2] = q
            out[o + 3] = caplen
            out[o + 4] = wirelen
            k += 1
            p = r
            if k == kmax:
                pos[0] = frame
                pos[1] = base + p
                yield buf, lt, k
                k = 0

    # ------------------------------------------------------------------ pcapng

    def _iter_pcapng(self):
        o = self._order
        hdr = o.hdr
        u32 = o.u32
        epb_block = o.epb_block
        ifaces: list = []           # per interface: (linktype, snaplen, mul, div, offset_ns)
        nif = 0
        limit = self.max_record
        ensure = self._ensure
        buf = self._buf
        base = self._base
        end = len(buf)
        p = -base
        frame = 0                   # last frame number assigned (packet blocks seen)
        dropped = 0                 # packet blocks skipped as damaged
        pos = self._pos             # frames yielded, bytes read (as the properties set them)
        while True:
            # Fast path: a well-formed Enhanced Packet Block (pcapng §4.3) that is entirely
            # in the window.  Anything else, including a damaged EPB, takes the general path.
            if p + 28 <= end:
                btype, blen, iid, hi, lo, caplen, wirelen = epb_block(buf, p)
                if btype == _EPB:
                    r = p + blen
                    if (r <= end and 32 <= blen <= limit and not blen & 3 and caplen <= blen - 32
                            and iid < nif and u32(buf, r - 4)[0] == blen):
                        frame += 1
                        lt, _snap, mul, div, off = ifaces[iid]
                        ts = (hi << 32) | lo
                        if div != 1 or off:
                            ts = ts * mul // div + off
                        elif mul != 1:
                            ts *= mul
                        if ts >> 62:                # negative, or 2**62 and beyond
                            ts = self._clamp_ts(ts, base + p, frame)
                        pos[0] = frame - dropped
                        pos[1] = base + r
                        yield (frame, ts, lt, buf[p + 28:p + 28 + caplen], wirelen)
                        p = r
                        continue
            # pcapng §3.1 "General Block Structure": type, total length, body, total length.
            if p + 12 > end:
                ok = ensure(base + p, 12)
                p += base - self._base
                base = self._base
                buf = self._buf
                end = len(buf)
                if not ok:
                    self._end(base + p, frame, end - p, frame - dropped)
                    return
            btype, blen = hdr(buf, p)
            bad = None
            if btype == _SHB:
                # A new section: byte order from its Byte-Order Magic (pcapng §4.1).
                o2 = _section_order(buf, p)
                if o2 is None:
                    bad = "bad byte-order magic in section header"
                else:
                    o = o2
                    hdr = o.hdr
                    u32 = o.u32
                    epb_block = o.epb_block
                    btype, blen = hdr(buf, p)
            if bad is None:
                bad = _block_length_problem(btype, blen, limit)
                if bad is None:
                    r = p + blen
                    if r > end:
                        ok = ensure(base + p, blen)
                        p += base - self._base
                        base = self._base
                        buf = self._buf
                        end = len(buf)
                        r = p + blen
                        if not ok:
                            # Runs past the end: a cut-short tail, unless a valid block
                            # follows (then the length itself was corrupt).
                            a = self._resync(base + p, frame, f"block length {blen} runs past the end",
                                             o, len(ifaces), truncated=True)
                            if a is None:
                                self._end(base + p, frame, end - p, frame - dropped)
                                return
                            p = a - self._base
                            base = self._base
                            buf = self._buf
                            end = len(buf)
                            continue
                    if u32(buf, r - 4)[0] != blen:
                        bad = f"trailing block length {u32(buf, r - 4)[0]} differs from {blen}"
            if bad is not None:
                a = self._resync(base + p, frame, bad, o, len(ifaces), truncated=False)
                if a is None:
                    self.frames = frame - dropped
                    return
                p = a - self._base
                base = self._base
                buf = self._buf
                end = len(buf)
                continue

            if btype == _EPB or btype == _SPB or btype == _PB:
                frame += 1
                rec = self._packet_block(btype, buf, p, blen, o, ifaces, base + p, frame)
                if rec is None:
                    dropped += 1
                else:
                    self.frames = frame - dropped
                    self.bytes_read = base + r
                    yield rec
            elif btype == _IDB or btype == _SHB:
                ifaces = self._description_block(btype, buf, p, blen, o, ifaces, base + p, frame, dropped)
                if ifaces is None:
                    return
                nif = len(ifaces)
            # Any other block type (NRB, ISB, DSB, custom, unknown) is skipped.
            p = r

    def _packet_block(self, btype: int, buf, p: int, blen: int, o, ifaces: list, offset: int,
                      frame: int) -> tuple | None:
        """The record of a packet block that the fast path of ``_iter_pcapng`` did not take
        (an EPB it could not, an SPB, an obsolete PB), or None when it is damaged (noted)."""
        if btype == _SPB:
            # pcapng §4.4 "Simple Packet Block": interface 0, no timestamp.
            wirelen = o.u32(buf, p + 8)[0]
            if not ifaces:
                self._bad_packet_block(offset, frame, 0, 0, blen - 16, ifaces)
                return None
            lt, snap, _mul, _div, _off = ifaces[0]
            caplen = min(blen - 16, wirelen, snap or blen)
            return (frame, 0, lt, buf[p + 12:p + 12 + caplen], wirelen)
        if btype == _EPB:
            # pcapng §4.3 "Enhanced Packet Block".
            iid, hi, lo, caplen, wirelen = o.epb(buf, p + 8)
        else:
            # pcapng appendix A "Packet Block (obsolete)".
            iid, _drops, hi, lo, caplen, wirelen = o.pb(buf, p + 8)
        if caplen > blen - 32 or iid >= len(ifaces):
            self._bad_packet_block(offset, frame, iid, caplen, blen - 32, ifaces)
            return None
        lt, _snap, mul, div, off = ifaces[iid]
        ts = ((hi << 32) | lo) * mul // div + off
        if ts >> 62:
            ts = self._clamp_ts(ts, offset, frame)
        return (frame, ts, lt, buf[p + 28:p + 28 + caplen], wirelen)

    def _description_block(self, btype: int, buf, p: int, blen: int, o, ifaces: list, offset: int,
                           frame: int, dropped: int) -> list | None:
        """An Interface Description Block adds an interface to ``ifaces``; a Section Header
        Block starts a section without any.  Returns the interfaces, None when the section's
        version is not supported (the read stops)."""
        if btype == _IDB:
            if len(ifaces) < _MAX_INTERFACES:
                ifaces.append(self._parse_idb(buf, p, blen, o, offset, frame))
            else:
                self._warn(f"pcapng: interface block at byte {offset} ignored: "
                           f"more than {_MAX_INTERFACES} interfaces in one section")
            return ifaces
        _bom, major, minor = o.shb(buf, p + 8)
        if major != 1:
            self.bytes_read = offset
            self.frames = frame - dropped
            self._stop(f"pcapng: unsupported version {major}.{minor} in section at byte {offset} "
                       f"(frame {frame + 1})", offset, frame + 1, True)
            return None
        return []

    def _clamp_ts(self, ts: int, offset: int, frame: int) -> int:
        """A timestamp outside [0, 2**62) ns: clamp it; warn the first time."""
        if not self._ts_clamped:
            self._ts_clamped = True
            self._warn(f"pcapng: timestamp of frame {frame} (block at byte {offset}) is outside the "
                       f"representable range (1970 to 2116); clamped, as are any later ones")
        return _TS_MAX if ts > 0 else 0

    def _bad_packet_block(self, offset: int, frame: int, iid: int, caplen: int, room: int, ifaces: list) -> None:
        if iid >= len(ifaces):
            why = f"refers to undefined interface {iid}"
        else:
            why = f"captured length {caplen} exceeds the block's {room} data bytes"
        self._skip(f"pcapng: packet block at byte {offset} (frame {frame}) {why}; skipped", offset, frame)

    def _parse_idb(self, buf, p: int, blen: int, o: _Order, offset: int, frame: int):
        """pcapng §4.2 "Interface Description Block" -> (linktype, snaplen, mul, div, offset_ns)."""
        linktype, _reserved, snaplen = o.idb(buf, p + 8)
        resol = 6                           # default if_tsresol: microseconds
        tsoffset = 0
        # pcapng §3.5 "Options": code, length, value padded to 32 bits; opt_endofopt ends.
        q = p + 16
        oend = p + blen - 4
        opt = o.opt
        while q + 4 <= oend:
            code, olen = opt(buf, q)
            if code == _OPT_ENDOFOPT:
                break
            v = q + 4
            if v + olen > oend:
                self._warn(f"pcapng: interface block at byte {offset}: option {code} overruns the block; "
                           f"remaining options ignored")
                break
            if code == _IF_TSRESOL and olen >= 1:
                resol = buf[v]
            elif code == _IF_TSOFFSET and olen >= 8:
                tsoffset = o.i64(buf, v)[0]
            q = v + ((olen + 3) & ~3)
        # if_tsresol: high bit clear = 10^-n seconds, set = 2^-n seconds.  ts_ns = ts*mul//div.
        if resol & 0x80:
            mul, div = _NS, 1 << (resol & 0x7F)
        elif resol <= 9:
            mul, div = 10 ** (9 - resol), 1
        else:
            mul, div = 1, 10 ** (resol - 9)
        self.linktypes.add(linktype)
        return (linktype, snaplen, mul, div, tsoffset * _NS)

    # ------------------------------------------------------------------ pcapng resync

    def _resync(self, a: int, frame: int, reason: str, o: _Order, nifaces: int, truncated: bool):
        """Scan forward from the bad block at absolute offset ``a`` for the next valid block.

        Returns its absolute offset (the window then starts at ``a``), or None after
        recording the damage: fatal, or a plain truncation if ``truncated`` and nothing
        valid follows.
        """
        self._ensure(a, _RESYNC_WINDOW + 12)
        stop_at = a + _RESYNC_WINDOW
        pos = a + 1
        search = o.candidates.search
        found = None
        while True:
            buf = self._buf
            base = self._base
            endpos = min(stop_at, base + len(buf)) - base
            if pos - base >= endpos:
                break
            m = search(buf, pos - base, endpos)
            if m is None:
                break
            c = base + m.start()
            if self._valid_block(a, c, o, nifaces):
                found = c
                break
            pos = c + 1
        if found is not None:
            self._skip(f"pcapng: bad block at byte {a} (frame {frame + 1}), resynchronised at byte {found} "
                       f"({found - a} bytes skipped): {reason}", a, frame + 1)
            return found
        self.bytes_read = a
        if truncated:
            return None                     # caller reports the truncation
        scanned = min(stop_at, self._base + len(self._buf)) - a
        self._stop(f"pcapng: bad block at byte {a} (frame {frame + 1}): {reason}; "
                   f"no valid block in the next {scanned} bytes", a, frame + 1, True)
        return None

    def _valid_block(self, keep: int, c: int, o: _Order, nifaces: int, follow: bool = True) -> bool:
        """Does a complete, self-consistent block start at absolute offset ``c``?

        With ``follow``, the block after it must also look like a block header (or the
        input ends there), which makes a false match inside packet data unlikely.
        """
        if not self._ensure(keep, c - keep + 12):
            return False
        buf = self._buf
        q = c - self._base
        btype = o.u32(buf, q)[0]
        if btype == _SHB:
            bom = buf[q + 8:q + 12]
            if bom == _BOM_LE:
                o = _LE
            elif bom == _BOM_BE:
                o = _BE
            else:
                return False
            nifaces = 0
        elif btype not in _RESYNC_TYPES:
            return False
        blen = o.u32(buf, q + 4)[0]
        if blen < _MIN_BLEN.get(btype, 12) or blen & 3 or blen > self.max_record:
            return False
        if not self._ensure(keep, c - keep + blen):
            return False
        buf = self._buf
        q = c - self._base
        if o.u32(buf, q + blen - 4)[0] != blen:
            return False
        if btype == _EPB:
            iid, _hi, _lo, caplen, _len = o.epb(buf, q + 8)
            if iid >= nifaces or caplen > blen - 32:
                return False
        elif btype == _PB:
            iid, _d, _hi, _lo, caplen, _len = o.pb(buf, q + 8)
            if iid >= nifaces or caplen > blen - 32:
                return False
        elif btype == _SPB and nifaces == 0:
            return False
        if not follow:
            return True
        nxt = c + blen
        if not self._ensure(keep, nxt - keep + 12):
            return True                     # input ends (or is cut short) right after it
        buf = self._buf
        q = nxt - self._base
        ntype = o.u32(buf, q)[0]
        if ntype == _SHB:
            return self._valid_block(keep, nxt, o, 0, follow=False) or not self._ensure(keep, nxt - keep + 28)
        if ntype not in _RESYNC_TYPES:
            return False
        nlen = o.u32(buf, q + 4)[0]
        if nlen < _MIN_BLEN.get(ntype, 12) or nlen & 3 or nlen > self.max_record:
            return False
        if not self._ensure(keep, nxt - keep + nlen):
            return True                     # a cut-short final block
        buf = self._buf
        return o.u32(buf, nxt - self._base + nlen - 4)[0] == nlen

    # ------------------------------------------------------------------ protocol

    def __iter__(self) -> Iterator[tuple[int, int, int, bytes, int]]:
        if self._gen is None:
            self._gen = iter(()) if self._closed else self._walk()
        return self._gen

    def batches(self, out: array) -> Iterator[tuple[bytes, int, int]] | None:
        """The records in batches, for a loop that decodes each frame where it lies in the
        read window instead of receiving a copy: an iterator of ``(window, linktype, count)``,
        after each of which ``out`` (an ``array('q')`` of at least 5 entries) holds ``count``
        records of 5 numbers, ``(frame, ts_ns, offset, caplen, wirelen)``, the frame being
        ``window[offset:offset + caplen]``.  The records, damage,
        warnings and counts are those iteration gives; ``frames`` and ``bytes_read`` are
        exact after each batch.  A batch's records are valid until the next one is asked
        for.  None when the capture's format has no batch walk (pcapng: iterate instead) or
        iteration has begun; either way, read a capture one way only."""
        if self._gen is not None or not self._batchable or len(out) < 5:
            return None
        self._gen = iter(()) if self._closed else self._batches_pcap(out)
        return self._gen

    def close(self) -> None:
        """Release the windows and files (standard input itself is left open)."""
        if self._closed:
            return
        self._closed = True
        gen = self._gen
        if gen is not None and hasattr(gen, "close"):
            gen.close()
        self._gen = iter(())
        self._buf = b""
        self._spare = None
        for f in self._closers:
            try:
                f.close()
            except (OSError, EOFError, zlib.error, ValueError):
                pass

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureReader {self.name!r} {self.format} frames={self.frames}>"


def _reason(exc: BaseException) -> str:
    """One-line reason text of an I/O or decompression error."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_head(raw, n: int) -> bytes:
    """Read up to ``n`` bytes (fewer only at end of input)."""
    parts = []
    have = 0
    while have < n:
        chunk = raw.read(n - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def _magic_format(head: bytes) -> str | None:
    if len(head) < 4:
        return None
    le = struct.unpack("<I", head[:4])[0]
    be = struct.unpack(">I", head[:4])[0]
    if le == _SHB:
        return "pcapng"
    if _PCAP_US in (le, be):
        return "pcap"
    if _PCAP_NS in (le, be):
        return "pcap-ns"
    if _PCAP_KUZNETZOV in (le, be):
        return "pcap-kuznetzov"
    return None


def capture_format(path: str) -> str | None:
    """The capture format of the file ``path`` by its first bytes (``pcap``, ``pcap-ns``,
    ``pcapng``, ``pcap-kuznetzov``, with ``, gzip`` when gzip-compressed), or None when it
    is not a capture (or cannot be read).  Reads at most a few bytes (and gzip's header)."""
    try:
        if is_url(path):
            f = open_url(path)[0]
        else:
            f = open(path, "rb")
        with f:
            head = f.read(4)
            if head[:2] != _GZIP_MAGIC:
                return _magic_format(head)
            f.seek(0)
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                fmt = _magic_format(gz.read(4))
            return None if fmt is None else fmt + ", gzip"
    except (OSError, EOFError, ValueError, zlib.error, SourceError):
        return None


def open_capture(path: str, *, max_record: int = DEFAULT_MAX_RECORD) -> CaptureReader:
    """Open a pcap/pcapng capture (optionally gzip-compressed); ``"-"`` reads standard input,
    a URL (``s3://...``, ``file://...``, any fsspec protocol) is opened through fsspec.

    Raises :class:`SourceError` (one-line message) if the input cannot be opened or is
    not a supported capture.  Damage found while iterating is reported on the reader.
    """
    closers: list = []
    try:
        if path == "-":
            stdin = sys.stdin
            raw = getattr(stdin, "buffer", None)
            if raw is None:
                raise SourceError("standard input is not available")
            name = "<stdin>"
            head = _read_head(raw, 2)
            src = _Prefixed(head, raw, at_end=len(head) < 2)
            return _open_stream(name, src, head, closers, max_record)
        name = os.fspath(path)
        if is_url(name):    # scheme://...: through fsspec (tcpanalyze.sources.remote)
            f, size = open_url(name)
            closers.append(f)
            head = _read_head(f, 2)
            if size == 0 or not head:
                raise SourceError("file is empty: not a pcap or pcapng capture")
            return _open_stream(name, _Prefixed(head, f), head, closers, max_record,
                                size if head != _GZIP_MAGIC else None)
        try:
            f = open(name, "rb")
        except OSError as exc:
            raise SourceError(f"cannot open {name}: {_reason(exc)}") from None
        closers.append(f)
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise SourceError(f"cannot open {name}: Is a directory")
        head = _read_head(f, 2)
        size = None
        if stat.S_ISREG(st.st_mode) and head != _GZIP_MAGIC:
            if st.st_size == 0 or not head:
                raise SourceError("file is empty: not a pcap or pcapng capture")
            size = st.st_size
            if hasattr(os, "posix_fadvise"):    # read-ahead hint for a front-to-back walk
                try:
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                except OSError:
                    pass
        return _open_stream(name, _Prefixed(head, f), head, closers, max_record, size)
    except OSError as exc:
        for c in closers:
            c.close()
        raise SourceError(f"cannot read {path}: {_reason(exc)}") from None
    except BaseException:
        for c in closers:
            c.close()
        raise


def _open_stream(name: str, src, head: bytes, closers: list, max_record: int,
                 size: int | None = None) -> CaptureReader:
    compressed = head == _GZIP_MAGIC
    if compressed:
        gz = gzip.GzipFile(fileobj=src, mode="rb")
        closers.insert(0, gz)
        src = gz
    return CaptureReader(name, stream=src, closers=closers, compressed=compressed, size=size,
                         max_record=max_record)
