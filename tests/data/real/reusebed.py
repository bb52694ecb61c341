#!/usr/bin/env python3
"""Test bed for the captures of this directory (see SOURCES.md; run by make_real.sh).

Subcommands:

  relay    Two TAP devices, one in each of two network namespaces, joined by this process:
           every Ethernet frame is copied to the other side at once, except on the ports
           named below, where the relay acts on the server's SYN/ACK (server -> client):
             --inject-rst PORT    before the first SYN/ACK of a connection, send the client
                                  a forged RST (no ACK) from the server's address and port
             --inject-rstack PORT the same with a forged RST/ACK whose ACK the client
                                  cannot accept
             --inject-data PORT   the same with a forged data segment (ACK, 32 bytes)
             --drop-synack PORT   drop the first SYN/ACK of a connection (and say so on
                                  stdout)
           Linux in SYN-SENT discards all three forged segments (RFC 9293 3.10.7.3), so
           the connection goes on with the real SYN/ACK.  Prints READY once both sides
           are configured; stops on SIGTERM/SIGINT or after --max-seconds.
  serve    Kernel TCP server on the given ports: reads a request, answers, closes when the
           client has closed.  SIGUSR1 closes and reopens the listeners (a server restart:
           connections still in SYN-RECEIVED are forgotten).  --fastopen enables TCP Fast
           Open on the listeners.
  connect  Kernel TCP client: one request and answer per connection, then close;
           --fastopen sends the request with the SYN (sendto with MSG_FASTOPEN), --sport
           binds every connection to one source port, --abort closes with a RST.

Only the namespace-internal addresses given on the command line are used.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
SYN, RST, PSH, ACK = 0x02, 0x04, 0x08, 0x10
MSG_FASTOPEN = 0x20000000
TCP_FASTOPEN = 23


# ------------------------------------------------------------------ relay

def tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def parse(fr: bytes):
    """(l3 offset, v6, src, dst, tcp offset) of an Ethernet IPv4/IPv6 TCP frame, else None."""
    if len(fr) < 54:
        return None
    et = fr[12] << 8 | fr[13]
    if et == 0x0800 and fr[23] == 6:
        ihl = (fr[14] & 15) * 4
        return 14, False, fr[26:30], fr[30:34], 14 + ihl
    if et == 0x86DD and fr[20] == 6:
        return 14, True, fr[22:38], fr[38:54], 54
    return None


def forge(fr: bytes, p, flags: int, seq: int, ack: int, payload: bytes = b"") -> bytes:
    """A frame from the sender of ``fr`` to its receiver, same addresses and ports, with these
    TCP fields (20-byte header, window 512) and correct checksums."""
    _, v6, src, dst, t = p
    sport, dport = fr[t:t + 2], fr[t + 2:t + 4]
    tcp = sport + dport + struct.pack("!IIBBHHH", seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 512, 0, 0)
    tcp += payload
    if v6:
        pseudo = src + dst + struct.pack("!IxxxB", len(tcp), 6)
    else:
        pseudo = src + dst + struct.pack("!xBH", 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    if v6:
        ip = struct.pack("!IHBB", 0x60000000, len(tcp), 6, 64) + src + dst
    else:
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 0x1234, 0, 64, 6, 0) + src + dst
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return fr[:14] + ip + tcp


def relay(a) -> None:
    fa, fb = tap(a.tap_a), tap(a.tap_b)
    for name, ns, addr4, addr6 in ((a.tap_a, a.ns_a, a.addr_a, a.addr6_a), (a.tap_b, a.ns_b, a.addr_b, a.addr6_b)):
        run("ip", "link", "set", name, "netns", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "addr", "add", addr4, "dev", name)
        run("ip", "-n", ns, "addr", "add", addr6, "dev", name, "nodad")
        run("ip", "-n", ns, "link", "set", name, "up")
    print("READY", flush=True)
    actions = {}
    for port in a.inject_rst:
        actions[port] = "rst"
    for port in a.inject_rstack:
        actions[port] = "rstack"
    for port in a.inject_data:
        actions[port] = "data"
    for port in a.drop_synack:
        actions[port] = "drop"
    done: set[bytes] = set()        # connections (addresses and ports) already acted on
    counts = {"frames": 0, "injected": 0, "dropped": 0}
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    deadline = time.monotonic() + a.max_seconds
    while not stop and time.monotonic() < deadline:
        try:
            ready, _, _ = select.select([fa, fb], [], [], 0.2)
        except InterruptedError:
            continue
        for fd in ready:
            out = fb if fd == fa else fa
            while True:
                try:
                    fr = os.read(fd, 65600)
                except BlockingIOError:
                    break
                counts["frames"] += 1
                p = parse(fr) if fd == fb else None
                if p is not None:
                    t = p[4]
                    sport = fr[t] << 8 | fr[t + 1]
                    flags = fr[t + 13]
                    act = actions.get(sport)
                    if act and flags & (SYN | ACK) == SYN | ACK:
                        conn = p[2] + p[3] + fr[t:t + 4]
                        if conn not in done:
                            done.add(conn)
                            seq, ack = struct.unpack("!II", fr[t + 4:t + 12])
                            if act == "drop":
                                counts["dropped"] += 1
                                print(f"dropped {sport}", flush=True)
                                continue
                            if act == "rst":
                                extra = forge(fr, p, RST, seq - 123456, 0)
                            elif act == "rstack":
                                extra = forge(fr, p, RST | ACK, seq + 1000000, ack + 50000)
                            else:
                                extra = forge(fr, p, PSH | ACK, seq + 777, ack, b"injected before the SYN/ACK.....")
                            os.write(out, extra)
                            counts["injected"] += 1
                try:
                    os.write(out, fr)
                except OSError:
                    pass
    print("relay: frames=%(frames)d injected=%(injected)d dropped=%(dropped)d" % counts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ kernel peers

def listeners(addrs: list[str], ports: list[int], fastopen: bool) -> list[socket.socket]:
    out = []
    for addr in addrs:
        for port in ports:
            s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fastopen:
                s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 16)
            s.bind((addr, port))
            s.listen(16)
            s.setblocking(False)
            out.append(s)
    return out


def serve(a) -> None:
    restart: list[int] = []
    signal.signal(signal.SIGUSR1, lambda *_: restart.append(1))
    lsocks = listeners(a.bind, a.port, a.fastopen)
    conns: dict[socket.socket, bytes] = {}
    print(f"READY {os.getpid()}", flush=True)
    deadline = time.monotonic() + a.max_seconds
    while time.monotonic() < deadline:
        if restart:
            restart.clear()
            for s in lsocks:
                s.close()
            lsocks = listeners(a.bind, a.port, a.fastopen)
            print("restarted", flush=True)
        try:
            ready, _, _ = select.select(lsocks + list(conns), [], [], 0.05)
        except InterruptedError:
            continue
        for s in ready:
            if s in lsocks:
                try:
                    c, _ = s.accept()
                except (BlockingIOError, ConnectionError):
                    continue
                c.settimeout(5)
                conns[c] = b""
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                s.close()
                del conns[s]
                continue
            buf = conns[s] + data
            conns[s] = buf
            if buf.endswith(b"\n"):
                n = int(buf.split()[-1]) if buf.split()[-1].isdigit() else 100
                s.sendall(b"r" * (n - 1) + b"\n")
                conns[s] = b""


def connect(a) -> None:
    for _ in range(a.count):
        family = socket.AF_INET6 if ":" in a.to else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        if a.sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", a.sport))
        if a.abort:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        req = f"GET {a.size}\n".encode()
        try:
            if a.fastopen:
                s.sendto(req, MSG_FASTOPEN, (a.to, a.port))    # blocking: a socket timeout would refuse it
                s.settimeout(a.timeout)
            else:
                s.settimeout(a.timeout)
                s.connect((a.to, a.port))
                s.sendall(req)
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            print(f"connect {a.to} {a.port}: {len(got)} bytes", flush=True)
        except OSError as e:
            print(f"connect {a.to} {a.port}: {e}", flush=True)
        finally:
            s.close()
        time.sleep(a.gap)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--ns-a", required=True)
    r.add_argument("--ns-b", required=True)
    r.add_argument("--tap-a", required=True)
    r.add_argument("--tap-b", required=True)
    r.add_argument("--addr-a", default="10.200.0.1/24")
    r.add_argument("--addr-b", default="10.200.0.2/24")
    r.add_argument("--addr6-a", default="fd00:200::1/64")
    r.add_argument("--addr6-b", default="fd00:200::2/64")
    for opt in ("--inject-rst", "--inject-rstack", "--inject-data", "--drop-synack"):
        r.add_argument(opt, type=int, action="append", default=[])
    r.add_argument("--max-seconds", type=float, default=120)
    s = sub.add_parser("serve")
    s.add_argument("--bind", action="append", required=True)
    s.add_argument("--port", type=int, action="append", required=True)
    s.add_argument("--fastopen", action="store_true")
    s.add_argument("--max-seconds", type=float, default=120)
    c = sub.add_parser("connect")
    c.add_argument("--to", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--size", type=int, default=300)
    c.add_argument("--gap", type=float, default=0.2)
    c.add_argument("--timeout", type=float, default=6)
    c.add_argument("--fastopen", action="store_true")
    c.add_argument("--sport", type=int, default=0, help="source port (every connection from the same one)")
    c.add_argument("--abort", action="store_true", help="close with SO_LINGER 0 (RST)")
    a = ap.parse_args()
    {"relay": relay, "serve": serve, "connect": connect}[a.cmd](a)


if __name__ == "__main__":
    main()
