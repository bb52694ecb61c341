"""Connection records kept on disk instead of in memory, for ``analyze --json`` / ``--jsonl``.

A full JSON report lists every connection of the capture; as Python dicts they cost about
3.5 KB each (250 MB for the 70k connections of the benchmark capture).  When the caller
asks for it (``AnalyzeOptions.spill_records``), each record is serialized when its
connection is finalized and appended to one temporary file that the process shares; the
report keeps 20 bytes per connection (stream, offset, length) and reads the records back,
in stream order, when it is written.  The JSON written is byte-for-byte what the in-memory
records would give: the stored text is the same compact encoding the writers use.

A spilled report lives in the process that made it: it is not picklable, so ``--jobs``
workers keep plain lists.
"""
from __future__ import annotations

import json
import os
import tempfile
from array import array
from bisect import bisect_left
from typing import Iterable, Iterator

#: bytes gathered in memory before one write to the spill file
K_SPILL_CHUNK = 1 << 20


def dumps(obj) -> str:
    """The compact encoding every writer uses for one record (see report.jsonout)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class _SpillFile:
    """One append-only, unlinked temporary file per process; records are read back with pread."""

    def __init__(self):
        self._fd: int | None = None
        self._chunk = bytearray()
        self._flushed = 0      # bytes already in the file

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

    def __init__(self):
        self._store = _store()
        self._streams = array("q")
        self._offs = array("q")
        self._lens = array("l")
        self._order: list[int] | None = None
        self._patched: dict[int, dict] = {}

    def append(self, rec: dict) -> None:
        data = dumps(rec).encode()
        self._streams.append(rec["stream"])
        self._offs.append(self._store.put(data))
        self._lens.append(len(data))
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
        return self._store.get(self._offs[i], self._lens[i]).decode()

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
