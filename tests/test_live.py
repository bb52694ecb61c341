"""``tcpanalyze live`` and ``tcpanalyze interfaces``: real captures.

Traffic goes only to loopback or between two network namespaces these tests create (joined
by a veth pair, addresses from the RFC 2544 benchmarking range 198.18.0.0/15, which exist
only inside those namespaces) and removes again.  Every capture is bounded: a few dozen
packets, a subprocess timeout, each test well under 30 s.  Capture needs root; tests that
cannot run here skip with the reason.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
HAVE_DUMPCAP = bool(shutil.which("dumpcap") or shutil.which("tshark"))

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="live capture tests use Linux interfaces"),
]
needs_root = pytest.mark.skipif(not IS_ROOT, reason="live capture needs root (or CAP_NET_RAW); not root here")

BACKENDS = [
    "scapy",
    pytest.param("tshark", marks=pytest.mark.skipif(not HAVE_DUMPCAP, reason="dumpcap/tshark not installed")),
]
K_WAIT = 20          # seconds any subprocess may take

SERVER = r'''
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(8)
print("ready", flush=True)
srv.settimeout(15)
# 1: request / response, the server closes first (it holds the TIME_WAIT)
c, _ = srv.accept()
data = b""
while len(data) < 1000:
    data += c.recv(4096)
c.sendall(b"R" * 3000)
c.close()
# 2: the client aborts (SO_LINGER 0 -> RST)
c, _ = srv.accept()
c.settimeout(5)
c.recv(4096)
try:
    c.recv(4096)
except OSError:
    pass
c.close()
srv.close()
print("served", flush=True)
'''

CLIENT = r'''
import socket, struct, sys, time
host, port = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((host, port), timeout=10)
c.sendall(b"Q" * 1000)
got = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    got += b
assert len(got) == 3000, len(got)
c.close()
try:
    socket.create_connection((host, port + 1), timeout=5)
    raise SystemExit("port %d was open" % (port + 1))
except ConnectionRefusedError:
    pass
c = socket.create_connection((host, port), timeout=10)
c.sendall(b"A" * 100)
time.sleep(0.2)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
print("done", flush=True)
'''


# ---------------------------------------------------------------------------- helpers
def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p >= 65535:
                continue
            try:
                b.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
            return p
    raise RuntimeError("no free port pair")


class LiveRun:
    """``tcpanalyze live ...`` as a subprocess, with its stderr collected by a thread."""

    def __init__(self, args: list[str], netns: str | None = None, env: dict | None = None, stdout=None):
        cmd = [sys.executable, "-m", "tcpanalyze", "live", *args]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
        if env:
            e.update(env)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=e)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()
        self._out: list[bytes] = []
        self.t_out = None
        if self.proc.stdout is not None:
            self.t_out = threading.Thread(target=lambda: self._out.append(self.proc.stdout.read()), daemon=True)
            self.t_out.start()
        self.stdout = ""

    def _pump(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if "capturing on" in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout: float = K_WAIT) -> None:
        assert self.ready.wait(timeout), "live did not start: " + self.stderr
        assert self.proc.poll() is None, f"live exited early ({self.proc.returncode}): {self.stderr}"

    def finish(self, sig=None, timeout: float = K_WAIT) -> int:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("live did not stop in time: " + self.stderr) from None
        self.t.join(timeout=5)
        if self.t_out is not None:
            self.t_out.join(timeout=5)
        self.stdout = b"".join(self._out).decode(errors="replace")
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def _run(cmd: list[str], netns: str | None = None, timeout: float = K_WAIT, **kw) -> subprocess.CompletedProcess:
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def _analyze_json(pcap: Path, out: Path) -> dict:
    r = _run([sys.executable, "-m", "tcpanalyze", "analyze", "--json", "-o", str(out), "--idle-timeout", "300",
              str(pcap)])
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def _comparable(doc: dict) -> dict:
    """The document minus what names the input (files entry, ``file`` tags)."""
    d = {k: v for k, v in doc.items() if k != "files"}
    d["connections"] = [{k: v for k, v in c.items() if k != "file"} for c in doc["connections"]]
    d["findings"] = [{k: v for k, v in f.items() if k != "file"} for f in doc["findings"]]
    tw = d["summary"].get("time_wait", {})
    for h in tw.get("hosts", []):
        h.pop("file", None)
    return d


def _pcap_frames(path: Path) -> tuple[int, int]:
    from tcpanalyze.sources.pcap import open_capture

    with open_capture(str(path)) as r:
        n = sum(1 for _ in r)
        assert r.damage is None, r.damage
        return n, sorted(r.linktypes)[0] if r.linktypes else -1


def _traffic(host: str, port: int, tmp: Path, server_ns: str | None = None, client_ns: str | None = None) -> None:
    srv_py = tmp / "server.py"
    cli_py = tmp / "client.py"
    srv_py.write_text(SERVER)
    cli_py.write_text(CLIENT)
    cmd = [sys.executable, str(srv_py), host, str(port)]
    if server_ns:
        cmd = ["ip", "netns", "exec", server_ns, *cmd]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        assert line.strip() == "ready", srv.stderr.read()
        r = _run([sys.executable, str(cli_py), host, str(port)], netns=client_ns)
        assert r.returncode == 0 and "done" in r.stdout, r.stdout + r.stderr
        out, err = srv.communicate(timeout=K_WAIT)
        assert "served" in out, err
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


_ns_counter = itertools.count()


@pytest.fixture
def netns_pair():
    """Two fresh network namespaces joined by a veth pair: (ns_a, if_a, ip_a, ns_b, if_b, ip_b)."""
    if not IS_ROOT or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    n = next(_ns_counter)
    tag = f"{os.getpid() % 100000}{n}"
    ns_a, ns_b = f"tcpa{tag}a", f"tcpa{tag}b"
    if_a, if_b = f"ta{tag}a"[:15], f"ta{tag}b"[:15]
    ip_a, ip_b = "198.18.77.1", "198.18.77.2"
    created = []

    def sh(*args):
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")

    try:
        sh("ip", "netns", "add", ns_a)
        created.append(ns_a)
        sh("ip", "netns", "add", ns_b)
        created.append(ns_b)
        sh("ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
    except RuntimeError as e:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"this machine cannot create network namespaces / veth pairs: {e}")
    try:
        for ns, ifc, ip in ((ns_a, if_a, ip_a), (ns_b, if_b, ip_b)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifc)
            sh("ip", "-n", ns, "link", "set", ifc, "up")
        yield ns_a, if_a, ip_a, ns_b, if_b, ip_b
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _check_pattern(doc: dict) -> None:
    s = doc["summary"]
    assert s["connections"] == 3, s
    assert s["conn_states"] == {"REJ": 1, "RSTO": 1, "SF": 1}, s["conn_states"]
    labels = {f"{f['kind']}/{f['subkind']}" if f["subkind"] else f["kind"] for f in doc["findings"]}
    assert {"rst/refused", "rst/aborted", "server_active_close"} <= labels, labels
    assert s["bytes"] == 1000 + 3000 + 100


def _live_vs_analyze(tmp_path: Path, backend: str, iface: str, host: str, port: int,
                     live_ns=None, server_ns=None, client_ns=None) -> dict:
    out = tmp_path / "live.json"
    pcap = tmp_path / "live.pcap"
    bpf = f"tcp and (port {port} or port {port + 1})"
    run = LiveRun(["-i", iface, "-f", bpf, "--backend", backend, "--json", "-o", str(out), "-w", str(pcap),
                   "--no-live"], netns=live_ns)
    try:
        run.wait_ready()
        _traffic(host, port, tmp_path, server_ns=server_ns, client_ns=client_ns)
        time.sleep(0.4)                # let the last frames reach the capture
    finally:
        rc = run.finish(signal.SIGTERM)
    assert rc == 0, run.stderr
    assert "stopped (SIGTERM)" in run.stderr, run.stderr
    live_doc = json.loads(out.read_text())
    _check_pattern(live_doc)
    frames, lt = _pcap_frames(pcap)
    entry = live_doc["files"][0]
    assert frames == live_doc["summary"]["packets"] == entry["capture"]["written_frames"]
    assert lt == 1 and entry["linktypes"] == [1]
    assert entry["capture"]["backend"] == backend
    assert entry["capture"]["kernel"] is not None and entry["capture"]["kernel"]["dropped"] == 0
    an_doc = _analyze_json(pcap, tmp_path / "analyze.json")
    assert _comparable(live_doc) == _comparable(an_doc)
    return live_doc


# ---------------------------------------------------------------------------- real traffic
@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_loopback_live_equals_analyze_of_written_pcap(tmp_path, backend):
    port = _free_port_pair()
    doc = _live_vs_analyze(tmp_path, backend, "lo", "127.0.0.1", port)
    # loopback: each frame once (scapy's native socket would see outgoing + incoming copies)
    assert doc["summary"]["packets"] == doc["summary"]["tcp_segments"]


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_netns_veth_live_equals_analyze_of_written_pcap(tmp_path, backend, netns_pair):
    ns_a, if_a, _ip_a, ns_b, _if_b, ip_b = netns_pair
    _live_vs_analyze(tmp_path, backend, if_a, ip_b, 5001, live_ns=ns_a, server_ns=ns_b, client_ns=ns_a)


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigint_mid_capture_prints_report_and_valid_pcap(tmp_path, backend):
    port = _free_port_pair()
    pcap = tmp_path / "cut.pcap"
    run = LiveRun(["-i", "lo", "-f", f"tcp and (port {port} or port {port + 1})", "--backend", backend,
                   "-w", str(pcap)])
    try:
        run.wait_ready()
        _traffic("127.0.0.1", port, tmp_path)
        time.sleep(0.3)
    finally:
        rc = run.finish(signal.SIGINT)
    assert rc == 0, run.stderr
    assert "stopped (SIGINT)" in run.stderr
    # stdout is a pipe: no live view, the analyze table report
    assert "Packets" in run.stdout and "Connections" in run.stdout and "rst/refused" in run.stdout, run.stdout
    assert "\x1b[?25l" not in run.stdout                 # no rich Live cursor games in a pipe
    frames, lt = _pcap_frames(pcap)
    assert frames > 0 and lt == 1
    head = pcap.read_bytes()[:24]
    magic, major, minor, _z, _sf, snap, linktype = struct.unpack("<IHHiIII", head)
    assert (magic, major, minor, linktype) == (0xA1B23C4D, 2, 4, 1) and snap == 262144
    assert f"{frames} packets captured and analyzed" in run.stderr
    if shutil.which("tcpdump"):
        r = _run(["tcpdump", "-nn", "-r", str(pcap)])
        assert r.returncode == 0 and len(r.stdout.splitlines()) == frames, r.stderr


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_count_stops_after_n_packets(tmp_path, backend):
    port = _free_port_pair()
    pcap = tmp_path / "n.pcap"
    out = tmp_path / "n.json"
    run = LiveRun(["-i", "lo", "-f", f"tcp and (port {port} or port {port + 1})", "--backend", backend,
                   "--count", "7", "-w", str(pcap), "--jsonl", "-o", str(out)])
    run.wait_ready()
    _traffic("127.0.0.1", port, tmp_path)
    rc = run.finish()
    assert rc == 0, run.stderr
    assert "stopped (--count 7)" in run.stderr
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["packets"] == 7
    assert _pcap_frames(pcap)[0] == 7


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_duration_stops_without_traffic(tmp_path, backend):
    out = tmp_path / "d.json"
    t0 = time.monotonic()
    run = LiveRun(["-i", "lo", "-f", "tcp port 9 and host 127.0.0.254", "--backend", backend, "--duration", "1",
                   "--json", "-o", str(out)])
    rc = run.finish()
    assert rc == 0, run.stderr
    assert time.monotonic() - t0 < 15
    doc = json.loads(out.read_text())
    assert doc["summary"]["packets"] == 0 and doc["connections"] == []
    assert doc["files"][0]["capture"]["stopped_by"] == "--duration 1 s"
    from schema_errors import schema_errors

    assert schema_errors(doc) == []


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_interface_disappearing_ends_the_capture_cleanly(tmp_path, backend, netns_pair):
    ns_a, if_a, *_ = netns_pair
    out = tmp_path / "gone.json"
    run = LiveRun(["-i", if_a, "--backend", backend, "--duration", "15", "--json", "-o", str(out)], netns=ns_a)
    run.wait_ready()
    time.sleep(0.5)
    subprocess.run(["ip", "-n", ns_a, "link", "del", if_a], check=True, timeout=10)
    assert run.finish(timeout=10) == 0, run.stderr
    doc = json.loads(out.read_text())
    entry = doc["files"][0]
    assert entry["capture"]["stopped_by"] == "capture failed"
    assert any("no longer attached" in w or "disappeared" in w for w in entry["warnings"]), entry["warnings"]


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_interface_lists_available_ones(backend):
    r = _run([sys.executable, "-m", "tcpanalyze", "live", "-i", "nosuchif0", "--backend", backend, "--no-live"])
    assert r.returncode == 3, r.stderr
    assert "no such interface: 'nosuchif0'" in r.stderr and "lo" in r.stderr.split("available:")[1]


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_filter_exit_2(backend):
    r = _run([sys.executable, "-m", "tcpanalyze", "live", "-i", "lo", "-f", "tcp port", "--backend", backend,
              "--duration", "1"])
    assert r.returncode == 2, r.stderr
    assert "bad capture filter 'tcp port'" in r.stderr and "syntax error" in r.stderr, r.stderr


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_permission_exit_3(backend):
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) not installed")
    drop = "-net_raw,-net_admin"
    cmd = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-m", "tcpanalyze", "live",
           "-i", "lo", "--backend", backend, "--duration", "1"]
    r = _run(cmd)
    if "setpriv:" in r.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {r.stderr.strip()}")
    assert r.returncode == 3, r.stderr
    assert "CAP_NET_RAW" in r.stderr, r.stderr


def test_tshark_backend_without_tshark_exit_3():
    env = dict(os.environ, PATH=tempfile.mkdtemp())
    r = _run([sys.executable, "-m", "tcpanalyze", "live", "-i", "lo", "--backend", "tshark", "--duration", "1"],
             env=env)
    assert r.returncode == 3, r.stderr
    assert "needs dumpcap or tshark" in r.stderr


def test_user_with_tshark_backend_is_a_usage_error():
    r = _run([sys.executable, "-m", "tcpanalyze", "live", "-i", "lo", "--backend", "tshark", "--user", "nobody"])
    assert r.returncode == 2 and "--user applies to the scapy backend" in r.stderr


@needs_root
def test_user_drops_privileges_after_open(tmp_path):
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    d = Path(tempfile.mkdtemp(prefix="tcpa-live-"))     # /tmp itself: reachable by nobody
    try:
        d.chmod(0o777)
        port = _free_port_pair()
        out, pcap = d / "u.json", d / "u.pcap"
        run = LiveRun(["-i", "lo", "-f", f"tcp and (port {port} or port {port + 1})", "--user", "nobody",
                       "--json", "-o", str(out), "-w", str(pcap)])
        run.wait_ready()
        _traffic("127.0.0.1", port, tmp_path)
        time.sleep(0.3)
        assert run.finish(signal.SIGTERM) == 0, run.stderr
        # the outputs were opened after the switch: they belong to the user
        assert out.stat().st_uid == nobody.pw_uid and pcap.stat().st_uid == nobody.pw_uid
        assert "now running as user nobody" in run.stderr
        _check_pattern(json.loads(out.read_text()))
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- in-process pieces
@needs_root
def test_scapy_native_socket_fallback_sees_loopback_once():
    from tcpanalyze.sources.live import ScapyBackend

    port = _free_port_pair()
    res = {}
    for use_pcap in (True, False):
        b = ScapyBackend("lo", f"tcp port {port}", use_pcap=use_pcap)
        b.open()
        try:
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", port))
            srv.listen()
            c = socket.create_connection(("127.0.0.1", port))
            s, _ = srv.accept()
            c.sendall(b"x" * 10)
            s.recv(10)
            for x in (c, s, srv):
                x.close()
            time.sleep(0.2)
            b.stop()
            frames = []
            while (batch := b.read(0.1)) is not None:
                frames.extend(batch)
            res[use_pcap] = frames
        finally:
            b.close()
    assert len(res[True]) == len(res[False]) >= 7
    assert [len(f[1]) for f in res[True]] == [len(f[1]) for f in res[False]]


def _frame(ts_s: float, sport: int, dport: int, flags: int, seq: int, ack: int, payload: bytes = b"") -> tuple:
    ip_len = 20 + 20 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0, 64, 6, 0, bytes([198, 18, 0, 1]),
                     bytes([198, 18, 0, 2]))
    if sport > dport:
        pass
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    eth = b"\x00" * 12 + b"\x08\x00"
    data = eth + ip + tcp + payload
    return int(ts_s * 1e9), data, len(data)


def test_idle_connections_expire_with_the_live_default(tmp_path):
    """A long capture keeps bounded memory: idle open connections leave the table after 300 s."""
    from tcpanalyze.commands.live import K_LIVE_IDLE_TIMEOUT_S, LiveSession
    from tcpanalyze.pipeline import RunStats, run_packets
    from tcpanalyze.session import AnalyzeOptions

    assert K_LIVE_IDLE_TIMEOUT_S == 300.0
    sess = LiveSession("live:test", AnalyzeOptions(engine={"idle_timeout_ns": int(K_LIVE_IDLE_TIMEOUT_S * 1e9)}))
    pkts = []
    t = 1000.0
    for i in range(50):                     # 50 connections that open and go silent
        sp = 20000 + i
        pkts.append(_frame(t, sp, 80, 0x02, 1000, 0))
        pkts.append(_frame(t + 0.001, sp, 80, 0x10, 1001, 1))
        t += 0.01
    for k in range(1, 8):                   # later traffic on another connection drives the clock
        pkts.append(_frame(t + 60 * k, 40000, 443, 0x10, 5, 5, b"x"))
    stats = RunStats("live:test")
    run_packets(((i + 1, ts, 1, d, w) for i, (ts, d, w) in enumerate(pkts)), sess.analyzer, stats,
                on_segment=sess.on_segment)
    assert sess.analyzer.expired >= 50
    assert len(sess.analyzer.table) // 2 <= 1
    rep = sess.report(stats)
    assert rep.summary["connections"] == 51


def test_pcap_writer_roundtrip(tmp_path):
    from tcpanalyze.sources.live import PcapWriter
    from tcpanalyze.sources.pcap import open_capture

    frames = [_frame(1700000000.123456789 + i, 1234, 80, 0x10, i, 0, b"ab") for i in range(3)]
    for ns in (True, False):
        p = tmp_path / f"w{int(ns)}.pcap"
        w = PcapWriter(str(p), nanoseconds=ns)
        w.header(1)
        for ts, d, wl in frames:
            w.write(ts, d, wl + 4)
        w.close()
        with open_capture(str(p)) as r:
            got = list(r)
        assert [g[3] for g in got] == [f[1] for f in frames]
        assert [g[4] for g in got] == [f[2] + 4 for f in frames]
        want = [f[0] if ns else f[0] // 1000 * 1000 for f in frames]
        assert [g[1] for g in got] == want
    empty = tmp_path / "empty.pcap"
    PcapWriter(str(empty)).close(linktype=1)
    with open_capture(str(empty)) as r:
        assert list(r) == [] and r.damage is None


def test_live_view_renders_a_snapshot():
    from io import StringIO

    from rich.console import Console

    from tcpanalyze.commands.live import LiveSession
    from tcpanalyze.pipeline import RunStats, run_packets
    from tcpanalyze.report.liveview import render_snapshot
    from tcpanalyze.session import AnalyzeOptions

    sess = LiveSession("live:test", AnalyzeOptions())
    pkts = [_frame(10.0, 5555, 80, 0x02, 100, 0), _frame(10.001, 5555, 80, 0x14, 101, 1)]
    run_packets(((i + 1, ts, 1, d, w) for i, (ts, d, w) in enumerate(pkts)), sess.analyzer, RunStats("x"),
                on_segment=sess.on_segment)
    snap = sess.snapshot(5.0, 1.0, 2, 108, 12.5, {"received": 2, "dropped": 0, "if_dropped": 0}, "test")
    assert snap["rst"] == 1 and snap["active"] == 1
    buf = StringIO()
    Console(file=buf, width=120, color_system=None).print(render_snapshot(snap, "tcpanalyze live: test"))
    text = buf.getvalue()
    assert "2 packets" in text and "RST: 1" in text and "kernel drops: 0" in text
    buf = StringIO()
    Console(file=buf, width=120, color_system=None).print(render_snapshot(None))
    assert "waiting for packets" in buf.getvalue()


def test_interfaces_command_lists_loopback():
    r = _run([sys.executable, "-m", "tcpanalyze", "interfaces", "--json"])
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    lo = [x for x in rows if x["name"] == "lo"]
    assert lo and lo[0]["loopback"] and lo[0]["up"] and "127.0.0.1" in lo[0]["addresses"]
    r = _run([sys.executable, "-m", "tcpanalyze", "interfaces"])
    assert r.returncode == 0 and "lo" in r.stdout and "127.0.0.1" in r.stdout
