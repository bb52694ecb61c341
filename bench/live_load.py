#!/usr/bin/env python3
"""Load check for ``tcpanalyze live`` (a script, not a test): packets captured vs sent, drops.

For each backend it creates a fresh network namespace (so the only traffic on its loopback is
ours and the kernel's own counters say exactly how many packets were sent), starts
``tcpanalyze live -i lo`` in it, streams TCP through that namespace's loopback at the target
rate for ``--seconds`` (default 10) with a traffic generator in another process (paced
small writes with TCP_NODELAY on a few long connections, plus a short connection opened and
closed every 20 ms), then stops the capture with SIGINT and compares:

* sent: the namespace's ``Ip: OutRequests`` delta (/proc/net/snmp) -- every IPv4 packet sent,
  which on loopback is every packet a capture can see;
* captured: the ``packets`` of tcpanalyze's final report; kernel drops from its ``capture``
  record (libpcap ``pcap_stats`` or dumpcap's statistics);
* CPU seconds of tcpanalyze (and of dumpcap).

``--sniffer`` also measures scapy's ``AsyncSniffer(store=False)`` counting packets only (native
socket and ``conf.use_pcap = True``) at the same rate, for the design notes.

Bounded: root only, traffic only on the loopback of namespaces it creates and deletes, each
run ``--seconds`` long (at most 60).  Usage::

    sudo python bench/live_load.py [--rate 12000] [--seconds 10] [--backends scapy,tshark] [--sniffer]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GENERATOR = r'''
import socket, sys, threading, time
rate, seconds, port = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(512)
def serve(c):
    try:
        while c.recv(1 << 16):
            pass
    except OSError:
        pass
    c.close()
def acceptor():
    while True:
        try:
            c, _ = srv.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=acceptor, daemon=True).start()
conns = []
for _ in range(4):
    c = socket.create_connection(("127.0.0.1", port)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conns.append(c)
# about 1.5 packets per write on loopback (data segment + a delayed ACK for every second one)
writes_per_s = rate / 1.5
burst = 20
period = burst / writes_per_s
msg = b"m" * 120
t0 = time.perf_counter(); nxt = t0; writes = 0; k = 0; short = 0; next_short = t0
end = t0 + seconds
while True:
    now = time.perf_counter()
    if now >= end:
        break
    if now >= next_short:                        # connection churn: handshake, data, close
        s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"hello"); s.close()
        short += 1; next_short += 0.02
    if now < nxt:
        time.sleep(min(nxt - now, 0.002)); continue
    c = conns[k % len(conns)]; k += 1
    for _ in range(burst):
        c.send(msg)
    writes += burst
    nxt += period
for c in conns:
    c.close()
time.sleep(0.2)
print(writes, short, time.perf_counter() - t0, flush=True)
'''

SNIFFER = r'''
import sys, time
from scapy.config import conf
conf.use_pcap = sys.argv[1] == "pcap"
from scapy.sendrecv import AsyncSniffer
n = [0]
def prn(p):
    n[0] += 1
s = AsyncSniffer(iface="lo", filter="tcp", store=False, prn=prn)
s.start()
time.sleep(1.0)
print("ready", flush=True)
sys.stdin.readline()
time.sleep(0.5)
s.stop()
print(n[0], flush=True)
'''

PYSHARK = r'''
import sys, time
import pyshark
cap = pyshark.LiveCapture(interface="lo", bpf_filter="tcp", use_json=True, include_raw=True)
n = 0
t0 = time.time()
print("ready", flush=True)
for pkt in cap.sniff_continuously():
    raw = pkt.get_raw_packet()          # the bytes tcpanalyze would need
    n += 1
    if n == 1:
        print("first", round(time.time() - t0, 2), flush=True)
    if n % 1000 == 0:
        print(n, flush=True)
'''


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def snmp_out(ns: str) -> int:
    text = sh("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").stdout.splitlines()
    for a, b in zip(text, text[1:]):
        if a.startswith("Ip:") and b.startswith("Ip:") and "OutRequests" in a:
            return int(b.split()[a.split().index("OutRequests")])
    raise RuntimeError("no Ip OutRequests in /proc/net/snmp")


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Namespace:
    def __init__(self, tag: str):
        self.name = f"tcpa-bench-{os.getpid()}-{tag}"

    def __enter__(self):
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        return self.name

    def __exit__(self, *exc):
        sh("ip", "netns", "del", self.name, check=False)


def generate(ns: str, rate: float, seconds: float, tmp: Path) -> tuple[int, float, dict]:
    gen = tmp / "gen.py"
    gen.write_text(GENERATOR)
    before = snmp_out(ns)
    t0 = time.monotonic()
    r = sh("ip", "netns", "exec", ns, sys.executable, str(gen), str(rate), str(seconds), "5555",
           timeout=seconds + 30)
    elapsed = time.monotonic() - t0
    sent = snmp_out(ns) - before
    writes, short, gen_s = r.stdout.split()
    return sent, elapsed, {"writes": int(writes), "short_connections": int(short), "generator_s": float(gen_s)}


def run_backend(backend: str, rate: float, seconds: float, tmp: Path) -> dict:
    with Namespace(backend) as ns:
        out = tmp / f"{backend}.json"
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "tcpanalyze", "live", "-i", "lo", "-f", "tcp",
               "--backend", backend, "--no-live", "--json", "-o", str(out)]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        line = p.stderr.readline()
        if "capturing on" not in line:
            p.kill()
            raise RuntimeError(f"{backend}: live did not start: {line}{p.stderr.read()}")
        time.sleep(0.5)
        sent, elapsed, gen = generate(ns, rate, seconds, tmp)
        time.sleep(1.0)
        cpu = cpu_seconds(p.pid)
        helper_cpu = sum(cpu_seconds(c) for c in children(p.pid))
        p.send_signal(signal.SIGINT)
        try:
            _o, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            raise RuntimeError(f"{backend}: live did not stop") from None
        if p.returncode != 0:
            raise RuntimeError(f"{backend}: live exited {p.returncode}: {err}")
        doc = json.loads(out.read_text())
    s = doc["summary"]
    cap = doc["files"][0]["capture"]
    return {"backend": backend, "method": cap["method"], "seconds": round(elapsed, 2), "sent": sent,
            "sent_per_s": round(sent / elapsed), "captured": s["packets"], "missing": sent - s["packets"],
            "kernel": cap["kernel"], "connections": s["connections"], "cpu_s_tcpanalyze": round(cpu, 2),
            "cpu_s_dumpcap": round(helper_cpu, 2) if backend == "tshark" else None, **gen}


def run_sniffer(mode: str, rate: float, seconds: float, tmp: Path) -> dict:
    with Namespace(f"sniff{mode}") as ns:
        prog = tmp / "sniff.py"
        prog.write_text(SNIFFER)
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(prog), mode], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert p.stdout.readline().strip() == "ready"
        sent, elapsed, gen = generate(ns, rate, seconds, tmp)
        time.sleep(1.0)
        cpu = cpu_seconds(p.pid)
        p.stdin.write("\n")
        p.stdin.flush()
        try:
            n = int(p.stdout.readline().strip() or -1)
        finally:
            p.kill()
            p.wait()
    return {"backend": f"AsyncSniffer ({'conf.use_pcap=True' if mode == 'pcap' else 'native socket'})",
            "seconds": round(elapsed, 2), "sent": sent, "sent_per_s": round(sent / elapsed), "captured": n,
            "missing": sent - n, "cpu_s": round(cpu, 2)}


def run_pyshark(rate: float, seconds: float, tmp: Path) -> dict:
    """pyshark LiveCapture(use_json, include_raw) at the same rate: packets it delivered by the
    time the traffic ended plus 3 s (it keeps a tshark dissecting behind it)."""
    import threading

    with Namespace("pyshark") as ns:
        prog = tmp / "pysh.py"
        prog.write_text(PYSHARK)
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(prog)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        lines = []
        t = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
        t.start()
        time.sleep(4.0)                          # pyshark starts tshark: ~3 s here before packets flow
        sent, elapsed, gen = generate(ns, rate, seconds, tmp)
        time.sleep(3.0)
        cpu = cpu_seconds(p.pid) + sum(cpu_seconds(c) for c in children(p.pid))
        p.kill()
        subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
        p.wait()
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    counts = [int(x) for x in lines if x.strip().isdigit()]
    n = counts[-1] if counts else 0
    return {"backend": "pyshark LiveCapture (json, raw)", "seconds": round(elapsed, 2), "sent": sent,
            "sent_per_s": round(sent / elapsed), "captured": n, "missing": sent - n, "cpu_s": round(cpu, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=12000, help="target packets/s (default 12000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="traffic per run, at most 60 (default 10)")
    ap.add_argument("--backends", default="scapy,tshark")
    ap.add_argument("--sniffer", action="store_true", help="also measure scapy AsyncSniffer (native and libpcap)")
    ap.add_argument("--pyshark", action="store_true", help="also measure pyshark LiveCapture (counts to 1000s)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("live_load.py: needs root (network namespaces and capture)", file=sys.stderr)
        return 2
    if not shutil.which("ip"):
        print("live_load.py: needs iproute2 (ip)", file=sys.stderr)
        return 2
    seconds = min(max(a.seconds, 1.0), 60.0)
    results = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for b in [x for x in a.backends.split(",") if x]:
            results.append(run_backend(b, a.rate, seconds, tmp))
            print(json.dumps(results[-1]), file=sys.stderr)
        if a.sniffer:
            for mode in ("native", "pcap"):
                results.append(run_sniffer(mode, a.rate, seconds, tmp))
                print(json.dumps(results[-1]), file=sys.stderr)
        if a.pyshark:
            results.append(run_pyshark(a.rate, seconds, tmp))
            print(json.dumps(results[-1]), file=sys.stderr)
    if a.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'backend':<40} {'sent':>9} {'sent/s':>8} {'captured':>9} {'missing':>8} {'kernel drops':>12} {'CPU s':>7}")
    for r in results:
        k = r.get("kernel") or {}
        cpu = r.get("cpu_s_tcpanalyze", r.get("cpu_s"))
        if r.get("cpu_s_dumpcap") is not None:
            cpu = f"{cpu}+{r['cpu_s_dumpcap']}"
        print(f"{r['backend']:<40} {r['sent']:>9} {r['sent_per_s']:>8} {r['captured']:>9} {r['missing']:>8} "
              f"{k.get('dropped', '-'):>12} {cpu:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
