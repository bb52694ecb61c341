"""The JSON contract of ``tcpanalyze analyze --json``: ``SCHEMA_VERSION``, ``JSON_SCHEMA`` and a
small validator for the subset of JSON Schema it uses.

``SCHEMA_VERSION`` changes when a key changes meaning or goes away (adding keys does not
change it).  The README ("JSON contract") describes the same document in words.
"""
from __future__ import annotations

from tcpanalyze.diagnosis import LIMITS, STATES
from tcpanalyze.findings import SEVERITIES, finding_kinds

SCHEMA_VERSION = 1


# ---------------------------------------------------------------------------- JSON schema
_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_OPT_NUM = {"type": ["number", "null"]}
_OPT_STR = {"type": ["string", "null"]}
_OPT_INT = {"type": ["integer", "null"]}
_COUNTS = {"type": "object", "additionalProperties": _INT}
_SEV = {"enum": list(SEVERITIES)}

JSON_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tcpanalyze analyze --json",
    "type": "object",
    "required": ["schema_version", "tool", "files", "summary", "connections", "findings"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "tool": {"type": "object", "required": ["name", "version"],
                 "properties": {"name": {"enum": ["tcpanalyze"]}, "version": _STR}},
        "files": {"type": "array", "items": {"$ref": "#/$defs/file"}},
        "summary": {"$ref": "#/$defs/summary"},
        "connections": {"type": "array", "items": {"$ref": "#/$defs/connection"}},
        "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
    },
    "$defs": {
        "file": {
            "type": "object",
            "required": ["source", "format", "linktypes", "frames", "tcp_segments", "skipped", "decode_errors",
                         "damage", "warnings", "error", "summary"],
            "properties": {
                "source": _STR, "format": _STR, "linktypes": {"type": "array", "items": {"type": "integer"}},
                "frames": _INT, "tcp_segments": _INT, "skipped": _COUNTS, "decode_errors": _COUNTS,
                "decode_error_examples": {"type": "object"}, "unsupported_linktypes": _COUNTS,
                "ip_fragments": _COUNTS, "tcp_checksums": _COUNTS,
                "damage": {"type": ["object", "null"]},
                "warnings": {"type": "array", "items": _STR},
                "error": _OPT_STR,
                "summary": {"$ref": "#/$defs/summary"},
            },
        },
        "summary": {
            "type": "object",
            "required": ["files", "files_failed", "packets", "tcp_segments", "late_packets", "connections", "connections_reported",
                         "bytes", "start", "end", "duration", "conn_states", "findings", "worst_severity",
                         "time_wait", "capture_quality", "thresholds"],
            "additionalProperties": False,
            "properties": {
                "files": _INT, "files_failed": _INT, "packets": _INT, "tcp_segments": _INT, "late_packets": _INT,
                "connections": _INT,
                "connections_reported": _INT, "connections_with_findings": _INT, "bytes": _INT, "start": _OPT_NUM, "end": _OPT_NUM,
                "duration": _NUM, "conn_states": _COUNTS,
                "findings": {
                    "type": "object", "required": ["total", "reported", "by_severity", "by_kind"],
                    "additionalProperties": False,
                    "properties": {
                        "total": _INT, "reported": _INT,
                        "by_severity": {"type": "object", "required": list(SEVERITIES),
                                        "additionalProperties": False,
                                        "properties": {s: _INT for s in SEVERITIES}},
                        "by_kind": {"type": "object", "additionalProperties": {
                            "type": "object", "required": ["total", "reported", "info", "warning", "error"],
                            "additionalProperties": False,
                            "properties": {k: _INT for k in ("total", "reported", "info", "warning", "error")}}},
                        "by_subkind": {"type": "object", "additionalProperties": {
                            "type": "object", "required": ["total", "info", "warning", "error"],
                            "additionalProperties": False,
                            "properties": {k: _INT for k in ("total", "info", "warning", "error")}}},
                    },
                },
                "worst_severity": {"enum": list(SEVERITIES) + [None]},
                "time_wait": {
                    "type": "object", "required": ["msl_s", "length_s", "system", "hosts"],
                    "properties": {
                        "msl_s": _NUM, "length_s": _NUM, "system": _OPT_STR,
                        "hosts": {"type": "array", "items": {
                            "type": "object",
                            "required": ["host", "peak", "peak_time", "at_end", "total", "series", "ports"],
                            "properties": {
                                "host": _STR, "peak": _INT, "peak_time": _OPT_NUM, "at_end": _INT, "total": _INT,
                                "series": {"type": "array", "items": _INT}, "file": _STR,
                                "ports": {"type": "array", "items": {
                                    "type": "object", "required": ["port", "peak", "at_end", "total"],
                                    "properties": {"port": _INT, "peak": _INT, "at_end": _INT, "total": _INT}}},
                            }}},
                    },
                },
                "capture_quality": {"type": "object", "additionalProperties": _INT},
                "thresholds": {"type": "object", "additionalProperties": _NUM},
            },
        },
        "connection": {
            "type": "object",
            "required": ["stream", "orig_h", "orig_p", "resp_h", "resp_p", "orig_state", "resp_state", "conn_state",
                         "history", "start", "end", "duration", "file", "findings", "severity", "score"],
            "properties": {
                "stream": _INT, "orig_h": _STR, "orig_p": _INT, "resp_h": _STR, "resp_p": _INT,
                "orig_state": _STR, "resp_state": _STR, "conn_state": _STR, "history": _STR,
                "orig_pkts": _INT, "resp_pkts": _INT, "orig_bytes": _INT, "resp_bytes": _INT,
                "start": _NUM, "end": _NUM, "duration": _NUM, "file": _STR,
                "findings": {"type": "array", "items": _STR}, "severity": {"enum": list(SEVERITIES) + [None]},
                "score": _INT, "orig": {"$ref": "#/$defs/side"}, "resp": {"$ref": "#/$defs/side"},
                "server_think": {"$ref": "#/$defs/think"}, "client_think": {"$ref": "#/$defs/think"},
            },
        },
        # what one endpoint sent and what limited it (docs/diagnosis.md)
        "side": {
            "type": "object",
            "required": ["data_bytes", "transfer_s", "throughput_bps", "goodput_bps", "rtt_min_ms", "rtt_avg_ms",
                         "rtt_max_ms", "time", "rto_waits", "limited_by", "limited_by_reason"],
            "properties": {
                "data_bytes": _INT, "transfer_s": _OPT_NUM, "throughput_bps": _OPT_NUM, "goodput_bps": _OPT_NUM,
                "rtt_min_ms": _OPT_NUM, "rtt_avg_ms": _OPT_NUM, "rtt_max_ms": _OPT_NUM,
                "time": {"type": ["object", "null"], "additionalProperties": False,
                         "required": list(STATES), "properties": {k: _NUM for k in STATES}},
                "rto_waits": {"type": "array", "items": {
                    "type": "object", "required": ["frame", "start", "wait_s", "backoff"],
                    "properties": {"frame": _INT, "start": _NUM, "wait_s": _NUM, "backoff": _OPT_NUM}}},
                "limited_by": {"enum": list(LIMITS) + [None]}, "limited_by_reason": _OPT_STR,
            },
        },
        "think": {
            "type": ["object", "null"], "required": ["exchanges", "min_ms", "avg_ms", "max_ms"],
            "properties": {"exchanges": _INT, "min_ms": _NUM, "avg_ms": _NUM, "max_ms": _NUM},
        },
        "finding": {
            "type": "object",
            "required": ["kind", "subkind", "severity", "stream", "host", "port", "frames", "time", "message", "data",
                         "cause", "file"],
            "additionalProperties": False,
            "properties": {
                "kind": {"enum": list(finding_kinds())},
                "subkind": _OPT_STR, "severity": _SEV, "stream": _OPT_INT, "host": _OPT_STR, "port": _OPT_INT,
                "frames": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "time": _OPT_NUM, "message": _STR, "data": {"type": "object"},
                "cause": {"enum": ["capture", "network", None]}, "file": _STR,
            },
        },
    },
}

#: JSON Lines records (``--jsonl``): one per line, each with a ``type``.
JSONL_TYPES = ("connection", "finding", "file", "summary")

