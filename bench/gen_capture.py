#!/usr/bin/env python3
"""Write a large synthetic pcap quickly (for benchmarks; never committed).

Realistic shape, not realistic bytes: many concurrent connections (IPv4 and IPv6) each with a
3-way handshake, request/response data in MSS-sized segments with delayed ACKs, some loss
(a segment is dropped and retransmitted after a few later segments, so the analyzer sees
lost_segment / retransmission / duplicate ACKs), timestamps options, and a FIN close
(mostly client first; some server first; a few RSTs).  Deterministic for a given seed.

    python bench/gen_capture.py OUT.pcap --packets 2000000 --conns 60000 --loss 0.005
"""
from __future__ import annotations

import argparse
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


class Writer:
    def __init__(self, fh, snaplen: int):
        self.fh = fh
        self.snap = snaplen
        self.n = 0
        self.buf = []
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def pkt(self, ts_us: int, v6: bool, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
            flags: int, win: int, paylen: int, tsval: int, syn_opts: bool = False) -> None:
        if syn_opts:
            opts = bytes([2, 4, MSS >> 8, MSS & 255, 4, 2, 8, 10]) + struct.pack("!II", tsval, 0) + bytes([1, 3, 3, 7])
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


def conn_script(rng: random.Random, loss: float):
    """Yield (delay_us, who, kind, nbytes) steps of one connection: who 0 = client, 1 = server."""
    steps = [(0, 0, "syn", 0), (300, 1, "synack", 0), (300, 0, "ack", 0)]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        req = rng.randint(80, 900)
        resp = rng.choice((200, 1500, 6000, 20000, 60000, 150000))
        steps.append((200, 0, "data", req))
        steps.append((400, 1, "data", resp))
    r = rng.random()
    steps.append((500, 0 if r < 0.7 else 1, "close" if r < 0.97 else "rst", 0))
    return steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--conns", type=int, default=60_000)
    ap.add_argument("--concurrency", type=int, default=400)
    ap.add_argument("--loss", type=float, default=0.005)
    ap.add_argument("--v6-frac", type=float, default=0.3)
    ap.add_argument("--snaplen", type=int, default=96)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    with open(a.out, "wb") as fh:
        w = Writer(fh, a.snaplen)
        now = 1_700_000_000_000_000
        active = []
        started = 0
        while w.n < a.packets and (started < a.conns or active):
            while len(active) < a.concurrency and started < a.conns:
                started += 1
                v6 = rng.random() < a.v6_frac
                cid = started
                if v6:
                    c = bytes.fromhex("fd000000000000000000000000000001")
                    s = bytes.fromhex("fd00000000000000000000000000%04x" % (2 + cid % 50))
                else:
                    c = bytes([10, 1, (cid >> 8) & 255, cid & 255])
                    s = bytes([10, 2, 0, 2 + cid % 50])
                st = {"v6": v6, "addr": (c, s), "port": (1024 + cid % 60000, 80 + (cid % 3)),
                      "isn": [rng.getrandbits(32), rng.getrandbits(32)], "nxt": [0, 0], "steps": conn_script(rng, a.loss),
                      "i": 0, "ts": rng.getrandbits(31)}
                st["nxt"] = [st["isn"][0], st["isn"][1]]
                active.append(st)
            st = active.pop(rng.randrange(len(active)))
            now += rng.randint(1, 30)
            delay, who, kind, nbytes = st["steps"][st["i"]]
            st["i"] += 1
            now += delay // 50
            v6 = st["v6"]
            addr, port, nxt = st["addr"], st["port"], st["nxt"]
            st["ts"] += 1
            tsv = st["ts"]

            def send(wh, seq, ack, flags, n=0, opts=False):
                w.pkt(now, v6, addr[wh], addr[wh ^ 1], port[wh], port[wh ^ 1], seq, ack, flags, 502, n, tsv, opts)

            if kind == "syn":
                send(0, nxt[0], 0, SYN, opts=True)
                nxt[0] += 1
            elif kind == "synack":
                send(1, nxt[1], nxt[0], SYN | ACK, opts=True)
                nxt[1] += 1
            elif kind == "ack":
                send(0, nxt[0], nxt[1], ACK)
            elif kind == "data":
                left = nbytes
                unacked = 0
                lost = None
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
                send(who, nxt[who], nxt[who ^ 1], FIN | ACK)
                nxt[who] += 1
                send(who ^ 1, nxt[who ^ 1], nxt[who], FIN | ACK)
                nxt[who ^ 1] += 1
                send(who, nxt[who], nxt[who ^ 1], ACK)
            elif kind == "rst":
                send(who, nxt[who], nxt[who ^ 1], RST | ACK)
            if st["i"] < len(st["steps"]):
                active.append(st)
        w.flush()
    print(f"{a.out}: {w.n} packets, {started} connections", file=sys.stderr)


if __name__ == "__main__":
    main()
