"""tcpanalyze: turn packet captures into answers about TCP.

The core (decode, engine, state, analysis) is sans-IO; sources read captures, the session
runs an analysis, reporters render the Report, and the CLI wires them together.  The
Python API (``analyze``, ``packets``, ``connections`` and their record types) is documented
in docs/api.md.  Its names are loaded on first use, so ``import tcpanalyze`` (and the CLI's
start) costs next to nothing until one of them is touched.
"""
from __future__ import annotations

from . import _loader  # noqa: F401  - extension modules load only while they match their sources

import importlib
from typing import TYPE_CHECKING, Any

from tcpanalyze._version import __version__

if TYPE_CHECKING:
    from tcpanalyze.api import (Connection, ConnectionStream, EndpointSummary, Finding, Packet, PacketStream, Report,
                                RttSummary, TimeWait, Unexpected, ZeekRecord, analyze, connections, packets)
    from tcpanalyze.errors import DecodeError, SourceError, TcpAnalyzeError

__all__ = ["__version__", "analyze", "packets", "connections", "Report", "Connection", "EndpointSummary",
           "RttSummary", "Unexpected", "ZeekRecord", "TimeWait", "Finding", "Packet", "PacketStream",
           "ConnectionStream", "TcpAnalyzeError", "SourceError", "DecodeError"]

#: public name -> the module that defines it
_WHERE = {name: "tcpanalyze.errors" if name.endswith("Error") else "tcpanalyze.api"
          for name in __all__ if name != "__version__"}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'tcpanalyze' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
