"""JSON and JSON Lines writers for a Report (no printing of their own: they write to ``out``).

``--json``: one document, ``Report.to_dict()`` (see ``schema.JSON_SCHEMA``).
``--jsonl``: one record per line, each with a ``type``:
  ``connection`` (a connection summary record), then ``finding`` records, for each file in
  turn; then ``file`` (the file's RunStats and per-file summary); and last one ``summary``
  record (the total over all files, with ``schema_version``).
"""
from __future__ import annotations

import json
from typing import IO, Iterator

from tcpanalyze._version import __version__
from tcpanalyze.records import dumps as compact, record_lines
from tcpanalyze.schema import SCHEMA_VERSION
from tcpanalyze.session import Report


def dumps(obj, indent: int | None = None) -> str:
    if indent is None:
        return compact(obj)
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)


#: top-level lists written one element per line (they hold one entry per connection / finding)
_LINE_LISTS = ("connections", "findings")


def write_json(report: Report, out: IO[str], indent: int | None = 2) -> None:
    """The document, indented, except that each element of ``connections`` and ``findings``
    is one compact line: the standard library's C encoder writes those (its pure-Python
    indenting encoder made ``--json`` half as fast as the analysis), and a big document is
    written a record at a time instead of as one string."""
    doc = report.to_dict()
    if indent is None:
        if not isinstance(report.connections, list):
            doc["connections"] = list(report.connections)
        out.write(dumps(doc) + "\n")
        return
    pad = " " * indent
    items = list(doc.items())
    out.write("{\n")
    for i, (key, value) in enumerate(items):
        out.write(f"{pad}{dumps(key)}: ")
        if key in _LINE_LISTS and not isinstance(value, (dict, str, list)) and not len(value):
            value = []                  # no record kept on disk (analyze --host selecting none)
        if key in _LINE_LISTS and not isinstance(value, (dict, str)) and len(value):
            out.write("[\n")
            buf = []
            last = len(value) - 1
            for j, text in enumerate(record_lines(value)):
                buf.append(f"{pad}{pad}{text}{',' if j < last else ''}\n")
                if len(buf) >= 1024:
                    out.write("".join(buf))
                    buf.clear()
            out.write("".join(buf) + f"{pad}]")
        elif key in _LINE_LISTS and not isinstance(value, (dict, str)):
            out.write("[]")                 # none (also an empty list of records kept on disk)
        else:
            out.write(dumps(value, indent=indent).replace("\n", "\n" + pad))
        out.write(",\n" if i < len(items) - 1 else "\n")
    out.write("}\n")


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


_CONN_PREFIX = '{"type":"connection",'


def summary_record(report: Report) -> dict:
    return {"type": "summary", "schema_version": SCHEMA_VERSION,
            "tool": {"name": "tcpanalyze", "version": __version__}, **report.summary}


def write_jsonl_file(report: Report, out: IO[str]) -> None:
    buf = []
    # a connection line is its record's compact text with the type first (the same bytes
    # as dumps({"type": "connection", **rec}), without decoding records spilled to disk)
    for text in record_lines(report.connections):
        buf.append(_CONN_PREFIX + text[1:] if len(text) > 2 else '{"type":"connection"}')
        if len(buf) >= 1024:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    for rec in _other_records(report):
        buf.append(dumps(rec))
        if len(buf) >= 1024:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")


def write_jsonl(report: Report, out: IO[str]) -> None:
    """All records of a (possibly merged) report, then the summary record."""
    write_jsonl_file(report, out)
    out.write(dumps(summary_record(report)) + "\n")
