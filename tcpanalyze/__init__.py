"""tcpanalyze: turn packet captures into answers about TCP.

The core (decode, engine, state, analysis) is sans-IO; sources read captures, reporters
render the Report, and the CLI wires them together.
"""
from . import _loader  # noqa: F401  - extension modules load only while they match their sources

__version__ = "0.1.0"

__all__ = ["__version__"]
