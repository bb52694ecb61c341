#!/usr/bin/env python3
"""Side-by-side benchmark on one capture, in one run: tcptrace, tcpanalyze's commands and
(with ``--tshark``) tshark; wall time (best of N) and peak RSS of each; a markdown table.

    python bench/table.py /work/big21/big.pcap
    python bench/table.py CAPTURE --repeat 3 --tshark --markdown out.md
    python bench/table.py CAPTURE --memory-4x CAPTURE4X      # + peak RSS on the 4x capture

Every command runs as a child process with its output sent to /dev/null; its peak RSS is the
child's ``ru_maxrss`` from ``os.wait4`` (for ``--jobs 2`` the largest process, not the sum).
The commands run round-robin (one pass over all of them, N times) so a change in the load of a
shared machine falls on every command alike; the time shown is the best of the N passes, the
RSS the largest.  tshark runs ``--tshark-repeat`` times (default once: it takes tens of
seconds).  ``analyze --jsonl`` is included when the ``tcpanalyze analyze`` in use has it.

tcpanalyze runs as ``python -m tcpanalyze`` from the tree this script belongs to, or from
``--pythonpath DIR``.  The capture's description (packets, bytes, duration, connections)
comes from capinfos when present, else from a pass over the file, and the connection count
from ``tcpanalyze analyze --json`` (in a child process, to keep this process small: a child's
ru_maxrss starts at its parent's).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def measure(cmd: list[str], env: dict, timeout: float) -> dict:
    """Run ``cmd`` (stdout to /dev/null); wall time, the child's peak RSS, exit code."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            _pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    err.seek(0)
    tail = err.read().decode(errors="replace")[-400:]
    timed_out = wall > timeout
    return {"wall": wall, "rss_mb": ru.ru_maxrss / 1024, "rc": rc, "stderr": tail, "timed_out": timed_out}


def commands(ta: list[str], path: str, tshark: bool, jsonl: bool) -> list[tuple[str, list[str], str]]:
    """(label, argv, kind) in table order; kind: 'tcptrace', 'tcpanalyze' or 'tshark'."""
    rows = []
    tcptrace = shutil.which("tcptrace")
    if tcptrace:
        rows += [("`tcptrace -n -l -r`", [tcptrace, "-n", "-l", "-r", path], "tcptrace"),
                 ("`tcptrace -n`", [tcptrace, "-n", path], "tcptrace")]
    rows += [("`tcpanalyze analyze`", ta + ["analyze", path], "tcpanalyze"),
             ("`tcpanalyze analyze --json`", ta + ["analyze", "--json", path], "tcpanalyze")]
    if jsonl:
        rows.append(("`tcpanalyze analyze --jsonl`", ta + ["analyze", "--jsonl", path], "tcpanalyze"))
    rows += [("`tcpanalyze packets`", ta + ["packets", path], "tcpanalyze"),
             ("`tcpanalyze flows --format jsonl`", ta + ["flows", "--format", "jsonl", path], "tcpanalyze"),
             ("`tcpanalyze analyze --jobs 2`", ta + ["analyze", "--jobs", "2", path], "tcpanalyze")]
    ts = shutil.which("tshark")
    if tshark and ts:
        rows += [("`tshark -q -z conv,tcp`", [ts, "-n", "-r", path, "-q", "-z", "conv,tcp"], "tshark"),
                 ("`tshark -T fields -e tcp.analysis.flags`",
                  [ts, "-n", "-r", path, "-T", "fields", "-e", "tcp.analysis.flags"], "tshark")]
    return rows


def describe(path: str, ta: list[str], env: dict) -> dict:
    """Packets, bytes, first/last timestamp of the capture; connections per tcpanalyze."""
    d = {"path": path, "bytes": os.path.getsize(path)}
    code = r"""
import struct, sys
f = open(sys.argv[1], 'rb', buffering=1 << 20)
h = f.read(24)
e = '<' if h[:4] in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1') else '>'
tps = 1e9 if h[:4] in (b'\x4d\x3c\xb2\xa1', b'\xa1\xb2\x3c\x4d') else 1e6
rec = struct.Struct(e + 'IIII')
n = 0; first = last = None
while True:
    r = f.read(16)
    if len(r) < 16: break
    s, fr, cl, wl = rec.unpack(r)
    f.seek(cl, 1)
    t = s + fr / tps
    first = t if first is None else first
    last = t if last is None or t > last else last
    n += 1
print(n, first or 0, last or 0)
"""
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    try:
        n, first, last = out.stdout.split()
        d.update(packets=int(n), first=float(first), last=float(last), duration=float(last) - float(first))
    except ValueError:
        d.update(packets=0, first=0.0, last=0.0, duration=0.0)
    with tempfile.NamedTemporaryFile(suffix=".json") as tf:
        r = subprocess.run(ta + ["analyze", "--json", path, "-o", tf.name], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode in (0, 1):
            code = ("import json, sys; s = json.load(open(sys.argv[1]))['summary']; "
                    "print(json.dumps({k: s.get(k) for k in ('connections', 'packets', 'tcp_packets')}))")
            o = subprocess.run([sys.executable, "-c", code, tf.name], capture_output=True, text=True)
            try:
                d.update({k: v for k, v in json.loads(o.stdout).items() if k != "packets" and v is not None})
            except ValueError:
                pass
    return d


def has_analyze_jsonl(ta: list[str], env: dict) -> bool:
    r = subprocess.run(ta + ["analyze", "--help"], env=env, cwd=ROOT, capture_output=True, text=True)
    return "--jsonl" in r.stdout


def run(args) -> dict:
    env = dict(os.environ)
    src = str(Path(args.pythonpath).resolve()) if args.pythonpath else str(ROOT)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    ta = [sys.executable, "-m", "tcpanalyze"]
    path = str(Path(args.capture).resolve())
    if not os.path.isfile(path):
        raise SystemExit(f"table.py: no such file: {args.capture}")
    build = subprocess.run([sys.executable, "-c", "import tcpanalyze._loader as l; print(l.status())"],
                           env=env, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    jsonl = has_analyze_jsonl(ta, env)
    rows = commands(ta, path, args.tshark, jsonl)
    if not any(k == "tcptrace" for _l, _c, k in rows):
        print("table.py: tcptrace not found (apt-get install tcptrace): its rows are left out", file=sys.stderr)
    if args.tshark and not shutil.which("tshark"):
        print("table.py: tshark not found: its rows are left out", file=sys.stderr)
    res = {"capture": None, "rows": [], "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                    "load_before": os.getloadavg(), "build": build,
                                                    "tcpanalyze": src}}
    results: dict[str, list[dict]] = {label: [] for label, _c, _k in rows}
    for i in range(args.repeat):
        for label, cmd, kind in rows:
            if kind == "tshark" and i >= args.tshark_repeat:
                continue
            r = measure(cmd, env, args.timeout)
            results[label].append(r)
            print(f"  pass {i + 1}: {label}: {r['wall']:.2f} s, {r['rss_mb']:.0f} MB"
                  f"{'' if r['rc'] in (0, 1) else ' exit %d: %s' % (r['rc'], r['stderr'].strip()[-200:])}",
                  file=sys.stderr, flush=True)
    for label, _cmd, kind in rows:
        rs = results[label]
        ok = [r for r in rs if r["rc"] in (0, 1) and not r["timed_out"]]
        res["rows"].append({"label": label, "kind": kind, "runs": len(rs), "ok": len(ok) == len(rs),
                            "best": min(r["wall"] for r in ok) if ok else None,
                            "rss_mb": max(r["rss_mb"] for r in rs),
                            "rc": sorted({r["rc"] for r in rs})})
    if args.memory_4x:
        p4 = str(Path(args.memory_4x).resolve())
        mem = []
        for label, cmd, kind in commands(ta, p4, False, jsonl):
            if kind != "tcpanalyze" or "--json`" in label or "--jobs" in label:
                continue
            r = measure(cmd, env, args.timeout)
            print(f"  4x: {label}: {r['wall']:.2f} s, {r['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
            mem.append({"label": label, "rss_mb": r["rss_mb"], "wall": r["wall"], "rc": r["rc"]})
        res["memory_4x"] = {"capture": describe(p4, ta, env), "rows": mem}
    res["capture"] = describe(path, ta, env)
    res["machine"]["load_after"] = os.getloadavg()
    return res


def markdown(res: dict, repeat: int) -> str:
    c = res["capture"]
    m = res["machine"]
    rows = res["rows"]
    by = {r["label"]: r for r in rows}
    ref = by.get("`tcptrace -n -l -r`")
    conns = f"{c['connections']:,} connections, " if c.get("connections") is not None else ""
    lines = [f"Capture `{os.path.basename(c['path'])}`: {c['packets']:,} packets, {c['bytes'] / 1e9:.2f} GB, "
             f"{conns}{c['duration']:.0f} s. "
             f"Machine: {m['cpus']} CPUs, Python {m['python']}, tcpanalyze build: {m['build'] or '?'}; "
             f"load average {m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after. "
             f"Time: best of {repeat} round-robin passes (tshark: fewer, see runs); peak RSS: the largest "
             f"ru_maxrss of the runs (for `--jobs 2` the largest process).", "",
             "| command | time (s) | peak RSS (MB) | packets/s | time / tcptrace -n -l -r | runs |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["best"] is None:
            lines.append(f"| {r['label']} | failed (exit {r['rc']}) | {r['rss_mb']:,.0f} | - | - | {r['runs']} |")
            continue
        rel = f"{r['best'] / ref['best']:.2f}" if ref and ref["best"] else "-"
        lines.append(f"| {r['label']} | {r['best']:.2f} | {r['rss_mb']:,.0f} | {c['packets'] / r['best']:,.0f} "
                     f"| {rel} | {r['runs']} |")
    lines.append("")
    an, j2 = by.get("`tcpanalyze analyze`"), by.get("`tcpanalyze analyze --jobs 2`")
    checks = []
    if an and ref and an["best"] and ref["best"]:
        checks.append(("`analyze` time <= `tcptrace -n -l -r` time", f"{an['best']:.2f} s vs {ref['best']:.2f} s",
                       an["best"] <= ref["best"]))
    if an and j2 and an["best"] and j2["best"]:
        checks.append(("`analyze --jobs 2` >= 1.7x `analyze`", f"{an['best'] / j2['best']:.2f}x",
                       an["best"] / j2["best"] >= 1.7))
    for lab in ("`tcpanalyze analyze`", "`tcpanalyze analyze --jsonl`", "`tcpanalyze packets`",
                "`tcpanalyze flows --format jsonl`"):
        if lab in by:
            checks.append((f"{lab} peak RSS < 100 MB", f"{by[lab]['rss_mb']:,.0f} MB", by[lab]["rss_mb"] < 100))
    m4 = res.get("memory_4x")
    if m4:
        c4 = m4["capture"]
        conns4 = f"{c4['connections']:,} connections, " if c4.get("connections") is not None else ""
        lines += [f"Peak RSS on `{os.path.basename(c4['path'])}` ({c4['packets']:,} packets, "
                  f"{c4['bytes'] / 1e9:.2f} GB, {conns4}{c4['duration']:.0f} s), one run each:", "",
                  "| command | peak RSS 1x (MB) | peak RSS 4x (MB) | 4x / 1x | time 4x (s) |",
                  "|---|---:|---:|---:|---:|"]
        for r in m4["rows"]:
            one = by.get(r["label"])
            ratio = r["rss_mb"] / one["rss_mb"] if one and one["rss_mb"] else 0.0
            lines.append(f"| {r['label']} | {one['rss_mb']:,.0f} | {r['rss_mb']:,.0f} | {ratio:.2f} | {r['wall']:.1f} |")
            checks.append((f"{r['label']} peak RSS on 4x within 10% of 1x", f"{ratio:.2f}", ratio <= 1.10))
        lines.append("")
    if checks:
        lines += ["| acceptance | measured | met |", "|---|---:|---|"]
        lines += [f"| {a} | {b} | {'yes' if ok else '**no**'} |" for a, b, ok in checks]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture")
    ap.add_argument("--repeat", type=int, default=3, help="round-robin passes; the time is the best (default 3)")
    ap.add_argument("--tshark", action="store_true", help="include the two tshark commands (tens of seconds each)")
    ap.add_argument("--tshark-repeat", type=int, default=1, help="passes that include tshark (default 1)")
    ap.add_argument("--memory-4x", metavar="CAPTURE", help="also measure peak RSS on this capture (4x connections)")
    ap.add_argument("--pythonpath", metavar="DIR", help="the tcpanalyze source tree to run (default: this one)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds a command may take (default 600)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    ap.add_argument("--json", metavar="FILE", help="write the raw results as JSON")
    a = ap.parse_args(argv)
    if a.repeat < 1 or a.tshark_repeat < 0:
        ap.error("--repeat must be >= 1 and --tshark-repeat >= 0")
    res = run(a)
    md = markdown(res, a.repeat)
    print(md)
    if a.markdown:
        Path(a.markdown).write_text(md + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
