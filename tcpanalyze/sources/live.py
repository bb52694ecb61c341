"""Live capture backends: raw frames from a network interface, one batch at a time.

Two backends feed the same sans-IO engine (``tcpanalyze live``):

``scapy`` (default)
    A libpcap handle opened through scapy's libpcap binding (``scapy.libs.winpcapy``) with a
    kernel BPF filter, a 256 KiB snap length (veth/GRO super-segments are up to 64 KiB plus
    headers), nanosecond timestamps when libpcap offers them and a 32 MiB kernel ring.
    Frames are read as raw bytes with ``pcap_next_ex`` + ``ctypes.string_at``: scapy never
    dissects a packet (an ``AsyncSniffer`` builds a scapy ``Packet`` per frame, which is
    what limits it to a few thousand packets/s; see docs/live.md for the measurements).
    libpcap sees each loopback packet once (scapy's native ``AF_PACKET`` socket sees the
    outgoing and the incoming copy).  When libpcap cannot be loaded, scapy's native socket
    is used instead and the outgoing copy on loopback interfaces is dropped by its
    ``sll_pkttype``.  Drop counts come from ``pcap_stats`` (native: ``PACKET_STATISTICS``).
    The handle is opened by ``open()``; privileges can be dropped right after it.

``tshark``
    ``dumpcap -i IFACE -f BPF -w -`` (or ``tshark -w -`` where dumpcap is missing) in its own
    process, its pcapng stream read by tcpanalyze's own streaming reader
    (``sources.pcap.CaptureReader``) in a reader thread.  dumpcap needs the capture
    privileges, tcpanalyze none.  Its kernel drop counts are parsed from the statistics it
    prints on standard error when it stops.

Every backend gives ``read(timeout)`` -> a list of ``(ts_ns, data, wirelen)`` (empty when
nothing came in ``timeout`` seconds), ``None`` once it has ended; ``stop()`` asks it to end
after handing over what it already captured; ``stats()`` -> drop counters or None.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import deque

from tcpanalyze.errors import OutputError, SourceError
from tcpanalyze.sources.pcap import CaptureReader

K_SNAPLEN = 262144                 # libpcap's MAXIMUM_SNAPLEN: GSO/GRO super-segments fit
K_BUFFER_BYTES = 32 << 20          # kernel ring buffer
K_TIMEOUT_MS = 50                  # libpcap packet-buffer timeout: frames reach us at most this late
K_BATCH = 1024                     # frames handed over per read() at most
K_QUEUE_MAX = 200_000              # frames buffered between the dumpcap reader thread and the analysis

LINKTYPE_ETHERNET = 1

# linux/if_packet.h
_PACKET_OUTGOING = 4
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_SO_TIMESTAMPNS = 35
_SCM_TIMESTAMPNS = _SO_TIMESTAMPNS
# linux/if_arp.h ARPHRD_* -> pcap LINKTYPE_*
_ARPHRD_LINKTYPE = {1: 1, 772: 1, 65534: 101, 776: 101, 778: 101, 512: 9, 801: 105, 803: 127, 280: 227}


class CaptureError(Exception):
    """A capture that cannot start (or broke).  ``kind``: permission, interface, filter,
    missing (a tool or library is not installed) or other."""

    def __init__(self, message: str, kind: str = "other", interfaces: list[str] | None = None):
        super().__init__(message)
        self.kind = kind
        self.interfaces = interfaces


PERMISSION_HINT = ("capture needs root or the CAP_NET_RAW capability (and CAP_NET_ADMIN for some interfaces); "
                   "or use --backend tshark with a dumpcap that has them (see docs/live.md)")


# ---------------------------------------------------------------------------- interfaces
def interface_names() -> list[str]:
    """Names of the capture interfaces of this host (network namespace)."""
    try:
        names = [n for _i, n in socket.if_nameindex()]
    except OSError:
        names = []
    if not names and os.path.isdir("/sys/class/net"):
        names = sorted(os.listdir("/sys/class/net"))
    return names


def check_interface(name: str) -> None:
    """Raise CaptureError(kind='interface') listing the available ones when ``name`` is unknown."""
    names = interface_names()
    if name in names or name == "any" or not names:
        return
    raise CaptureError(f"no such interface: {name!r}; available: {', '.join(names)}", "interface", names)


def list_interfaces() -> list[dict]:
    """Capture interfaces: name, index, up, running, loopback, mtu, mac, addresses."""
    rows = {}
    try:
        from scapy.arch.linux.rtnetlink import _get_if_list    # scapy's rtnetlink dump (Linux)

        for idx, d in _get_if_list().items():
            fl = int(d.get("flags", 0))
            rows[d["name"]] = {"name": d["name"], "index": idx, "up": bool(fl & 0x1), "running": bool(fl & 0x40),
                               "loopback": bool(fl & 0x8), "mac": d.get("mac"),
                               "addresses": [ip["address"] for ip in d.get("ips", [])]}
    except Exception:                                          # noqa: BLE001 - any failure: plain /sys walk
        rows = {}
    if not rows:
        v6 = _proc_inet6()
        for idx, name in _nameindex():
            fl = _sys_int(name, "flags", 16)
            addrs = []
            v4 = _ipv4_addr(name)
            if v4:
                addrs.append(v4)
            addrs.extend(v6.get(name, []))
            rows[name] = {"name": name, "index": idx, "up": bool(fl & 0x1), "running": bool(fl & 0x40),
                          "loopback": bool(fl & 0x8), "mac": _sys_str(name, "address"), "addresses": addrs}
    for name, r in rows.items():
        r["mtu"] = _sys_int(name, "mtu", 10) or None
        r["state"] = _sys_str(name, "operstate") or ("up" if r["up"] else "down")
    return sorted(rows.values(), key=lambda r: r["index"])


def _nameindex():
    try:
        return sorted(socket.if_nameindex())
    except OSError:
        return []


def _sys_str(name: str, attr: str) -> str | None:
    try:
        with open(f"/sys/class/net/{name}/{attr}") as f:
            return f.read().strip()
    except OSError:
        return None


def _sys_int(name: str, attr: str, base: int) -> int:
    s = _sys_str(name, attr)
    try:
        return int(s, base) if s else 0
    except ValueError:
        return 0


def _proc_inet6() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                p = line.split()
                if len(p) >= 6:
                    a = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(p[0]))
                    out.setdefault(p[5], []).append(a)
    except OSError:
        pass
    return out


def _ipv4_addr(name: str) -> str | None:
    try:
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            r = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
        return socket.inet_ntoa(r[20:24])
    except OSError:
        return None


# ---------------------------------------------------------------------------- the backends
class Backend:
    """Common interface; see the module docstring."""

    name = "?"
    ts_precision = "us"

    def __init__(self, iface: str, bpf: str | None = None):
        self.iface = iface
        self.bpf = bpf or None
        self.linktype: int | None = None
        self.describe = ""
        #: why the capture ended by itself (interface gone, dumpcap died), else None
        self.error: str | None = None

    def open(self) -> None:
        raise NotImplementedError

    def read(self, timeout: float) -> list | None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict | None:
        return None

    def close(self) -> None:
        pass


def _load_libpcap():
    """scapy's ctypes binding of libpcap, or None when libpcap cannot be loaded."""
    try:
        from scapy.libs import winpcapy as W
    except Exception:                                          # noqa: BLE001 - OSError/ImportError from ctypes
        return None
    return W


class ScapyBackend(Backend):
    """libpcap through scapy's binding (or scapy's native AF_PACKET socket as a fallback)."""

    name = "scapy"

    def __init__(self, iface: str, bpf: str | None = None, *, use_pcap: bool | None = None,
                 buffer_bytes: int = K_BUFFER_BYTES, timeout_ms: int = K_TIMEOUT_MS):
        super().__init__(iface, bpf)
        self.W = _load_libpcap() if use_pcap in (None, True) else None
        if use_pcap and self.W is None:
            raise CaptureError("libpcap cannot be loaded (Debian: apt-get install libpcap0.8)", "missing")
        self.buffer_bytes = buffer_bytes
        self.timeout_ms = timeout_ms
        self._p = None                 # pcap_t*
        self._sock = None              # native fallback: a scapy L2ListenSocket
        self._fd = -1
        self._stopping = False
        self._drain_until = 0.0
        self._ended = False
        self._drops_native = [0, 0]
        self._loopback = False

    # -------------------------------------------------------------- open (the privileged part)
    def open(self) -> None:
        check_interface(self.iface)
        if self.W is not None:
            self._open_pcap()
        else:
            self._open_native()

    def _open_pcap(self) -> None:
        W = self.W
        lib = W._lib
        errbuf = ctypes.create_string_buffer(W.PCAP_ERRBUF_SIZE)
        p = W.pcap_create(self.iface.encode(), errbuf)
        if not p:
            raise CaptureError(f"{self.iface}: {errbuf.value.decode(errors='replace')}", "other")
        lib.pcap_set_snaplen(p, K_SNAPLEN)
        lib.pcap_set_promisc(p, 0)
        lib.pcap_set_timeout(p, self.timeout_ms)
        lib.pcap_set_buffer_size(p, self.buffer_bytes)
        nano = False
        if hasattr(lib, "pcap_set_tstamp_precision"):
            nano = lib.pcap_set_tstamp_precision(p, 1) == 0          # PCAP_TSTAMP_PRECISION_NANO
        status = lib.pcap_activate(p)
        if status < 0:
            geterr = W.pcap_geterr(p)
            msg = (geterr.decode(errors="replace") if isinstance(geterr, bytes) else str(geterr or "")).strip()
            W.pcap_close(p)
            if status == -8:                                          # PCAP_ERROR_PERM_DENIED
                raise CaptureError(f"cannot capture on {self.iface}: permission denied ({msg}): {PERMISSION_HINT}",
                                   "permission")
            if status == -5:                                          # PCAP_ERROR_NO_SUCH_DEVICE
                names = interface_names()
                raise CaptureError(f"no such interface: {self.iface!r}; available: {', '.join(names)}",
                                   "interface", names)
            if status == -9:                                          # PCAP_ERROR_IFACE_NOT_UP
                raise CaptureError(f"interface {self.iface} is down", "interface", interface_names())
            if "ermission" in msg or "not permitted" in msg:
                raise CaptureError(f"cannot capture on {self.iface}: {msg}: {PERMISSION_HINT}", "permission")
            raise CaptureError(f"cannot capture on {self.iface}: {msg or status}", "other")
        self._p = p
        if nano and hasattr(lib, "pcap_get_tstamp_precision"):
            nano = lib.pcap_get_tstamp_precision(p) == 1
        self.ts_precision = "ns" if nano else "us"
        self.linktype = W.pcap_datalink(p)
        if self.bpf:
            prog = W.bpf_program()
            if W.pcap_compile(p, ctypes.byref(prog), self.bpf.encode(), 1, 0xFFFFFFFF) < 0:
                msg = W.pcap_geterr(p)
                msg = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
                self.close()
                raise CaptureError(f"bad capture filter {self.bpf!r}: {msg}", "filter")
            rc = W.pcap_setfilter(p, ctypes.byref(prog))
            W.pcap_freecode(ctypes.byref(prog))
            if rc < 0:
                msg = W.pcap_geterr(p)
                msg = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
                self.close()
                raise CaptureError(f"cannot set capture filter {self.bpf!r}: {msg}", "filter")
        W.pcap_setnonblock(p, 1, errbuf)
        self._fd = W.pcap_get_selectable_fd(p)
        self._hdr = ctypes.POINTER(W.pcap_pkthdr)()
        self._data = ctypes.POINTER(ctypes.c_ubyte)()
        self._next_ex = W.pcap_next_ex
        self.describe = f"scapy/libpcap, {'ns' if nano else 'µs'} timestamps"

    def _open_native(self) -> None:
        try:
            from scapy.arch.linux import L2ListenSocket
        except Exception as e:                                    # noqa: BLE001
            raise CaptureError(f"no capture method: libpcap is missing and scapy's native socket failed: {e}",
                               "missing") from None
        try:
            sock = L2ListenSocket(iface=self.iface, filter=self.bpf, promisc=False)
        except PermissionError as e:
            raise CaptureError(f"cannot capture on {self.iface}: {e.strerror}: {PERMISSION_HINT}", "permission") \
                from None
        except OSError as e:
            if e.errno == errno.ENODEV:
                names = interface_names()
                raise CaptureError(f"no such interface: {self.iface!r}; available: {', '.join(names)}",
                                   "interface", names) from None
            raise CaptureError(f"cannot capture on {self.iface}: {e.strerror or e}", "other") from None
        except Exception as e:                                    # noqa: BLE001 - scapy's filter errors
            if self.bpf:
                raise CaptureError(f"bad capture filter {self.bpf!r}: {e}", "filter") from None
            raise CaptureError(f"cannot capture on {self.iface}: {e}", "other") from None
        self._sock = sock
        s = sock.ins
        s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.buffer_bytes)
        except OSError:
            pass
        s.setblocking(False)
        self._fd = s.fileno()
        arphrd = s.getsockname()[3]
        self.linktype = _ARPHRD_LINKTYPE.get(arphrd, LINKTYPE_ETHERNET)
        self._loopback = arphrd == 772
        self.ts_precision = "ns"
        self.describe = "scapy native AF_PACKET socket (libpcap not available), ns timestamps"

    # -------------------------------------------------------------- reading
    def read(self, timeout: float) -> list | None:
        if self._ended:
            return None
        if self._stopping:
            # drain: frames still in a libpcap block that the kernel has not handed over yet
            left = self._drain_until - time.monotonic()
            if left <= 0:
                self._ended = True
                return None
            timeout = min(timeout, left)
        try:
            r, _w, _x = select.select([self._fd], [], [], timeout)
        except InterruptedError:
            r = []
        if not r and not self._stopping:
            return []
        batch = self._read_pcap() if self._p is not None else self._read_native()
        return batch

    def _read_pcap(self) -> list:
        out = []
        p = self._p
        nx = self._next_ex
        hdr = self._hdr
        data = self._data
        byref = ctypes.byref
        string_at = ctypes.string_at
        mul = 1 if self.ts_precision == "ns" else 1000
        for _ in range(K_BATCH):
            rc = nx(p, byref(hdr), byref(data))
            if rc == 1:
                h = hdr.contents
                ts = h.ts
                out.append(((ts.tv_sec * 1_000_000_000) + ts.tv_usec * mul, string_at(data, h.caplen), h.len))
            elif rc == 0:
                break
            else:                                                 # -1 error, -2 breakloop
                if rc == -1:
                    msg = self.W.pcap_geterr(p)
                    msg = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
                    self.error = f"capture on {self.iface} failed: {msg}"
                self._ended = True                                # end cleanly: the report is still made
                break
        return out

    def _read_native(self) -> list:
        out = []
        s = self._sock.ins
        flags = socket.MSG_TRUNC
        for _ in range(K_BATCH):
            try:
                n, data, anc, _fl, addr = _recvmsg(s, flags)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:                                  # e.g. ENETDOWN: the interface went away
                self.error = f"capture on {self.iface} failed: {e.strerror or e}"
                self._ended = True
                break
            if self._loopback and addr[2] == _PACKET_OUTGOING:
                continue                                          # the same frame comes back as incoming
            ts = 0
            for lvl, typ, val in anc:
                if lvl == socket.SOL_SOCKET and typ == _SCM_TIMESTAMPNS and len(val) >= 16:
                    sec, nsec = struct.unpack("qq", val[:16])
                    ts = sec * 1_000_000_000 + nsec
            out.append((ts or time.time_ns(), data, n))
        return out

    def stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._drain_until = time.monotonic() + 2.5 * self.timeout_ms / 1000.0

    def stats(self) -> dict | None:
        if self._p is not None:
            st = self.W.pcap_stat()
            if self.W.pcap_stats(self._p, ctypes.byref(st)) == 0:
                return {"received": st.ps_recv, "dropped": st.ps_drop, "if_dropped": st.ps_ifdrop}
            return None
        if self._sock is not None:
            try:
                raw = self._sock.ins.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
                pk, dr = struct.unpack("II", raw)          # counters reset on every read: accumulate
                self._drops_native[0] += pk
                self._drops_native[1] += dr
            except OSError:
                return None
            return {"received": self._drops_native[0], "dropped": self._drops_native[1], "if_dropped": 0}
        return None

    def close(self) -> None:
        if self._p is not None:
            self.W.pcap_close(self._p)
            self._p = None
        if self._sock is not None:
            try:
                self._sock.close()
            except Exception:                                     # noqa: BLE001
                pass
            self._sock = None


def _recvmsg(s, flags):
    data, anc, fl, addr = s.recvmsg(K_SNAPLEN, 64, flags)
    # with MSG_TRUNC the returned bytes are cut to the buffer; the frame's real length is not
    # given back by recvmsg in Python, so the wire length is the captured length here
    return len(data), data, anc, fl, addr


class DumpcapBackend(Backend):
    """dumpcap (or tshark) writing pcapng to a pipe, read by tcpanalyze's own pcapng reader."""

    name = "tshark"

    def __init__(self, iface: str, bpf: str | None = None, *, buffer_mib: int = K_BUFFER_BYTES >> 20,
                 program: str | None = None):
        super().__init__(iface, bpf)
        self.buffer_mib = buffer_mib
        self.program = program
        self.proc: subprocess.Popen | None = None
        self.reader = None
        self._q: deque = deque()
        self._ev = threading.Event()
        self._waiting = False
        self._done = False
        self._thread: threading.Thread | None = None
        self._stderr: list[str] = []
        self._err_thread: threading.Thread | None = None
        self._stats: dict | None = None
        self._stop_sent = False
        self._eof_unasked = False
        self.read_error: str | None = None

    @staticmethod
    def find_program() -> str | None:
        return shutil.which("dumpcap") or shutil.which("tshark")

    def open(self) -> None:
        check_interface(self.iface)
        prog = self.program or self.find_program()
        if prog is None:
            raise CaptureError("the tshark backend needs dumpcap or tshark, and neither is installed "
                               "(Debian: apt-get install tshark)", "missing")
        cmd = [prog, "-i", self.iface, "-w", "-", "-q", "-s", str(K_SNAPLEN), "-B", str(self.buffer_mib)]
        if os.path.basename(prog).startswith("tshark"):
            cmd += ["-F", "pcapng"]
        if self.bpf:
            cmd += ["-f", self.bpf]
        self.cmd = cmd
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        except OSError as e:
            raise CaptureError(f"cannot run {prog}: {e.strerror or e}", "missing") from None
        self._err_thread = threading.Thread(target=self._pump_stderr, name="dumpcap-stderr", daemon=True)
        self._err_thread.start()
        try:
            # blocks until dumpcap wrote its section/interface header: the capture is then up
            self.reader = CaptureReader(f"{os.path.basename(prog)}:{self.iface}",
                                        stream=_PipeStream(self.proc.stdout.fileno()))
        except SourceError:
            self._fail()
            raise CaptureError(f"{os.path.basename(prog)} did not start: {self._stderr_text()}", "other") from None
        self.describe = f"{os.path.basename(prog)} pipe ({self.reader.format})"
        self._thread = threading.Thread(target=self._pump, name="dumpcap-reader", daemon=True)
        self._thread.start()

    def _fail(self) -> None:
        """dumpcap exited before its header: classify the error it printed."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._err_thread is not None:
            self._err_thread.join(timeout=2)
        text = self._stderr_text()
        if "Invalid capture filter" in text or "can't parse filter" in text:
            m = re.search(r"\((can't parse filter expression: [^)]*)\)", text)
            raise CaptureError(f"bad capture filter {self.bpf!r}: {m.group(1) if m else text}", "filter")
        if "permission" in text.lower() or "not permitted" in text:
            raise CaptureError(f"cannot capture on {self.iface}: dumpcap has no permission: {PERMISSION_HINT}",
                               "permission")
        if "There is no device named" in text or "No such device" in text:
            names = interface_names()
            raise CaptureError(f"no such interface: {self.iface!r}; available: {', '.join(names)}", "interface",
                               names)

    def _stderr_text(self) -> str:
        skip = ("Capturing on", "File:", "Packets captured:", "Packets received/dropped")
        lines = [ln for ln in self._stderr if ln.strip() and not ln.startswith(skip)]
        return " ".join(ln.strip() for ln in lines[:4]) or f"exit status {self.proc.returncode}"

    def _pump_stderr(self) -> None:
        f = self.proc.stderr
        for raw in iter(f.readline, b""):
            line = raw.decode(errors="replace").replace("\r", "")
            if len(self._stderr) < 200:
                self._stderr.append(line)
            m = re.search(r"Packets received/dropped on interface '.*': (\d+)/(\d+) "
                          r"\(pcap:(\d+)/dumpcap:(\d+)/flushed:(\d+)/ps_ifdrop:(\d+)\)", line)
            if m:
                rec, drop, pcap_d, dc_d, fl, ifd = map(int, m.groups())
                self._stats = {"received": rec, "dropped": drop, "if_dropped": ifd, "pcap_dropped": pcap_d,
                               "dumpcap_dropped": dc_d, "flushed": fl}

    def _pump(self) -> None:
        q = self._q
        ev = self._ev
        n = 0
        try:
            for _frame, ts, lt, data, wirelen in self.reader:
                if self.linktype is None:
                    self.linktype = lt
                q.append((ts, data, wirelen, lt))
                n += 1
                if self._waiting or not n & 63:
                    ev.set()
                while len(q) > K_QUEUE_MAX and not self._done:
                    time.sleep(0.005)                 # back-pressure: the pipe fills, dumpcap buffers
        except Exception as e:                        # noqa: BLE001 - reported, never raised in a thread
            self.read_error = str(e)
        finally:
            self._eof_unasked = not self._stop_sent      # dumpcap ended before we asked it to
            self._done = True
            ev.set()

    def read(self, timeout: float) -> list | None:
        q = self._q
        if not q:
            if self._done:
                return None
            self._ev.clear()
            self._waiting = True
            if not q and not self._done:
                self._ev.wait(timeout)
            self._waiting = False
            if not q:
                return None if self._done else []
        out = []
        pop = q.popleft
        lt0 = self.linktype
        for _ in range(min(len(q), K_BATCH * 4)):
            ts, data, wirelen, lt = pop()
            if lt != lt0:
                # one interface per capture, so this cannot happen with dumpcap; keep the first
                continue
            out.append((ts, data, wirelen))
        return out

    def stop(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            self._stop_sent = True
            try:
                os.kill(p.pid, signal.SIGTERM)       # dumpcap writes what it has and exits
            except ProcessLookupError:
                pass

    def stats(self) -> dict | None:
        return self._stats

    def close(self) -> None:
        p = self.proc
        if p is None:
            return
        self._done = True
        if p.poll() is None:
            self.stop()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._err_thread is not None:
            self._err_thread.join(timeout=2)
        if self.reader is not None:
            self.reader.close()
        for f in (p.stdout, p.stderr):
            try:
                f.close()
            except OSError:
                pass
        if self.error is None and (p.returncode not in (0, -signal.SIGTERM) or self._eof_unasked):
            self.error = f"{os.path.basename(self.cmd[0])} ended by itself (status {p.returncode}): " \
                         f"{self._stderr_text()}"

    def stderr_lines(self) -> list[str]:
        return list(self._stderr)


class _PipeStream:
    """The reader's stream interface over a pipe descriptor.  ``read1(n)`` returns what the pipe
    holds, at most 64 KiB: dumpcap flushes every packet, and a buffered ``read1(1 MiB)`` would
    allocate (and shrink) a megabyte per packet."""

    K_MAX = 1 << 16

    def __init__(self, fd: int):
        self.fd = fd

    def read1(self, n: int = -1) -> bytes:
        while True:
            try:
                return os.read(self.fd, self.K_MAX if n is None or n < 0 or n > self.K_MAX else n)
            except InterruptedError:
                continue

    read = read1

    def close(self) -> None:
        pass


def _die_with_parent() -> None:
    """In the dumpcap child: get SIGTERM when tcpanalyze dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def make_backend(name: str, iface: str, bpf: str | None = None) -> Backend:
    if name == "scapy":
        return ScapyBackend(iface, bpf)
    if name == "tshark":
        return DumpcapBackend(iface, bpf)
    raise ValueError(f"unknown backend {name!r}")


# ---------------------------------------------------------------------------- writing a pcap
class PcapWriter:
    """A classic pcap file (pcap §4) written with struct: the header with the live link type,
    then one record per frame with nanosecond (magic a1b23c4d) or microsecond timestamps."""

    _REC = struct.Struct("<IIII")

    def __init__(self, path: str, nanoseconds: bool = True, snaplen: int = K_SNAPLEN):
        self.path = path
        self.ns = nanoseconds
        self.snaplen = snaplen
        try:
            self.f = open(path, "wb", buffering=1 << 20)
        except OSError as e:
            raise OutputError.from_oserror(path, e) from None
        self.linktype: int | None = None
        self.frames = 0

    def header(self, linktype: int) -> None:
        if self.linktype is not None:
            return
        self.linktype = linktype
        magic = 0xA1B23C4D if self.ns else 0xA1B2C3D4
        try:
            self.f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, self.snaplen, linktype))
        except OSError as e:
            raise OutputError.from_oserror(self.path, e) from None

    def write(self, ts_ns: int, data: bytes, wirelen: int) -> None:
        """Raises ``OutputError`` when the file cannot be written (full disk)."""
        sec, frac = divmod(ts_ns, 1_000_000_000)
        if not self.ns:
            frac //= 1000
        try:
            self.f.write(self._REC.pack(sec, frac, len(data), max(wirelen, len(data))))
            self.f.write(data)
        except OSError as e:
            raise OutputError.from_oserror(self.path, e) from None
        self.frames += 1

    def close(self, linktype: int | None = None) -> None:
        if self.f.closed:
            return
        if self.linktype is None:
            self.header(linktype if linktype is not None else LINKTYPE_ETHERNET)
        try:
            self.f.close()
        except OSError as e:
            raise OutputError.from_oserror(self.path, e) from None


def is_root_or_capable() -> bool:
    """True when this process may open a packet socket (root, or CAP_NET_RAW effective)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 13))
    except OSError:
        pass
    return False


def drop_privileges(user: str) -> tuple[int, int]:
    """setgroups/setgid/setuid to ``user`` (name or uid); returns (uid, gid).  Irreversible."""
    import pwd

    try:
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise CaptureError(f"no such user: {user!r}", "other") from None
    uid, gid = pw.pw_uid, pw.pw_gid
    if os.getuid() == uid and os.geteuid() == uid:
        return uid, gid
    try:
        os.setgroups(os.getgrouplist(pw.pw_name, gid))
        os.setgid(gid)
        os.setuid(uid)
    except PermissionError as e:
        raise CaptureError(f"cannot switch to user {user!r}: {e.strerror}", "permission") from None
    if os.geteuid() != uid or os.getegid() != gid:
        raise CaptureError(f"could not drop privileges to {user!r}", "permission")
    try:
        os.setuid(0)                 # must fail now
    except PermissionError:
        pass
    else:
        raise CaptureError("privileges could be regained after dropping them", "permission")
    return uid, gid


__all__ = ["Backend", "ScapyBackend", "DumpcapBackend", "CaptureError", "PcapWriter", "make_backend",
           "list_interfaces", "interface_names", "check_interface", "drop_privileges", "is_root_or_capable",
           "PERMISSION_HINT"]
