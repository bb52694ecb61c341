"""JSON and JSON Lines writers for a Report (no printing of their own: they write to ``out``).

``--json``: one document, ``Report.to_dict()`` (see ``report.model.JSON_SCHEMA``).
``--jsonl``: one record per line, each with a ``type``:
  ``connection`` (a connection summary record), then ``finding`` records, for each file in
  turn; then ``file`` (the file's RunStats and per-file summary); and last one ``summary``
  record (the total over all files, with ``schema_version``).
"""
from __future__ import annotations

import json
from typing import IO, Iterator

from tcpanalyze.report.model import SCHEMA_VERSION, Report


def dumps(obj, indent: int | None = None) -> str:
    if indent is None:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)


def write_json(report: Report, out: IO[str], indent: int | None = 2) -> None:
    # json.dump streams the document in chunks instead of building one big string.
    if indent is None:
        json.dump(report.to_dict(), out, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    else:
        json.dump(report.to_dict(), out, indent=indent, ensure_ascii=False, allow_nan=False)
    out.write("\n")


def file_records(report: Report) -> Iterator[dict]:
    """The streamable part of one file's report: connections, findings, then the file record."""
    for c in report.connections:
        yield {"type": "connection", **c}
    for f in report.findings:
        yield {"type": "finding", **f}
    for f in report.files:
        yield {"type": "file", **f}


def summary_record(report: Report) -> dict:
    from tcpanalyze import __version__

    return {"type": "summary", "schema_version": SCHEMA_VERSION,
            "tool": {"name": "tcpanalyze", "version": __version__}, **report.summary}


def write_jsonl_file(report: Report, out: IO[str]) -> None:
    buf = []
    for rec in file_records(report):
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
