"""What the commands write, and what they do when they cannot write it.

Output errors (exit 4, one line naming the output), nothing on stdout for an unreadable
input, standard input read once, filters (--stream, CIDR --host, analyze's filters), and the
human-readable tables (endpoints never cut, columns left out and named, messages wrapped).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpanalyze.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
TRACES = ROOT / "tests" / "data" / "traces"
LOSSY = SAMPLES / "lossy_bulk.pcap"              # one connection, 4119 segments
RST = SAMPLES / "rst_refused_aborted.pcap"       # 14 connections, 10.200.0.1 -> 10.200.0.2
HANDSHAKES = SAMPLES / "handshake_variety.pcap"  # 5 connections, stream 1 over IPv6
TW = SAMPLES / "timewait_server_close.pcap"      # IPv4 and IPv6 servers in TIME_WAIT
SHRINK = SAMPLES / "window_shrink.pcap"

#: a file even root cannot open for writing: a read-only sysctl (mode 0444; proc_sys_permission
#: applies the mode bits to root as well) -> EACCES
EACCES_PATH = "/proc/sys/kernel/osrelease"
ENOENT_PATH = "/nonexistent-r18/dir/out"
ENOSPC_PATH = "/dev/full"


def _run(*args, stdin=None, env=None, stdout=None):
    return subprocess.run([sys.executable, "-m", "tcpanalyze", *map(str, args)], input=stdin,
                          stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=ROOT, timeout=300, env={**os.environ, **(env or {})})


def _one_line(r, code: int) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("tcpanalyze: capturing")]
    assert len(lines) == 1 and lines[0].startswith("tcpanalyze: error:"), err
    return lines[0]


def _eacces_really_fails() -> None:
    try:
        with open(EACCES_PATH, "w"):
            pass
    except PermissionError:
        return
    except OSError as e:
        pytest.skip(f"{EACCES_PATH} fails with {e.strerror}, not EACCES, on this kernel")
    pytest.skip(f"{EACCES_PATH} is writable here (not a Linux /proc)")


REASONS = {ENOENT_PATH: "No such file or directory", EACCES_PATH: "Permission denied",
           ENOSPC_PATH: "No space left on device"}


def _has(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


# (command line with OUT where the output goes, what it needs)
FILE_OUTPUTS = [
    (["analyze", LOSSY, "-o", "OUT"], None),
    (["analyze", LOSSY, "--json", "-o", "OUT"], None),
    (["analyze", LOSSY, "--jsonl", "-o", "OUT"], None),
    (["packets", LOSSY, "-o", "OUT"], None),
    (["packets", LOSSY, "--jsonl", "-o", "OUT"], None),
    (["packets", LOSSY, "--format", "parquet", "-o", "OUT"], "pyarrow"),
    (["flows", LOSSY, "-o", "OUT"], None),
    (["flows", LOSSY, "--jsonl", "-o", "OUT"], None),
    (["flows", LOSSY, "--format", "parquet", "-o", "OUT"], "pyarrow"),
    (["check", LOSSY, "--max-rst", "0", "-o", "OUT"], None),
    (["check", LOSSY, "--max-rst", "0", "--junit", "OUT"], None),
    (["ladder", LOSSY, "--stream", "0", "--svg", "OUT"], None),
    (["analyze", LOSSY, "--html", "OUT"], "plotly"),
    (["check", LOSSY, "--max-rst", "0", "--html", "OUT"], "plotly"),
    (["plot", LOSSY, "--kind", "tseq", "--stream", "0", "-o", "OUT.png"], "matplotlib"),
    (["compare", LOSSY, "-o", "OUT"], "tshark"),
]


def _needs(what):
    if what == "tshark":
        if not shutil.which("tshark"):
            pytest.skip("tshark is not installed")
    elif what and not _has(what):
        pytest.skip(f"{what} is not installed")


@pytest.mark.parametrize("target", [ENOENT_PATH, EACCES_PATH, ENOSPC_PATH])
@pytest.mark.parametrize("argv,needs", FILE_OUTPUTS, ids=lambda v: " ".join(map(str, v))[:60] if isinstance(v, list) else str(v))
def test_unwritable_output_file_is_exit_4(argv, needs, target):
    _needs(needs)
    if target == EACCES_PATH:
        _eacces_really_fails()
    out = target
    if any(str(a).startswith("OUT.") for a in argv):        # plot: the extension picks the format
        if target != ENOENT_PATH:
            pytest.skip("plot needs an image extension; /proc and /dev paths have none (ENOENT covers it)")
        out = target + ".png"
    args = [out if str(a).startswith("OUT") else a for a in argv]
    line = _one_line(_run(*args), 4)
    assert line == f"tcpanalyze: error: cannot write {out}: {REASONS[target]}" or \
        (line.startswith(f"tcpanalyze: error: cannot write {out}: ") and REASONS[target].split()[0] in line
         and "parquet" in " ".join(map(str, argv))), line
    assert str(LOSSY) not in line                             # never blamed on the input


STDOUT_COMMANDS = [
    ["analyze", LOSSY], ["analyze", LOSSY, "--json"], ["analyze", LOSSY, "--jsonl"],
    ["packets", LOSSY], ["packets", LOSSY, "--jsonl"], ["flows", LOSSY], ["flows", LOSSY, "--jsonl"],
    ["flows", LOSSY, "--stream", "0"], ["check", LOSSY, "--max-rst", "0"],
    ["check", LOSSY, "--max-rst", "0", "--github"], ["ladder", LOSSY, "--stream", "0"],
    ["ladder", LOSSY, "--stream", "0", "--svg", "-"],
]


@pytest.mark.parametrize("argv", STDOUT_COMMANDS, ids=lambda v: " ".join(map(str, v[:1] + v[2:])))
def test_full_stdout_is_exit_4(argv):
    with open(ENOSPC_PATH, "wb") as full:
        r = _run(*argv, stdout=full)
    line = _one_line(r, 4)
    assert line == "tcpanalyze: error: cannot write standard output: No space left on device"


def test_compare_full_stdout_is_exit_4():
    _needs("tshark")
    with open(ENOSPC_PATH, "wb") as full:
        r = _run("compare", LOSSY, stdout=full)
    assert _one_line(r, 4).endswith("cannot write standard output: No space left on device")


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture on lo needs root")
@pytest.mark.parametrize("target", [ENOENT_PATH + ".pcap", ENOSPC_PATH])
def test_live_write_unwritable_is_exit_4(target):
    r = _run("live", "-i", "lo", "-w", target, "--duration", "0.3", "--no-live", "--count", "1")
    assert _one_line(r, 4).startswith(f"tcpanalyze: error: cannot write {target}: ")


def test_pcap_writer_raises_output_error(tmp_path):
    from tcpanalyze.errors import OutputError
    from tcpanalyze.sources.live import PcapWriter

    with pytest.raises(OutputError, match="No such file"):
        PcapWriter(str(tmp_path / "no" / "x.pcap"))
    w = PcapWriter(ENOSPC_PATH)
    w.header(1)
    with pytest.raises(OutputError, match="No space left"):
        for _ in range(2000):                 # beyond the 1 MiB buffer
            w.write(0, b"x" * 1500, 1500)


@pytest.mark.parametrize("argv", [["packets", LOSSY], ["analyze", LOSSY], ["flows", LOSSY, "--jsonl"],
                                  ["ladder", LOSSY, "--stream", "0", "--max-packets", "0"],
                                  ["check", LOSSY, "--max-rst", "0"]])
def test_reader_going_away_is_quiet_exit_0(argv):
    """EPIPE (`tcpanalyze packets f | head -1`): exit 0 and nothing on stderr, like a command
    that SIGPIPE ends (grep, cat) prints nothing."""
    p = subprocess.Popen([sys.executable, "-m", "tcpanalyze", *map(str, argv)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0, err.decode()
    assert err == b""


# ---------------------------------------------------------------------------- unreadable input
@pytest.fixture
def bad_inputs(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all\n" * 10)
    return empty, bad


@pytest.mark.parametrize("argv", [["analyze"], ["analyze", "--json"], ["analyze", "--jsonl"], ["packets"],
                                  ["packets", "--jsonl"], ["flows"], ["flows", "--jsonl"]])
def test_unreadable_input_writes_nothing_to_stdout(bad_inputs, argv):
    for f in bad_inputs:
        r = _run(*argv, f)
        line = _one_line(r, 3)
        assert str(f) in line                   # the error names the file
        assert r.stdout == b""


def test_unreadable_input_creates_no_output_file(bad_inputs, tmp_path):
    out = tmp_path / "report.json"
    r = _run("analyze", "--json", bad_inputs[0], "-o", out)
    assert r.returncode == 3 and not out.exists()


def test_several_files_report_says_which_could_not_be_read(bad_inputs):
    empty, bad = bad_inputs
    r = _run("analyze", "--json", LOSSY, empty, bad)
    assert r.returncode == 3
    doc = json.loads(r.stdout)
    errors = {f["source"]: f["error"] for f in doc["files"]}
    assert errors[str(LOSSY)] is None and errors[str(empty)] and errors[str(bad)]
    assert doc["summary"]["files_failed"] == 2
    table = _run("analyze", LOSSY, empty, env={"COLUMNS": "120"}).stdout.decode()
    assert "Error" in table and "(1 unreadable)" in table
    err = r.stderr.decode()
    assert f"{empty}:" in err and f"{bad}:" in err


# ---------------------------------------------------------------------------- standard input
@pytest.mark.parametrize("command", ["analyze", "packets", "flows"])
def test_stdin_terminal_ends_at_the_first_ctrl_d(command):
    """A terminal answers every read after Ctrl-D by waiting again: stdin is read to its end once."""
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "tcpanalyze", command, "-"], cwd=ROOT, stdin=slave,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        time.sleep(1.0)
        os.write(master, b"\x04")               # one Ctrl-D at the start of a line: end of input
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"{command} - still waits for input after one Ctrl-D")
    finally:
        os.close(master)
    assert p.returncode == 3 and out == b""
    assert err.decode().strip() == "tcpanalyze: error: standard input: file is empty: not a pcap or pcapng capture"


def test_compare_reads_stdin():
    _needs("tshark")
    with open(LOSSY, "rb") as fh:
        data = fh.read()
    r = _run("compare", "-", "--json", stdin=data)
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    direct = json.loads(_run("compare", LOSSY, "--json").stdout)
    assert doc["file"] == "-" and doc["frames"] == direct["frames"] == 4119
    assert doc["flags"] == direct["flags"]
    line = _one_line(_run("compare", "-", stdin=b"not a capture, just text\n" * 4), 3)
    assert "standard input" in line and "/tmp" not in line


def test_compare_names_the_tshark_it_cannot_run(tmp_path):
    line = _one_line(_run("compare", LOSSY, "--tshark", "/nonexistent/tshark"), 3)
    assert line == "tcpanalyze: error: cannot run tshark /nonexistent/tshark: No such file or directory"
    notexec = tmp_path / "tshark"
    notexec.write_text("#!/bin/sh\n")
    line = _one_line(_run("compare", LOSSY, "--tshark", notexec), 3)
    assert str(notexec) in line and "not an executable" in line


# ---------------------------------------------------------------------------- filters
@pytest.mark.parametrize("argv", [["packets", LOSSY], ["packets", LOSSY, "--jsonl"], ["flows", LOSSY],
                                  ["flows", LOSSY, "--jsonl"], ["ladder", LOSSY], ["analyze", LOSSY],
                                  ["plot", LOSSY, "--kind", "tseq", "-o", "/tmp/r18-never.png"]])
def test_missing_stream_is_exit_2_everywhere(argv):
    if argv[0] == "plot":
        _needs("matplotlib")
    r = _run(*argv, "--stream", "77")
    line = _one_line(r, 2)
    assert line.startswith(f"tcpanalyze: error: --stream 77: no stream 77 in {LOSSY}"), line
    assert r.stdout == b""


def test_packets_parquet_missing_stream_is_exit_2(tmp_path):
    _needs("pyarrow")
    _one_line(_run("packets", LOSSY, "--stream", "77", "--format", "parquet", "-o", tmp_path / "p.parquet"), 2)


def _tsv_frames(text: str) -> list[int]:
    return [int(ln.split("\t")[0]) for ln in text.splitlines()[1:]]


def test_host_takes_a_network_v4_and_v6():
    r = CliRunner()
    every = _tsv_frames(r.invoke(cli, ["packets", str(HANDSHAKES)]).output)
    v4 = _tsv_frames(r.invoke(cli, ["packets", str(HANDSHAKES), "--host", "10.200.0.0/24"]).output)
    v6 = _tsv_frames(r.invoke(cli, ["packets", str(HANDSHAKES), "--host", "fd00:200::/64"]).output)
    one = _tsv_frames(r.invoke(cli, ["packets", str(HANDSHAKES), "--host", "fd00:200::2"]).output)
    assert v4 and v6 and sorted(v4 + v6) == every
    assert one == v6
    assert _tsv_frames(r.invoke(cli, ["packets", str(HANDSHAKES), "--host", "10.201.0.0/16"]).output) == []
    bad = r.invoke(cli, ["packets", str(HANDSHAKES), "--host", "10.0.0.0/33"])
    assert bad.exit_code == 2 and "not an IP address or network" in bad.output


def test_api_packets_takes_a_network():
    import tcpanalyze

    streams = {p.stream for p in tcpanalyze.packets(HANDSHAKES, host="fd00:200::/64")}
    assert streams == {1}
    with pytest.raises(ValueError):
        tcpanalyze.packets(HANDSHAKES, host="not-an-address")


def _analyze_json(*args) -> dict:
    r = _run("analyze", "--json", *args)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def test_analyze_stream_filter_keeps_stream_numbers():
    whole = _analyze_json(RST)
    one = _analyze_json(RST, "--stream", "3")
    assert [c["stream"] for c in one["connections"]] == [3]
    assert {f["stream"] for f in one["findings"] if f["stream"] is not None} == {3}
    c3 = next(c for c in whole["connections"] if c["stream"] == 3)
    assert one["connections"][0] == c3
    assert one["summary"]["connections"] == 1
    assert one["summary"]["tcp_segments"] == c3["orig_pkts"] + c3["resp_pkts"]
    assert one["summary"]["bytes"] == c3["orig_bytes"] + c3["resp_bytes"]


def test_analyze_port_and_host_filters():
    whole = _analyze_json(RST)
    port7 = _analyze_json(RST, "--port", "7")
    expect = sorted(c["stream"] for c in whole["connections"] if 7 in (c["orig_p"], c["resp_p"]))
    assert sorted(c["stream"] for c in port7["connections"]) == expect and expect
    v6 = _analyze_json(TW, "--host", "fd00::/16")
    assert v6["summary"]["connections"] and all(":" in c["resp_h"] for c in v6["connections"])
    # TIME_WAIT per host: the hosts of the selected connections only
    assert [h["host"] for h in v6["summary"]["time_wait"]["hosts"]] == ["fd00:200::2"]
    assert all(f["host"] in (None, "fd00:200::2") for f in v6["findings"])
    none = _analyze_json(TW, "--port", "1")
    assert none["summary"]["connections"] == 0 and none["connections"] == []


def test_analyze_filter_with_jobs_is_the_same():
    a = _analyze_json(RST, "--port", "8080")
    b = _analyze_json(RST, "--port", "8080", "--jobs", "2")
    assert a["connections"] == b["connections"] and a["findings"] == b["findings"]


# ---------------------------------------------------------------------------- tables
def _flows_jsonl(path) -> list[dict]:
    return [json.loads(ln) for ln in _run("flows", "--jsonl", path).stdout.decode().splitlines()]


def _endpoint(h, p) -> str:
    return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"


@pytest.mark.parametrize("columns", ["80", "60", "200"])
def test_flows_table_never_cuts_an_endpoint(columns):
    for path in (RST, HANDSHAKES):
        recs = _flows_jsonl(path)
        r = _run("flows", path, "--top", "0", env={"COLUMNS": columns})
        text = r.stdout.decode()
        assert r.returncode == 0 and "…" not in text
        for c in recs:
            assert _endpoint(c["orig_h"], c["orig_p"]) in text
            assert _endpoint(c["resp_h"], c["resp_p"]) in text
        width = max(len(ln) for ln in text.splitlines())
        assert width <= max(int(columns), 50), width       # piped: COLUMNS is the width
        if columns == "200":
            assert "left out" not in text and "history" in text
        else:
            assert re.search(r"left out to fit \d+ columns: [a-z]", text)
            dropped = text.split("left out to fit")[1]
            assert "history" in dropped                     # the lowest priority goes first


def test_flows_table_ipv6_brackets_and_default_width():
    text = _run("flows", HANDSHAKES, env={"COLUMNS": ""}).stdout.decode()
    assert "[fd00:200::1]:" in text and "fd00:200::1:" not in text
    assert max(len(ln) for ln in text.splitlines()) <= 80     # rich's width for a non-terminal


def test_flows_table_top_and_sort(monkeypatch):
    recs = _flows_jsonl(RST)
    text = _run("flows", RST, "--top", "3", "--sort", "bytes", env={"COLUMNS": "200"}).stdout.decode()
    assert text.startswith(f"3 of {len(recs)} connection(s), by bytes")
    biggest = sorted(recs, key=lambda c: (-(c["orig_bytes"] + c["resp_bytes"]), c["stream"]))[:3]
    rows = [ln for ln in text.splitlines() if ln.startswith("│")]
    assert [int(r.split("│")[1]) for r in rows] == [c["stream"] for c in biggest]


def test_flows_table_builds_only_the_rows_it_shows(monkeypatch):
    """The table costs what JSONL costs: only the --top records become dicts and rows."""
    from tcpanalyze import api

    calls = []
    real = api.Connection.to_dict
    monkeypatch.setattr(api.Connection, "to_dict", lambda self: calls.append(1) or real(self))
    r = CliRunner().invoke(cli, ["flows", str(RST), "--top", "4"], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    assert len(calls) == 4
    assert r.output.startswith("4 of 14 connection(s), by stream")


def test_worst_connections_at_80_columns_keep_endpoints():
    text = _run("analyze", HANDSHAKES, env={"COLUMNS": "80"}).stdout.decode()
    part = text.split("Worst connections")[1]
    assert "10.200.0.1:31712" in part and "[fd00:200::1]:21706" in part and "[fd00:200::2]:9" in part
    assert "…" not in part
    assert "left out to fit 80 columns: Bytes" in part
    assert "handshake/syn_unanswered" in part        # a label is never cut either


def test_finding_messages_wrap_never_cut():
    rep = _analyze_json(SHRINK)
    msg = next(f["message"] for f in rep["findings"] if f["kind"] == "window_shrink")
    for cols in ("200", "80"):
        text = _run("analyze", SHRINK, env={"COLUMNS": cols}).stdout.decode()
        assert "…" not in text.split("TIME_WAIT")[0]
        flat = " ".join(text.split())
        tail = msg.split(": ", 1)[1]
        assert " ".join(tail.split()) in flat, cols


def test_report_header_shows_the_capture_start():
    from datetime import datetime, timezone

    start = _analyze_json(LOSSY)["summary"]["start"]
    text = _run("analyze", LOSSY, env={"COLUMNS": "100"}).stdout.decode()
    stamp = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    assert re.search(rf"^Start\s+{re.escape(stamp)}", text, re.M)


def _first_frame_ns(path) -> int:
    from tcpanalyze.sources.pcap import open_capture

    r = open_capture(str(path))
    try:
        return next(iter(r))[1]
    finally:
        r.close()


@pytest.mark.parametrize("path", [LOSSY, TRACES / "Teredo.pcap"])   # Teredo: the first frame is not TCP
def test_packets_relative_time(path):
    absolute = _run("packets", path).stdout.decode().splitlines()[1:]
    rel = _run("packets", path, "--relative-time").stdout.decode().splitlines()[1:]
    assert len(absolute) == len(rel) > 0
    t0 = _first_frame_ns(path)
    for a, b in zip(absolute, rel):
        fa, fb = a.split("\t"), b.split("\t")
        sec, frac = fa[1].split(".")
        ns = int(sec) * 10**9 + int(frac) - t0
        assert fb[1] == f"{ns // 10**9}.{ns % 10**9:09d}"
        assert fa[0] == fb[0] and fa[2:] == fb[2:]
    jl = [json.loads(ln) for ln in _run("packets", path, "--relative-time", "--jsonl").stdout.decode().splitlines()]
    assert [j["time"] for j in jl] == [ln.split("\t")[1] for ln in rel]


def test_packets_relative_time_matches_tshark():
    if not shutil.which("tshark"):
        pytest.skip("tshark is not installed")
    path = TRACES / "Teredo.pcap"
    ws = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number",
                         "-e", "frame.time_relative"], capture_output=True, text=True, timeout=60).stdout
    theirs = {int(a): float(b) for a, b in (ln.split("\t") for ln in ws.splitlines())}
    ours = {int(r.split("\t")[0]): float(r.split("\t")[1])
            for r in _run("packets", path, "--relative-time").stdout.decode().splitlines()[1:]}
    assert ours.keys() <= theirs.keys() and ours
    assert all(abs(ours[k] - theirs[k]) < 1e-6 for k in ours)


def test_packets_relative_time_negative_when_clock_goes_back():
    """A segment stamped before the first frame gets a negative time, as in Wireshark."""
    from types import SimpleNamespace

    import tcpanalyze.rows as R

    if not R.__file__.endswith(".py"):
        pytest.skip("the compiled TsvRows takes engine records only: checked on the pure build")

    class Seg:
        frame, flags, seq, ack, sport, dport, paylen = 2, 0x10, 1, 1, 1, 2, 0
        src, dst = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
        ts_ns = 5 * 10**9 - 250_000_000

    class Conn:
        stream = 0

    out = []
    rows = R.TsvRows(out.append, relative=True, t0=5 * 10**9)
    v = SimpleNamespace(conn=Conn(), rel_seq=1, rel_ack=1, direction=0, analysis=0, ack_rtt=-1,
                        bytes_in_flight=-1, dupack_num=0, win=100)
    rows(Seg(), SimpleNamespace(verdict=v))
    rows.flush()
    assert "".join(out).split("\t")[1] == "-0.250000000"
