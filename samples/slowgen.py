#!/usr/bin/env python3
"""Bounded traffic for samples/make_slow_samples.sh: the senders and servers that
tools/tcpgen.py does not have. Talks only to the addresses it is given (the test bed's
namespace addresses); every command stops by itself after --max-seconds.

  paced    --to A --port P --chunk N --every-ms MS --count K   write N bytes every MS ms, K times, close
  rrserver --bind A --port P --think-ms MS                     per request line "GET <n>": wait MS, send n bytes
  rrclient --to A --port P --conns C --requests R --size N     C connections one after the other, R requests each

Senders use CUBIC per socket (TCP_CONGESTION); the namespaces' default is BBR.
"""
import argparse
import socket
import threading
import time

TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)


def _cubic(s):
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
    except OSError:
        pass


def paced(a):
    deadline = time.monotonic() + a.max_seconds
    s = socket.create_connection((a.to, a.port), timeout=5)
    _cubic(s)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b"x" * a.chunk
    sent = 0
    for _ in range(a.count):
        if time.monotonic() > deadline:
            break
        s.sendall(buf)
        sent += len(buf)
        time.sleep(a.every_ms / 1000.0)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
    print(f"paced: sent {sent} bytes in chunks of {a.chunk} every {a.every_ms} ms", flush=True)


def rrserver(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(64)
    ls.settimeout(1.0)
    deadline = time.monotonic() + a.max_seconds
    served = [0]

    def serve(c):
        _cubic(c)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(max(1.0, deadline - time.monotonic()))
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                n = int(line.split()[1])
                time.sleep(a.think_ms / 1000.0)
                c.sendall(b"r" * n)
                served[0] += 1
        except (OSError, ValueError, IndexError):
            pass
        f.close()
        c.close()

    print("READY", flush=True)
    while time.monotonic() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    print(f"rrserver: {served[0]} responses", flush=True)


def rrclient(a):
    deadline = time.monotonic() + a.max_seconds
    done = 0
    for _ in range(a.conns):
        if time.monotonic() > deadline:
            break
        s = socket.create_connection((a.to, a.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(a.requests):
            s.sendall(f"GET {a.size}\n".encode())
            got = 0
            while got < a.size:
                d = s.recv(65536)
                if not d:
                    break
                got += len(d)
            done += 1
            if a.gap_ms:
                time.sleep(a.gap_ms / 1000.0)
        s.close()
    print(f"rrclient: {done} exchanges", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("paced")
    q.add_argument("--to", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--chunk", type=int, default=1000)
    q.add_argument("--every-ms", type=float, default=30)
    q.add_argument("--count", type=int, default=100)
    q.add_argument("--max-seconds", type=float, default=20)
    q = sub.add_parser("rrserver")
    q.add_argument("--bind", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--think-ms", type=float, default=0)
    q.add_argument("--max-seconds", type=float, default=60)
    q = sub.add_parser("rrclient")
    q.add_argument("--to", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--conns", type=int, default=1)
    q.add_argument("--requests", type=int, default=1)
    q.add_argument("--size", type=int, default=1000)
    q.add_argument("--gap-ms", type=float, default=0)
    q.add_argument("--max-seconds", type=float, default=30)
    a = p.parse_args()
    {"paced": paced, "rrserver": rrserver, "rrclient": rrclient}[a.cmd](a)


if __name__ == "__main__":
    main()
