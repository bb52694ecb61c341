"""Optional compiled build of the per-packet core.

The modules in ``COMPILED`` are plain Python; with Cython and a C compiler at install time
they are also compiled (Cython's pure-Python mode; the ``.pxd`` files next to some of them
type their records, the others compile as they are, with their ``@cython.locals`` types).
Cython translates them in parallel processes and the C compiler runs on every core.

Cython reads a generated copy of the package's sources in ``build/src``: each record's
fields are declared once, in the ``FIELDS`` table of its class in the ``.py``
(``tcpanalyze/_fields.py``), and the copy of each ``.pxd`` gets the ``cdef class``
declarations generated from those tables (read with ``ast``, nothing is imported), the
copy of each ``.py`` a typed ``__init__`` in place of ``__init__ = init(FIELDS...)``.

The install never fails for the compiled core: without Cython, with ``TCPANALYZE_PURE=1``,
or when Cython or the C compiler fails on any module, no extension is installed (the
modules share C types through the ``.pxd`` files, so they are compiled all together or not
at all) and the same files run as Python.  A failure prints one line on stderr; what Cython
and the compiler printed is in ``build/tcpanalyze-build.log``.

Every build writes ``tcpanalyze/_compiled.txt`` (next to the extensions, so in the source
tree too for ``pip install -e .`` and ``build_ext --inplace``): the modules built and the
size, time and digest of the sources they were built from.  ``tcpanalyze/_loader.py`` reads
it at import time and runs the ``.py`` files when an extension no longer matches them.
Everything else lives in pyproject.toml.
"""
import contextlib
import os
import re
import sys
import traceback
from hashlib import blake2b

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PACKAGE = "tcpanalyze"
HERE = os.path.dirname(os.path.abspath(__file__))
# The one list of compiled modules (dotted names below the package).  A module whose .py is
# missing is left out; a .pxd next to a module is used when there is one.
COMPILED = ["model", "engine", "decode", "state", "zeek", "summary", "diagnosis", "jsontext", "analysis", "seq", "rows",
            "pipeline", "fanout", "tomb",
            "sources.pcap"]
# packages whose every module is compiled (their __init__ stays Python: the findings package's
# imports every detector module it holds)
COMPILED_PACKAGES = ["findings"]
COMPILED += sorted(f"{pkg}.{name[:-3]}" for pkg in COMPILED_PACKAGES
                   for name in os.listdir(os.path.join(HERE, PACKAGE, pkg))
                   if name.endswith(".py") and name != "__init__.py")
DIRECTIVES = {"binding": False, "boundscheck": False, "wraparound": True}
RECORD = "_compiled.txt"  # read by tcpanalyze/_loader.py
GENERATED = os.path.join("build", "src")  # the sources Cython reads (see generate_sources)
LOG = os.path.join("build", "tcpanalyze-build.log")


def pure_requested():
    """``TCPANALYZE_PURE`` set to anything but empty or ``0`` (the same test as _loader's)."""
    return os.environ.get("TCPANALYZE_PURE", "") not in ("", "0")


def _source(module, suffix):
    return os.path.join(PACKAGE, *module.split(".")) + suffix


def extensions():
    return [Extension(f"{PACKAGE}.{m}", [_source(m, ".py")]) for m in COMPILED
            if os.path.exists(os.path.join(HERE, _source(m, ".py")))]


def _fields_module():
    """tcpanalyze/_fields.py, loaded by path (the package itself is not imported)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_tcpanalyze_fields", os.path.join(HERE, PACKAGE, "_fields.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_if_changed(path, text):
    """Write ``text`` unless the file holds it already (Cython rebuilds what is newer)."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def generate_sources(root=GENERATED):
    """Copy the package's ``.py`` and ``.pxd`` files to ``root`` (below HERE): each ``.pxd``
    with the record classes generated from its ``.py``'s FIELDS tables appended (a ``.pxd``
    only when there is one or the ``.py`` declares records), each ``.py`` with its records'
    typed ``__init__``.  Returns the directory Cython is to search for ``.pxd`` files."""
    fields = _fields_module()
    top = os.path.join(HERE, root)
    src_pkg = os.path.join(HERE, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(src_pkg):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(dirpath, HERE)
        for name in filenames:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                py = f.read()
            pxd_path = os.path.join(dirpath, name[:-3] + ".pxd")
            pxd = None
            if os.path.exists(pxd_path):
                with open(pxd_path, encoding="utf-8") as f:
                    pxd = f.read()
            _write_if_changed(os.path.join(top, rel, name), fields.compiled_source(py))
            pxd = fields.generated_pxd(py, pxd)
            if pxd is not None:
                _write_if_changed(os.path.join(top, rel, name[:-3] + ".pxd"), pxd)
    return top


@contextlib.contextmanager
def _output_to(path):
    """Send this process's and its children's stdout and stderr to ``path`` (appended)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _first_error(log_path):
    """The first error line Cython or the compiler wrote, for the one-line note."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    for pattern in (r"^\S+\.(?:pxd|py|pyx):\d+:\d+: .+$",  # Cython: file:line:col: message
                    r"^\S+:\d+:\d+: (?:fatal )?error: .+$",  # gcc/clang
                    r"^\w*(?:Error|error)\b.*$"):
        m = re.search(pattern, text, re.M)
        if m:
            line = m.group(0).strip()
            return line if len(line) <= 200 else line[:197] + "..."
    return ""


def _translation_failed(c_file):
    """Cython leaves no C file, or one that starts with ``#error``, for a module it failed on
    (when it translates in parallel, that is all it says)."""
    try:
        with open(c_file, "rb") as f:
            return f.read(7) == b"#error "
    except OSError:
        return True


class OptionalBuildExt(build_ext):
    """Cythonize and compile ``COMPILED``; any failure leaves the pure-Python package, with
    one line on stderr, instead of failing the install."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self):
        inplace = self.inplace
        sources = list(self.extensions)
        self._failed = []
        if not sources:
            return
        if pure_requested():
            return self._fall_back(sources, inplace, "TCPANALYZE_PURE is set", quiet=True)
        try:
            from Cython.Build import cythonize
        except ImportError:
            return self._fall_back(sources, inplace, "Cython is not installed")
        record = self._record_lines(sources)  # the sources as they are before Cython reads them
        log = os.path.join(HERE, LOG)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "w"):
            pass
        with _output_to(log):
            try:
                generated = generate_sources()
                translated = cythonize(
                    [Extension(e.name, [os.path.join(GENERATED, s) for s in e.sources]) for e in sources],
                    nthreads=int(self.parallel), build_dir=os.path.join("build", "cython"), language_level=3,
                    quiet=True, compiler_directives=DIRECTIVES, include_path=[generated])
                failed = [e.name for e in translated if _translation_failed(e.sources[0])]
                problem = f"Cython failed on {', '.join(failed)}" if failed else ""
            except Exception:  # noqa: BLE001 - whatever Cython raises means "no compiled core"
                traceback.print_exc()  # into the log
                translated, problem = [], "Cython failed"
        if problem:
            return self._fall_back(sources, inplace, problem, log=log)
        c_files = {e.name: e.sources for e in translated}
        for ext in sources:
            ext.sources = c_files[ext.name]
        # the biggest C files first, so that the compiler processes finish together
        self.extensions = sorted(sources, key=lambda e: -os.path.getsize(e.sources[0]))
        if os.name == "posix":
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, "-g0"]  # no debug info: faster, 6x smaller
        with _output_to(log):
            try:
                super().run()  # build_extension below records compiler failures instead of raising
            except Exception as e:  # noqa: BLE001 - e.g. no compiler could be set up
                traceback.print_exc()  # into the log
                self._failed.append(("the build", e))
        if self._failed:
            names = sorted(name for name, _ in self._failed)
            names = ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:3])} and {len(names) - 3} more"
            return self._fall_back(sources, inplace, f"compiler failed on {names}", log=log)
        self._write_record(inplace, "status compiled", record)
        print(f"tcpanalyze: compiled {len(self.extensions)} modules (log: {LOG})")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001 - any compiler problem means "no compiled core"
            traceback.print_exc()  # into the log
            self._failed.append((ext.name, e))

    def build_extensions(self):
        super().build_extensions()
        if self._failed:  # nothing of this build is installed or copied next to the sources
            self.extensions = []

    def _fall_back(self, sources, inplace, why, log=None, quiet=False):
        self.extensions = []
        for ext in sources:  # extensions of an earlier build would not match this one
            for path in self._ext_paths(ext.name, inplace):
                if os.path.exists(path):
                    os.remove(path)
        detail = _first_error(log) if log else ""
        if detail:
            why = f"{why}: {detail}"
        self._write_record(inplace, f"status pure {why}", [])
        if not quiet:
            sys.stderr.write(f"tcpanalyze: compiled core not built ({why}; log: {LOG}); using pure Python\n")
            sys.stderr.flush()

    def _ext_paths(self, name, inplace):
        filename = self.get_ext_filename(name)
        yield os.path.join(self.build_lib, filename)
        if inplace:
            yield os.path.join(HERE, self._package_dir(name), os.path.basename(filename))

    def _package_dir(self, name):
        return self.get_finalized_command("build_py").get_package_dir(name.rpartition(".")[0])

    def _record_lines(self, exts):
        """For each module: its extension's file name, and the size, time and digest of its
        .py and .pxd (``-`` when there is none)."""
        lines = []
        for ext in exts:
            module = ext.name[len(PACKAGE) + 1:]
            lines.append(f"module {ext.name} {os.path.basename(self.get_ext_filename(ext.name))}")
            for suffix in (".py", ".pxd"):
                rel = _source(module, suffix)[len(PACKAGE) + 1:].replace(os.sep, "/")
                path = os.path.join(HERE, _source(module, suffix))
                if os.path.exists(path):
                    st = os.stat(path)
                    with open(path, "rb") as f:
                        digest = blake2b(f.read(), digest_size=16).hexdigest()
                    lines.append(f"source {rel} {st.st_size} {st.st_mtime_ns} {digest}")
                else:
                    lines.append(f"source {rel} -")
        # the generator of the records' C declarations and typed __init__ (generate_sources)
        lines.append(self._source_line("_fields.py"))
        return lines

    @staticmethod
    def _source_line(rel):
        path = os.path.join(HERE, PACKAGE, rel)
        st = os.stat(path)
        with open(path, "rb") as f:
            digest = blake2b(f.read(), digest_size=16).hexdigest()
        return f"source {rel} {st.st_size} {st.st_mtime_ns} {digest}"

    def _write_record(self, inplace, status, lines):
        text = "\n".join(["# Written by setup.py build_ext; read by tcpanalyze/_loader.py at import time.",
                          status, *lines]) + "\n"
        targets = [os.path.join(self.build_lib, PACKAGE)]
        if inplace:
            targets.append(os.path.join(HERE, self.get_finalized_command("build_py").get_package_dir(PACKAGE)))
        for directory in targets:
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, RECORD), "w", encoding="utf-8") as f:
                f.write(text)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
