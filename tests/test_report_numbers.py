"""The numbers a report prints are the true ones: finding counts past the per-kind cap,
how many connections have findings, TIME_WAIT statements, multi-file durations and names,
directory scans, rules with nothing to measure, and the TIME_WAIT length (``--time-wait``)."""
from __future__ import annotations

import gzip
import json
import re
import shutil
import struct
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from schema_errors import schema_errors  # noqa: E402
from tcpanalyze.cli import cli
from tcpanalyze.engine import K_MSL_S, TIME_WAIT_PRESETS
from tcpanalyze.findings import Thresholds
from tcpanalyze.parallel import analyze_partitioned, expand_inputs
from tcpanalyze.report.console import render
from tcpanalyze.schema import JSON_SCHEMA
from tcpanalyze.session import AnalyzeOptions, analyze_file, merge_reports
from test_findings import Craft, TcpConn

HERE = Path(__file__).parent
TRACES = HERE / "data" / "traces"
SAMPLES = HERE.parent / "samples"
RST = SAMPLES / "rst_refused_aborted.pcap"
B206 = TRACES / "206_example_b.pcap"
TW_SERVER = SAMPLES / "timewait_server_close.pcap"


def invoke(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "200"})
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def rendered(report, top: int = 10, width: int = 200) -> str:
    buf = StringIO()
    render(report, Console(file=buf, width=width, color_system=None), top=top)
    return buf.getvalue()


_ROW = re.compile(r"^ (info|warning|error)\s+([\d,]+)\s+(\S+)", re.M)
_HEAD = re.compile(r"^Findings\s+(\d+) error, (\d+) warning, (\d+) info", re.M)


def table_counts(text: str) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The findings table's rows ((label, severity) -> count) and the header's counts."""
    rows = {(m.group(3), m.group(1)): int(m.group(2).replace(",", "")) for m in _ROW.finditer(text)}
    h = _HEAD.search(text)
    assert h, text
    return rows, {"error": int(h.group(1)), "warning": int(h.group(2)), "info": int(h.group(3))}


def assert_rows_add_up(text: str) -> dict[tuple[str, str], int]:
    rows, head = table_counts(text)
    for sev in ("info", "warning", "error"):
        assert sum(n for (_l, s), n in rows.items() if s == sev) == head[sev], (sev, rows, head)
    return rows


# ---------------------------------------------------------------------------- counts past the cap
CAPPED = AnalyzeOptions(thresholds=Thresholds(max_findings_per_kind=2))


def test_findings_table_counts_every_finding_not_the_listed_ones():
    """rst_refused_aborted.pcap has 8 aborted and 6 refused connections; with 2 findings
    listed per kind the table still says 8 and 6, and the rows add up to the header."""
    full = analyze_file(str(RST))
    capped = analyze_file(str(RST), CAPPED)
    assert len([f for f in capped.findings if f["kind"] == "rst"]) < 14           # the cap did bite
    fd = capped.summary["findings"]
    assert fd["by_subkind"]["rst/aborted"] == {"total": 8, "info": 0, "warning": 8, "error": 0}
    assert fd["by_subkind"]["rst/refused"]["total"] == 6
    assert fd["by_subkind"] == full.summary["findings"]["by_subkind"]
    assert not schema_errors(json.loads(json.dumps(capped.to_dict(), default=str)), JSON_SCHEMA)
    rows = assert_rows_add_up(rendered(capped))
    assert rows[("rst/aborted", "warning")] == 8 and rows[("rst/refused", "warning")] == 6
    assert rows == assert_rows_add_up(rendered(full))


def test_counts_true_in_the_jobs_merge_the_multi_file_total_and_live():
    one = analyze_file(str(RST), CAPPED)
    split = analyze_partitioned(str(RST), CAPPED, jobs=2)
    assert split.summary["findings"] == one.summary["findings"]
    assert split.summary["connections_with_findings"] == one.summary["connections_with_findings"] == 14
    assert assert_rows_add_up(rendered(split)) == assert_rows_add_up(rendered(one))
    # two files: the total section adds them up
    total = merge_reports([one, analyze_file(str(B206), CAPPED)])
    assert total.summary["findings"]["by_subkind"]["rst/aborted"]["total"] == 8 + 2
    text = rendered(total)
    total_part = text[text.index("Total: 2 files"):]
    rows = assert_rows_add_up(total_part)
    assert rows[("rst/aborted", "warning")] == 10
    # live: the same builder, fed packet by packet
    from tcpanalyze.commands.live import LiveSession
    from tcpanalyze.pipeline import RunStats, run_packets
    from tcpanalyze.sources.pcap import open_capture

    sess = LiveSession("live:test", AnalyzeOptions(thresholds=Thresholds(max_findings_per_kind=2), keep_connections=3))
    stats = RunStats("live:test")
    with open_capture(str(RST)) as rd:
        run_packets(iter(rd), sess.analyzer, stats, on_segment=sess.on_segment)
    live = sess.report(stats)
    text = rendered(live, top=3)
    rows = assert_rows_add_up(text)
    assert rows[("rst/aborted", "warning")] == 8
    assert "Worst connections (top 3 of 14 with findings)" in text


def test_cli_counts_json_and_check_use_the_totals(tmp_path):
    res = invoke("analyze", RST, "--max-findings-per-kind", "2")
    rows = assert_rows_add_up(res.stdout)
    assert rows[("rst/aborted", "warning")] == 8
    doc = json.loads(invoke("analyze", RST, "--json", "--max-findings-per-kind", "2").stdout)
    assert doc["summary"]["findings"]["by_subkind"]["rst/aborted"]["total"] == 8
    # check: forbid rst/aborted measures all 8 (console, JSON and JUnit)
    junit = tmp_path / "j.xml"
    res = invoke("check", RST, "--forbid", "rst/aborted", "--max-findings-per-kind", "2", "--junit", junit)
    assert res.exit_code == 1 and "FAIL forbid.rst/aborted: 8 rst/aborted finding(s)" in res.stdout
    case = ET.parse(junit).getroot().find(".//testcase[@name='forbid.rst/aborted']")
    assert "measured: 8 findings" in case.find("failure").text
    res = invoke("check", RST, "--forbid", "rst/aborted", "--max-findings-per-kind", "2", "--json")
    r = json.loads(res.stdout)["files"][0]["results"][0]
    assert r["measured"] == 8


# ---------------------------------------------------------------------------- worst connections: top N of M
@pytest.mark.parametrize("extra", [[], ["--jobs", "2"]])
def test_worst_connections_says_how_many_have_findings(extra):
    """All 14 connections of rst_refused_aborted.pcap have findings."""
    assert "Worst connections (top 10 of 14 with findings)" in invoke("analyze", RST, *extra).stdout
    assert "Worst connections (top 3 of 14 with findings)" in invoke("analyze", RST, "--top", "3", *extra).stdout
    doc = json.loads(invoke("analyze", RST, "--json", *extra).stdout)
    assert doc["summary"]["connections_with_findings"] == 14 == sum(1 for c in doc["connections"] if c["score"])


def test_connections_with_findings_counts_aggregate_only_ones():
    """A connection whose only finding is an aggregate one about it (a handshake RTT outlier)
    counts too."""
    rep = analyze_file(str(SAMPLES / "handshake_variety.pcap"))
    scored = {c["stream"] for c in rep.connections if c["score"]}
    assert rep.summary["connections_with_findings"] == len(scored)
    top1 = analyze_file(str(SAMPLES / "handshake_variety.pcap"), AnalyzeOptions(keep_connections=1))
    assert top1.summary["connections_with_findings"] == len(scored)


# ---------------------------------------------------------------------------- TIME_WAIT statements
def test_server_active_close_says_whether_time_wait_was_reached():
    """206_example_b.pcap: the server sent the first FIN, then the client reset the connection:
    the server never held a TIME_WAIT, and the message says so instead of 'holds ... (peak 0)'."""
    rep = analyze_file(str(B206))
    (f,) = [f for f in rep.findings if f["kind"] == "server_active_close"]
    assert f["data"]["connections"] == 1 and f["data"]["time_wait"] == 0 and f["data"]["reset"] == 1
    assert "holds their TIME_WAIT" not in f["message"] and "peak 0" not in f["message"]
    assert "none reached TIME_WAIT (1 reset before the close completed)" in f["message"]
    # the server-closed connection's record agrees: no TIME_WAIT, reset
    (c,) = [c for c in rep.connections if c["stream"] in f["data"]["streams"]]
    assert not c.get("time_wait") and c["reset_by"]


def test_server_active_close_counts_time_wait_entries():
    rep = analyze_file(str(TW_SERVER))
    for f in (f for f in rep.findings if f["kind"] == "server_active_close"):
        held = [c for c in rep.connections if c["resp_h"] == f["host"] and c["resp_p"] == f["port"]
                and (c.get("time_wait") or {}).get("endpoint") == "resp"]
        assert f["data"]["time_wait"] == len(held) == f["data"]["connections"]
        assert "so it holds their TIME_WAIT (60 s each; peak" in f["message"]


# ---------------------------------------------------------------------------- several files
def test_several_files_span_not_sum_and_names(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    shutil.copy(RST, a)
    shutil.copy(B206, b)
    ra, rb = analyze_file(str(a)), analyze_file(str(b))
    total = merge_reports([ra, rb])
    s = total.summary
    assert s["start"] == min(ra.summary["start"], rb.summary["start"])
    assert s["end"] == max(ra.summary["end"], rb.summary["end"])
    assert s["duration"] == round(s["end"] - s["start"], 9) != ra.summary["duration"] + rb.summary["duration"]
    text = rendered(total)
    tot = text[text.index("Total: 2 files"):]
    assert "Duration     per file; packets from " in tot
    # every stream named in the total section carries its file
    assert "a.pcap #1" in tot and "b.pcap #0" in tot
    assert not re.search(r"(?<![\w.]) #\d", tot.split("Worst connections")[0])
    worst, slowest = tot.split("Worst connections")[1].split("Slowest connections")
    for table in (worst, slowest):
        rows = [line for line in table.splitlines()[3:] if "→" in line]
        assert rows
        for line in rows:
            assert re.match(r"\s+[ab]\.pcap #\d+\s", line), line
    # JSON: every finding and connection names its file
    doc = json.loads(json.dumps(total.to_dict(), default=str))
    assert {f["file"] for f in doc["findings"]} == {str(a), str(b)}
    assert all(c["file"] in (str(a), str(b)) for c in doc["connections"])


def test_analyze_the_traces_directory_gives_no_summed_duration():
    """The public traces span 1970 to 2026 and some files alone span years: the total is the
    span of the packets (JSON) and 'per file' (table), never the sum (1,622,713,304 s)."""
    res = invoke("analyze", TRACES)
    assert res.exit_code == 0, res.output
    tot = res.stdout[res.stdout.index("Total: "):]
    (dur,) = [ln for ln in tot.splitlines() if ln.startswith("Duration")]
    assert "per file; packets from 1970-01-01 00:00:00 to " in dur and " s" not in dur.split("UTC")[1]
    doc = json.loads(invoke("analyze", TRACES, "--json").stdout)
    s = doc["summary"]
    per_file = sum(f["summary"]["duration"] for f in doc["files"])
    assert s["duration"] == round(s["end"] - s["start"], 9) and s["duration"] != round(per_file, 9)


def test_junit_names_the_file_of_each_result(tmp_path):
    junit = tmp_path / "j.xml"
    invoke("check", RST, B206, "--max-rst", "0", "--junit", junit)
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [str(RST), str(B206)]
    for s in suites:
        assert all(c.get("classname") == s.get("name") for c in s.findall("testcase"))


# ---------------------------------------------------------------------------- directory scan
def _big_endian(src: Path, dst: Path) -> Path:
    """A little-endian microsecond pcap rewritten in big-endian byte order."""
    data = src.read_bytes()
    out = [struct.pack(">IHHiIII", *struct.unpack_from("<IHHiIII", data, 0))]
    off = 24
    while off + 16 <= len(data):
        ts, us, incl, orig = struct.unpack_from("<IIII", data, off)
        out.append(struct.pack(">IIII", ts, us, incl, orig) + data[off + 16:off + 16 + incl])
        off += 16 + incl
    dst.write_bytes(b"".join(out))
    return dst


def test_directory_scan_by_magic_bytes(tmp_path):
    d = tmp_path / "caps"
    d.mkdir()
    shutil.copy(SAMPLES / "http_small.pcap", d / "capture.dump")                       # pcap, odd name
    shutil.copy(TRACES / "zeek-get-to-ssh-server.pcap", d / "ns.raw")                  # nanosecond pcap
    shutil.copy(TRACES / "pcapplusplus-ldap.pcapng", d / "ng")                         # pcapng, no suffix
    (d / "gz.data").write_bytes(gzip.compress((SAMPLES / "close_wait.pcap").read_bytes()))
    _big_endian(SAMPLES / "keepalive.pcap", d / "be.bin")                              # big-endian pcap
    (d / "notes.txt").write_text("not a capture\n")
    (d / "x.gz").write_bytes(gzip.compress(b"plain text"))                              # gzip, not a capture
    skipped: dict = {}
    found = expand_inputs([str(d)], skipped)
    assert sorted(Path(p).name for p in found) == ["be.bin", "capture.dump", "gz.data", "ng", "ns.raw"]
    assert skipped == {str(d): ["notes.txt", "x.gz"]}
    res = invoke("analyze", d, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [f["error"] for f in doc["files"]] == [None] * 5
    assert all(f["summary"]["packets"] > 0 for f in doc["files"])
    be = next(f for f in doc["files"] if f["source"].endswith("be.bin"))
    assert be["summary"]["packets"] == analyze_file(str(SAMPLES / "keepalive.pcap")).summary["packets"]
    assert "2 file(s) skipped, not pcap or pcapng captures: notes.txt, x.gz" in res.stderr


def test_directory_without_captures_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = invoke("analyze", empty)
    assert res.exit_code == 3
    errs = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert errs == [f"tcpanalyze: error: {empty}: the directory contains no captures"]
    assert "Is a directory" not in res.output
    (empty / "readme.txt").write_text("x")
    res = invoke("analyze", empty)
    assert res.exit_code == 3 and "contains no captures (none of its 1 file(s) is a pcap or pcapng capture)" \
        in res.stderr


# ---------------------------------------------------------------------------- check: nothing to measure, -q
def _udp_only(path: Path) -> Path:
    frames = []
    for i in range(5):
        udp = struct.pack("!HHHH", 5000 + i, 53, 8 + 20, 0) + b"q" * 20
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
                         bytes([10, 0, 0, 2]))
        frames.append(b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ip + udp)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    out += [struct.pack("<IIII", 1_700_000_000 + i, 0, len(f), len(f)) + f for i, f in enumerate(frames)]
    path.write_bytes(b"".join(out))
    return path


def test_check_skips_rules_with_nothing_to_measure(tmp_path):
    udp = _udp_only(tmp_path / "udp_only.pcap")
    junit = tmp_path / "j.xml"
    res = invoke("check", udp, "--require-complete", "--junit", junit)
    assert res.exit_code == 0
    assert "all 0 connection(s)" not in res.stdout
    assert "skip require_complete: nothing to measure: no TCP connection" in res.stdout
    assert "0 of 1 rule check(s) failed, 1 skipped (nothing to measure)" in res.stdout
    assert ET.parse(junit).getroot().find(".//testcase[@name='require_complete']/skipped") is not None
    res = invoke("check", udp, "--max-retransmission-rate", "1", "--max-zero-window-ms", "10", "--max-rst", "0",
                 "--max-time-wait", "5", "--json")
    statuses = {r["rule"]: r["status"] for r in json.loads(res.stdout)["files"][0]["results"]}
    assert statuses == {"max_rst": "skip", "max_retransmission_rate": "skip", "max_time_wait": "skip",
                        "max_zero_window_ms": "skip"}


def test_check_quiet_prints_only_failures(tmp_path):
    udp = _udp_only(tmp_path / "udp_only.pcap")
    ok = invoke("check", udp, SAMPLES / "http_small.pcap", "--require-complete", "-q")
    assert ok.exit_code == 0 and ok.stdout == ""
    bad = invoke("check", udp, RST, "--require-complete", "--max-rst", "100", "-q")
    assert bad.exit_code == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith(f"{RST}: FAIL (1 of 2 rules failed)")
    assert lines[1].startswith("  FAIL require_complete: 14 of 14 connection(s)")
    assert all(ln.startswith("         ") for ln in lines[2:])                    # its evidence only
    assert not any(str(udp) in ln or "ok" in ln.split(":")[0] or ln.startswith("checked") for ln in lines)


# ---------------------------------------------------------------------------- --time-wait
def _server_closes(path: Path, n: int = 100, every: float = 1.0) -> Path:
    """n connections to one server, one a second, each closed first by the server: the
    server's TIME_WAIT count climbs by one a second until the first ones expire."""
    cap = Craft()
    t0 = cap.t
    for i in range(n):
        cap.t = t0 + i * every
        c = TcpConn(cap, cli="10.1.0.7", cport=20000 + i, srv="10.0.0.2", sport=8080, isn_c=1000 + i)
        c.handshake()
        c.exchange()
        c.close(first="s")
    return cap.write(path)


def test_time_wait_default_is_linux_60_s():
    assert TIME_WAIT_PRESETS == {"linux": 60.0, "windows": 240.0, "bsd": 30.0, "rfc": 240.0}
    assert 2 * K_MSL_S == 60.0 == 2 * Thresholds().msl_s


@pytest.mark.parametrize("opt,length,peak", [
    ([], 60.0, 60), (["--time-wait", "linux"], 60.0, 60), (["--time-wait", "bsd"], 30.0, 30),
    (["--time-wait", "windows"], 240.0, 100), (["--time-wait", "rfc"], 240.0, 100),
    (["--time-wait", "10"], 10.0, 10), (["--msl", "60"], 120.0, 100), (["--msl", "15"], 30.0, 30)])
def test_time_wait_length_sets_the_peaks(tmp_path, opt, length, peak):
    cap = _server_closes(tmp_path / "closes.pcap")
    doc = json.loads(invoke("analyze", cap, "--json", *opt).stdout)
    tw = doc["summary"]["time_wait"]
    assert tw["length_s"] == length and tw["msl_s"] == length / 2
    (host,) = [h for h in tw["hosts"] if h["host"] == "10.0.0.2"]
    assert host["peak"] == peak
    assert not schema_errors(doc, JSON_SCHEMA)
    text = invoke("analyze", cap, *opt).stdout
    name = {60.0: " (linux)", 30.0: " (bsd)", 240.0: " (windows, rfc)"}.get(length, "")
    assert f"TIME_WAIT    {length:g} s per connection{name}" in text


def test_time_wait_in_check_and_live_and_bad_values(tmp_path):
    cap = _server_closes(tmp_path / "closes.pcap")
    assert invoke("check", cap, "--max-time-wait", "40").exit_code == 1            # linux: peak 60
    assert invoke("check", cap, "--max-time-wait", "40", "--time-wait", "bsd").exit_code == 0
    assert "--time-wait" in invoke("live", "--help").stdout
    bad = invoke("analyze", cap, "--time-wait", "solaris")
    assert bad.exit_code == 2 and "'solaris' is not one of linux, windows, bsd, rfc" in bad.output
    both = invoke("analyze", cap, "--time-wait", "linux", "--msl", "30")
    assert both.exit_code == 2 and "give --time-wait or --msl, not both" in both.stderr


def test_api_time_wait():
    from tcpanalyze import api

    assert api.analyze(TW_SERVER).summary["time_wait"]["length_s"] == 60.0
    assert api.analyze(TW_SERVER, time_wait="windows").summary["time_wait"]["length_s"] == 240.0
    assert api.analyze(TW_SERVER, time_wait=90).summary["time_wait"]["system"] is None
    with pytest.raises(ValueError):
        api.analyze(TW_SERVER, time_wait="solaris")
    with pytest.raises(ValueError):
        api.analyze(TW_SERVER, time_wait="linux", msl=30)


def test_json_of_a_capture_without_tcp_connections(tmp_path):
    """The connection records of ``--json`` wait on disk; none at all is an empty list."""
    udp = _udp_only(tmp_path / "udp_only.pcap")
    res = invoke("analyze", udp, "--json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["connections"] == [] and doc["summary"]["connections"] == 0
    assert not schema_errors(doc, JSON_SCHEMA)


def test_server_active_close_messages_state_what_happened():
    from tcpanalyze.findings import Finding

    def msg(n, tw, reset, peak, sev="info"):
        return Finding("server_active_close", sev, host="10.0.0.1", port=80,
                       values={"connections": n, "time_wait": tw, "reset": reset, "streams": [1],
                               "time_wait_peak": peak}, terms={"limit": 100, "hold_s": 60.0}).message

    assert msg(3, 3, 0, 3).endswith("sent the first FIN on 3 connection(s), so it holds their TIME_WAIT "
                                     "(60 s each; peak 3 at once on this host)")
    assert msg(3, 1, 1, 2).endswith("; 1 of them reached TIME_WAIT, 60 s each (1 reset before the close completed, "
                                    "1 still closing when the capture ended; peak 2 at once on this host)")
    assert msg(2, 0, 0, 0).endswith("; none reached TIME_WAIT (2 still closing when the capture ended), "
                                    "so it holds none")
    assert msg(2, 0, 2, 5).endswith("; none reached TIME_WAIT (2 reset before the close completed), so it holds "
                                    "none (other connections: peak 5 at once on this host)")
    assert "peak 0" not in msg(3, 3, 0, 0)
