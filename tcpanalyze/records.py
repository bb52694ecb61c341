"""Connection records kept on disk instead of in memory, for ``analyze --json`` / ``--jsonl``.

A full JSON report lists every connection of the capture; as Python dicts they cost about
3.5 KB each (250 MB for the 70k connections of the benchmark capture).  When the caller
asks for it (``AnalyzeOptions.spill_records``), each record is serialized when its
connection is finalized and appended to one temporary file that the process shares; the
report keeps 22 bytes per connection (stream, offset, length) and reads the records back,
in stream order, when it is written.  The JSON written is byte-for-byte what the in-memory
records would give: the stored text is the same compact encoding the writers use.

A record is encoded as UTF-8 straight into the spill file's write buffer (``jsontext.
encode_into``), one ``bytearray`` reused for the life of the file and written out every
``K_SPILL_CHUNK`` bytes.  The writers read the records back as bytes (``record_bytes``): the
records of a stream-ordered run that lies in one piece of the file come in one read, and
their bytes go to the output without becoming text.

A spilled report lives in the process that made it: it is not picklable.  ``analyze --jobs``
on one file has each worker spill to a named file of its own and send back only the index
(``export``); the parent ``adopt``s those files, renumbers the streams (every record's text
starts with its ``"stream"``) and writes the records from there.
"""
from __future__ import annotations

import json
import os
import tempfile
from array import array
from bisect import bisect_left
from typing import Iterable, Iterator

from tcpanalyze.errors import OutputError
from tcpanalyze.jsontext import compact, encode_into

#: bytes gathered in memory before one write to the spill file
K_SPILL_CHUNK = 1 << 18
#: most bytes one read of consecutive records brings back (``record_bytes``)
K_READ_RUN = 1 << 18


def dumps(obj) -> str:
    """The compact encoding every writer uses for one record (see report.jsonout):
    json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)."""
    return compact(obj)


class _SpillFile:
    """An append-only file of records, read back with pread: the process's unlinked
    temporary file, or (``named``) a file another process can adopt (see ``export``)."""

    def __init__(self, named: bool = False, fd: int | None = None, size: int = 0):
        self._fd: int | None = fd
        self._chunk = bytearray()   # the write buffer: its first _n bytes wait for the file
        self._n = 0
        self._flushed = size   # bytes already in the file
        self.path: str | None = None
        if named:
            try:
                self._fd, self.path = tempfile.mkstemp(prefix="tcpanalyze-records-", suffix=".jsonl")
            except OSError as e:
                raise OutputError.temporary(e) from None

    @classmethod
    def adopt(cls, path: str, size: int) -> "_SpillFile":
        """Open another process's named file, and unlink it: it goes when this process does."""
        fd = os.open(path, os.O_RDONLY)
        os.unlink(path)
        return cls(fd=fd, size=size)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None

    def put(self, data: bytes) -> int:
        """Append ``data``; returns its offset in the file."""
        start = self._n
        self._n = end = start + len(data)
        self._chunk[start:end] = data
        off = self._flushed + start
        if end >= K_SPILL_CHUNK:
            self.sync()
        return off

    def put_record(self, rec: dict) -> tuple[int, int]:
        """Append the compact JSON of ``rec``; returns its (offset, length) in the file."""
        start = self._n
        self._n = end = encode_into(self._chunk, start, rec)
        off = self._flushed + start
        if end >= K_SPILL_CHUNK:
            self.sync()
        return off, end - start

    def sync(self) -> None:
        if not self._n:
            return
        try:
            if self._fd is None:
                f = tempfile.TemporaryFile(prefix="tcpanalyze-records-")
                self._fd = os.dup(f.fileno())
                f.close()
            with memoryview(self._chunk) as whole:
                view = whole[:self._n]
                while view:
                    n = os.pwrite(self._fd, view, self._flushed)
                    self._flushed += n
                    view = view[n:]
                view.release()
        except OSError as e:
            raise OutputError.temporary(e) from None
        self._n = 0

    def get(self, off: int, n: int) -> bytes:
        if off + n > self._flushed:
            self.sync()
        return os.pread(self._fd, n, off)


_STORE: _SpillFile | None = None


def _store() -> _SpillFile:
    global _STORE
    if _STORE is None:
        _STORE = _SpillFile()
    return _STORE


class SpilledRecords:
    """A report's connection records, on disk.  ``append(rec)`` while analysing; then
    ``seal()`` orders them by stream; ``pick(streams)`` loads a few records for changes that
    are written back; iteration yields dicts, ``record_bytes()`` the compact JSON as UTF-8,
    both in stream order."""

    def __init__(self, store: _SpillFile | None = None):
        self._store = store or _store()
        self._stores = [self._store]
        # the index: 22 bytes a record, no Python object per record
        self._sid = array("H")          # which store holds each record
        self._streams = array("q")      # stream as written in the report
        self._local: array | None = None    # stream in the stored text, once a merge renumbers
        self._offs = array("q")
        self._lens = array("I")
        self._order: array | None = None
        self._patched: dict[int, dict] = {}

    def append(self, rec: dict) -> None:
        off, n = self._store.put_record(rec)
        s = rec["stream"]
        self._sid.append(0)
        self._streams.append(s)
        if self._local is not None:
            self._local.append(s)
        self._offs.append(off)
        self._lens.append(n)
        self._order = None

    def discard(self) -> None:
        """Forget the records and close (and remove, if named) this report's own store."""
        if self._store is not _STORE:
            self._store.close()
        self._stores = []

    def export(self) -> tuple:
        """Picklable index of records in a named store (a ``--jobs`` worker's), for ``adopt``."""
        st = self._store
        st.sync()
        assert st.path is not None and len(self._stores) == 1
        path, size = st.path, st._flushed
        st.path = None          # the file is the adopter's now: closed here, not unlinked
        st.close()
        local = self._local if self._local is not None else self._streams
        return ("spilled", path, size, local.tobytes(), self._offs.tobytes(), self._lens.tobytes())

    def adopt(self, exported: tuple, stream_map: list[int]) -> None:
        """Take over a worker's exported records; ``stream_map[local]`` is the report's stream."""
        _tag, path, size, local, offs, lens = exported
        sid = len(self._stores)
        self._stores.append(_SpillFile.adopt(path, size))
        loc = array("q")
        loc.frombytes(local)
        if self._local is None:
            self._local = array("q", self._streams)
        self._local.extend(loc)
        self._streams.extend(array("q", (stream_map[s] for s in loc)))
        self._sid.extend(array("H", [sid]) * len(loc))
        o = array("q")
        o.frombytes(offs)
        self._offs.extend(o)
        n = array("I")
        n.frombytes(lens)
        self._lens.extend(n)
        self._order = None

    def seal(self) -> "SpilledRecords":
        self._order = _stream_order(self._streams)
        return self

    def __len__(self) -> int:
        return len(self._streams)

    def __reduce__(self):
        raise TypeError("spilled connection records stay in the process that wrote them")

    def _renumbered(self, i: int, data) -> bytes:
        """Record ``i``'s bytes with its stream as the report writes it (a merge renumbers
        streams; the stored text starts with {"stream":<local>,)."""
        s = self._streams[i]
        loc = self._local[i] if self._local is not None else s
        if s == loc:
            return data
        head = b'{"stream":%d,' % loc
        assert data[:len(head)] == head
        return b'{"stream":%d,' % s + data[len(head):]

    def _text(self, i: int) -> bytes:
        return self._renumbered(i, self._stores[self._sid[i]].get(self._offs[i], self._lens[i]))

    def pick(self, streams: Iterable[int]) -> dict[int, dict]:
        """The records of these streams (those present), as dicts whose later changes are
        what gets written."""
        order = self._order if self._order is not None else self.seal()._order
        keys = [self._streams[i] for i in order]
        out = {}
        for s in streams:
            if s in self._patched:
                out[s] = self._patched[s]
                continue
            j = bisect_left(keys, s)
            if j < len(keys) and keys[j] == s:
                out[s] = self._patched[s] = json.loads(self._text(order[j]))
        return out

    def record_bytes(self) -> Iterator[bytes | memoryview]:
        """Each record's compact JSON as UTF-8, in stream order.  Records that follow each
        other in one file, in that order, are read together (up to ``K_READ_RUN`` bytes)."""
        order = self._order if self._order is not None else self.seal()._order
        patched, streams = self._patched, self._streams
        local = self._local if self._local is not None else streams
        sid, offs, lens, stores = self._sid, self._offs, self._lens, self._stores
        k, n = 0, len(order)
        while k < n:
            i = order[k]
            if patched and streams[i] in patched:
                yield compact(patched[streams[i]]).encode()
                k += 1
                continue
            # the run: the next records that start where the one before ends, in the same file
            st, start = sid[i], offs[i]
            end, j = start + lens[i], k + 1
            while j < n and end - start < K_READ_RUN:
                i2 = order[j]
                if sid[i2] != st or offs[i2] != end or (patched and streams[i2] in patched):
                    break
                end += lens[i2]
                j += 1
            run = memoryview(stores[st].get(start, end - start))
            for m in range(k, j):
                i = order[m]
                a = offs[i] - start
                data = run[a:a + lens[i]]
                yield data if streams[i] == local[i] else self._renumbered(i, data)
            k = j

    def __iter__(self) -> Iterator[dict]:
        for data in self.record_bytes():
            yield json.loads(str(data, "utf-8"))


class WaitingIndex:
    """Where records that wait on disk for an earlier stream are: stream -> (offset, length)
    in two arrays indexed by stream from the first one that may still wait, 12 bytes a stream
    in that span and no Python object per record.  Streams are taken out in increasing
    order: ``advance(s)`` forgets the ones before ``s``."""

    def __init__(self):
        self._base = 0                  # the stream at index 0
        self._offs = array("q")         # -1: not waiting on disk
        self._lens = array("I")
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def put(self, stream: int, off: int, n: int) -> None:
        i = stream - self._base
        if i < 0:
            raise ValueError(f"stream {stream} is before {self._base}")
        k = len(self._offs)
        if i >= k:
            self._offs.extend(array("q", [-1]) * (i + 1 - k))
            self._lens.extend(array("I", [0]) * (i + 1 - k))
        if self._offs[i] < 0:
            self._n += 1
        self._offs[i] = off
        self._lens[i] = n

    def pop(self, stream: int) -> tuple[int, int] | None:
        """(offset, length) of the stream's record, now forgotten; None if it does not wait."""
        i = stream - self._base
        if i < 0 or i >= len(self._offs) or self._offs[i] < 0:
            return None
        off = self._offs[i]
        self._offs[i] = -1
        self._n -= 1
        return off, self._lens[i]

    def advance(self, stream: int) -> None:
        """No stream before ``stream`` waits any more: drop their room (in halves, so the
        moves cost O(1) a stream)."""
        i = stream - self._base
        if i <= 0:
            return
        if i >= len(self._offs):
            del self._offs[:], self._lens[:]
            self._base = stream
        elif i > len(self._offs) >> 1:
            del self._offs[:i], self._lens[:i]
            self._base = stream


def _stream_order(streams: array) -> array:
    """The indices of ``streams`` in stream order, as an array: placed by stream number when
    the numbers are distinct and dense (no Python int per record), else sorted."""
    n = len(streams)
    if n:
        lo, hi = min(streams), max(streams)
        if hi - lo < 2 * n + 1024:
            pos = array("q", [-1]) * (hi - lo + 1)
            for i, s in enumerate(streams):
                if pos[s - lo] >= 0:
                    break
                pos[s - lo] = i
            else:
                return pos if len(pos) == n else array("q", (i for i in pos if i >= 0))
    return array("q", sorted(range(n), key=streams.__getitem__))


class RecordChain:
    """Several files' connection records one after the other (lists or spilled)."""

    def __init__(self, parts: list):
        self._parts = parts

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def __iter__(self) -> Iterator[dict]:
        for p in self._parts:
            yield from p

    def record_bytes(self) -> Iterator[bytes | memoryview]:
        for p in self._parts:
            yield from record_bytes(p)


def record_bytes(records) -> Iterator[bytes | memoryview]:
    """The compact JSON of each record as UTF-8, without decoding spilled ones."""
    if hasattr(records, "record_bytes"):
        return records.record_bytes()
    return (compact(r).encode() for r in records)
