"""Anomaly detectors: connections and analyzer counters in, findings out (sans-IO).

Theory of operation
-------------------
The engine keeps counters per connection (``Conn``/``Flow``) and per capture
(``Analyzer``).  Detectors read them at two moments:

* per-connection detectors (``base.conn_detector``) run when a connection is finalized
  (``conn_findings``, from the ``Analyzer``'s ``on_conn_done`` callback), so the connection's
  per-segment state can be dropped right after; they also add the connection to the
  aggregate ``Tallies`` (SYN floods, RSTs per server port, server-side closes, handshake
  RTTs, capture-quality counters);
* aggregate detectors (``base.aggregate_detector``) run once at the end of the input
  (``aggregate_findings``) on the tallies and the ``CaptureFacts`` (time bounds, the
  TIME_WAIT table, capture-wide counters): TIME_WAIT build-up per host, SYN floods,
  handshake-RTT outliers, capture quality.

Evidence frames of per-packet verdicts (which retransmission, which out-of-order segment)
are not kept by the engine; ``Detectors.on_segment`` (the pipeline's per-segment callback)
records the first few of them in ``conn.events``.  It returns after one test for the
ordinary segment (an ACK without SYN/FIN/RST and no analysis flag), and it is the place
where segments with invalid flag combinations (SYN+FIN, SYN+RST, no flags, Xmas) are
counted: the engine's ``_control`` only sees SYN/FIN/RST segments.

Each module of this package holds one family of detectors and declares its finding kinds
(``base.declare_kind``: name, subkinds, description, severity, message renderer); every
module here is imported below, so a new detector module registers itself.  A finding
carries the values its rule rests on, and its message is rendered from them.  Findings the
capture itself causes (missed segments, truncation, TSO/GRO super-segments, clock steps)
carry ``cause = "capture"`` instead of blaming the network.  Thresholds are the named
``K_*`` defaults of ``base``, gathered in ``Thresholds``; the CLI overrides them.  No I/O,
no printing, no rich/click here.
"""
from __future__ import annotations

import importlib
import pkgutil

from tcpanalyze.findings.base import *  # noqa: F401,F403 - the shared names are the package's API
from tcpanalyze.findings.base import __all__ as _base_all
from tcpanalyze.findings.driver import Detectors, aggregate_findings, conn_findings
from tcpanalyze.findings.flags import INVALID_FLAG_NAMES, invalid_flag_kinds
from tcpanalyze.findings.timewait import time_wait_profile

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = list(_base_all) + ["Detectors", "conn_findings", "aggregate_findings", "time_wait_profile",
                             "invalid_flag_kinds", "INVALID_FLAG_NAMES"]
