"""Read ``tcptrace -l -r -n`` output and compare it with tcpanalyze's per-direction numbers
(tests/test_tcptrace_agreement.py; the definitions are in docs/diagnosis.md)."""
from __future__ import annotations

import re
import shutil
import subprocess

TCPTRACE = shutil.which("tcptrace")

_LINE = re.compile(r"^\s*(.+?):\s+(\S+)(?: (?:bytes|ms|secs|pkts|Bps|times))?\s+(.+?):\s+(\S+)")
_HOST = re.compile(r"host \w+:\s+(\S+)\s*\n\s*host \w+:\s+(\S+)")


def tcptrace(path: str) -> list[dict]:
    """Each connection tcptrace reports: its two endpoints ``a`` and ``b`` (``addr:port``) and
    the statistics of each direction, ``ab`` and ``ba``, by label."""
    r = subprocess.run([TCPTRACE, "-l", "-r", "-n", path], capture_output=True, text=True, timeout=300)
    if r.returncode:
        return []               # a capture tcptrace cannot read (its exit status is checked by the test)
    out = r.stdout
    conns = []
    for block in out.split("================================"):
        m = _HOST.search(block)
        if not m:
            continue
        c = {"a": m.group(1), "b": m.group(2), "ab": {}, "ba": {}}
        for line in block.splitlines():
            mm = _LINE.match(line)
            if mm:
                c["ab"][mm.group(1).strip()] = mm.group(2)
                c["ba"][mm.group(3).strip()] = mm.group(4)
        conns.append(c)
    return conns


def endpoint(host: str, port: int) -> str:
    """An endpoint as tcptrace -n writes it."""
    return f"{host}:{port}"


def close(ours: float, theirs: float, rel: float, absolute: float) -> bool:
    return abs(ours - theirs) <= max(rel * abs(theirs), absolute)


def differences(path: str, conns) -> list[str]:
    """Every direction with data where tcpanalyze and tcptrace disagree beyond the tolerances:
    bytes 1%, transfer time, goodput and RTT 5% (or tcptrace's printed resolution: 1 ms of
    transfer time, 0.1 ms of RTT)."""
    by_ends = {}
    for c in conns:
        by_ends.setdefault((endpoint(c.orig_h, c.orig_p), endpoint(c.resp_h, c.resp_p)), []).append(c)
    bad = []
    theirs = tcptrace(path)
    seen: dict = {}
    for t in theirs:
        k = tuple(sorted((t["a"], t["b"])))
        seen[k] = seen.get(k, 0) + 1
    for t in theirs:
        if seen[tuple(sorted((t["a"], t["b"])))] > 1:
            continue            # tcptrace split a 4-tuple after a long silence (docs/diagnosis.md): not paired
        key, rev = (t["a"], t["b"]), False
        if key not in by_ends:
            key, rev = (t["b"], t["a"]), True
        if key not in by_ends:
            continue            # a connection tcpanalyze numbers differently (port reuse): not compared
        c = by_ends[key].pop(0) if len(by_ends[key]) > 1 else by_ends[key][0]
        for name, side in (("ab", c.resp if rev else c.orig), ("ba", c.orig if rev else c.resp)):
            T = t[name]
            unique = int(T["unique bytes sent"])
            if not unique and not side.data_bytes:
                continue
            where = f"{path} stream {c.stream} {'resp' if side is c.resp else 'orig'}"
            if not close(side.data_bytes, unique, 0.01, 0):
                bad.append(f"{where}: data bytes {side.data_bytes} vs tcptrace unique bytes {unique}")
            if not close(side.bytes, int(T["actual data bytes"]), 0.01, 0):
                bad.append(f"{where}: payload bytes {side.bytes} vs tcptrace actual data bytes {T['actual data bytes']}")
            xmit = float(T["data xmit time"])
            if side.transfer_s is not None and not close(side.transfer_s, xmit, 0.05, 0.001):
                bad.append(f"{where}: transfer {side.transfer_s} s vs tcptrace data xmit time {xmit} s")
            if xmit >= 0.1 and side.goodput_bps:
                theirs = unique * 8 / xmit
                if not close(side.goodput_bps, theirs, 0.05, 0):
                    bad.append(f"{where}: goodput {side.goodput_bps} vs tcptrace unique bytes / data xmit time {theirs:.1f}")
            resent = int(T["rexmt data pkts"]) or side.retransmissions or side.out_of_order
            # which ACKs give an RTT sample once segments were resent differs by definition
            # (docs/diagnosis.md): compared on directions neither tool saw resend anything
            if not resent and int(T.get("RTT samples", 0)) and side.rtt_avg_ms is not None:
                for ours, label in ((side.rtt_min_ms, "RTT min"), (side.rtt_avg_ms, "RTT avg"), (side.rtt_max_ms, "RTT max")):
                    if label == "RTT min" and ours < 0.01 <= float(T[label]):
                        continue        # tcptrace's minimum leaves out a 0 ms sample (docs/diagnosis.md)
                    if not close(ours, float(T[label]), 0.05, 0.1):
                        bad.append(f"{where}: {label} {ours} ms vs tcptrace {T[label]} ms")
    return bad
