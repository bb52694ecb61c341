"""tcpanalyze: turn packet captures into answers about TCP.

The core (decode, engine, state, analysis) is sans-IO; sources read captures, reporters
render the Report, and the CLI wires them together.
"""
from tcpanalyze._version import __version__

__all__ = ["__version__"]
