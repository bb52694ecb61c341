"""Optional compiled build of the per-packet core.

The modules of the per-packet path (model, engine, decode, state, zeek, findings, summary,
analysis, seq, pipeline, the packets rows and the capture reader) are plain Python; with
Cython and a C compiler at install time they are also compiled (Cython's pure-Python mode;
``model.pxd``/``engine.pxd`` type the per-connection records, ``rows.pxd`` the packets row
writer, the other modules compile as they are, with their ``@cython.locals`` types).
Without either -- or if compiling fails for any reason -- the install goes on and the same
files run as Python.  ``TCPANALYZE_PURE=1`` skips the build.  Everything else lives in
pyproject.toml.
"""
import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ["tcpanalyze/model.py", "tcpanalyze/engine.py", "tcpanalyze/decode.py", "tcpanalyze/state.py",
            "tcpanalyze/zeek.py", "tcpanalyze/summary.py", "tcpanalyze/analysis.py",
            "tcpanalyze/seq.py", "tcpanalyze/rows.py", "tcpanalyze/pipeline.py",
            "tcpanalyze/sources/pcap.py"]
# the detector modules (their package's __init__ stays Python: it imports every module it holds)
COMPILED += sorted(p for p in glob.glob("tcpanalyze/findings/*.py") if not p.endswith("__init__.py"))


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python package, with a note, instead of failing."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any compiler problem means "no speed-up"
            print(f"tcpanalyze: compiled core not built ({e}); using pure Python", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            print(f"tcpanalyze: {ext.name} not compiled ({e}); using pure Python", file=sys.stderr)


def extensions():
    if os.environ.get("TCPANALYZE_PURE"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    return cythonize(COMPILED, language_level=3, quiet=True,
                     compiler_directives={"binding": False, "boundscheck": False, "wraparound": True})


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
