"""Parquet files of packets and connections (``--format parquet``; needs ``pyarrow``).

Columns are typed from the record classes of ``tcpanalyze.api``: ``int`` fields are int64,
``float`` float64, ``str`` string, ``bool`` boolean, tuples lists and nested records
structs.  A connection's ``orig`` and ``resp`` are structs (``orig.retransmissions``,
``orig.rtt.avg`` in DuckDB), as in its JSON record: flattened, ``orig.bytes`` would collide
with the top-level ``orig_bytes``.  Packets have no ``reasons`` column (``packets
--format jsonl`` gives them).  Rows are written in row groups of ``row_group_size`` as
they come (converted to Arrow a few thousand rows at a time), so memory stays bounded
whatever the capture's size.

pyarrow is imported when a file is written, never by ``import tcpanalyze``.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from itertools import islice
from operator import attrgetter
from typing import Any, Iterable, Iterator, Union

from tcpanalyze.api import Connection, Packet
from tcpanalyze.errors import OutputError, TcpAnalyzeError

#: rows per row group
K_PACKET_ROWS = 65_536
K_CONNECTION_ROWS = 8_192
#: packets turned from Python objects into Arrow arrays at a time (connections: an eighth)
K_BATCH_ROWS = 8_192

INSTALL_HINT = "pip install 'tcpanalyze[parquet]'"

#: Packet fields written (all but the per-flag reasons)
PACKET_COLUMNS = tuple(f.name for f in dataclasses.fields(Packet) if f.name != "reasons")


class ParquetUnavailable(TcpAnalyzeError, ImportError):
    """pyarrow is not installed."""


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the writer lives in the submodule
    except ImportError:
        raise ParquetUnavailable(f"Parquet output needs pyarrow: {INSTALL_HINT}") from None
    return pyarrow


def _arrow_type(pa: Any, t: Any) -> Any:
    """The Arrow type of a record field's (evaluated) annotation."""
    origin = typing.get_origin(t)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(t) if a is not type(None)]
        return _arrow_type(pa, inner[0])
    if origin is tuple:
        return pa.list_(_arrow_type(pa, typing.get_args(t)[0]))
    if origin is dict:
        k, v = typing.get_args(t)
        return pa.map_(_arrow_type(pa, k), _arrow_type(pa, v))
    if dataclasses.is_dataclass(t):
        return pa.struct(_fields(pa, t))
    return {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}[t]


def _fields(pa: Any, cls: type, only: Iterable[str] | None = None) -> list[Any]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)] if only is None else list(only)
    return [pa.field(n, _arrow_type(pa, hints[n])) for n in names]


def packet_schema() -> Any:
    pa = require_pyarrow()
    return pa.schema(_fields(pa, Packet, PACKET_COLUMNS))


def connection_schema() -> Any:
    """Every field of a flows record (the report-only ones, ``file`` to ``score``, are left out)."""
    pa = require_pyarrow()
    names = [f.name for f in dataclasses.fields(Connection) if f.name not in ("file", "findings", "severity", "score")]
    return pa.schema(_fields(pa, Connection, names))


def write_packets(records: Iterable[Packet], path: str | os.PathLike[str],
                  row_group_size: int = K_PACKET_ROWS) -> int:
    """Write packets to a Parquet file; returns the number of rows."""
    pa = require_pyarrow()
    schema = packet_schema()
    row = attrgetter(*PACKET_COLUMNS)
    it = iter(records)

    def batches() -> Iterator[Any]:
        while True:
            rows = [row(p) for p in islice(it, min(K_BATCH_ROWS, row_group_size))]
            if not rows:
                return
            yield pa.record_batch([list(c) for c in zip(*rows)], schema=schema)

    return _write(pa, path, schema, batches(), row_group_size)


def write_connections(records: Iterable[Connection], path: str | os.PathLike[str],
                      row_group_size: int = K_CONNECTION_ROWS) -> int:
    """Write connection records to a Parquet file; returns the number of rows."""
    pa = require_pyarrow()
    schema = connection_schema()
    it = iter(records)

    def batches() -> Iterator[Any]:
        while True:
            rows = [c.to_dict() for c in islice(it, min(K_BATCH_ROWS // 8, row_group_size))]
            if not rows:
                return
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return _write(pa, path, schema, batches(), row_group_size)


def _write(pa: Any, path: str | os.PathLike[str], schema: Any, batches: Iterator[Any], row_group_size: int) -> int:
    """Gather small Arrow batches (the Python objects of a few thousand rows at a time) into
    row groups of ``row_group_size`` rows, each written as soon as it is full.  A failing
    write is ``OutputError``; errors reading the input (while ``batches`` runs) pass as they are."""
    n = 0
    pending: list[Any] = []
    size = 0
    name = os.fspath(path)
    try:
        w = pa.parquet.ParquetWriter(name, schema, compression="zstd")
    except OSError as e:
        raise OutputError.from_oserror(name, e) from None
    try:
        for b in batches:
            pending.append(b)
            size += b.num_rows
            if size >= row_group_size:
                _put(w, name, pa.Table.from_batches(pending, schema), row_group_size)
                n += size
                pending, size = [], 0
        if pending:
            _put(w, name, pa.Table.from_batches(pending, schema), row_group_size)
            n += size
    finally:
        try:
            w.close()
        except OSError as e:
            raise OutputError.from_oserror(name, e) from None
    return n


def _put(w: Any, name: str, table: Any, row_group_size: int) -> None:
    try:
        w.write_table(table, row_group_size=row_group_size)
    except OSError as e:
        raise OutputError.from_oserror(name, e) from None
