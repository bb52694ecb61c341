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
``--side-by-side``: each repeat also starts N independent --jobs 1 runs together (``Nx1``):
N times one run's work in the time the last of them ends is the most N processes give on
this machine at that moment (shared caches, memory bandwidth, a host's sharing of cores),
the ceiling of any split.  ``--rotate R``: the lane table turned by R buckets (which lanes
the large connections fall in, as another flow hash would put them).
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


def side_by_side(capture: str, n: int, fmt: tuple) -> dict:
    """``n`` independent ``analyze --jobs 1`` runs started together: the wall clock until the
    last ends.  n runs of one process each in that time is what n cores of this machine give
    work that needs no splitting at all, the most a split into n processes can give."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, "-m", "tcpanalyze", "analyze", *fmt, "--jobs", "1", capture],
                           stdout=subprocess.DEVNULL, env=env) for _ in range(n)]
    for p in ps:
        p.wait()
    wall = time.perf_counter() - t0
    return {"jobs": f"{n}x1", "wall": wall, "own_cpu": float("nan"), "workers_cpu": float("nan"), "load": load}


#: run in the child before the command with --rotate R: the lane table turned by R buckets
_ROTATE = ("from tcpanalyze import fanout\n"
           "_table = fanout.lane_table\n"
           "fanout.lane_table = lambda w: (lambda t: t[{r}:] + t[:{r}])(_table(w))\n")


def run(capture: str, jobs: int, fmt: tuple = ("--json",), hash_only: bool = False, rotate: int = 0) -> dict:
    """One analyze run: wall clock, CPU of the process, CPU of its children (the workers)."""
    code = ("import resource, sys, time\n"
            + (_ROTATE.format(r=rotate) if rotate else "")
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
    ap.add_argument("--rotate", type=int, default=0,
                    help="turn the lane table by this many buckets: the luck of another flow hash")
    ap.add_argument("--side-by-side", action="store_true",
                    help="also N runs of --jobs 1 started together (labelled Nx1): the machine's ceiling")
    a = ap.parse_args(argv)
    runs: dict[str, list] = {}
    plan = [(1, False), (a.jobs, False)] + ([(a.jobs, True)] if a.hash_only else []) \
        + ([(-a.jobs, False)] if a.side_by_side else [])
    print(f"{'jobs':>6} {'wall s':>7} {'main CPU s':>10} {'workers CPU s':>13} {'total CPU s':>11} {'load':>5}")
    for i in range(a.repeat):
        for jobs, hash_only in plan[i % len(plan):] + plan[:i % len(plan)]:   # rotate the order
            fmt = () if a.table else ("--json",)
            r = side_by_side(a.capture, -jobs, fmt) if jobs < 0 else run(a.capture, jobs, fmt, hash_only, a.rotate)
            print(f"{r['jobs']:>6} {r['wall']:>7.2f} {r['own_cpu']:>10.2f} {r['workers_cpu']:>13.2f} "
                  f"{r['own_cpu'] + r['workers_cpu']:>11.2f} {r['load']:>5.1f}", flush=True)
            runs.setdefault(r["jobs"], []).append(r["wall"])
    one = runs["1"]
    for label, walls in runs.items():
        if label == "1":
            continue
        if label.endswith("x1"):                # n runs' worth of work in that time
            n = int(label[:-2])
            print(f"{label} (the ceiling): {n} runs in {statistics.median(walls):.2f} s (median), "
                  f"{n * statistics.median(one) / statistics.median(walls):.2f}x one run's throughput; best "
                  f"{n * min(one) / min(walls):.2f}x")
            continue
        print(f"--jobs {label}: best {min(walls):.2f} s against {min(one):.2f} s: {min(one) / min(walls):.2f}x; "
              f"median {statistics.median(walls):.2f} s against {statistics.median(one):.2f} s: "
              f"{statistics.median(one) / statistics.median(walls):.2f}x ({a.repeat} runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
