"""Inlining for the pure-Python build: one Python function where the source has many.

The engine is written as one small function per rule and concern; compiled (Cython) they
are C functions the C compiler inlines, but as plain Python each is a call, and a call costs
as much as the few comparisons most of them make.  When a module runs as plain Python it
calls ``fuse(globals(), entries, inline)`` after its definitions: for each entry (a
function, or ``Class.method``), this module reads the source of the entry and of the helpers
named in ``inline``, writes every call to such a helper as the helper's body, compiles the
result and puts it in place of the entry.  The source files do not change; nothing here runs
when the module is compiled.

How a call is written out:

* a helper whose body is a few assignments and one ``return`` of arithmetic, comparisons
  and attribute reads (``seq.py``'s helpers) becomes that expression, wherever the call is:
  each argument takes the place of its parameter; a parameter or local used more than once
  is bound with ``:=`` where it is first evaluated (refused when that place is evaluated
  only sometimes, on the right of ``and``/``or`` or in a branch of ``x if c else y``);
* any other helper is written out when its call is a whole statement: ``f(...)``,
  ``x = f(...)``, ``x op= f(...)`` or ``target = f(...)`` and ``return f(...)`` (through a
  fresh local).  Each parameter becomes a fresh local assigned the argument, or is replaced
  by the argument itself when the argument is a local or a constant the helper does not
  assign; the helper's locals are renamed with a suffix (``name__3``), so they meet neither
  the caller's names nor another copy's; a ``return`` becomes an assignment to the target
  (an expression statement, or nothing, for a call whose value is not used).  An ``if``
  whose one branch ends in ``return`` takes the statements after it into its other branch,
  so most returns end the copy by themselves; where one still would not, the copy is the
  body of a ``while True:`` loop left by ``break``.

Global names: a helper's module constants declared with ``cython.declare`` (C constants
when compiled: never rebound) become literals, in the entry as well; ``cython.compiled``
becomes False and the branches it decides are dropped.  Any other global a helper reads
must be the same object in the entry's module (the name imported there, or a builtin), and
not a local name of the function it is written into; otherwise the call stays.

Refused (the call stays a call): a helper with ``*args``, ``**kwargs`` or keyword-only
parameters, called with keywords or another number of arguments, with a ``return``
inside a loop, ``try`` or ``with``, a nested function, lambda, class or comprehension,
``yield``, ``await``, ``global``/``nonlocal``, an import, a decorator other than Cython's,
a closure, a call to ``locals``/``vars``/``eval``/``exec``/``globals``/``super``, and a
helper that (through others) calls itself.  What was written out and what was refused, and
why, is in ``status()``; any failure of the fuser leaves the entry as it was.

Attribute reads of the arguments count as free of side effects: an argument such as
``seg.seq`` may be read at the place of its use rather than before the call, or twice.

The transformer is ``_inline.py``.  With ``cache=True`` the compiled result is kept in
``~/.cache/tcpanalyze/fused/`` (``XDG_CACHE_HOME``), one file per source tree, and a later
process loads it instead of fusing while the source files it was made from have the same
bytes and the constants it folded the same values (``_inline.py`` is then not imported).

Debugging: ``TCPANALYZE_NOFUSE=1`` keeps every function as written; ``python -m
tcpanalyze._fuse tcpanalyze.engine`` prints the report and the fused source; the compiled
code's file name is ``<fused MODULE.ENTRY>`` and its line numbers those of the original
statements in the entry's module (code from another module's helper has the line of its
call).
"""
from __future__ import annotations

import os
import sys
import time

_RESULTS: dict = {}     # "module.Entry" -> report (see status())
_TRANSFORMER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_inline.py")
_MISSING = object()


def enabled() -> bool:
    """False when ``TCPANALYZE_NOFUSE`` is set to anything but empty or ``0``."""
    return os.environ.get("TCPANALYZE_NOFUSE", "") in ("", "0")


def fuse(globs: dict, entries, inline, cache: bool = False) -> None:
    """Replace each of ``entries`` (names in the module whose globals are ``globs``:
    ``"func"`` or ``"Class.method"``) by a version with the calls to the functions named in
    ``inline`` written out.  Never raises: an entry that cannot be fused stays as it is and
    its report says why.  ``cache``: keep the compiled result in the user's cache directory
    and take it from there while every source it was made from is unchanged."""
    modname = globs.get("__name__", "?")
    for entry in entries:
        key = f"{modname}.{entry}"
        if not enabled():
            _RESULTS[key] = {"fused": False, "error": "TCPANALYZE_NOFUSE is set", "inlined": {}, "refused": {}}
            continue
        t0 = time.perf_counter()
        cls, _, name = entry.rpartition(".")
        try:
            owner = globs[cls] if cls else None
            fn = owner.__dict__[name] if owner is not None else globs[name]
            path = _cache_path(globs, entry, inline) if cache else None
            hit = _from_cache(path, globs, fn) if path else None
            if hit is not None:
                new, report = hit
            else:
                from tcpanalyze._inline import Fuser     # the transformer, only when there is no cache
                fuser = Fuser(globs, inline)
                new, report = fuser.build(entry, key)
                if path:
                    _to_cache(path, fuser, report)
        except Exception as e:      # the fuser's own failure: keep the function as written
            _RESULTS[key] = {"fused": False, "error": f"{type(e).__name__}: {e}", "inlined": {}, "refused": {}}
            continue
        if owner is not None:
            setattr(owner, name, new)
        else:
            globs[name] = new
        report["seconds"] = time.perf_counter() - t0
        _RESULTS[key] = report


# ---------------------------------------------------------------------- the cache

def _digest(data: bytes) -> str:
    try:
        from _blake2 import blake2b     # what hashlib.blake2b is, without importing OpenSSL
    except ImportError:  # pragma: no cover - an interpreter built without it
        from hashlib import blake2b
    return blake2b(data, digest_size=16).hexdigest()


def _cache_path(globs: dict, entry: str, inline) -> str:
    """The cache file of an entry: named by the interpreter, this file and the transformer,
    the module's file (one per source tree), the entry, the helper list and the Cython module in use (the sources it
    was made from are checked on load)."""
    me = b""
    for path in (__file__, _TRANSFORMER):     # the fuser and the transformer make the code
        with open(path, "rb") as f:
            me += f.read()
    cy = getattr(globs.get("cython"), "__name__", "")
    tag = repr((sys.version, sys.implementation.cache_tag, os.path.abspath(globs.get("__file__", "")),
                globs.get("__name__"), entry, tuple(inline), cy))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tcpanalyze", "fused", _digest(tag.encode() + me) + ".bin")


def _from_cache(path: str, globs: dict, fn):
    """(function, report) from the cache file when every source file it was made from has
    the same bytes and every constant it folded the same value; else None."""
    import marshal
    try:
        with open(path, "rb") as f:
            rec = marshal.loads(f.read())
        for dep, (size, mtime, digest) in rec["deps"].items():
            st = os.stat(dep)
            if st.st_size != size:
                return None
            if st.st_mtime_ns != mtime:
                with open(dep, "rb") as f:
                    if _digest(f.read()) != digest:
                        return None
        for modname, consts in rec["consts"].items():
            mod = sys.modules.get(modname)
            if mod is None:
                return None
            for name, value in consts.items():
                now = mod.__dict__.get(name, _MISSING)
                if type(now) is not type(value) or now != value:
                    return None
        if os.path.abspath(fn.__code__.co_filename) != rec["entry_file"] or fn.__code__.co_name != rec["name"]:
            return None
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        return None
    new = _finish(type(fn)(rec["code"], globs, rec["name"]), fn)
    report = dict(rec["report"], cached=True, source_text=rec["source"], original=fn, function=new)
    return new, report


def _to_cache(path: str, fuser, report: dict) -> None:
    import ast
    import marshal
    deps = {}
    consts = {}
    for src in fuser.sources.values():
        st = os.stat(src.path)
        with open(src.path, "rb") as f:
            deps[os.path.abspath(src.path)] = (st.st_size, st.st_mtime_ns, _digest(f.read()))
        if src.used:
            consts[src.module.__name__] = dict(src.used)
    fn = report["original"]
    rec = {"deps": deps, "consts": consts, "code": report["function"].__code__, "name": fn.__code__.co_name,
           "entry_file": os.path.abspath(fn.__code__.co_filename), "source": ast.unparse(report["tree"]),
           "report": {k: v for k, v in report.items() if k in ("fused", "error", "inlined", "refused")}}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(marshal.dumps(rec))
        os.replace(tmp, path)
    except OSError:
        pass                        # no cache: the next process fuses again


def _finish(new, fn):
    """The fused function ``new`` made to look like ``fn`` (name, docs, defaults)."""
    for attr in ("__doc__", "__module__", "__qualname__", "__annotations__"):
        setattr(new, attr, getattr(fn, attr))
    new.__wrapped__ = fn
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__defaults__ = fn.__defaults__
    return new


def status() -> dict:
    """``{"module.Entry": {"fused": bool, "error": str|None, "inlined": {helper: copies},
    "refused": {helper: reason}, "seconds": float}}`` for every entry ``fuse`` was given."""
    return {k: {f: v for f, v in r.items() if f not in ("tree", "original", "function", "source_text")}
            for k, r in _RESULTS.items()}


def source(key: str) -> str:
    """The fused entry's source (``ast.unparse`` of what was compiled); KeyError when
    ``key`` was not fused."""
    r = _RESULTS[key]
    if "source_text" in r:
        return r["source_text"]
    import ast
    return ast.unparse(r["tree"])


def original(key: str):
    """The entry as written (the function the fused one replaced)."""
    return _RESULTS[key]["original"]


def report_text() -> str:
    """What was fused into each entry, what was left a call and why, and the fused source."""
    out = []
    for key, r in _RESULTS.items():
        out.append(f"# {key}: {'fused' if r['fused'] else 'not fused: ' + str(r['error'])}")
        out += [f"#   written out: {n} ({c} call{'s' if c > 1 else ''})" for n, c in sorted(r["inlined"].items())]
        out += [f"#   left a call: {n}: {why}" for n, why in sorted(r["refused"].items())]
        if r["fused"]:
            out.append(source(key))
    return "\n".join(out)


if __name__ == "__main__":       # python -m tcpanalyze._fuse MODULE: what importing MODULE fused
    import importlib
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tcpanalyze._fuse MODULE (e.g. tcpanalyze.engine)")
    from tcpanalyze import _fuse as _self       # the module the package uses, not this __main__
    from tcpanalyze import _loader
    importlib.import_module(sys.argv[1])
    print(f"# build: {_loader.status()}")
    print(_self.report_text())
