"""JSON and JSON Lines writers for a Report (no printing of their own: they write to ``out``).

``--json``: one document, ``Report.to_dict()`` (see ``schema.JSON_SCHEMA``).
``--jsonl``: one record per line, each with a ``type``:
  ``connection`` (a connection summary record), then ``finding`` records, for each file in
  turn; then ``file`` (the file's RunStats and per-file summary); and last one ``summary``
  record (the total over all files, with ``schema_version``).

The connection and finding records are written as UTF-8 bytes, gathered in one reused buffer
and handed to ``out.write_bytes`` (the command line's outputs write them to the file as they
are; any other ``out`` gets them as text): a record read back from the spill file
(tcpanalyze.records) reaches the output without being decoded, copied into a line and encoded
again.
"""
from __future__ import annotations

import json
from typing import IO, Any, Iterator

from tcpanalyze._version import __version__
from tcpanalyze.jsontext import encode_into
from tcpanalyze.records import dumps as compact, record_bytes
from tcpanalyze.schema import SCHEMA_VERSION
from tcpanalyze.session import Report


def dumps(obj, indent: int | None = None) -> str:
    if indent is None:
        return compact(obj)
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)


#: top-level lists written one element per line (they hold one entry per connection / finding)
_LINE_LISTS = ("connections", "findings")


#: bytes gathered before one write to the output
K_OUT_CHUNK = 1 << 18


class _Bytes:
    """UTF-8 text gathered in one buffer, reused, and written out about every ``K_OUT_CHUNK``
    bytes."""

    def __init__(self, out: IO[str]):
        write = getattr(out, "write_bytes", None)
        self._write = write if write is not None else (lambda b: out.write(str(b, "utf-8")))
        self._buf = bytearray()
        self._n = 0

    def put(self, data: Any) -> None:
        start = self._n
        self._n = end = start + len(data)
        self._buf[start:end] = data
        if end >= K_OUT_CHUNK:
            self.flush()

    def put_record(self, rec: dict) -> None:
        """The compact JSON of ``rec``, encoded in place."""
        self._n = end = encode_into(self._buf, self._n, rec)
        if end >= K_OUT_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._n:
            with memoryview(self._buf) as whole:
                part = whole[:self._n]
                try:
                    self._write(part)
                finally:
                    part.release()
            self._n = 0


def write_json(report: Report, out: IO[str], indent: int | None = 2) -> None:
    """The document, indented, except that each element of ``connections`` and ``findings``
    is one compact line, written by ``jsontext`` as bytes (the standard library's pure-Python
    indenting encoder made ``--json`` half as fast as the analysis); a big document is
    written a buffer at a time instead of as one string."""
    doc = report.to_dict()
    if indent is None:
        if not isinstance(report.connections, list):
            doc["connections"] = list(report.connections)
        out.write(dumps(doc) + "\n")
        return
    pad = " " * indent
    first, between = b"[\n" + (pad + pad).encode(), b",\n" + (pad + pad).encode()
    items = list(doc.items())
    o = _Bytes(out)
    o.put(b"{\n")
    for i, (key, value) in enumerate(items):
        o.put(f"{pad}{dumps(key)}: ".encode())
        if key in _LINE_LISTS and not isinstance(value, (dict, str)):
            # one line per record; "[]" for none (also none kept on disk: analyze --host selecting none)
            sep = first
            if isinstance(value, list):
                for rec in value:
                    o.put(sep)
                    o.put_record(rec)
                    sep = between
            elif len(value):
                for data in record_bytes(value):
                    o.put(sep)
                    o.put(data)
                    sep = between
            o.put(b"[]" if sep is first else f"\n{pad}]".encode())
        else:
            o.put(dumps(value, indent=indent).replace("\n", "\n" + pad).encode())
        o.put(b",\n" if i < len(items) - 1 else b"\n")
    o.put(b"}\n")
    o.flush()


def file_records(report: Report) -> Iterator[dict]:
    """The streamable part of one file's report: connections, findings, then the file record."""
    for c in report.connections:
        yield {"type": "connection", **c}
    yield from _other_records(report)


def _other_records(report: Report) -> Iterator[dict]:
    for f in report.findings:
        yield {"type": "finding", **f}
    for f in report.files:
        yield {"type": "file", **f}


_CONN_PREFIX = b'{"type":"connection",'


def summary_record(report: Report) -> dict:
    return {"type": "summary", "schema_version": SCHEMA_VERSION,
            "tool": {"name": "tcpanalyze", "version": __version__}, **report.summary}


def write_jsonl_file(report: Report, out: IO[str]) -> None:
    o = _Bytes(out)
    # a connection line is its record's compact text with the type first (the same bytes
    # as dumps({"type": "connection", **rec}), without decoding records spilled to disk)
    for data in record_bytes(report.connections):
        if len(data) > 2:
            o.put(_CONN_PREFIX)
            o.put(data[1:])
            o.put(b"\n")
        else:
            o.put(b'{"type":"connection"}\n')
    for rec in _other_records(report):
        o.put_record(rec)
        o.put(b"\n")
    o.flush()


def write_jsonl(report: Report, out: IO[str]) -> None:
    """All records of a (possibly merged) report, then the summary record."""
    write_jsonl_file(report, out)
    out.write(dumps(summary_record(report)) + "\n")
