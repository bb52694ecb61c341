"""Which modules of the package run compiled, and a guard against running stale ones.

``setup.py`` compiles the per-packet modules with Cython and writes ``_compiled.txt`` next
to this file: the modules it built, the file name of each extension, and the size,
modification time and digest of each one's ``.py`` and ``.pxd`` (or that there is no
``.pxd``).  Importing this module (the package's ``__init__`` does) puts a finder first on
``sys.meta_path``; when an import of a ``tcpanalyze`` module would load an extension, the
finder checks that record against the sources once per process -- ``os.stat`` of each
file, and a digest only of a file of the recorded size but another time -- and loads
the ``.py`` instead, with one line on stderr, when an extension was built from other
sources (an edited ``.py`` or ``.pxd`` in an editable install, a checkout of another
branch) or has no record.  The compiled modules share C types through the ``.pxd`` files,
so they are used all together or not at all.  ``TCPANALYZE_PURE=1`` in the environment
loads the ``.py`` files too, without a note.

``compiled_modules()`` and ``status()`` say which build is in use, for tests and CI.
"""
import os
import sys

try:  # the import system's own module, already loaded: importing importlib would cost more
    from _frozen_importlib_external import ExtensionFileLoader, PathFinder
except ImportError:  # pragma: no cover - a Python without it
    from importlib.machinery import ExtensionFileLoader, PathFinder

RECORD = "_compiled.txt"
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_PREFIX = __name__.rpartition(".")[0] + "."

_state = None  # (modules in use, {module: extension file name}, why not), once checked
_noted = False


def pure_requested() -> bool:
    """``TCPANALYZE_PURE`` set to anything but empty or ``0`` (the same test as setup.py's)."""
    return os.environ.get("TCPANALYZE_PURE", "") not in ("", "0")


def _digest(path: str) -> str:
    try:
        from _blake2 import blake2b  # what hashlib.blake2b is, without importing OpenSSL
    except ImportError:  # pragma: no cover - an interpreter built without it
        from hashlib import blake2b
    with open(path, "rb") as f:
        return blake2b(f.read(), digest_size=16).hexdigest()


def _source_differs(rel: str, fields: "list[str]") -> bool:
    """``fields`` from a ``source`` line: ``-`` (the build had no such file) or size,
    mtime in ns and digest."""
    try:
        st = os.stat(os.path.join(_PKG_DIR, rel))
    except OSError:
        return fields[0] != "-"
    if fields[0] == "-":
        return True
    if st.st_size != int(fields[0]):
        return True
    if st.st_mtime_ns == int(fields[1]):
        return False
    return _digest(os.path.join(_PKG_DIR, rel)) != fields[2]


def _check() -> "tuple[tuple[str, ...], dict[str, str], str]":
    if pure_requested():
        return (), {}, "TCPANALYZE_PURE is set"
    try:
        with open(os.path.join(_PKG_DIR, RECORD), encoding="utf-8") as f:
            lines = [line.split() for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return (), {}, f"no build record ({RECORD})"
    status = next((line for line in lines if line[0] == "status"), ["status", "missing"])
    if status[1] != "compiled":
        return (), {}, "the build fell back to pure Python: " + " ".join(status[2:] or status[1:])
    modules = {line[1]: line[2] for line in lines if line[0] == "module" and len(line) == 3}
    changed = [line[1] for line in lines if line[0] == "source" and len(line) >= 3 and _source_differs(line[1], line[2:])]
    if changed:
        return (), modules, ", ".join(changed) + " changed since the build"
    missing = [name for name, so in modules.items()
               if not os.path.exists(os.path.join(_PKG_DIR, *name.split(".")[1:-1], so))]
    if missing:
        return (), modules, "extension missing for " + ", ".join(missing)
    return tuple(sorted(modules)), modules, ""


def _checked() -> "tuple[tuple[str, ...], dict[str, str], str]":
    global _state
    if _state is None:
        _state = _check()
    return _state


def compiled_modules() -> "tuple[str, ...]":
    """The modules (dotted names) that load as compiled extensions in this process: those
    the build record lists, when it matches the sources; empty for a pure-Python run."""
    return _checked()[0]


def status() -> str:
    """One line: ``compiled (N modules)`` or ``pure Python (why)``."""
    modules, _files, why = _checked()
    return f"compiled ({len(modules)} modules)" if modules else f"pure Python ({why})"


class _CompiledOnlyWhenCurrent:
    """Meta-path finder: a ``tcpanalyze`` extension module loads only while the build record
    vouches for it; otherwise the ``.py`` next to it does."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if not name.startswith(_PREFIX):
            return None
        spec = PathFinder.find_spec(name, path, target)
        if spec is None or not isinstance(spec.loader, ExtensionFileLoader):
            return spec
        modules, files, why = _checked()
        so = os.path.basename(spec.origin)
        if name in modules and files.get(name) == so:
            return spec
        source = os.path.join(os.path.dirname(spec.origin), name.rpartition(".")[2] + ".py")
        if not os.path.exists(source):
            return spec
        _note(why or f"{so} is not the extension the build recorded")
        from importlib.util import spec_from_file_location
        return spec_from_file_location(name, source)


def _note(why: str) -> None:
    global _noted
    if _noted or pure_requested():
        return
    _noted = True
    sys.stderr.write(f"tcpanalyze: not using the compiled modules ({why}); running the .py files "
                     f"(rebuild: pip install -e . or python setup.py build_ext --inplace)\n")


def install() -> None:
    if _CompiledOnlyWhenCurrent not in sys.meta_path:
        sys.meta_path.insert(0, _CompiledOnlyWhenCurrent)


install()
