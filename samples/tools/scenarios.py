#!/usr/bin/env python3
"""Small, bounded TCP scenarios for samples/make_samples.sh (written for tcpanalyze, MIT).

Run the server in the server namespace and the clients in the client namespace of the
test bed; they only talk to the addresses they are given (10.200.0.x / fd00:200::x inside
the namespaces). Every command stops by itself (--max-seconds, socket timeouts).

Server:
  server --bind A [--bind A6] --port P [--port P2 ...]
    Reads one command line per connection and acts on it:
      HOLD <s>            read to EOF (peer's FIN), keep the socket open <s> seconds -> CLOSE_WAIT
      HALF <n> <ms>       read to EOF, then still send <n> bytes (8 KB every <ms> ms), then close
      IDLE                reply "OK", read to EOF, close (keep-alive test)
      SIMUL <t>           reply "OK", shutdown(SHUT_WR) at wall-clock time <t>, read to EOF, close
      CLOSE <ms>          reply "OK", read to EOF, sleep <ms>, close (0: FIN right after EOF)
      SEND <n> [<cc>]     send <n> bytes (congestion control <cc>, e.g. cubic), read to EOF, close
      ABORT <n>           send <n> bytes, then close with SO_LINGER 0 -> RST mid-stream
      GET /<n> HTTP/1.1   HTTP-like: response with an <n>-byte body, read to EOF, sleep 300 ms, close
  slowsink --bind A --port P --rcvbuf N --chunk N --sleep-ms MS --stall-every N --stall-ms MS
    Accepts one connection and reads it to EOF slowly: <chunk> bytes every <sleep-ms>, and after
    every <stall-every> bytes stops reading for <stall-ms> (long zero windows -> window probes).
Clients (each prints one line of results on stdout):
  closewait --to A [--to A6] --port P --hold S      client FIN, server holds CLOSE_WAIT S seconds
  halfclose --to A --port P --bytes N --gap-ms MS   client shutdown(SHUT_WR), server still sends N bytes
  keepalive --to A --port P --idle S                SO_KEEPALIVE, TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, idle S
  synretry  --to A [--to A6] --port P --timeout S   connect() to a port whose SYNs are dropped
  simulclose --to A --port P                        both sides shutdown(SHUT_WR) at the same instant
  close     --to A --port P --server-delay-ms MS    client-first close; MS=0: 3-way, MS>=300: 4-way
  http      --to A --port P --size N                one GET, response, client-first close
  clientabort --to A --port P --bytes N --read R    read R bytes of N then close with SO_LINGER 0
  abort     --to A --port P --bytes N               server aborts (RST) after sending N bytes
  download  --to A --port P --bytes N --cc CC       server sends N bytes, then client-first close
"""
import argparse
import socket
import struct
import sys
import threading
import time

BODY = b'<html><body>' + b'tcpanalyze sample ' * 4096


def fam(addr):
    return socket.AF_INET6 if ':' in addr else socket.AF_INET


def readline(c):
    buf = b''
    while b'\n' not in buf:
        d = c.recv(4096)
        if not d:
            break
        buf += d
    line, _, rest = buf.partition(b'\n')
    return line.decode('ascii', 'replace').strip(), rest


def read_to_eof(c):
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            return n
        n += len(d)


def sleep_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


# ------------------------------------------------------------------ server
def handle(c, deadline, log):
    c.settimeout(max(1.0, deadline - time.monotonic()))
    line = ''
    try:
        line, rest = readline(c)
        w = line.split()
        cmd = w[0] if w else ''
        if cmd == 'HOLD':
            read_to_eof(c)
            log('HOLD: got EOF, holding %s s in CLOSE_WAIT' % w[1])
            time.sleep(min(float(w[1]), max(0.0, deadline - time.monotonic())))
        elif cmd == 'HALF':
            read_to_eof(c)
            n, gap = int(w[1]), float(w[2]) / 1000.0
            sent = 0
            while sent < n:
                k = min(8192, n - sent)
                c.sendall(BODY[:k])
                sent += k
                time.sleep(gap)
        elif cmd == 'IDLE':
            c.sendall(b'OK\n')
            read_to_eof(c)
        elif cmd == 'SIMUL':
            c.sendall(b'OK\n')
            sleep_until(float(w[1]))
            c.shutdown(socket.SHUT_WR)
            read_to_eof(c)
        elif cmd == 'CLOSE':
            c.sendall(b'OK\n')
            read_to_eof(c)
            time.sleep(float(w[1]) / 1000.0)
        elif cmd == 'SEND':
            n = int(w[1])
            if len(w) > 2:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, w[2].encode())
            data = (BODY * (n // len(BODY) + 1))[:n]
            try:
                c.sendall(data)
                read_to_eof(c)
            except OSError as e:
                log('SEND: %s' % e)
        elif cmd == 'ABORT':
            n = int(w[1])
            c.sendall((BODY * (n // len(BODY) + 1))[:n])
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        elif cmd == 'GET':
            while b'\r\n\r\n' not in rest:  # rest of the request header
                d = c.recv(4096)
                if not d:
                    break
                rest += d
            n = int(w[1].lstrip('/').split('?')[0] or 0)
            body = BODY[:n]
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s'
                      % (len(body), body))
            read_to_eof(c)
            time.sleep(0.3)
        else:
            log('unknown command %r' % line)
    except OSError as e:
        log('%s: %s' % (line, e))
    c.close()


def server(a):
    deadline = time.monotonic() + a.max_seconds
    lock = threading.Lock()

    def log(m):
        with lock:
            print(m, file=sys.stderr, flush=True)

    socks = []
    for b in a.bind:
        for p in a.port:
            s = socket.socket(fam(b), socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((b, p))
            s.listen(64)
            s.settimeout(0.5)
            socks.append(s)

    def acceptor(s):
        while time.monotonic() < deadline:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            threading.Thread(target=handle, args=(c, deadline, log), daemon=True).start()

    for s in socks:
        threading.Thread(target=acceptor, args=(s,), daemon=True).start()
    print('READY', flush=True)
    while time.monotonic() < deadline:
        time.sleep(0.2)


def slowsink(a):
    s = socket.socket(fam(a.bind[0]), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if a.rcvbuf:  # before listen(): the accepted socket inherits it (and its window scale)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    s.bind((a.bind[0], a.port[0]))
    s.listen(4)
    deadline = time.monotonic() + a.max_seconds
    s.settimeout(a.max_seconds)
    print('READY', flush=True)
    c, _ = s.accept()
    c.settimeout(max(1.0, deadline - time.monotonic()))
    got = since_stall = stalls = 0
    try:
        while time.monotonic() < deadline:
            d = c.recv(a.chunk)
            if not d:
                break
            got += len(d)
            since_stall += len(d)
            if a.stall_every and since_stall >= a.stall_every:
                since_stall = 0
                stalls += 1
                time.sleep(a.stall_ms / 1000.0)
            elif a.sleep_ms:
                time.sleep(a.sleep_ms / 1000.0)
    except OSError as e:
        print('slowsink: %s' % e, file=sys.stderr)
    c.close()
    print('slowsink: received %d bytes, %d stalls of %g ms' % (got, stalls, a.stall_ms), file=sys.stderr)


# ------------------------------------------------------------------ clients
def connect(to, port, timeout=10.0):
    s = socket.socket(fam(to), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((to, port))
    return s


def parallel(fn, args_list):
    out = [None] * len(args_list)

    def run(i, args):
        try:
            out[i] = fn(*args)
        except Exception as e:  # report, never hang
            out[i] = 'error %s: %s' % (type(e).__name__, e)

    ts = [threading.Thread(target=run, args=(i, x)) for i, x in enumerate(args_list)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def c_closewait(a):
    def one(to):
        s = connect(to, a.port, a.hold + 10)
        s.sendall(b'HOLD %g\n' % a.hold)
        s.shutdown(socket.SHUT_WR)  # our FIN: we go FIN_WAIT_2, the server CLOSE_WAIT
        t0 = time.monotonic()
        n = read_to_eof(s)
        s.close()
        return 'peer FIN after %.1f s (%d bytes)' % (time.monotonic() - t0, n)
    print('closewait:', parallel(one, [(t,) for t in a.to]), flush=True)


def c_halfclose(a):
    s = connect(a.to[0], a.port, 30)
    s.sendall(b'HALF %d %g\n' % (a.bytes, a.gap_ms))
    s.shutdown(socket.SHUT_WR)
    n = read_to_eof(s)
    s.close()
    print('halfclose: received %d bytes after our FIN' % n, flush=True)


def c_keepalive(a):
    s = socket.socket(fam(a.to[0]), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 20)
    s.settimeout(a.idle + 10)
    s.connect((a.to[0], a.port))
    s.sendall(b'IDLE\n')
    readline(s)
    time.sleep(a.idle)  # idle: the kernel sends a probe every second after 1 s
    s.close()
    print('keepalive: idle %.1f s done' % a.idle, flush=True)


def c_synretry(a):
    def one(to):
        t0 = time.monotonic()
        try:
            connect(to, a.port, a.timeout).close()
            return 'connected?!'
        except OSError as e:
            return '%s after %.1f s' % (type(e).__name__, time.monotonic() - t0)
    print('synretry:', parallel(one, [(t,) for t in a.to]), flush=True)


def c_simulclose(a):
    s = connect(a.to[0], a.port)
    t = time.time() + 0.5
    s.sendall(b'SIMUL %.6f\n' % t)
    readline(s)
    sleep_until(t)
    s.shutdown(socket.SHUT_WR)
    read_to_eof(s)
    s.close()
    print('simulclose: done', flush=True)


def c_close(a):
    s = connect(a.to[0], a.port)
    s.sendall(b'CLOSE %d\n' % a.server_delay_ms)
    readline(s)
    time.sleep(0.1)
    s.shutdown(socket.SHUT_WR)
    read_to_eof(s)
    s.close()
    print('close: server delay %d ms done' % a.server_delay_ms, flush=True)


def c_http(a):
    s = connect(a.to[0], a.port)
    host = a.to[0] if ':' not in a.to[0] else '[%s]' % a.to[0]
    s.sendall(('GET /%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: tcpanalyze-sample\r\nAccept: */*\r\n\r\n'
               % (a.size, host)).encode())
    buf = b''
    while b'\r\n\r\n' not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, body = buf.partition(b'\r\n\r\n')
    n = int(head.split(b'Content-Length: ')[1].split(b'\r\n')[0])
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            break
        body += d
    s.close()  # client closes first
    print('http: %s, %d body bytes' % (head.split(b'\r\n')[0].decode(), len(body)), flush=True)


def c_clientabort(a):
    s = connect(a.to[0], a.port)
    s.sendall(b'SEND %d\n' % a.bytes)
    got = 0
    while got < a.read:
        d = s.recv(min(4096, a.read - got))
        if not d:
            break
        got += len(d)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()  # RST from the client, data still in flight
    print('clientabort: read %d of %d bytes, then RST' % (got, a.bytes), flush=True)


def c_abort(a):
    s = connect(a.to[0], a.port)
    s.sendall(b'ABORT %d\n' % a.bytes)
    try:
        n = read_to_eof(s)
        r = 'EOF after %d bytes' % n
    except OSError as e:
        r = '%s' % e
    s.close()
    print('abort:', r, flush=True)


def c_download(a):
    s = connect(a.to[0], a.port, 60)
    s.sendall(b'SEND %d %s\n' % (a.bytes, a.cc.encode()))
    got = 0
    while got < a.bytes:
        d = s.recv(65536)
        if not d:
            break
        got += len(d)
    s.close()
    print('download: received %d of %d bytes' % (got, a.bytes), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest='cmd', required=True)
    p = sp.add_parser('server')
    p.add_argument('--bind', action='append', required=True)
    p.add_argument('--port', type=int, action='append', required=True)
    p.add_argument('--max-seconds', type=float, default=120)
    p = sp.add_parser('slowsink')
    p.add_argument('--bind', action='append', required=True)
    p.add_argument('--port', type=int, action='append', required=True)
    p.add_argument('--rcvbuf', type=int, default=0)
    p.add_argument('--chunk', type=int, default=1024)
    p.add_argument('--sleep-ms', type=float, default=25)
    p.add_argument('--stall-every', type=int, default=0)
    p.add_argument('--stall-ms', type=float, default=0)
    p.add_argument('--max-seconds', type=float, default=60)
    clients = {'closewait': c_closewait, 'halfclose': c_halfclose, 'keepalive': c_keepalive,
               'synretry': c_synretry, 'simulclose': c_simulclose, 'close': c_close, 'http': c_http,
               'clientabort': c_clientabort, 'abort': c_abort,
               'download': c_download}
    for name in clients:
        p = sp.add_parser(name)
        p.add_argument('--to', action='append', required=True)
        p.add_argument('--port', type=int, required=True)
        p.add_argument('--hold', type=float, default=7.0)
        p.add_argument('--bytes', type=int, default=100000)
        p.add_argument('--gap-ms', type=float, default=50)
        p.add_argument('--read', type=int, default=10000)
        p.add_argument('--idle', type=float, default=5.5)
        p.add_argument('--timeout', type=float, default=4.0)
        p.add_argument('--server-delay-ms', type=int, default=0)
        p.add_argument('--size', type=int, default=200)
        p.add_argument('--cc', default='cubic')
    a = ap.parse_args()
    if a.cmd == 'server':
        server(a)
    elif a.cmd == 'slowsink':
        slowsink(a)
    else:
        clients[a.cmd](a)


if __name__ == '__main__':
    main()
