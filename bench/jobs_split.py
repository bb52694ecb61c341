"""Wall clock and CPU time of ``analyze`` on one capture with one process and with
``--jobs N`` (read once, fanned out: tcpanalyze/parallel.py, tcpanalyze/fanout.py), and the
CPU split between the reader (this process: it reads, analyses its own share and merges)
and the workers (its children).

    python bench/jobs_split.py CAPTURE [--jobs 2] [--repeat 3] [--table] [--hash-only]

Each run is a fresh ``python -m tcpanalyze analyze --json`` process (``--table``: the table
report; output to /dev/null), timed by ``wait4``: its own CPU (the reader with --jobs) and
its children's (the workers).  Prints the best wall clock of the repeats, the CPU of that run, the load average
before each run, and the speed-up of the best and of the median --jobs N over --jobs 1.
``--hash-only``: each repeat also runs --jobs N with every connection on the lane of its
flow hash (``fanout.Placement`` without the moves of new connections), labelled ``N/hash``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: run in the child before the command with --hash-only: the placement by flow hash alone
_HASH_ONLY = ("from tcpanalyze import fanout, parallel\n"
              "parallel.Placement = lambda w, own=True: fanout.Placement(table=fanout.lane_table(w), nlanes=len(w))\n")


def run(capture: str, jobs: int, fmt: tuple = ("--json",), hash_only: bool = False) -> dict:
    """One analyze run: wall clock, CPU of the process, CPU of its children (the workers)."""
    code = ("import resource, sys, time\n"
            + (_HASH_ONLY if hash_only else "") +
            "from tcpanalyze.cli import main\n"
            "t = time.perf_counter()\n"
            "try:\n"
            "    main(sys.argv[1:])\n"
            "except SystemExit:\n"
            "    pass\n"
            "s = resource.getrusage(resource.RUSAGE_SELF)\n"
            "c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(time.perf_counter() - t, s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime, file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, "analyze", *fmt, "--jobs", str(jobs), capture],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True, check=False)
    wall = time.perf_counter() - t0
    inner, own, kids = (float(x) for x in p.stderr.strip().splitlines()[-1].split())
    return {"jobs": f"{jobs}/hash" if hash_only else str(jobs), "wall": wall, "inner": inner, "own_cpu": own, "workers_cpu": kids, "load": load}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--table", action="store_true", help="the table report instead of --json")
    ap.add_argument("--hash-only", action="store_true", help="also --jobs N with placement by flow hash alone")
    a = ap.parse_args(argv)
    runs: dict[str, list] = {}
    plan = [(1, False), (a.jobs, False)] + ([(a.jobs, True)] if a.hash_only else [])
    print(f"{'jobs':>6} {'wall s':>7} {'main CPU s':>10} {'workers CPU s':>13} {'total CPU s':>11} {'load':>5}")
    for i in range(a.repeat):
        for jobs, hash_only in plan[i % len(plan):] + plan[:i % len(plan)]:   # rotate the order
            r = run(a.capture, jobs, () if a.table else ("--json",), hash_only)
            print(f"{r['jobs']:>6} {r['wall']:>7.2f} {r['own_cpu']:>10.2f} {r['workers_cpu']:>13.2f} "
                  f"{r['own_cpu'] + r['workers_cpu']:>11.2f} {r['load']:>5.1f}", flush=True)
            runs.setdefault(r["jobs"], []).append(r["wall"])
    one = runs["1"]
    for label, walls in runs.items():
        if label == "1":
            continue
        print(f"--jobs {label}: best {min(walls):.2f} s against {min(one):.2f} s: {min(one) / min(walls):.2f}x; "
              f"median {statistics.median(walls):.2f} s against {statistics.median(one):.2f} s: "
              f"{statistics.median(one) / statistics.median(walls):.2f}x ({a.repeat} runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
