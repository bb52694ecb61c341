"""What reading once and fanning out costs per packet, by process role, in instructions
(callgrind: independent of the machine's load) or CPU time.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null PYTHON bench/fanout_cost.py CAPTURE PHASE

PHASE is one of
  setup     imports only: subtracted from the others
  dispatch  setup + the reader/dispatcher of ``--jobs N`` (read, decode, write records)
  fanout    dispatch + every worker fed from the records, connections finalized
  one       setup + one process's analysis (read, decode, engine, detectors, finalization)
so that dispatcher = dispatch - setup, workers (all together) = fanout - dispatch and
one process = one - setup.  ``--jobs N`` (default 2) sets the number of workers.
Without valgrind it prints the CPU time of the phase's own part.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("phase", choices=["setup", "dispatch", "fanout", "one"])
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    from tcpanalyze import fanout
    from tcpanalyze import parallel as P
    from tcpanalyze.pipeline import analyze_source
    from tcpanalyze.session import ReportBuilder

    gc.disable()
    t = time.process_time()
    if a.phase in ("dispatch", "fanout"):
        lanes = P._KeptLanes(a.jobs)
        shared = P._read_once(a.capture, None, lanes, fanout.lane_table([1] * a.jobs))
        lanes.mem.close()
        t1 = time.process_time()
        print(f"dispatcher {t1 - t:.2f} s CPU", file=sys.stderr)
        if a.phase == "fanout":
            for k in range(a.jobs):
                w = P._Part(a.capture, None, k, a.jobs)
                for blob in lanes.kept[k]:
                    fanout.consume(blob, 0, len(blob), w.an, w.on_segment, True)
                w.an.last_ns = shared["clock"]["last_ns"]
                w.finish()
                w.discard()
            print(f"workers {time.process_time() - t1:.2f} s CPU", file=sys.stderr)
    elif a.phase == "one":
        b = ReportBuilder(a.capture)
        analyze_source(a.capture, b.analyzer, on_segment=b.on_segment, notable_only=True)
        b.analyzer.finish()
        print(f"one process {time.process_time() - t:.2f} s CPU", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
