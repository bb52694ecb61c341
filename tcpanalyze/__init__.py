"""tcpanalyze: turn packet captures into answers about TCP.

The core (decode, engine, state, analysis) is sans-IO; sources read captures, the session
runs an analysis, reporters render the Report, and the CLI wires them together.  The
Python API (``analyze``, ``packets``, ``connections``) is documented in docs/api.md.
"""
from tcpanalyze._version import __version__
from tcpanalyze.api import (Connection, ConnectionStream, EndpointSummary, Finding, Packet, PacketStream, Report,
                            RttSummary, TimeWait, Unexpected, ZeekRecord, analyze, connections, packets)
from tcpanalyze.errors import DecodeError, SourceError, TcpAnalyzeError

__all__ = ["__version__", "analyze", "packets", "connections", "Report", "Connection", "EndpointSummary",
           "RttSummary", "Unexpected", "ZeekRecord", "TimeWait", "Finding", "Packet", "PacketStream",
           "ConnectionStream", "TcpAnalyzeError", "SourceError", "DecodeError"]
