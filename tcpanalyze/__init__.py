"""tcpanalyze: turn packet captures into answers about TCP.

The core (decode, engine, state, analysis) is sans-IO; sources read captures, reporters
render the Report, and the CLI wires them together.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
