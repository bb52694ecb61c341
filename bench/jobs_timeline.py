"""Per-process timeline of ``analyze --jobs N``: when (wall clock) and after how much CPU
time each process reaches each phase of a run read once and fanned out.

    python bench/jobs_timeline.py [--pythonpath TREE] -- analyze --jobs 2 CAPTURE

Runs the command in a fresh interpreter with stamps wrapped around the phases of
``tcpanalyze.parallel`` (reading and dispatching, a part's finalization at the end and its
result, pickling and unpickling the parts, the merge, ``ReportBuilder.build``) and prints,
per stamp: process id, seconds since the start (``time.perf_counter``, one clock for all
processes), the process's own CPU seconds (``time.process_time``), the phase, details.
Output of the command goes to /dev/null.  The stamps only wrap functions (the run is the
same); a tree whose functions differ in name is not instrumented there.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

_STAMPS = r'''
import os, pickle, sys, time
T0 = time.perf_counter()
LOG = os.environ["JOBS_TIMELINE_LOG"]


def stamp(label, extra="", at=None):
    wall, cpu = at if at is not None else (time.perf_counter(), time.process_time())
    with open(LOG, "a") as f:
        f.write(f"{os.getpid():>7} {wall - T0:8.3f} {cpu:7.3f} {label} {extra}\n")


def wrap(owner, name, before, after, detail=None, big=None):
    """Stamp before and after each call; with ``big(args, result)``, only the calls it
    accepts (the small pickles sent during the run are left out)."""
    real = getattr(owner, name, None)
    if real is None:
        return

    def wrapped(*a, **k):
        t0 = (time.perf_counter(), time.process_time())
        if big is None:
            stamp(before, detail(a) if detail else "", t0)
        r = real(*a, **k)
        if big is None:
            stamp(after, detail(a) if detail else "")
        elif big(a, r):
            t1 = (time.perf_counter(), time.process_time())
            stamp(before, detail(a) if detail else "", t0)
            stamp(after, detail(a) if detail else "", t1)
        return r

    setattr(owner, name, wrapped)


from tcpanalyze import parallel as P, session as S
wrap(P, "_read_once", "read_start", "read_end")
wrap(P._Part, "finish", "finish_start", "finish_end", lambda a: f"part={a[0].part} finalized_before={a[0].finalized}")
wrap(P._Part, "result", "result_start", "result_end", lambda a: f"part={a[0].part}")
wrap(P, "_lane_worker", "worker_start", "worker_end")
wrap(P, "merge_parts", "merge_start", "merge_end")
wrap(P, "_replay_logs", "tw_replay_start", "tw_replay_end")
wrap(S.ReportBuilder, "build", "build_start", "build_end")
from tcpanalyze.commands import analyze as A
wrap(A, "_render_imports", "render_imports_start", "render_imports_end")
wrap(pickle, "dumps", "pickle_start", "pickle_end", big=lambda a, r: len(r) > 100_000)
wrap(pickle, "loads", "unpickle_start", "unpickle_end", lambda a: f"{len(a[0])} bytes",
     big=lambda a, r: len(a[0]) > 100_000)
from tcpanalyze.cli import main
stamp("main_start")
try:
    main(sys.argv[1:])
except SystemExit:
    pass
stamp("main_end")
'''


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pythonpath", help="the tree to run (default: the installed package)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="tcpanalyze arguments, after --")
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    env = dict(os.environ)
    if a.pythonpath:
        env["PYTHONPATH"] = a.pythonpath
    fd, log = tempfile.mkstemp(prefix="jobs-timeline-")
    os.close(fd)
    env["JOBS_TIMELINE_LOG"] = log
    try:
        subprocess.run([sys.executable, "-c", _STAMPS, *cmd], stdout=subprocess.DEVNULL, env=env, check=False)
        print(f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'pid':>7} {'wall s':>8} {'CPU s':>7} phase")
        with open(log) as f:
            sys.stdout.write(f.read())
    finally:
        os.unlink(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
