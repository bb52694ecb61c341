"""CI policy for ``tcpanalyze check``: load and validate a policy, evaluate it against reports (sans-IO).

A policy is a TOML document (``examples/policy.toml``, ``docs/check.md``)::

    max_rst = 0                                   # or { total = 3, per_port = 1 }
    forbid = ["zero_window", "window_shrink"]     # finding kinds (or kind/subkind) that must not appear
    max_retransmission_rate = 1.0                 # percent of data segments
    max_time_wait = 100                           # peak per host
    max_handshake_rtt_ms = { p95 = 50, max = 200 }   # or a number: the maximum
    max_zero_window_ms = 500                      # longest zero-window episode
    require_complete = true                       # every connection opened and closed cleanly
    allow_server_active_close = false
    min_connections = 1
    max_connections = 10000

    [[rule]]                                      # more rules for a part of the traffic
    name = "api"
    port = 8080                                   # host, port, stream and file select it
    max_rst = 0

    [baseline]                                    # "no worse than" an ``analyze --json`` document
    file = "baseline.json"
    retransmission_rate = 0.5                     # tolerances, in each metric's unit

Top-level rules apply to every connection of every file; each ``[[rule]]`` table *adds* rules
for the connections (and findings) it selects; it never relaxes the top-level ones.

Everything here works on plain data: a ``Report`` (or its ``to_dict()``, or a document written by
``analyze --json``) in, ``RuleResult`` objects out.  ``parse_policy(text)`` is pure;
``load_policy(path)`` only reads the file.  Errors are ``PolicyError`` naming the key and the
line (found by scanning the TOML text for the key; tomllib gives no positions).
"""
from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field, fields, replace

from tcpanalyze import findings as _findings
from tcpanalyze.engine import K_MSL_S
from tcpanalyze.model import endpoint_str
from tcpanalyze.findings import time_wait_profile
from tcpanalyze.schema import SCHEMA_VERSION

# ---------------------------------------------------------------------------- statuses, exit codes
PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INPUT = 0, 1, 2, 3

#: keys of a rule set (top level and ``[[rule]]``)
RULE_KEYS = ("max_rst", "forbid", "max_retransmission_rate", "max_time_wait", "max_handshake_rtt_ms",
             "max_zero_window_ms", "require_complete", "allow_server_active_close", "min_connections",
             "max_connections")
#: keys that select what a ``[[rule]]`` applies to
SCOPE_KEYS = ("name", "host", "port", "stream", "file")
#: baseline metrics, their default tolerance and unit
BASELINE_METRICS = {
    "retransmission_rate": (0.5, "percentage points"),
    "rst": (0, "reset connections"),
    "time_wait": (0, "connections in TIME_WAIT (peak per host)"),
    "handshake_rtt_p95_ms": (5.0, "ms"),
    "zero_window_ms": (100.0, "ms"),
    "warnings": (0, "findings of severity warning or error"),
}
BASELINE_KEYS = ("file",) + tuple(BASELINE_METRICS)
TOP_KEYS = RULE_KEYS + ("rule", "baseline")

#: subkinds of the finding kinds that have them (``forbid = ["rst/refused"]``), from the registry
SUBKINDS = _findings.subkinds()


def finding_kinds() -> tuple[str, ...]:
    """The finding kinds (the registry's, as in the report's JSON schema)."""
    return _findings.finding_kinds()


# ---------------------------------------------------------------------------- errors
class PolicyError(ValueError):
    """A policy (or option, or baseline) that cannot be used: exit code 2.

    ``source`` is the policy file, ``line`` the 1-based line of ``key`` in it (None when unknown).
    """

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key
        self.line = line
        self.source = source

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        return where + self.message


class _Bad(Exception):
    """A bad value; the caller adds the key and line."""


# ---------------------------------------------------------------------------- the policy
@dataclass
class Rules:
    """One rule set: ``None`` (or the default) means the rule is not applied."""

    max_rst: int | None = None
    max_rst_per_port: int | None = None
    forbid: tuple = ()
    max_retransmission_rate: float | None = None      # percent
    max_time_wait: int | None = None
    max_handshake_rtt_ms: float | None = None         # the largest handshake RTT
    max_handshake_rtt_p95_ms: float | None = None
    max_zero_window_ms: float | None = None
    require_complete: bool = False
    allow_server_active_close: bool = True
    min_connections: int | None = None
    max_connections: int | None = None

    def empty(self) -> bool:
        return self == Rules()

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v != f.default:
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass
class Scope:
    """What a ``[[rule]]`` selects.  A connection is selected when one of its endpoints matches
    ``host`` (an address or a network) and ``port`` (both on the same endpoint when both are
    given), its stream number is in ``stream``, and the file matches ``file`` (glob, on the path
    as given or its base name); a missing selector matches everything."""

    name: str
    hosts: tuple = ()         # ip_network objects
    ports: tuple = ()
    streams: tuple = ()
    files: tuple = ()
    text: dict = field(default_factory=dict)   # the selectors as written

    @property
    def selects_connections(self) -> bool:
        return bool(self.hosts or self.ports or self.streams)

    def matches_file(self, path: str) -> bool:
        if not self.files:
            return True
        base = os.path.basename(path)
        return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(base, p) for p in self.files)

    def _endpoint(self, host: str | None, port: int | None) -> bool:
        if self.hosts:
            ip = _ip(host)
            if ip is None or not any(ip.version == n.version and ip in n for n in self.hosts):
                return False
        if self.ports and port not in self.ports:
            return False
        return True

    def matches_conn(self, c: dict) -> bool:
        if self.streams and c.get("stream") not in self.streams:
            return False
        if self.hosts or self.ports:
            return (self._endpoint(c.get("orig_h"), c.get("orig_p"))
                    or self._endpoint(c.get("resp_h"), c.get("resp_p")))
        return True

    def matches_finding(self, f: dict, streams: set) -> bool:
        """A connection's finding by its stream; an aggregate one (host, port) by its host and port."""
        if f.get("stream") is not None:
            return f["stream"] in streams
        if f.get("host") is None or self.streams:
            return not self.selects_connections        # capture-wide: only for a file-only scope
        if self.hosts:
            ip = _ip(f["host"])
            if ip is None or not any(ip.version == n.version and ip in n for n in self.hosts):
                return False
        if self.ports and f.get("port") not in self.ports:
            return False
        return True

    def to_dict(self) -> dict:
        return dict(self.text)


@dataclass
class Policy:
    rules: Rules = field(default_factory=Rules)
    scoped: list = field(default_factory=list)        # [(Scope, Rules)]
    baseline: str | None = None                        # path of an ``analyze --json`` document
    tolerance: dict = field(default_factory=lambda: {k: v[0] for k, v in BASELINE_METRICS.items()})
    source: str | None = None

    def empty(self) -> bool:
        return self.rules.empty() and not self.scoped and self.baseline is None

    def to_dict(self) -> dict:
        return {"source": self.source, "rules": self.rules.to_dict(),
                "scoped": [{"scope": s.to_dict(), "rules": r.to_dict()} for s, r in self.scoped],
                "baseline": (None if self.baseline is None
                             else {"file": self.baseline, "tolerance": dict(self.tolerance)})}

    def with_overrides(self, **opts) -> "Policy":
        """Top-level rules replaced by the options that are not None (command-line options)."""
        kw = {k: v for k, v in opts.items() if v is not None}
        bad = set(kw) - {f.name for f in fields(Rules)}
        if bad:
            raise TypeError(f"unknown rule option(s): {sorted(bad)}")
        if "forbid" in kw:
            kinds = []
            for item in kw["forbid"]:
                kinds.extend(x.strip() for x in str(item).split(",") if x.strip())
            for k in kinds:
                try:
                    _check_kind(k)
                except _Bad as e:
                    raise PolicyError(f"--forbid: {e}", key="forbid") from None
            kw["forbid"] = tuple(dict.fromkeys(kinds))
        rules = replace(self.rules, **kw)
        if (rules.min_connections is not None and rules.max_connections is not None
                and rules.min_connections > rules.max_connections):
            raise PolicyError(f"min_connections ({rules.min_connections}) > max_connections ({rules.max_connections})",
                              key="min_connections")
        return replace(self, rules=rules)


# ---------------------------------------------------------------------------- loading
def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:      # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise PolicyError("reading a policy file needs Python 3.11 or the 'tomli' package "
                              "(pip install tomli)") from None
    return tomllib


def load_policy(path: str) -> Policy:
    """Read and validate a policy file (``PolicyError`` for anything wrong, with file and line)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise PolicyError(f"cannot read policy: {e.strerror or e}", source=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(f"policy is not UTF-8 text (byte {e.start})", source=path) from None
    pol = parse_policy(text, source=path)
    if pol.baseline is not None and not os.path.isabs(pol.baseline):
        # relative to the policy file, like an include
        pol.baseline = os.path.normpath(os.path.join(os.path.dirname(path) or ".", pol.baseline))
    return pol


_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse_policy(text: str, source: str | None = None) -> Policy:
    tomllib = _toml()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _AT.search(msg)
        line = int(m.group(1)) if m else None
        if m:
            msg = msg[:m.start()] + f" (column {m.group(2)})"
        raise PolicyError(f"invalid TOML: {msg}", line=line, source=source) from None
    return _build(doc, text, source)


def _err(text: str, source, path: list, message: str, needle: str | None = None) -> PolicyError:
    key = ".".join(str(p) if not isinstance(p, int) else f"[{p + 1}]" for p in path).replace(".[", "[")
    if len(path) > 2 and path[0] == "rule" and isinstance(path[1], int) and "[[rule]]" not in message:
        message = f"[[rule]] #{path[1] + 1}: {message}"
    return PolicyError(message, key=key, line=locate(text, path, needle), source=source)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _build(doc: dict, text: str, source) -> Policy:
    for k in doc:
        if k not in TOP_KEYS:
            hint = _suggest(k, TOP_KEYS + SCOPE_KEYS)
            if k in SCOPE_KEYS:
                hint = f" ('{k}' selects connections only inside a [[rule]] table)"
            raise _err(text, source, [k], f"unknown key '{k}'{hint}; known keys: {', '.join(TOP_KEYS)}")
    rules = _rules(doc, text, source, [])
    scoped = []
    tables = doc.get("rule", [])
    if isinstance(tables, dict):
        tables = [tables]
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise _err(text, source, ["rule"], "'rule' must be an array of tables: write [[rule]] headers")
    for i, t in enumerate(tables):
        pre = ["rule", i]
        for k in t:
            if k not in RULE_KEYS and k not in SCOPE_KEYS:
                raise _err(text, source, pre + [k], f"unknown key '{k}' in [[rule]] #{i + 1}"
                           + _suggest(k, RULE_KEYS + SCOPE_KEYS))
        scope = _scope(t, text, source, pre, i)
        r = _rules(t, text, source, pre)
        if r.empty():
            raise _err(text, source, pre + ["name" if "name" in t else next(iter(t), "rule")],
                       f"[[rule]] #{i + 1} ({scope.name}) sets no rule; give at least one of {', '.join(RULE_KEYS)}")
        scoped.append((scope, r))
    pol = Policy(rules=rules, scoped=scoped, source=source)
    if "baseline" in doc:
        b = doc["baseline"]
        if not isinstance(b, dict):
            raise _err(text, source, ["baseline"], "'baseline' must be a table: [baseline]")
        for k, v in b.items():
            p = ["baseline", k]
            if k not in BASELINE_KEYS:
                raise _err(text, source, p, f"unknown key '{k}' in [baseline]" + _suggest(k, BASELINE_KEYS)
                           + f"; known keys: {', '.join(BASELINE_KEYS)}")
            if k == "file":
                if not isinstance(v, str) or not v:
                    raise _err(text, source, p, "baseline.file must be a path (a string)")
                pol.baseline = v
            else:
                try:
                    pol.tolerance[k] = _tolerance(v)
                except _Bad as e:
                    raise _err(text, source, p, f"baseline.{k}: {e}") from None
    return pol


def _tolerance(v):
    if v is False:
        return None                 # this metric is not compared
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise _Bad(f"expected a number >= 0 (or false to not compare it), got {_show(v)}")
    return v


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return str(v)


def _int(v, what="an integer >= 0"):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _Bad(f"expected {what}, got {_show(v)}")
    return v


def _num(v, hi=None, what="a number >= 0"):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (
            hi is not None and v > hi):
        raise _Bad(f"expected {what}, got {_show(v)}")
    return float(v)


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad(f"expected true or false, got {_show(v)}")
    return v


def _check_kind(k) -> str:
    if not isinstance(k, str) or not k:
        raise _Bad(f"expected a finding kind (a string), got {_show(k)}")
    kinds = finding_kinds()
    kind, _, sub = k.partition("/")
    if kind not in kinds:
        raise _Bad(f"unknown finding kind '{k}'" + _suggest(kind, kinds) + f"; kinds: {', '.join(kinds)}")
    if sub:
        subs = SUBKINDS.get(kind, ())
        if sub not in subs:
            raise _Bad(f"unknown subkind '{sub}' of {kind}" + _suggest(sub, subs)
                       + (f"; subkinds: {', '.join(subs)}" if subs else f"; {kind} has no subkinds"))
    return k


def _rules(t: dict, text: str, source, pre: list) -> Rules:
    r = Rules()
    for k in RULE_KEYS:
        if k not in t:
            continue
        v = t[k]
        p = pre + [k]
        try:
            if k == "max_rst":
                if isinstance(v, dict):
                    for sk in v:
                        if sk not in ("total", "per_port"):
                            raise _err(text, source, p + [sk], f"unknown key '{sk}' in max_rst"
                                       + _suggest(sk, ("total", "per_port")) + "; known keys: total, per_port")
                    if not v:
                        raise _Bad("expected an integer or a table with total and/or per_port, got an empty table")
                    if "total" in v:
                        try:
                            r.max_rst = _int(v["total"])
                        except _Bad as e:
                            raise _err(text, source, p + ["total"], f"max_rst.total: {e}") from None
                    if "per_port" in v:
                        try:
                            r.max_rst_per_port = _int(v["per_port"])
                        except _Bad as e:
                            raise _err(text, source, p + ["per_port"], f"max_rst.per_port: {e}") from None
                else:
                    r.max_rst = _int(v, "an integer >= 0 or a table { total = N, per_port = N }")
            elif k == "forbid":
                items = [v] if isinstance(v, str) else v
                if not isinstance(items, list):
                    raise _Bad(f"expected an array of finding kinds, got {_show(v)}")
                for item in items:
                    try:
                        _check_kind(item)
                    except _Bad as e:
                        raise _err(text, source, p, f"forbid: {e}",
                                   needle=item if isinstance(item, str) else None) from None
                r.forbid = tuple(dict.fromkeys(items))
            elif k == "max_retransmission_rate":
                r.max_retransmission_rate = _num(v, 100.0, "a percentage between 0 and 100")
            elif k == "max_time_wait":
                r.max_time_wait = _int(v)
            elif k == "max_handshake_rtt_ms":
                if isinstance(v, dict):
                    for sk in v:
                        if sk not in ("p95", "max"):
                            raise _err(text, source, p + [sk], f"unknown key '{sk}' in max_handshake_rtt_ms"
                                       + _suggest(sk, ("p95", "max")) + "; known keys: p95, max")
                    if not v:
                        raise _Bad("expected a number or a table with p95 and/or max, got an empty table")
                    for sk, attr in (("p95", "max_handshake_rtt_p95_ms"), ("max", "max_handshake_rtt_ms")):
                        if sk in v:
                            try:
                                setattr(r, attr, _num(v[sk]))
                            except _Bad as e:
                                raise _err(text, source, p + [sk], f"max_handshake_rtt_ms.{sk}: {e}") from None
                else:
                    r.max_handshake_rtt_ms = _num(v, None, "a number of ms >= 0 or a table { p95 = MS, max = MS }")
            elif k == "max_zero_window_ms":
                r.max_zero_window_ms = _num(v)
            elif k == "require_complete":
                r.require_complete = _bool(v)
            elif k == "allow_server_active_close":
                r.allow_server_active_close = _bool(v)
            elif k in ("min_connections", "max_connections"):
                setattr(r, k, _int(v))
        except _Bad as e:
            raise _err(text, source, p, f"{k}: {e}") from None
    if r.min_connections is not None and r.max_connections is not None and r.min_connections > r.max_connections:
        raise _err(text, source, pre + ["min_connections"],
                   f"min_connections ({r.min_connections}) > max_connections ({r.max_connections})")
    return r


def _listify(v):
    return v if isinstance(v, list) else [v]


def _scope(t: dict, text: str, source, pre: list, i: int) -> Scope:
    written = {k: t[k] for k in SCOPE_KEYS if k in t}
    name = t.get("name", f"rule{i + 1}")
    if not isinstance(name, str) or not name or "/" in name:
        raise _err(text, source, pre + ["name"], f"name: expected a non-empty string without '/', got {_show(name)}")
    hosts, ports, streams, files = [], [], [], []
    for h in _listify(t.get("host", [])):
        try:
            if not isinstance(h, str):
                raise ValueError
            hosts.append(ipaddress.ip_network(h.strip("[]"), strict=False))
        except ValueError:
            raise _err(text, source, pre + ["host"], f"host: expected an IP address or network (\"10.0.0.2\", "
                       f"\"10.0.0.0/24\", \"fd00::1\"), got {_show(h)}",
                       needle=h if isinstance(h, str) else None) from None
    for pt in _listify(t.get("port", [])):
        if isinstance(pt, bool) or not isinstance(pt, int) or not 0 <= pt <= 65535:
            raise _err(text, source, pre + ["port"], f"port: expected a port number 0-65535, got {_show(pt)}")
        ports.append(pt)
    for s in _listify(t.get("stream", [])):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise _err(text, source, pre + ["stream"], f"stream: expected a stream number >= 0, got {_show(s)}")
        streams.append(s)
    for f in _listify(t.get("file", [])):
        if not isinstance(f, str) or not f:
            raise _err(text, source, pre + ["file"], f"file: expected a file name or glob, got {_show(f)}")
        files.append(f)
    if not (hosts or ports or streams or files):
        raise _err(text, source, pre + ["name" if "name" in t else next(iter(t), "rule")],
                   f"[[rule]] #{i + 1} ({name}) selects nothing: give host, port, stream and/or file "
                   f"(top-level keys apply to everything)")
    return Scope(name=name, hosts=tuple(hosts), ports=tuple(ports), streams=tuple(streams), files=tuple(files),
                 text=written)


def parse_tolerances(items, base: dict | None = None) -> dict:
    """``--tolerance METRIC=VALUE`` items on top of ``base`` (VALUE ``off`` stops comparing it)."""
    out = dict(base if base is not None else {k: v[0] for k, v in BASELINE_METRICS.items()})
    for item in items:
        name, eq, val = str(item).partition("=")
        name = name.strip()
        if not eq or name not in BASELINE_METRICS:
            raise PolicyError(f"--tolerance {item!r}: expected METRIC=VALUE with METRIC one of "
                              f"{', '.join(BASELINE_METRICS)}" + _suggest(name, BASELINE_METRICS), key="tolerance")
        val = val.strip()
        if val.lower() in ("off", "false", "none"):
            out[name] = None
            continue
        try:
            x = float(val)
            if not math.isfinite(x) or x < 0:
                raise ValueError
        except ValueError:
            raise PolicyError(f"--tolerance {item!r}: expected a number >= 0 or 'off'", key="tolerance") from None
        out[name] = x
    return out


# ---------------------------------------------------------------------------- locating keys in the TOML text
_HEADER = re.compile(r"^\s*(\[\[|\[)\s*([^\[\]#]+?)\s*\]\]?\s*(?:#.*)?$")


def _key_re(key: str) -> re.Pattern:
    k = re.escape(key)
    return re.compile(r"(?:^|[\s{,.])(?:" + k + r"|\"" + k + r"\"|'" + k + r"')\s*=")


def locate(text: str, path: list, needle: str | None = None) -> int | None:
    """The 1-based line where ``path`` (keys, with array-of-tables indexes: ``["rule", 1, "port"]``)
    is written, found by scanning the text; ``needle`` (a string value) narrows it to the line
    holding that value.  None when it cannot be found."""
    if not path:
        return None
    key = str(path[-1])
    parent = [p for p in path[:-1]]
    kre = _key_re(key)
    counts: dict[str, int] = {}
    header: list = []
    first_any = None
    found = None
    lines = text.splitlines()
    for no, line in enumerate(lines, 1):
        m = _HEADER.match(line)
        if m:
            parts = [p.strip().strip("\"'") for p in m.group(2).split(".")]
            if m.group(1) == "[[":
                name = ".".join(parts)
                counts[name] = counts.get(name, -1) + 1
                header = parts + [counts[name]]
            else:
                header = parts
            if found is None and header == list(path):
                found = no
                break
            if first_any is None and parts[-1] == key:
                first_any = no
            continue
        code = line.split("#", 1)[0] if "#" in line and '"' not in line and "'" not in line else line
        if kre.search(code):
            if first_any is None:
                first_any = no
            if header == parent[:len(header)]:
                found = no
                break
    line = found or first_any
    if needle is not None:
        quoted = (f'"{needle}"', f"'{needle}'")
        start = (line or 1) - 1
        for no in range(start, len(lines)):
            if any(q in lines[no] for q in quoted):
                return no + 1
        for no, l in enumerate(lines, 1):
            if any(q in l for q in quoted):
                return no
    return line


# ---------------------------------------------------------------------------- results
@dataclass
class RuleResult:
    """The verdict of one rule on one file: ``status`` pass/fail/skip/error, the ``measured`` value
    against the ``limit`` (in ``unit``), a one-line ``message`` and ``evidence`` (dicts with
    ``stream``, ``frames``, ``text``: which connections and frames)."""

    file: str
    rule: str
    status: str
    message: str
    measured: object = None
    limit: object = None
    unit: str = ""
    scope: str | None = None
    evidence: list = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.scope}/{self.rule}" if self.scope else self.rule

    def to_dict(self) -> dict:
        return {"id": self.id, "rule": self.rule, "scope": self.scope, "status": self.status, "file": self.file,
                "measured": self.measured, "limit": self.limit, "unit": self.unit, "message": self.message,
                "evidence": self.evidence}


@dataclass
class FileResult:
    """All rule results of one input file; ``error`` when it could not be (fully) read."""

    file: str
    results: list = field(default_factory=list)
    error: str | None = None
    time: float = 0.0
    summary: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.error:
            return ERROR
        return FAIL if any(r.status == FAIL for r in self.results) else PASS

    @property
    def failures(self) -> list:
        return [r for r in self.results if r.status == FAIL]

    def to_dict(self) -> dict:
        s = self.summary or {}
        return {"file": self.file, "status": self.status, "error": self.error, "time": round(self.time, 6),
                "connections": s.get("connections"), "packets": s.get("packets"),
                "results": [r.to_dict() for r in self.results]}


def exit_code(files: list) -> int:
    """3 when a file could not be read (whatever else happened: the gate did not see everything),
    else 1 when a rule failed, else 0.  (2, a usage or policy error, is decided before any file is read.)"""
    if any(f.error for f in files):
        return EXIT_INPUT
    if any(r.status == FAIL for f in files for r in f.results):
        return EXIT_FAIL
    return EXIT_OK


# ---------------------------------------------------------------------------- per-file views of reports
@dataclass
class FileView:
    """One file's part of a report: its summary, connection records and findings."""

    file: str
    summary: dict
    connections: list
    findings: list
    error: str | None = None


def _as_dict(report) -> dict:
    return report.to_dict() if hasattr(report, "to_dict") else report


def file_views(report) -> list[FileView]:
    """Split a ``Report`` (or its dict, or an ``analyze --json`` document) into per-file views."""
    d = _as_dict(report)
    files = d.get("files") or []
    conns: dict = {}
    for c in d.get("connections") or ():
        conns.setdefault(c.get("file"), []).append(c)
    finds: dict = {}
    for f in d.get("findings") or ():
        finds.setdefault(f.get("file"), []).append(f)
    out = []
    for e in files:
        src = e.get("source")
        err = e.get("error")
        dmg = e.get("damage") or {}
        if not err and dmg.get("fatal"):
            err = f"{src}: {dmg.get('message', 'corrupt data')}; only the frames before it were analyzed"
        out.append(FileView(file=src, summary=e.get("summary") or {}, connections=conns.get(src, []),
                            findings=finds.get(src, []), error=err))
    if not files and (d.get("connections") or d.get("summary")):
        out.append(FileView(file="?", summary=d.get("summary") or {}, connections=list(d.get("connections") or ()),
                            findings=list(d.get("findings") or ())))
    return out


# ---------------------------------------------------------------------------- metrics
_ep = endpoint_str


def conn_label(c: dict) -> str:
    return (f"stream {c.get('stream')} {_ep(c.get('orig_h'), c.get('orig_p'))} -> "
            f"{_ep(c.get('resp_h'), c.get('resp_p'))}")


_IPS: dict = {}


def _ip(h):
    if h is None:
        return None
    ip = _IPS.get(h)
    if ip is None:
        try:
            ip = ipaddress.ip_address(h.strip("[]"))
        except ValueError:
            ip = False
        if len(_IPS) < 100_000:
            _IPS[h] = ip
    return ip or None


def data_retransmissions(c: dict) -> tuple[int, int]:
    """(retransmitted data segments, data segments) of a connection record: SYN and FIN
    retransmissions left out, as the retransmissions finding counts them."""
    o, r = c.get("orig") or {}, c.get("resp") or {}
    rtx = c.get("retransmissions")
    if rtx is None:
        rtx = o.get("retransmissions", 0) + r.get("retransmissions", 0)
    syn_rtx = sum(max(0, s.get("syn", 0) - 1) for s in (o, r))
    ctl = syn_rtx + sum(max(0, s.get("fin", 0) - 1) for s in (o, r))
    data = o.get("data_packets", 0) + r.get("data_packets", 0)
    return min(max(0, rtx - ctl), data), data


def retransmission_rate(conns) -> tuple[float, int, int]:
    """(percent, retransmitted data segments, data segments) over ``conns``."""
    n = d = 0
    for c in conns:
        a, b = data_retransmissions(c)
        n += a
        d += b
    return (100.0 * n / d if d else 0.0), n, d


def reset(c: dict) -> bool:
    return c.get("reset_by") is not None


def handshake_rtts_ms(conns) -> list[tuple[float, dict]]:
    out = []
    for c in conns:
        v = c.get("handshake_rtt")
        if v is not None and c.get("handshake_seen", True):
            out.append((v * 1000.0, c))
    return out


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    s = sorted(values)
    if not s:
        return None
    k = max(0, math.ceil(q / 100.0 * len(s)) - 1)
    return s[k]


def complete(c: dict) -> bool:
    """Opened and closed cleanly: handshake seen, Zeek conn_state SF (both FINs), no RST."""
    return bool(c.get("handshake_seen")) and c.get("conn_state") == "SF" and not reset(c)


def server_closed_first(c: dict) -> bool:
    return c.get("close_initiator") == "resp" and bool(c.get("handshake_seen"))


def time_wait_peaks(view: FileView, conns=None) -> list[dict]:
    """TIME_WAIT peak per host, worst first: the report's own (``conns`` None), or recomputed from
    the records of ``conns`` (a scope; a simultaneous close counts once, for the endpoint the
    record names)."""
    tw = view.summary.get("time_wait") or {}
    if conns is None:
        return sorted(({"host": h["host"], "peak": h["peak"], "peak_time": h.get("peak_time"),
                        "ports": h.get("ports", [])} for h in tw.get("hosts", ())),
                      key=lambda e: (-e["peak"], e["host"]))
    hold = int(round((tw.get("msl_s") or K_MSL_S) * 2e9))
    starts: dict = {}
    for c in conns:
        t = c.get("time_wait")
        if not t:
            continue
        host = c.get("orig_h") if t.get("endpoint") == "orig" else c.get("resp_h")
        starts.setdefault(host, []).append(int(round(t["start"] * 1e9)))
    out = []
    for h, st in starts.items():
        prof = time_wait_profile(st, min(st), max(st), hold, points=0)
        out.append({"host": h, "peak": prof["peak"],
                    "peak_time": None if prof["peak_ns"] is None else round(prof["peak_ns"] / 1e9, 9), "ports": []})
    out.sort(key=lambda e: (-e["peak"], e["host"]))
    return out


def zero_window_episodes(findings) -> list[dict]:
    return [f for f in findings if f.get("kind") == "zero_window"]


def metrics(view: FileView) -> dict:
    """The values a baseline compares, for one file."""
    conns = view.connections
    rate, _n, _d = retransmission_rate(conns)
    tw = time_wait_peaks(view)
    rtts = [v for v, _c in handshake_rtts_ms(conns)]
    zw = [f["data"].get("duration_s", 0.0) * 1000.0 for f in zero_window_episodes(view.findings) if f.get("data")]
    by_sev = ((view.summary.get("findings") or {}).get("by_severity") or {})
    return {
        "retransmission_rate": round(rate, 6),
        "rst": sum(1 for c in conns if reset(c)),
        "time_wait": tw[0]["peak"] if tw else 0,
        "handshake_rtt_p95_ms": None if not rtts else round(percentile(rtts, 95), 6),
        "zero_window_ms": round(max(zw), 6) if zw else 0.0,
        "warnings": by_sev.get("warning", 0) + by_sev.get("error", 0),
    }


# ---------------------------------------------------------------------------- evaluation
K_EVIDENCE = 5      # evidence items kept per rule


def _when(t: float) -> str:
    import datetime as _dt

    try:
        return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return str(t)


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3f}".rstrip("0").rstrip(".") if x == x else "nan"
    return str(x)


class _Ctx:
    def __init__(self, view: FileView, scope: Scope | None):
        self.view = view
        self.scope = scope
        self.file = view.file
        if scope is None or not scope.selects_connections:
            self.conns = list(view.connections)
            self.findings = list(view.findings)
        else:
            self.conns = [c for c in view.connections if scope.matches_conn(c)]
            streams = {c.get("stream") for c in self.conns}
            self.findings = [f for f in view.findings if scope.matches_finding(f, streams)]
        self._conns = {c.get("stream"): c for c in self.conns}
        self.by_stream: dict = {}
        for f in self.findings:
            if f.get("stream") is not None:
                self.by_stream.setdefault(f["stream"], []).append(f)

    @property
    def whole_file(self) -> bool:
        return self.scope is None or not self.scope.selects_connections

    def conn(self, stream):
        return None if stream is None else self._conns.get(stream)

    def finding(self, stream, kind: str):
        for f in self.by_stream.get(stream, ()):
            if f.get("kind") == kind:
                return f
        return None

    def conn_evidence(self, c: dict, text: str, kind: str | None = None, with_message: bool = True) -> dict:
        """A connection as evidence: its frames from its ``kind`` finding (else its first and last
        frame), ``text`` and, ``with_message``, the finding's message."""
        f = self.finding(c.get("stream"), kind) if kind else None
        frames = [x for x in f["frames"] if x] if f and f.get("frames") else [
            x for x in (c.get("first_frame"), c.get("last_frame")) if x]
        if f and f.get("message") and with_message:
            text = f"{text}: {f['message']}"
        return {"stream": c.get("stream"), "connection": conn_label(c), "frames": frames[:10], "text": text}

    def result(self, rule, status, message, measured=None, limit=None, unit="", evidence=()):
        ev = list(evidence)
        more = len(ev) - K_EVIDENCE
        ev = ev[:K_EVIDENCE]
        if more > 0:
            ev.append({"stream": None, "frames": [], "text": f"... and {more} more"})
        return RuleResult(file=self.file, rule=rule, status=status, message=message, measured=measured, limit=limit,
                          unit=unit, scope=self.scope.name if self.scope else None, evidence=ev)


def evaluate(view: FileView, policy: Policy, baseline: FileView | None = None) -> list[RuleResult]:
    """Every rule of ``policy`` (top level, then each ``[[rule]]`` whose file selector matches),
    then the baseline comparison, on one file's view."""
    out = _evaluate_rules(_Ctx(view, None), policy.rules)
    for scope, rules in policy.scoped:
        if scope.matches_file(view.file):
            out.extend(_evaluate_rules(_Ctx(view, scope), rules))
    if policy.baseline is not None:
        out.extend(compare_baseline(view, baseline, policy.tolerance))
    return out


def _evaluate_rules(ctx: _Ctx, r: Rules) -> list[RuleResult]:
    """Every rule of ``r`` on the connections and findings ``ctx`` selects, in a fixed order."""
    out: list[RuleResult] = []
    where = "" if ctx.scope is None else f" (in scope {ctx.scope.name})"
    for check in _CHECKS:
        check(ctx, r, where, out)
    return out


def _no_connections(ctx: _Ctx, rules, where: str, out: list[RuleResult]) -> bool:
    """True, with a skipped result for each ``(rule, limit, unit)`` of ``rules`` that is set,
    when there is no TCP connection to measure them on."""
    if ctx.conns:
        return False
    for rule, limit, unit in rules:
        if limit is not None:
            out.append(ctx.result(rule, SKIP, f"nothing to measure{where}: no TCP connection", None, limit, unit))
    return True


def _check_connection_counts(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """min_connections, max_connections."""
    conns = ctx.conns
    n = len(conns)
    if r.min_connections is not None:
        ok = n >= r.min_connections
        out.append(ctx.result("min_connections", PASS if ok else FAIL,
                              f"{n} connection(s){where} {'>=' if ok else '<'} minimum {r.min_connections}",
                              n, r.min_connections, "connections"))
    if r.max_connections is not None:
        ok = n <= r.max_connections
        out.append(ctx.result("max_connections", PASS if ok else FAIL,
                              f"{n} connection(s){where} {'<=' if ok else '>'} limit {r.max_connections}",
                              n, r.max_connections, "connections"))


def _check_rst(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """max_rst, max_rst_per_port."""
    conns = ctx.conns
    if r.max_rst is not None or r.max_rst_per_port is not None:
        if _no_connections(ctx, (("max_rst", r.max_rst, "reset connections"),
                                 ("max_rst.per_port", r.max_rst_per_port, "reset connections per server port")),
                           where, out):
            return
        resets = [c for c in conns if reset(c)]
        if r.max_rst is not None:
            ok = len(resets) <= r.max_rst
            out.append(ctx.result(
                "max_rst", PASS if ok else FAIL,
                f"{len(resets)} reset connection(s){where} {'<=' if ok else '>'} limit {r.max_rst}",
                len(resets), r.max_rst, "reset connections",
                [] if ok else [ctx.conn_evidence(c, f"reset by {c.get('reset_by')}", "rst") for c in resets]))
        if r.max_rst_per_port is not None:
            ports: dict = {}
            for c in resets:
                ports.setdefault(c.get("resp_p"), []).append(c)
            worst = max(ports.items(), key=lambda kv: (len(kv[1]), -(kv[0] or 0)), default=(None, []))
            bad = sorted(((p, cs) for p, cs in ports.items() if len(cs) > r.max_rst_per_port),
                         key=lambda kv: (-len(kv[1]), kv[0] or 0))
            ok = not bad
            ev = []
            for p, cs in bad:
                ev.append({"stream": None, "frames": [], "text": f"server port {p}: {len(cs)} reset connection(s), "
                           f"streams {', '.join(str(c.get('stream')) for c in cs[:10])}"
                           + (" ..." if len(cs) > 10 else "")})
                ev.extend(ctx.conn_evidence(c, f"reset by {c.get('reset_by')}", "rst") for c in cs[:2])
            msg = (f"at most {len(worst[1])} reset connection(s) per server port{where}"
                   + (f" (port {worst[0]})" if worst[0] is not None else "")
                   + f" {'<=' if ok else '>'} limit {r.max_rst_per_port}")
            if bad:
                msg = (f"{len(bad)} server port(s){where} with more than {r.max_rst_per_port} reset connection(s): "
                       + ", ".join(f"{p} ({len(cs)})" for p, cs in bad[:10]))
            out.append(ctx.result("max_rst.per_port", PASS if ok else FAIL, msg, len(worst[1]),
                                  r.max_rst_per_port, "reset connections per server port", ev))


def _check_forbid(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """forbid: no finding of these kinds."""
    fd = ctx.view.summary.get("findings") or {}
    by_kind = fd.get("by_kind") or {}
    by_sub = fd.get("by_subkind") or {}
    for k in r.forbid:
        kind, _, sub = k.partition("/")
        # a bare kind leaves out the subkinds its registry entry calls notes
        notes = () if sub or kind not in _findings.KINDS else _findings.KINDS[kind].notes
        hits = [f for f in ctx.findings if f.get("kind") == kind
                and (f.get("subkind") == sub if sub else f.get("subkind") not in notes)]
        count = len(hits)
        # all of them, not just those listed under the per-kind cap
        if ctx.whole_file and not sub and kind in by_kind:
            total = by_kind[kind].get("total", 0) - sum((by_sub.get(f"{kind}/{n}") or {}).get("total", 0)
                                                        for n in notes)
            count = max(count, total)
        elif ctx.whole_file and sub and k in by_sub:
            count = max(count, by_sub[k].get("total", 0))
        ok = count == 0
        ev = []
        for f in hits:
            c = ctx.conn(f.get("stream"))
            label = (conn_label(c) if c is not None else f"stream {f['stream']}" if f.get("stream") is not None
                     else (_ep(f.get("host"), f.get("port")) if f.get("port") is not None else f.get("host"))
                     or "capture")
            ev.append({"stream": f.get("stream"), "connection": label, "frames": list(f.get("frames") or [])[:10],
                       "text": f"[{f.get('severity')}] {f.get('message')}"})
        out.append(ctx.result(f"forbid.{k}", PASS if ok else FAIL,
                              f"{count} {k} finding(s){where}" + ("" if ok else " (forbidden)"),
                              count, 0, "findings", ev))


def _check_retransmission_rate(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """max_retransmission_rate."""
    conns = ctx.conns
    if r.max_retransmission_rate is not None:
        rate, nrtx, ndata = retransmission_rate(conns)
        if not ndata:
            out.append(ctx.result("max_retransmission_rate", SKIP, f"nothing to measure{where}: no data segment"
                                  + ("" if conns else " (no TCP connection)"), None, r.max_retransmission_rate, "%"))
            return
        ok = rate <= r.max_retransmission_rate
        ev = []
        if not ok:
            worst = []
            for c in conns:
                a, b = data_retransmissions(c)
                if a:
                    worst.append((a / b if b else 0.0, a, b, c))
            worst.sort(key=lambda x: (-x[1], -x[0]))
            ev = [ctx.conn_evidence(c, f"{a} of {b} data segments retransmitted = {100 * q:.2f}%", "retransmissions",
                                    with_message=False) for q, a, b, c in worst]
        out.append(ctx.result(
            "max_retransmission_rate", PASS if ok else FAIL,
            f"retransmission rate{where} {rate:.2f}% ({nrtx} of {ndata} data segments) "
            f"{'<=' if ok else '>'} limit {_fmt(r.max_retransmission_rate)}%",
            round(rate, 6), r.max_retransmission_rate, "%", ev))


def _check_time_wait(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """max_time_wait (peak per host)."""
    conns = ctx.conns
    if r.max_time_wait is not None:
        if _no_connections(ctx, (("max_time_wait", r.max_time_wait, "connections in TIME_WAIT (peak per host)"),),
                           where, out):
            return
        peaks = time_wait_peaks(ctx.view, None if ctx.whole_file else conns)
        top = peaks[0]["peak"] if peaks else 0
        bad = [h for h in peaks if h["peak"] > r.max_time_wait]
        ok = not bad
        ev = []
        for h in bad:
            ports = ", ".join(f"{p['port']} ({p['peak']})" for p in h.get("ports", [])[:5])
            ev.append({"stream": None, "frames": [], "host": h["host"],
                       "text": f"host {h['host']}: peak {h['peak']} in TIME_WAIT"
                               + (f" at {_when(h['peak_time'])}" if h.get("peak_time") is not None else "")
                               + (f"; ports {ports}" if ports else "")})
            held = [c for c in conns if c.get("time_wait") and
                    (c.get("orig_h") if c["time_wait"].get("endpoint") == "orig" else c.get("resp_h")) == h["host"]]
            for c in held[:2]:
                side = c["time_wait"].get("endpoint")
                ev.append({"stream": c.get("stream"), "connection": conn_label(c),
                           "frames": [c["time_wait"].get("frame")] if c["time_wait"].get("frame") else [],
                           "text": f"{side} entered TIME_WAIT"})
        msg = (f"TIME_WAIT peak {top}" + (f" on {peaks[0]['host']}" if peaks else "") + where
               + f" {'<=' if ok else '>'} limit {r.max_time_wait}")
        if len(bad) > 1:
            msg += f" ({len(bad)} hosts over the limit)"
        out.append(ctx.result("max_time_wait", PASS if ok else FAIL, msg, top, r.max_time_wait,
                              "connections in TIME_WAIT (peak per host)", ev))


def _check_handshake_rtt(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """max_handshake_rtt_p95_ms, max_handshake_rtt_ms."""
    conns = ctx.conns
    if r.max_handshake_rtt_p95_ms is not None or r.max_handshake_rtt_ms is not None:
        rtts = handshake_rtts_ms(conns)
        vals = [v for v, _c in rtts]
        for name, limit, value in (
                ("max_handshake_rtt_ms.p95", r.max_handshake_rtt_p95_ms, percentile(vals, 95)),
                ("max_handshake_rtt_ms.max", r.max_handshake_rtt_ms, max(vals) if vals else None)):
            if limit is None:
                continue
            what = "p95" if name.endswith("p95") else "maximum"
            if value is None:
                why = "no connection" if not conns else "no complete handshake seen"
                out.append(ctx.result(name, SKIP, f"no handshake RTT measured{where}: {why}", None, limit, "ms"))
                continue
            ok = value <= limit
            slow = sorted(((v, c) for v, c in rtts if v > limit), key=lambda x: -x[0])
            ev = [ctx.conn_evidence(c, f"handshake RTT {v:.3f} ms") for v, c in slow]
            out.append(ctx.result(
                name, PASS if ok else FAIL,
                f"handshake RTT {what} {value:.3f} ms over {len(vals)} handshake(s){where} "
                f"{'<=' if ok else '>'} limit {_fmt(limit)} ms", round(value, 6), limit, "ms", ev))


def _check_zero_window(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """max_zero_window_ms."""
    if r.max_zero_window_ms is not None:
        if _no_connections(ctx, (("max_zero_window_ms", r.max_zero_window_ms, "ms"),), where, out):
            return
        eps = [(f["data"].get("duration_s", 0.0) * 1000.0, f) for f in zero_window_episodes(ctx.findings)
               if f.get("data")]
        longest = max((d for d, _f in eps), default=0.0)
        bad = sorted(((d, f) for d, f in eps if d > r.max_zero_window_ms), key=lambda x: -x[0])
        ok = not bad
        ev = [{"stream": f.get("stream"),
               "connection": conn_label(ctx.conn(f.get("stream"))) if ctx.conn(f.get("stream")) else None,
               "frames": [x for x in f.get("frames") or [] if x][:10],
               "text": f"{d:.3f} ms: {f.get('message')}"} for d, f in bad]
        out.append(ctx.result(
            "max_zero_window_ms", PASS if ok else FAIL,
            f"longest zero-window episode{where} {longest:.3f} ms ({len(eps)} episode(s)"
            + (f", {len(bad)} over the limit" if bad else "") + f") {'<=' if ok else '>'} limit "
            f"{_fmt(r.max_zero_window_ms)} ms", round(longest, 6), r.max_zero_window_ms, "ms", ev))


def _check_complete(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """require_complete."""
    conns = ctx.conns
    if r.require_complete:
        if _no_connections(ctx, (("require_complete", 0, "incomplete connections"),), where, out):
            return
        bad = [c for c in conns if not complete(c)]
        ok = not bad
        ev = []
        for c in bad:
            why = []
            if not c.get("handshake_seen"):
                why.append("no handshake seen")
            if reset(c):
                why.append(f"reset by {c.get('reset_by')}")
            if c.get("conn_state") != "SF":
                why.append(f"conn_state {c.get('conn_state')} (history {c.get('history')}), "
                           f"ended {c.get('end_reason')}, states {c.get('orig_state')}/{c.get('resp_state')}")
            ev.append(ctx.conn_evidence(c, "; ".join(why) or "incomplete"))
        out.append(ctx.result(
            "require_complete", PASS if ok else FAIL,
            (f"all {len(conns)} connection(s){where} opened and closed cleanly" if ok else
             f"{len(bad)} of {len(conns)} connection(s){where} not opened and closed cleanly "
             f"(handshake, FIN both ways, no RST)"), len(bad), 0, "incomplete connections", ev))


def _check_server_active_close(ctx: _Ctx, r: Rules, where: str, out: list[RuleResult]) -> None:
    """allow_server_active_close."""
    conns = ctx.conns
    if not r.allow_server_active_close:
        if _no_connections(ctx, (("allow_server_active_close", 0, "connections"),), where, out):
            return
        bad = [c for c in conns if server_closed_first(c)]
        ok = not bad
        ev = [ctx.conn_evidence(c, f"server {_ep(c.get('resp_h'), c.get('resp_p'))} sent the first FIN"
                                + (f", entered TIME_WAIT at frame {c['time_wait']['frame']}"
                                   if (c.get("time_wait") or {}).get("endpoint") == "resp" else ""))
              for c in bad]
        out.append(ctx.result(
            "allow_server_active_close", PASS if ok else FAIL,
            f"{len(bad)} connection(s){where} closed first by the server"
            + (" (not allowed: the server holds their TIME_WAIT)" if bad else ""), len(bad), 0, "connections", ev))


#: the rules in the order their results are listed
_CHECKS = (_check_connection_counts, _check_rst, _check_forbid, _check_retransmission_rate, _check_time_wait,
           _check_handshake_rtt, _check_zero_window, _check_complete, _check_server_active_close)


# ---------------------------------------------------------------------------- baseline
def baseline_view(baseline, path: str) -> FileView | None:
    """The baseline file matching ``path``: the same source, else the same base name, else the
    only file of a one-file baseline; None when there is no match."""
    views = baseline if isinstance(baseline, list) else file_views(baseline)
    for v in views:
        if v.file == path:
            return v
    base = os.path.basename(path)
    same = [v for v in views if v.file and os.path.basename(v.file) == base]
    if len(same) == 1:
        return same[0]
    if len(views) == 1:
        return views[0]
    return None


def validate_baseline(doc) -> None:
    """PolicyError unless ``doc`` looks like an ``analyze --json`` document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list) or "connections" not in doc:
        raise PolicyError("baseline is not a 'tcpanalyze analyze --json' document (no files/connections)",
                          key="baseline")
    v = doc.get("schema_version")
    if v != SCHEMA_VERSION:
        raise PolicyError(f"baseline has schema_version {v!r}; this tcpanalyze reads {SCHEMA_VERSION}", key="baseline")


_BASE_UNITS = {"retransmission_rate": "%", "handshake_rtt_p95_ms": "ms", "zero_window_ms": "ms"}


def compare_baseline(view: FileView, base: FileView | None, tolerance: dict) -> list[RuleResult]:
    """One result per metric: fail when the current value exceeds the baseline's plus the tolerance."""
    mk = lambda rule, st, msg, **kw: RuleResult(file=view.file, rule=rule, status=st, message=msg, **kw)  # noqa: E731
    if base is None:
        return [mk("baseline", SKIP, "no file in the baseline matches this one (by path or base name)")]
    if base.error:
        return [mk("baseline", SKIP, f"the baseline's file could not be read: {base.error}")]
    cur, old = metrics(view), metrics(base)
    out = []
    for name, (_default, unit) in BASELINE_METRICS.items():
        tol = tolerance.get(name)
        if tol is None:
            continue
        rule = f"baseline.{name}"
        a, b = cur[name], old[name]
        u = _BASE_UNITS.get(name, "")
        if a is None or b is None:
            out.append(mk(rule, SKIP, f"{name}: not measured " + ("now" if a is None else "in the baseline"),
                          measured=a, limit=None, unit=unit))
            continue
        limit = b + tol
        ok = a <= limit + 1e-9
        delta = a - b
        suffix = {"%": "%", "ms": " ms"}.get(u, "")
        dunit = {"%": " points", "ms": " ms"}.get(u, "")
        out.append(mk(rule, PASS if ok else FAIL,
                      f"{name} {_fmt(a)}{suffix} vs baseline {_fmt(b)}{suffix} "
                      f"({'+' if delta >= 0 else ''}{_fmt(delta)}{dunit}) {'<=' if ok else '>'} "
                      f"baseline + tolerance {_fmt(tol)}{dunit} = {_fmt(limit)}{suffix}",
                      measured=a, limit=round(limit, 6) if isinstance(limit, float) else limit, unit=unit,
                      evidence=[] if ok else [{"stream": None, "frames": [],
                                               "text": f"baseline file {base.file}: {_fmt(b)}{suffix}; "
                                                       f"now {_fmt(a)}{suffix}"}]))
    return out


__all__ = ["Policy", "Rules", "Scope", "RuleResult", "FileResult", "FileView", "PolicyError", "load_policy",
           "parse_policy", "parse_tolerances", "evaluate", "compare_baseline", "baseline_view", "file_views",
           "metrics", "exit_code", "locate", "validate_baseline", "RULE_KEYS", "BASELINE_METRICS"]
