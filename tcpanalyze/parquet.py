"""Parquet files of packets and connections (``--format parquet``; needs ``pyarrow``).

Columns are typed from the record classes of ``tcpanalyze.api``: ``int`` fields are int64,
``float`` float64, ``str`` string, ``bool`` boolean, tuples lists and nested records
structs.  A connection's ``orig`` and ``resp`` are structs (``orig.retransmissions``,
``orig.rtt.avg`` in DuckDB), as in its JSON record: flattened, ``orig.bytes`` would collide
with the top-level ``orig_bytes``.  Packets have no ``reasons`` column (``packets
--format jsonl`` gives them).  Rows are written in row groups of ``row_group_size`` as
they come, so memory stays bounded whatever the capture's size.

pyarrow is imported when a file is written, never by ``import tcpanalyze``.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from itertools import islice
from operator import attrgetter
from typing import Any, Iterable, Union

from tcpanalyze.api import Connection, Packet
from tcpanalyze.errors import TcpAnalyzeError

#: rows per row group (and per batch held in memory)
K_PACKET_ROWS = 131_072
K_CONNECTION_ROWS = 16_384

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
    n = 0
    it = iter(records)
    with pa.parquet.ParquetWriter(os.fspath(path), schema, compression="zstd") as w:
        while True:
            block = [row(p) for p in islice(it, row_group_size)]
            if not block:
                break
            cols = [list(c) for c in zip(*block)]
            w.write_batch(pa.record_batch(cols, schema=schema), row_group_size=row_group_size)
            n += len(block)
    return n


def write_connections(records: Iterable[Connection], path: str | os.PathLike[str],
                      row_group_size: int = K_CONNECTION_ROWS) -> int:
    """Write connection records to a Parquet file; returns the number of rows."""
    pa = require_pyarrow()
    schema = connection_schema()
    n = 0
    it = iter(records)
    with pa.parquet.ParquetWriter(os.fspath(path), schema, compression="zstd") as w:
        while True:
            block = [c.to_dict() for c in islice(it, row_group_size)]
            if not block:
                break
            w.write_batch(pa.RecordBatch.from_pylist(block, schema=schema), row_group_size=row_group_size)
            n += len(block)
    return n
