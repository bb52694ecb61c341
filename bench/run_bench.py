#!/usr/bin/env python3
"""Benchmark harness (a script, not a test): throughput and memory of tcpanalyze against
tshark and scapy on a large synthetic capture, memory versus file size, ``--jobs 2``
speed-up, and start-up time.

    python bench/run_bench.py                    # full: ~2.4M packets, 70k connections (15-25 min)
    python bench/run_bench.py --quick            # ~240k packets (about 2 min)
    python bench/run_bench.py --markdown bench/out/RESULTS.md

The capture is built reproducibly with bench/gen_capture.py (fixed seed) into bench/out/
(gitignored), 2x and 4x copies with bench/concat_pcap.py (timestamps shifted so each copy
follows the previous).  Every measured command runs as a child process; its peak RSS is
the child's ``ru_maxrss`` from ``os.wait4`` (for ``--jobs 2``: the largest process, not the
sum).  Rates of the tcpanalyze commands use wall time including interpreter start-up;
the library loops (reader, decoder, engine) and scapy time themselves in-process.  The
machine may be shared: the load average is printed with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"

FULL = {"conns": 70_000, "conn_rate": 120.0, "seed": 1}
QUICK = {"conns": 7_000, "conn_rate": 120.0, "seed": 1}
SCAPY_PREFIX = 50_000
TARGETS = {"analyze_pps": 150_000, "packets_pps": 250_000, "rss_mb": 200, "startup_s": 0.3}
HEAVY_IMPORTS = ("scapy", "pyshark", "matplotlib", "dask", "rich")


# ---------------------------------------------------------------------------- children
def child(argv: list[str]) -> None:
    """``run_bench.py _child MODE FILE``: an in-process loop that prints {"packets", "seconds"}."""
    mode, path = argv[0], argv[1]
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    n = 0
    if mode == "scapy":
        from scapy.utils import PcapReader

        t0 = time.perf_counter()
        with PcapReader(path) as r:
            for _p in r:
                n += 1
                if n >= SCAPY_PREFIX:
                    break
    elif mode == "walk":
        from tcpanalyze.sources.pcap import open_capture

        r = open_capture(path)
        t0 = time.perf_counter()
        for _p in r:
            n += 1
        r.close()
    elif mode in ("decode", "engine"):
        from tcpanalyze.decode import decode
        from tcpanalyze.engine import Analyzer, Config
        from tcpanalyze.sources.pcap import open_capture

        from tcpanalyze.pipeline import gc_tuned

        an = Analyzer(Config(), keep_timeline=False, on_conn_done=lambda c: None)
        feed = an.feed if mode == "engine" else None
        counts: dict = {}
        r = open_capture(path)
        t0 = time.perf_counter()
        with gc_tuned(off=True):        # as every command runs its loop over a file (pipeline.run_packets)
            for frame, ts, lt, data, wl in r:
                n += 1
                try:
                    seg = decode(frame, ts, lt, data, counts, wl)
                except ValueError:
                    continue
                if seg is not None and feed is not None:
                    feed(seg)
            an.finish()
        r.close()
        if feed is not None:
            print(json.dumps({"live_peak": an.live_peak}), file=sys.stderr)
    else:
        raise SystemExit(f"unknown child mode {mode}")
    print(json.dumps({"packets": n, "seconds": time.perf_counter() - t0}))


# ---------------------------------------------------------------------------- measuring
class Result(dict):
    pass


def measure(cmd: list[str], stdout=None, label: str = "", timeout: float | None = None) -> Result:
    """Run ``cmd``; wall time and the child's peak RSS (os.wait4)."""
    out_f = stdout if stdout is not None else subprocess.DEVNULL
    cap = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=cap if stdout == "capture" else out_f, stderr=err, cwd=ROOT)
    try:
        _pid, status, ru = os.wait4(p.pid, 0)
    except KeyboardInterrupt:
        p.kill()
        raise
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    cap.seek(0)
    err.seek(0)
    res = Result(label=label, cmd=" ".join(cmd), wall=wall, rss_mb=ru.ru_maxrss / 1024, rc=p.returncode,
                 stdout=cap.read().decode(errors="replace") if stdout == "capture" else "",
                 stderr=err.read().decode(errors="replace")[-2000:])
    if p.returncode not in (0, 1):
        print(f"  ! {label}: exit {p.returncode}: {res['stderr'][-500:]}", file=sys.stderr)
    return res


def tcpanalyze_cmd() -> list[str]:
    exe = shutil.which("tcpanalyze")
    return [exe] if exe else [sys.executable, "-m", "tcpanalyze"]


def child_cmd(mode: str, path: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "_child", mode, str(path)]


def child_rate(res: Result) -> Result:
    try:
        d = json.loads(res["stdout"].strip().splitlines()[-1])
        res["packets"] = d["packets"]
        res["seconds"] = d["seconds"]
    except (IndexError, ValueError, KeyError):
        res["packets"] = 0
        res["seconds"] = res["wall"]
    return res


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- the run
def build_capture(params: dict, force: bool) -> tuple[Path, int, int]:
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"bench-c{params['conns']}-r{int(params['conn_rate'])}-s{params['seed']}.pcap"
    path = OUT / name
    meta = path.with_suffix(".json")
    if force or not path.exists() or not meta.exists():
        log(f"building {path} ...")
        t = time.perf_counter()
        # in a child process: this process stays small (a child's ru_maxrss starts at its parent's)
        r = subprocess.run([sys.executable, str(HERE / "gen_capture.py"), str(path), "--conns", str(params["conns"]),
                            "--conn-rate", str(params["conn_rate"]), "--seed", str(params["seed"])],
                           capture_output=True, text=True, check=True)
        words = r.stderr.split()
        n, conns = int(words[words.index("packets,") - 1]), int(words[words.index("connections,") - 1])
        meta.write_text(json.dumps({"packets": n, "connections": conns, "seconds": time.perf_counter() - t}))
    m = json.loads(meta.read_text())
    return path, m["packets"], m["connections"]


def build_copies(path: Path, times: int, force: bool) -> Path:
    out = path.with_name(path.stem + f"-x{times}.pcap")
    if force or not out.exists() or out.stat().st_size < path.stat().st_size * times - 24 * times:
        log(f"building {out} ...")
        subprocess.run([sys.executable, str(HERE / "concat_pcap.py"), str(out), str(path), "--times", str(times),
                        "--gap", "1"], check=True, capture_output=True)
    return out


def startup(n: int = 10) -> dict:
    cmd = tcpanalyze_cmd() + ["--help"]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    times.sort()
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "tcpanalyze", "--help"], capture_output=True,
                       text=True, cwd=ROOT)
    mods = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    heavy = sorted(m for m in mods if m in HEAVY_IMPORTS)
    return {"min": times[0], "median": times[len(times) // 2], "heavy_imports": heavy, "modules": len(mods)}


def run(args) -> dict:
    params = QUICK if args.quick else FULL
    tshark = shutil.which("tshark") if not args.no_tshark else None
    res: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                             "load_before": os.getloadavg(), "platform": platform.platform()}}
    path, npk, nconn = build_capture(params, args.rebuild)
    size_mb = path.stat().st_size / 2**20
    res["capture"] = {"path": str(path), "packets": npk, "connections": nconn, "size_mb": size_mb,
                      "quick": args.quick}
    log(f"capture: {npk} packets, {nconn} connections, {size_mb:.0f} MiB")
    if not args.quick and (npk < 2_000_000 or nconn < 50_000):
        log("warning: the capture is smaller than the benchmark targets assume (>= 2M packets, >= 50k connections)")
    ta = tcpanalyze_cmd()
    rows = []

    def row(label, r, packets=None, note=""):
        pk = packets if packets is not None else r.get("packets") or npk
        secs = r.get("seconds", r["wall"])
        rows.append({"label": label, "packets": pk, "seconds": secs, "pps": pk / secs if secs else 0.0,
                     "rss_mb": r["rss_mb"], "rc": r["rc"], "note": note})
        log(f"  {label}: {pk / secs:,.0f} pkt/s, {secs:.2f} s, peak RSS {r['rss_mb']:.0f} MB")

    def best(fn, n):
        rs = [fn() for _ in range(n)]
        return min(rs, key=lambda r: r.get("seconds", r["wall"]))

    rep = args.repeat
    j1 = OUT / "analyze-j1.json"
    j2 = OUT / "analyze-j2.json"
    log("tcpanalyze analyze --json ...")
    r1 = best(lambda: measure(ta + ["analyze", str(path), "--json", "-o", str(j1)], label="analyze"), rep)
    row("tcpanalyze analyze --json", r1)
    log("tcpanalyze analyze (table) ...")
    t1 = best(lambda: measure(ta + ["analyze", str(path), "-o", os.devnull], label="analyze-table"), rep)
    row("tcpanalyze analyze (table, --top 10)", t1)
    log("tcpanalyze analyze --json --jobs 2 ...")
    r2 = best(lambda: measure(ta + ["analyze", str(path), "--json", "-o", str(j2), "--jobs", "2"],
                              label="analyze-j2"), rep)
    row("tcpanalyze analyze --json --jobs 2", r2, note="largest process")
    same = _json_equal(j1, j2)
    res["jobs2"] = {"speedup": r1["wall"] / r2["wall"], "identical": same, "j1_s": r1["wall"], "j2_s": r2["wall"]}
    log(f"  --jobs 2 speed-up {res['jobs2']['speedup']:.2f}x, output identical: {same}")
    log("tcpanalyze analyze (table) --jobs 2 ...")
    t2 = best(lambda: measure(ta + ["analyze", str(path), "-o", os.devnull, "--jobs", "2"],
                              label="analyze-table-j2"), rep)
    row("tcpanalyze analyze (table) --jobs 2", t2, note="largest process")
    res["jobs2_table"] = {"speedup": t1["wall"] / t2["wall"], "j1_s": t1["wall"], "j2_s": t2["wall"]}
    log(f"  --jobs 2 (table) speed-up {res['jobs2_table']['speedup']:.2f}x")
    log("tcpanalyze packets ...")
    row("tcpanalyze packets > /dev/null",
        best(lambda: measure(ta + ["packets", str(path)], label="packets"), rep))
    for mode, label in (("engine", "reader + decoder + engine (library loop)"),
                        ("decode", "reader + decoder"), ("walk", "reader (record walk)")):
        log(f"{label} ...")
        row(label, best(lambda: child_rate(measure(child_cmd(mode, path), stdout="capture", label=mode)), rep))
    if tshark:
        log("tshark -q -z conv,tcp ...")
        rc = measure([tshark, "-n", "-r", str(path), "-q", "-z", "conv,tcp"], label="tshark-conv")
        row("tshark -q -z conv,tcp", rc)
        log("tshark -T fields -e tcp.analysis.flags ...")
        rf = measure([tshark, "-n", "-r", str(path), "-T", "fields", "-e", "tcp.analysis.flags"], label="tshark-full")
        row("tshark -T fields -e tcp.analysis.flags", rf)
    try:
        import scapy  # noqa: F401
        log(f"scapy PcapReader ({SCAPY_PREFIX} packets) ...")
        row(f"scapy PcapReader (first {SCAPY_PREFIX // 1000}k packets)",
            child_rate(measure(child_cmd("scapy", path), stdout="capture", label="scapy")))
    except ImportError:
        log("scapy not installed: skipped")
    res["rows"] = rows

    # ---- memory versus file size
    mem = []
    copies = {1: path}
    for k in (2, 4):
        copies[k] = build_copies(path, k, args.rebuild)
    for k, p in copies.items():
        pk = npk * k
        entry = {"times": k, "packets": pk, "size_mb": p.stat().st_size / 2**20}
        if k == 1:
            entry["analyze_table_mb"] = rows[1]["rss_mb"]
            entry["analyze_json_mb"] = rows[0]["rss_mb"]
            entry["analyze_table_pps"] = rows[1]["pps"]
        else:
            log(f"memory {k}x: analyze (table) ...")
            r = measure(ta + ["analyze", str(p), "-o", os.devnull], label=f"analyze-table-x{k}")
            entry["analyze_table_mb"] = r["rss_mb"]
            entry["analyze_table_pps"] = pk / r["wall"]
            log(f"memory {k}x: analyze --json ...")
            r = measure(ta + ["analyze", str(p), "--json", "-o", os.devnull], label=f"analyze-json-x{k}")
            entry["analyze_json_mb"] = r["rss_mb"]
        log(f"memory {k}x: reader walk ...")
        entry["walk_mb"] = measure(child_cmd("walk", p), stdout="capture")["rss_mb"]
        if args.quick:
            r = child_rate(measure(child_cmd("engine", p), stdout="capture", label=f"engine-x{k}"))
            entry["engine_mb"] = r["rss_mb"]
        mem.append(entry)
        log(f"  {k}x: " + ", ".join(f"{a}={b:.0f}" for a, b in entry.items() if isinstance(b, float)))
    res["memory"] = mem
    log("start-up ...")
    res["startup"] = startup()
    res["machine"]["load_after"] = os.getloadavg()
    import resource

    res["machine"]["harness_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["machine"]["tshark"] = _tshark_version(tshark)
    return res


def _json_equal(a: Path, b: Path) -> bool:
    """In a child process (loading two large documents here would raise every later child's
    ru_maxrss: Linux carries a parent's peak RSS over fork and exec)."""
    code = "import json, sys; sys.exit(0 if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)"
    return subprocess.run([sys.executable, "-c", code, str(a), str(b)]).returncode == 0


def _tshark_version(tshark) -> str | None:
    if not tshark:
        return None
    r = subprocess.run([tshark, "--version"], capture_output=True, text=True)
    return r.stdout.splitlines()[0] if r.stdout else None


# ---------------------------------------------------------------------------- output
def markdown(res: dict) -> str:
    cap = res["capture"]
    rows = res["rows"]
    by = {r["label"]: r for r in rows}
    conv = next((r for r in rows if r["label"].startswith("tshark -q")), None)
    full = next((r for r in rows if r["label"].startswith("tshark -T")), None)
    m = res["machine"]
    lines = [
        f"Capture: {cap['packets']:,} packets, {cap['connections']:,} connections, {cap['size_mb']:.0f} MiB "
        f"(bench/gen_capture.py, IPv4 + 30% IPv6, 0.5% loss, snaplen 96){' (quick run)' if cap['quick'] else ''}. "
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, {(m.get('tshark') or 'no tshark').rstrip('.')}; "
        f"load average {m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after. "
        f"Peak RSS is the child's ru_maxrss (it cannot be below the harness's own "
        f"{m.get('harness_rss_mb', 0):.0f} MB).",
        "",
        "| what | packets/s | time (s) | peak RSS (MB) | x tshark conv | x tshark analysis |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rc = f"{r['pps'] / conv['pps']:.2f}" if conv else "-"
        rf = f"{r['pps'] / full['pps']:.2f}" if full else "-"
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['label']}{note} | {r['pps']:,.0f} | {r['seconds']:.1f} | {r['rss_mb']:,.0f} "
                     f"| {rc} | {rf} |")
    j = res["jobs2"]
    jt = res["jobs2_table"]
    lines += ["", f"`--jobs 2`: --json {j['j1_s']:.1f} s -> {j['j2_s']:.1f} s, speed-up {j['speedup']:.2f}x "
                  f"(JSON output identical to `--jobs 1`: {'yes' if j['identical'] else 'NO'}); table "
                  f"{jt['j1_s']:.1f} s -> {jt['j2_s']:.1f} s, speed-up {jt['speedup']:.2f}x.", ""]
    lines += ["Peak RSS (MB) versus file size (copies of the capture one after another):", "",
              "| copies | packets | file (MiB) | analyze (table) | analyze --json | reader walk "
              "| engine loop |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in res["memory"]:
        eng = f"{e['engine_mb']:,.0f}" if "engine_mb" in e else "-"
        lines.append(f"| {e['times']}x | {e['packets']:,} | {e['size_mb']:,.0f} | {e['analyze_table_mb']:,.0f} | "
                     f"{_mb(e, 'analyze_json_mb')} | {e['walk_mb']:,.0f} | {eng} |")
    s = res["startup"]
    lines += ["", f"`tcpanalyze --help`: {s['min'] * 1000:.0f} ms best, {s['median'] * 1000:.0f} ms median of 10; "
                  f"heavy modules imported on that path: {', '.join(s['heavy_imports']) or 'none'} "
                  f"({s['modules']} top-level modules).", ""]
    an = by.get("tcpanalyze analyze (table, --top 10)")
    aj = by.get("tcpanalyze analyze --json")
    pk = by.get("tcpanalyze packets > /dev/null")
    rd = by.get("reader + decoder")
    en = by.get("reader + decoder + engine (library loop)")
    tf = by.get("tshark -T fields -e tcp.analysis.flags")
    mx = max(e["analyze_table_mb"] for e in res["memory"])
    jmax = max(e.get("analyze_json_mb", 0) for e in res["memory"])
    mn = min(e["analyze_table_mb"] for e in res["memory"])
    lines += ["Targets:", "",
              "| target | measured | met |", "| --- | ---: | --- |",
              _target("analyze >= 150k pkt/s (one core; table report)", f"{an['pps']:,.0f} pkt/s",
                      an["pps"] >= TARGETS["analyze_pps"]),
              _target("analyze --json >= 150k pkt/s (one core)", f"{aj['pps']:,.0f} pkt/s",
                      aj["pps"] >= TARGETS["analyze_pps"]),
              _target("packets >= 100k pkt/s", f"{pk['pps']:,.0f} pkt/s", pk["pps"] >= 100_000),
              _target("reader + decoder >= 300k pkt/s", f"{rd['pps']:,.0f} pkt/s", rd["pps"] >= 300_000),
              _target("reader + decoder + engine (stream table and full analysis) >= 300k pkt/s",
                      f"{en['pps']:,.0f} pkt/s", en["pps"] >= 300_000),
              _target("packets RSS < 150 MB", f"{pk['rss_mb']:,.0f} MB", pk["rss_mb"] < 150),
              _target("packets >= 250k pkt/s", f"{pk['pps']:,.0f} pkt/s", pk["pps"] >= TARGETS["packets_pps"]),
              _target("packets faster than `tshark -T fields -e tcp.analysis.flags`, same run",
                      f"{pk['pps'] / tf['pps']:.1f}x" if tf else "not run", bool(tf) and pk["pps"] > tf["pps"]),
              _target("analyze RSS < 200 MB (table)", f"{mx:,.0f} MB", mx < TARGETS["rss_mb"]),
              _target("analyze RSS flat with file size (table, 1x -> 4x)", f"{mn:,.0f} -> {mx:,.0f} MB",
                      mx <= mn * 1.25),
              _target("analyze --json RSS < 200 MB", f"{jmax:,.0f} MB", jmax < TARGETS["rss_mb"]),
              _target("`tcpanalyze --help` < 0.3 s", f"{s['median']:.3f} s", s["median"] < TARGETS["startup_s"]),
              ""]
    return "\n".join(lines)


def _mb(e: dict, k: str) -> str:
    return f"{e[k]:,.0f}" if k in e else "-"


def _target(name: str, value: str, ok: bool) -> str:
    return f"| {name} | {value} | {'yes' if ok else '**no**'} |"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        child(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 10x smaller capture")
    ap.add_argument("--markdown", metavar="FILE", help="also write the results as markdown ('-': stdout)")
    ap.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each tcpanalyze measurement (best kept)")
    ap.add_argument("--rebuild", action="store_true", help="regenerate the captures")
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--report", metavar="RESULTS_JSON",
                    help="measure nothing: print the markdown of an earlier run's results file")
    a = ap.parse_args(argv)
    if a.report:
        md = markdown(json.loads(Path(a.report).read_text()))
        print(md)
        if a.markdown and a.markdown != "-":
            Path(a.markdown).write_text(md + "\n")
        return 0
    res = run(a)
    md = markdown(res)
    print(md)
    if a.markdown:
        if a.markdown == "-":
            pass
        else:
            Path(a.markdown).write_text(md + "\n")
    js = a.json or str(OUT / ("results-quick.json" if a.quick else "results.json"))
    Path(js).write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
