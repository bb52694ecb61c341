#!/usr/bin/env python3
"""``analyze --jobs N`` against one process, byte for byte.

    python bench/jobs_identity.py BASELINE [--jobs 2] [--pythonpath TREE] [--extra CAPTURE]...
    python bench/jobs_identity.py - --jobs 3 --pythonpath TREE --formats json,table,jsonl --extra big.pcap

For every capture ``bench/identity.py record`` covers (the bundled samples, tests/data and
each ``--extra``), runs ``analyze --jobs N`` in each of ``--formats`` (``json``: ``--json``;
``table``: the table report; ``jsonl``: ``--jsonl``) and compares its output and exit code
with ``analyze --json`` of a ``bench/identity.py record`` directory (BASELINE, for ``json``)
or, without one (``-``) and for the other formats, with the same tree's ``--jobs 1`` run
(``--root``: the tree the baseline was recorded in, since the documents name their files).
Names every capture whose output differs; exit 1 if any does.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import identity  # noqa: E402
from identity import _label, captures  # noqa: E402

FORMATS = {"json": ["--json"], "table": [], "jsonl": ["--jsonl"]}


def _run(python: str, env: dict, cap: Path, args: list[str]) -> tuple[bytes, int]:
    r = subprocess.run([python, "-m", "tcpanalyze", "analyze", *args, str(cap)], capture_output=True, env=env,
                       timeout=1800)
    return r.stdout, r.returncode


def check(cap: Path, fmt: str, jobs: int, baseline: Path | None, python: str, env: dict) -> str | None:
    out, rc = _run(python, env, cap, [*FORMATS[fmt], "--jobs", str(jobs)])
    if fmt == "json" and baseline is not None:
        dest = baseline / f"{_label(cap)}.analyze.json"
        want = dest.read_bytes()
        want_rc = int((baseline / f"{_label(cap)}.analyze.json.rc").read_text())
    else:
        want, want_rc = _run(python, env, cap, FORMATS[fmt])
    if out != want or rc != want_rc:
        return f"differs: {_label(cap)} analyze {fmt} --jobs {jobs} (rc {rc}, want {want_rc})"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("baseline", help="a bench/identity.py record directory, or - to compare with --jobs 1")
    ap.add_argument("--jobs", type=int, default=2, help="analyze --jobs N (default 2)")
    ap.add_argument("--formats", default="json", help="comma-separated: json, table, jsonl (default json)")
    ap.add_argument("--extra", action="append", default=[], help="another capture (repeatable)")
    ap.add_argument("--only-extra", action="store_true", help="only the --extra captures")
    ap.add_argument("--root", help="the tree whose samples and tests/data are run (default: this one); the "
                                   "same as the baseline's, as the documents name their files")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--pythonpath", help="run the sources in this directory instead of the installed package")
    ap.add_argument("--parallel", type=int, default=1, help="captures checked at a time (default 1)")
    o = ap.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if o.pythonpath:
        env["PYTHONPATH"] = o.pythonpath
    baseline = None if o.baseline == "-" else Path(o.baseline)
    if o.root:
        identity.ROOT = Path(o.root).resolve()
    caps = [Path(p) for p in o.extra] if o.only_extra else captures(o.extra)
    work = [(cap, fmt) for cap in caps for fmt in o.formats.split(",")]
    with ThreadPoolExecutor(o.parallel) as ex:
        bad = [r for r in ex.map(lambda w: check(w[0], w[1], o.jobs, baseline, o.python, env), work) if r]
    for line in bad:
        print(line)
    print(f"{len(work)} outputs of {len(caps)} captures compared (analyze --jobs {o.jobs}), {len(bad)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
