#!/usr/bin/env python3
"""Coverage-guided fuzzer (atheris/libFuzzer) for the whole untrusted-input path:
``open_capture`` (pcap, pcapng, gzip, stdin) -> ``decode`` (every link type and tunnel) ->
``Analyzer`` -> ``summarize``.  The input layout and the invariants checked are described
in ``fuzz/harness.py``.

Run (from the repository root):

    pip install atheris                       # if missing
    python fuzz/make_corpus.py                # seeds -> fuzz/corpus (small, ~130 KB)
    mkdir -p fuzz/work                        # new inputs go to the FIRST directory given
    python fuzz/fuzz_capture.py -atheris_runs=1000000 -max_len=4096 -timeout=10 fuzz/work fuzz/corpus

Several processes on one working corpus (each re-reads it for what the others found):

    python fuzz/fuzz_capture.py -atheris_runs=500000 -max_len=4096 -timeout=10 fuzz/work fuzz/corpus &
    python fuzz/fuzz_capture.py -atheris_runs=500000 -max_len=4096 -timeout=10 fuzz/work fuzz/corpus

A crash writes ``crash-<sha1>`` in the current directory; reproduce it with

    python fuzz/fuzz_capture.py crash-<sha1>

Environment: ``TCPANALYZE_FUZZ_REPORT=1`` also runs ``session.analyze_file`` (the
findings detectors and the JSON report) on every file-mode input.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports(include=["tcpanalyze", "harness"]):
    import harness

_WORKDIR = tempfile.mkdtemp(prefix="tcpanalyze-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
atexit.register(shutil.rmtree, _WORKDIR, True)
_REPORT = os.environ.get("TCPANALYZE_FUZZ_REPORT") == "1"
if _REPORT:
    with atheris.instrument_imports(include=["tcpanalyze"]):
        import json

        from tcpanalyze.session import analyze_file


def TestOneInput(data: bytes) -> None:
    harness.one_input(data, _WORKDIR)
    if _REPORT and data and data[0] & 3 == 0:
        rep = analyze_file(os.path.join(_WORKDIR, "input.cap"))
        json.dumps(rep.to_dict(), allow_nan=False)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
