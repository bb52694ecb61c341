#!/usr/bin/env python3
"""Record what tcpanalyze prints for a set of captures, or compare two such records.

A refactor of the engine must not change a single byte of output.  ``record`` runs
``packets`` (TSV, and JSON lines with every flag's reason), ``flows --format jsonl`` and
``analyze --json`` on every bundled
sample, every capture in tests/data (public traces, crafted and real-kernel captures) and any extra capture named with ``--extra``,
and writes one file per (capture, command) into OUT, with a SHA-256 list in
``OUT/SUMS``.  ``diff A B`` compares two records file by file and names every file that
differs (exit 1), so the same command proves a change byte-identical in the pure and the
compiled build:

    python bench/identity.py record /tmp/before --extra /tmp/bench.pcap
    ... change the code ...
    python bench/identity.py record /tmp/after --extra /tmp/bench.pcap
    python bench/identity.py diff /tmp/before /tmp/after

``--python`` picks the interpreter and ``--pythonpath`` the source tree to run (default:
the installed package).  Exit codes of the commands (0 or 1) are recorded too.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")
COMMANDS = {
    "packets.tsv": ["packets"],
    "packets.jsonl": ["packets", "--format", "jsonl"],
    "flows.jsonl": ["flows", "--format", "jsonl"],
    "analyze.json": ["analyze", "--json"],
}


def captures(extra: list[str]) -> list[Path]:
    found = sorted((ROOT / "samples").glob("*.pcap"))
    for sub in ("traces", "crafted", "real"):
        d = ROOT / "tests" / "data" / sub
        if d.is_dir():
            found += sorted(p for p in d.iterdir() if p.name.endswith(CAPTURE_SUFFIXES))
    return found + [Path(p) for p in extra]


def _label(p: Path) -> str:
    return f"{p.parent.name}__{p.name}"


def _one(python: str, env: dict, cap: Path, out: Path, name: str, args: list[str]) -> str:
    dest = out / f"{_label(cap)}.{name}"
    with open(dest, "wb") as fh:
        r = subprocess.run([python, "-m", "tcpanalyze", *args, str(cap)], stdout=fh,
                           stderr=subprocess.PIPE, env=env, cwd=out, timeout=1800)
    (out / f"{_label(cap)}.{name}.rc").write_text(f"{r.returncode}\n")
    if r.returncode not in (0, 1):
        sys.stderr.write(f"{dest.name}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-400:]}\n")
    h = hashlib.sha256(dest.read_bytes()).hexdigest()
    return f"{h}  {dest.name} rc={r.returncode}"


def record(out: Path, extra: list[str], python: str, pythonpath: str | None, jobs: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    probe = subprocess.run([python, "-c", "import tcpanalyze.engine as e; print(e.__file__)"],
                           capture_output=True, text=True, env=env, cwd=out)
    print(f"engine: {probe.stdout.strip() or probe.stderr.strip()}")
    jobs_list = [(cap, name, args) for cap in captures(extra) for name, args in COMMANDS.items()]
    with ThreadPoolExecutor(jobs) as ex:
        sums = list(ex.map(lambda j: _one(python, env, j[0], out, j[1], j[2]), jobs_list))
    (out / "SUMS").write_text("\n".join(sorted(sums)) + "\n")
    print(f"{len(sums)} outputs of {len(jobs_list) // len(COMMANDS)} captures in {out}")
    return 0


def diff(a: Path, b: Path) -> int:
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()} - {"SUMS"})
    bad = 0
    for n in names:
        if n == "SUMS":
            continue
        pa, pb = a / n, b / n
        if not pa.exists() or not pb.exists():
            print(f"only in {'B' if not pa.exists() else 'A'}: {n}")
            bad += 1
        elif pa.read_bytes() != pb.read_bytes():
            print(f"differs: {n}")
            bad += 1
    print(f"{len(names)} files compared, {bad} differ")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--extra", action="append", default=[], help="another capture (repeatable)")
    r.add_argument("--python", default=sys.executable)
    r.add_argument("--pythonpath", help="run the sources in this directory instead of the installed package")
    r.add_argument("--jobs", type=int, default=2)
    d = sub.add_parser("diff")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    o = ap.parse_args()
    if o.cmd == "record":
        return record(o.out, o.extra, o.python, o.pythonpath, o.jobs)
    return diff(o.a, o.b)


if __name__ == "__main__":
    sys.exit(main())
