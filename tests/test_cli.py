"""CLI behaviour every command shares: help, fast start-up, import hygiene of the core, one-line
errors with documented exit codes, and identical output whatever the capture container."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpanalyze.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"
POP3 = TRACES / "pop3.pcap"
CORE = ["tcpanalyze.decode", "tcpanalyze.engine", "tcpanalyze.state", "tcpanalyze.zeek", "tcpanalyze.analysis",
        "tcpanalyze.seq", "tcpanalyze.findings", "tcpanalyze.summary", "tcpanalyze.model", "tcpanalyze.pipeline",
        "tcpanalyze.sources.pcap"]
HEAVY = ("scapy", "pyshark", "rich", "click", "matplotlib", "dask", "plotly")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_core_imports_no_io_or_ui_library():
    mods = _modules_after("\n".join(f"import {m}" for m in CORE))
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_help_imports_nothing_heavy():
    mods = _modules_after("from tcpanalyze.cli import main\n"
                          "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not mods & {"scapy", "pyshark", "matplotlib", "dask", "rich", "plotly"}, mods


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    r = CliRunner().invoke(cli, [name, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output and len(r.output) > 200


def test_version():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "tcpanalyze" in r.output


def _run(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "tcpanalyze", *map(str, args)], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=120)


def _one_line_error(r, code=3):
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tcpanalyze: error:"), err
    return lines[0]


@pytest.mark.parametrize("command", ["packets", "flows", "analyze"])
def test_random_bytes_and_text_give_exit_3(tmp_path, command):
    rnd = tmp_path / "random.bin"
    rnd.write_bytes(os.urandom(4096))
    txt = tmp_path / "notes.txt"
    txt.write_text("this is not a capture\n" * 20)
    for f in (rnd, txt):
        line = _one_line_error(_run(command, f))
        assert "not a pcap or pcapng" in line or "magic" in line


def test_missing_file_gives_exit_3_or_2(tmp_path):
    r = _run("packets", tmp_path / "nope.pcap")
    assert r.returncode in (2, 3) and "Traceback" not in r.stderr.decode()


def test_unsupported_linktype_is_named(tmp_path):
    f = tmp_path / "lt147.pcap"
    f.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147)
                  + struct.pack("<IIII", 1, 0, 20, 20) + b"\x00" * 20)
    line = _one_line_error(_run("packets", f))
    assert "link type 147" in line


def test_truncated_capture_is_a_warning(tmp_path):
    data = POP3.read_bytes()
    f = tmp_path / "cut.pcap"
    f.write_bytes(data[:-30])
    r = _run("packets", f)
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "Traceback" not in err and "truncated" in err and "byte" in err and "frame" in err
    full = _run("packets", POP3).stdout.decode().splitlines()
    cut = r.stdout.decode().splitlines()
    assert cut == full[: len(cut)] and len(cut) >= len(full) - 1


def test_corrupt_record_exit_3_after_output(tmp_path):
    data = bytearray(POP3.read_bytes())
    # the 6th record's caplen field -> absurd
    off = 24
    for _ in range(5):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        off += 16 + caplen
    struct.pack_into("<I", data, off + 8, 0x7FFFFFF0)
    f = tmp_path / "corrupt.pcap"
    f.write_bytes(bytes(data))
    r = _run("packets", f)
    assert r.returncode == 3
    err = r.stderr.decode()
    assert "Traceback" not in err and f"byte {off}" in err and "frame 6" in err
    assert len(r.stdout.decode().splitlines()) == 1 + 5     # header + the 5 frames before the damage


def test_pcap_pcapng_gzip_and_stdin_same_output(tmp_path):
    from test_reader import ng_block, ng_epb, ng_idb, ng_shb  # the reader tests' writers

    data = POP3.read_bytes()
    recs = []
    off = 24
    while off + 16 <= len(data):
        s, us, cap, wire = struct.unpack_from("<IIII", data, off)
        recs.append((s * 1_000_000_000 + us * 1000, data[off + 16: off + 16 + cap], wire))
        off += 16 + cap
    ng = ng_shb("<") + ng_idb("<", linktype=1, tsresol=9)
    for ts, pkt, wire in recs:
        ng += ng_epb("<", 0, ts, pkt, wirelen=wire)
    (tmp_path / "pop3.pcapng").write_bytes(ng)
    (tmp_path / "pop3.pcap.gz").write_bytes(gzip.compress(data))
    base = _run("packets", POP3).stdout
    assert base.count(b"\n") > 100
    assert _run("packets", tmp_path / "pop3.pcapng").stdout == base
    assert _run("packets", tmp_path / "pop3.pcap.gz").stdout == base
    assert _run("packets", "-", stdin=data).stdout == base
    _ = ng_block  # imported for completeness of the writer set


def test_packets_filters_and_absolute():
    r = CliRunner().invoke(cli, ["packets", str(POP3), "--stream", "2"])
    rows = [ln.split("\t") for ln in r.output.splitlines()[1:]]
    assert rows and all(row[2] == "2" for row in rows)
    r = CliRunner().invoke(cli, ["packets", str(POP3), "--port", "26242", "--absolute"])
    rows = [ln.split("\t") for ln in r.output.splitlines()[1:]]
    assert rows and all("26242" in (row[4], row[6]) for row in rows)
    assert rows[0][7] == "3145310914"          # raw ISN of frame 1 (tshark tcp.seq_raw)
    r = CliRunner().invoke(cli, ["packets", str(POP3), "--host", "212.227.15.171", "--format", "jsonl"])
    assert r.exit_code == 0 and r.output.count("\n") == 6


@pytest.fixture(scope="module")
def many_conns(tmp_path_factory):
    """A capture whose every output format is far larger than a pipe buffer (64 KiB)."""
    out = tmp_path_factory.mktemp("pipe") / "many.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(out), "--conns", "1500",
                    "--packets", "30000", "--seed", "3"], check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.parametrize("args", [["analyze"], ["analyze", "--json"], ["analyze", "--jsonl"], ["flows"],
                                  ["flows", "--jsonl"], ["packets"], ["packets", "--format", "jsonl"]])
def test_reader_going_away_ends_quietly(many_conns, args):
    """`tcpanalyze ... | head -1`: exit 0, nothing on stderr (click and rich would exit 1)."""
    p = subprocess.Popen([sys.executable, "-m", "tcpanalyze", *args, str(many_conns)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.read(100)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0, err.decode()
    assert err == b""
