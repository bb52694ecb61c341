#!/usr/bin/env python3
"""Write a large synthetic pcap quickly (for benchmarks and tests; never committed).

Realistic shape, not realistic bytes.  Connections (IPv4 and IPv6, many clients, a few
dozen servers) arrive as a Poisson process and each runs on its own clock (an event heap):
a 3-way handshake with MSS/SACK/window-scale/timestamp options, one to a few request /
response exchanges with heavy-tailed (log-normal, "web") response sizes sent in MSS-sized
segments with delayed ACKs, some loss (a segment is not captured and is retransmitted
after duplicate ACKs, so the analyzer sees lost_segment / retransmission / duplicate
ACKs), and a close: FIN mostly from the client, some from the server (so servers build up
TIME_WAIT), a few RSTs.  A small share of SYNs is refused (RST) or never answered (SYN
retried with exponential back-off).  Timestamps never go backwards.  Deterministic for a
given seed.

``--conn-rate`` (new connections per second of capture time) sets the capture's time span:
with the defaults 70k connections arrive over about 10 minutes, longer than the engine's
120 s linger, so the live connection table stays bounded by the arrival rate, not by the
file size.  ``--packets`` is a cap: no connection starts after it, the open ones finish.

    python bench/gen_capture.py OUT.pcap --conns 70000                # ~2.1M packets
    python bench/gen_capture.py OUT.pcap --packets 200000 --conns 0   # as many as fit
"""
from __future__ import annotations

import argparse
import heapq
import math
import random
import struct
import sys

ETH_V4 = bytes.fromhex("020000000002" "020000000001" "0800")
ETH_V6 = bytes.fromhex("020000000002" "020000000001" "86dd")
IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")
TCP = struct.Struct("!HHIIBBHHH")
TSOPT = struct.Struct("!BBBBII")
REC = struct.Struct("<IIII")
MSS = 1448

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08

#: response sizes of the old generator ("classic"); "web" is log-normal (median 4 KB)
CLASSIC_SIZES = (200, 1500, 6000, 20000, 60000, 150000)


class Writer:
    """pcap writer; packets get non-decreasing timestamps (a packet asked for earlier than the
    last one written is stamped with the last time: the capture clock never steps back)."""

    def __init__(self, fh, snaplen: int):
        self.fh = fh
        self.snap = snaplen
        self.n = 0
        self.last = 0
        self.buf = []
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def pkt(self, ts_us: int, v6: bool, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
            flags: int, win: int, paylen: int, tsval: int, syn_opts: bool = False) -> None:
        if ts_us < self.last:
            ts_us = self.last
        self.last = ts_us
        if syn_opts:
            opts = bytes([2, 4, MSS >> 8, MSS & 255, 4, 2, 8, 10]) + struct.pack("!II", tsval, 0) + bytes([1, 3, 3, 7])
        elif flags & RST and not flags & ACK:
            opts = b""
        else:
            opts = TSOPT.pack(1, 1, 8, 10, tsval, tsval - 1)
        thl = 20 + len(opts)
        tcp = TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (thl // 4) << 4, flags, win, 0, 0) + opts
        if v6:
            ip = IP6.pack(0x60000000, thl + paylen, 6, 64, src, dst)
            hdr = ETH_V6 + ip + tcp
        else:
            ip = IP4.pack(0x45, 0, 20 + thl + paylen, 0, 0x4000, 64, 6, 0, src, dst)
            hdr = ETH_V4 + ip + tcp
        wire = len(hdr) + paylen
        cap = min(wire, self.snap)
        data = (hdr + bytes(cap - len(hdr))) if cap > len(hdr) else hdr[:cap]
        self.buf.append(REC.pack(ts_us // 1_000_000, ts_us % 1_000_000, cap, wire) + data)
        self.n += 1
        if len(self.buf) >= 4096:
            self.flush()

    def flush(self):
        self.fh.write(b"".join(self.buf))
        self.buf.clear()


def response_size(rng: random.Random, dist: str) -> int:
    if dist == "classic":
        return rng.choice(CLASSIC_SIZES)
    # web: log-normal, median 4 KB, sigma 1.5 (mean ~12 KB), clamped to [100 B, 4 MB]
    return int(min(4_000_000, max(100, rng.lognormvariate(math.log(4000), 1.5))))


def conn_script(rng: random.Random, dist: str = "classic", refused: float = 0.0, unanswered: float = 0.0,
                rtt_us: int = 1000):
    """(delay_us, who, kind, nbytes) steps of one connection: who 0 = client, 1 = server.

    ``delay_us`` is the time from the previous step (the capture point is near the server:
    the SYN/ACK leaves right after the SYN, the client's ACK comes one RTT later)."""
    r = rng.random()
    if r < unanswered:
        tries = rng.choice((2, 3, 4))
        return [(0, 0, "syn", 0)] + [(1_000_000 << i, 0, "syn_again", 0) for i in range(tries - 1)]
    if r < unanswered + refused:
        return [(0, 0, "syn", 0), (60, 1, "rst_refuse", 0)]
    steps = [(0, 0, "syn", 0), (60, 1, "synack", 0), (rtt_us, 0, "ack", 0)]
    for i in range(rng.choice((1, 1, 1, 2, 3))):
        req = rng.randint(80, 900)
        resp = response_size(rng, dist)
        steps.append((80 if i == 0 else rtt_us + rng.randint(0, 50_000), 0, "data", req))
        steps.append((rng.randint(200, 20_000), 1, "data", resp))
    r = rng.random()
    steps.append((rtt_us + rng.randint(0, 200_000), 0 if r < 0.7 else 1, "close" if r < 0.97 else "rst", 0))
    return steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=0, help="cap (0: none): no connection starts after it")
    ap.add_argument("--conns", type=int, default=70_000, help="connections (0: until --packets)")
    ap.add_argument("--conn-rate", type=float, default=120.0, help="new connections per second of capture time")
    ap.add_argument("--concurrency", type=int, default=20_000, help="most connections open at once")
    ap.add_argument("--loss", type=float, default=0.005, help="chance per data burst step (x10) of a missed segment")
    ap.add_argument("--v6-frac", type=float, default=0.3)
    ap.add_argument("--refused", type=float, default=0.004, help="share of SYNs answered with RST")
    ap.add_argument("--unanswered", type=float, default=0.002, help="share of SYNs never answered")
    ap.add_argument("--sizes", choices=("web", "classic"), default="web", help="response size distribution")
    ap.add_argument("--servers", type=int, default=50)
    ap.add_argument("--snaplen", type=int, default=96)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if not a.conns and not a.packets:
        ap.error("give --conns or --packets")
    rng = random.Random(a.seed)
    conns_max = a.conns or 1 << 62
    pk_max = a.packets or 1 << 62
    with open(a.out, "wb") as fh:
        w = Writer(fh, a.snaplen)
        t0 = 1_700_000_000_000_000
        heap: list = []              # (time_us, seq, state)
        seq_no = 0
        started = 0
        active = 0
        next_arrival = t0
        gap_us = 1e6 / a.conn_rate
        server_rtt = [int(rng.lognormvariate(math.log(800), 1.2)) + 50 for _ in range(a.servers)]
        while True:
            # the next connection arrives (Poisson) unless the caps are reached
            can_start = started < conns_max and w.n < pk_max and active < a.concurrency
            if can_start and (not heap or next_arrival <= heap[0][0]):
                started += 1
                active += 1
                cid = started
                v6 = rng.random() < a.v6_frac
                srv = cid % a.servers
                if v6:
                    c = bytes.fromhex("fd000000000000010000%012x" % (cid % 50_000 + 1))
                    s = bytes.fromhex("fd00000000000000000000000000%04x" % (2 + srv))
                else:
                    c = bytes([10, 1 + (cid >> 16) % 8, (cid >> 8) & 255, cid & 255])
                    s = bytes([10, 200, 0, 2 + srv])
                rtt = max(50, int(server_rtt[srv] * rng.uniform(0.7, 1.5)))
                st = {"v6": v6, "addr": (c, s), "port": (1024 + cid % 60000, (80, 443, 8080)[srv % 3]),
                      "nxt": [rng.getrandbits(32), rng.getrandbits(32)],
                      "steps": conn_script(rng, a.sizes, a.refused, a.unanswered, rtt), "i": 0,
                      "ts": rng.getrandbits(31), "rtt": rtt}
                seq_no += 1
                heapq.heappush(heap, (next_arrival, seq_no, st))
                next_arrival += max(1, int(rng.expovariate(1.0) * gap_us))
                continue
            if not heap:
                break
            now, _s, st = heapq.heappop(heap)
            delay, who, kind, nbytes = st["steps"][st["i"]]
            st["i"] += 1
            v6 = st["v6"]
            addr, port, nxt = st["addr"], st["port"], st["nxt"]
            st["ts"] += 1
            tsv = st["ts"]
            clock = [now]

            def send(wh, seq, ack, flags, n=0, opts=False, spacing=12):
                w.pkt(clock[0], v6, addr[wh], addr[wh ^ 1], port[wh], port[wh ^ 1], seq, ack, flags, 502, n, tsv, opts)
                clock[0] += spacing

            if kind == "syn":
                send(0, nxt[0], 0, SYN, opts=True)
                nxt[0] += 1
            elif kind == "syn_again":
                send(0, nxt[0] - 1, 0, SYN, opts=True)
            elif kind == "rst_refuse":
                send(1, 0, nxt[0], RST | ACK)
            elif kind == "synack":
                send(1, nxt[1], nxt[0], SYN | ACK, opts=True)
                nxt[1] += 1
            elif kind == "ack":
                send(0, nxt[0], nxt[1], ACK)
            elif kind == "data":
                left = nbytes
                unacked = 0
                lost = None
                # a flight: segments ~12 us apart; ACKs (every 2nd segment) interleaved
                while left > 0:
                    n = min(MSS, left)
                    if lost is None and left > 3 * MSS and rng.random() < a.loss * 10:
                        lost = (nxt[who], n)      # not captured: the analyzer sees a gap
                    else:
                        send(who, nxt[who], nxt[who ^ 1], ACK | (PSH if n == left else 0), n)
                        if lost is not None:
                            send(who ^ 1, nxt[who ^ 1], lost[0], ACK)     # duplicate ACKs
                    nxt[who] += n
                    left -= n
                    unacked += 1
                    if unacked == 2 and lost is None:
                        send(who ^ 1, nxt[who ^ 1], nxt[who], ACK)
                        unacked = 0
                if lost is not None:
                    send(who, lost[0], nxt[who ^ 1], ACK, lost[1])      # the retransmission
                send(who ^ 1, nxt[who ^ 1], nxt[who], ACK)
            elif kind == "close":
                rtt = st["rtt"]
                send(who, nxt[who], nxt[who ^ 1], FIN | ACK, spacing=rtt // 2 + 40)
                nxt[who] += 1
                send(who ^ 1, nxt[who ^ 1], nxt[who], FIN | ACK, spacing=rtt // 2 + 40)
                nxt[who ^ 1] += 1
                send(who, nxt[who], nxt[who ^ 1], ACK)
            elif kind == "rst":
                send(who, nxt[who], nxt[who ^ 1], RST | ACK)
            if st["i"] < len(st["steps"]):
                seq_no += 1
                heapq.heappush(heap, (max(clock[0], now + st["steps"][st["i"]][0]), seq_no, st))
            else:
                active -= 1
        w.flush()
    span = (w.last - t0) / 1e6 if w.n else 0.0
    print(f"{a.out}: {w.n} packets, {started} connections, {span:.1f} s of capture time", file=sys.stderr)
    return w.n, started


if __name__ == "__main__":
    main()
