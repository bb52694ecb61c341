"""Connection records kept on disk instead of in memory, for ``analyze --json`` / ``--jsonl``.

A full JSON report lists every connection of the capture; as Python dicts they cost about
3.5 KB each (250 MB for the 70k connections of the benchmark capture).  When the caller
asks for it (``AnalyzeOptions.spill_records``), each record is serialized when its
connection is finalized and appended to one temporary file that the process shares; the
report keeps 20 bytes per connection (stream, offset, length) and reads the records back,
in stream order, when it is written.  The JSON written is byte-for-byte what the in-memory
records would give: the stored text is the same compact encoding the writers use.

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

from tcpanalyze.jsontext import compact

#: bytes gathered in memory before one write to the spill file
K_SPILL_CHUNK = 1 << 20


def dumps(obj) -> str:
    """The compact encoding every writer uses for one record (see report.jsonout):
    json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)."""
    return compact(obj)


class _SpillFile:
    """An append-only file of records, read back with pread: the process's unlinked
    temporary file, or (``named``) a file another process can adopt (see ``export``)."""

    def __init__(self, named: bool = False, fd: int | None = None, size: int = 0):
        self._fd: int | None = fd
        self._chunk = bytearray()
        self._flushed = size   # bytes already in the file
        self.path: str | None = None
        if named:
            self._fd, self.path = tempfile.mkstemp(prefix="tcpanalyze-records-", suffix=".jsonl")

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
        off = self._flushed + len(self._chunk)
        self._chunk += data
        if len(self._chunk) >= K_SPILL_CHUNK:
            self.sync()
        return off

    def sync(self) -> None:
        if not self._chunk:
            return
        if self._fd is None:
            f = tempfile.TemporaryFile(prefix="tcpanalyze-records-")
            self._fd = os.dup(f.fileno())
            f.close()
        view = memoryview(self._chunk)
        while view:
            n = os.pwrite(self._fd, view, self._flushed)
            self._flushed += n
            view = view[n:]
        view.release()
        self._chunk.clear()

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
    are written back; iteration yields dicts, ``lines()`` the compact JSON text, both in
    stream order."""

    def __init__(self, store: _SpillFile | None = None):
        self._store = store or _store()
        self._stores = [self._store]
        self._sid = array("H")          # which store holds each record
        self._streams = array("q")      # stream as written in the report
        self._local = array("q")        # stream as written in the stored text
        self._offs = array("q")
        self._lens = array("l")
        self._order: list[int] | None = None
        self._patched: dict[int, dict] = {}

    def append(self, rec: dict) -> None:
        data = dumps(rec).encode()
        s = rec["stream"]
        self._sid.append(0)
        self._streams.append(s)
        self._local.append(s)
        self._offs.append(self._store.put(data))
        self._lens.append(len(data))
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
        return ("spilled", path, size, self._local.tobytes(), self._offs.tobytes(), self._lens.tobytes())

    def adopt(self, exported: tuple, stream_map: list[int]) -> None:
        """Take over a worker's exported records; ``stream_map[local]`` is the report's stream."""
        _tag, path, size, local, offs, lens = exported
        sid = len(self._stores)
        self._stores.append(_SpillFile.adopt(path, size))
        loc = array("q")
        loc.frombytes(local)
        self._local.extend(loc)
        self._streams.extend(array("q", (stream_map[s] for s in loc)))
        self._sid.extend(array("H", [sid]) * len(loc))
        o = array("q")
        o.frombytes(offs)
        self._offs.extend(o)
        n = array("l")
        n.frombytes(lens)
        self._lens.extend(n)
        self._order = None

    def seal(self) -> "SpilledRecords":
        streams = self._streams
        self._order = sorted(range(len(streams)), key=streams.__getitem__)
        return self

    def __len__(self) -> int:
        return len(self._streams)

    def __reduce__(self):
        raise TypeError("spilled connection records stay in the process that wrote them")

    def _text(self, i: int) -> str:
        text = self._stores[self._sid[i]].get(self._offs[i], self._lens[i]).decode()
        s, loc = self._streams[i], self._local[i]
        if s != loc:        # renumbered by a merge: the text starts with {"stream":<local>,
            head = f'{{"stream":{loc},'
            assert text.startswith(head)
            text = f'{{"stream":{s},' + text[len(head):]
        return text

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

    def lines(self) -> Iterator[str]:
        order = self._order if self._order is not None else self.seal()._order
        patched = self._patched
        streams = self._streams
        for i in order:
            rec = patched.get(streams[i]) if patched else None
            yield self._text(i) if rec is None else dumps(rec)

    def __iter__(self) -> Iterator[dict]:
        for line in self.lines():
            yield json.loads(line)


class RecordChain:
    """Several files' connection records one after the other (lists or spilled)."""

    def __init__(self, parts: list):
        self._parts = parts

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def __iter__(self) -> Iterator[dict]:
        for p in self._parts:
            yield from p

    def lines(self) -> Iterator[str]:
        for p in self._parts:
            yield from record_lines(p)


def record_lines(records) -> Iterator[str]:
    """Compact JSON text of each record, without decoding spilled ones."""
    if hasattr(records, "lines"):
        return records.lines()
    return (dumps(r) for r in records)
