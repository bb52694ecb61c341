"""Wall clock and CPU time of ``analyze`` on one capture with one process and with
``--jobs N`` (read once, fanned out: tcpanalyze/parallel.py, tcpanalyze/fanout.py), and the
CPU split between the reader (this process: it reads, analyses its own share and merges)
and the workers (its children).

    python bench/jobs_split.py CAPTURE [--jobs 2] [--repeat 3] [--table]

Each run is a fresh ``python -m tcpanalyze analyze --json`` process (``--table``: the table
report; output to /dev/null), timed by ``wait4``: its own CPU (the reader with --jobs) and
its children's (the workers).  Prints the best wall clock of the repeats, the CPU of that run, the load average
before each run, and the speed-up of the best --jobs N over the best --jobs 1.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capture: str, jobs: int, fmt: tuple = ("--json",)) -> dict:
    """One analyze run: wall clock, CPU of the process, CPU of its children (the workers)."""
    code = ("import resource, sys, time\n"
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
    return {"jobs": jobs, "wall": wall, "inner": inner, "own_cpu": own, "workers_cpu": kids, "load": load}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--table", action="store_true", help="the table report instead of --json")
    a = ap.parse_args(argv)
    best = {}
    print(f"{'jobs':>4} {'wall s':>7} {'main CPU s':>10} {'workers CPU s':>13} {'total CPU s':>11} {'load':>5}")
    for _ in range(a.repeat):
        for jobs in (1, a.jobs):
            r = run(a.capture, jobs, () if a.table else ("--json",))
            print(f"{jobs:>4} {r['wall']:>7.2f} {r['own_cpu']:>10.2f} {r['workers_cpu']:>13.2f} "
                  f"{r['own_cpu'] + r['workers_cpu']:>11.2f} {r['load']:>5.1f}", flush=True)
            if jobs not in best or r["wall"] < best[jobs]["wall"]:
                best[jobs] = r
    one, many = best[1], best[a.jobs]
    print(f"best of {a.repeat}: --jobs 1 {one['wall']:.2f} s, --jobs {a.jobs} {many['wall']:.2f} s: "
          f"{one['wall'] / many['wall']:.2f}x wall clock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
