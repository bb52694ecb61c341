#!/usr/bin/env python3
"""Crafted captures for verdicts no real-kernel capture here can show (run once; the
outputs and their tshark oracle files are committed):

- reused_ports.pcap: a connection closes (FIN/FIN/ACK), then a SYN with a new ISN on the
  same 4-tuple starts a new stream (tcp.analysis.reused_ports).
- zero_window_probe.pcap: a receiver advertises a zero window; the sender probes with one
  byte at the next sequence number (BSD/macOS style: Linux probes with 0 bytes, which
  tshark 4.0 calls keep-alive), the receiver answers with a zero-window probe ACK, then
  opens the window.

    python tests/data/crafted/make_crafted.py && samples/tools/tshark_oracle.sh "$PWD/tests/data/crafted" reused_ports.pcap zero_window_probe.pcap
"""
from pathlib import Path

from scapy.all import IP, TCP, Ether, wrpcap

OUT = Path(__file__).parent
C, S = "192.0.2.10", "198.51.100.20"


def pkt(t, src, dst, sport, dport, flags, seq, ack=0, win=65535, load=b"", opts=None):
    p = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                               window=win, options=opts or [])
    if load:
        p = p / load
    p.time = t
    return p


def reused():
    t = 1_700_000_000.0
    out = []
    for i, (ci, si) in enumerate(((1000, 5000), (900_000, 7000))):
        base = t + i * 2.0
        out += [
            pkt(base + 0.000, C, S, 40000, 80, "S", ci, opts=[("MSS", 1460)]),
            pkt(base + 0.010, S, C, 80, 40000, "SA", si, ci + 1, opts=[("MSS", 1460)]),
            pkt(base + 0.020, C, S, 40000, 80, "A", ci + 1, si + 1),
            pkt(base + 0.030, C, S, 40000, 80, "PA", ci + 1, si + 1, load=b"GET / HTTP/1.0\r\n\r\n"),
            pkt(base + 0.040, S, C, 80, 40000, "PA", si + 1, ci + 19, load=b"HTTP/1.0 200 OK\r\n\r\n"),
            pkt(base + 0.050, C, S, 40000, 80, "FA", ci + 19, si + 20),
            pkt(base + 0.060, S, C, 80, 40000, "FA", si + 20, ci + 20),
            pkt(base + 0.070, C, S, 40000, 80, "A", ci + 20, si + 21),
        ]
    wrpcap(str(OUT / "reused_ports.pcap"), out)


def zwp():
    t = 1_700_000_100.0
    ci, si = 5000, 9000
    out = [
        pkt(t + 0.000, C, S, 40001, 5001, "S", ci, opts=[("MSS", 1000)]),
        pkt(t + 0.010, S, C, 5001, 40001, "SA", si, ci + 1, win=3000, opts=[("MSS", 1000)]),
        pkt(t + 0.020, C, S, 40001, 5001, "A", ci + 1, si + 1),
    ]
    seq = ci + 1
    for k in range(3):
        out.append(pkt(t + 0.030 + k * 0.001, C, S, 40001, 5001, "A", seq, si + 1, load=b"x" * 1000))
        seq += 1000
    out.append(pkt(t + 0.050, S, C, 5001, 40001, "A", si + 1, seq, win=0))           # zero window
    out.append(pkt(t + 0.300, C, S, 40001, 5001, "A", seq, si + 1, load=b"y"))       # 1-byte probe
    out.append(pkt(t + 0.310, S, C, 5001, 40001, "A", si + 1, seq, win=0))           # probe ACK
    out.append(pkt(t + 0.800, C, S, 40001, 5001, "A", seq, si + 1, load=b"y"))       # probe again
    out.append(pkt(t + 0.810, S, C, 5001, 40001, "A", si + 1, seq, win=0))           # probe ACK
    out.append(pkt(t + 1.200, S, C, 5001, 40001, "A", si + 1, seq, win=4000))        # window opens
    out.append(pkt(t + 1.210, C, S, 40001, 5001, "PA", seq, si + 1, load=b"z" * 1000))
    out.append(pkt(t + 1.220, S, C, 5001, 40001, "A", si + 1, seq + 1000, win=4000))
    wrpcap(str(OUT / "zero_window_probe.pcap"), out)


if __name__ == "__main__":
    reused()
    zwp()
