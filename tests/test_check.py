"""``tcpanalyze check``: the CI gate.  Each rule with a passing and a failing capture
(real-kernel samples and public traces), exit codes and their precedence, policy errors naming
key and line, JUnit XML parsed by junitparser, GitHub annotations, JSON, the baseline, and the
example policy and workflow of docs/check.md.

Expected numbers come from ``analyze_file`` on the same capture (the samples may be re-recorded;
see samples/SOURCES.md), except for the public traces, which do not change.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml, Skipped

from tcpanalyze import policy as P
from tcpanalyze.cli import cli
from tcpanalyze.report import ci
from tcpanalyze.session import AnalyzeOptions, analyze_file

HERE = Path(__file__).parent
ROOT = HERE.parent
SAMPLES = ROOT / "samples"
TRACES = HERE / "data" / "traces"
EXAMPLES = ROOT / "examples"

HTTP_SMALL = SAMPLES / "http_small.pcap"
TIMEWAIT = SAMPLES / "timewait_server_close.pcap"
ZERO_WINDOW = SAMPLES / "slow_reader_zero_window.pcap"
SHRINK = SAMPLES / "window_shrink.pcap"
RST = SAMPLES / "rst_refused_aborted.pcap"
LOSSY = SAMPLES / "lossy_bulk.pcap"
HANDSHAKES = SAMPLES / "handshake_variety.pcap"
POP3 = TRACES / "pop3.pcap"
B206 = TRACES / "206_example_b.pcap"
CLEAN = TRACES / "pcapplusplus-one_http_stream_fin2.pcap"


# ---------------------------------------------------------------------------- helpers
def run(*args, policy_text: str | None = None, tmp_path: Path | None = None):
    argv = [str(a) for a in args]
    if policy_text is not None:
        pol = tmp_path / "policy.toml"
        pol.write_text(policy_text, encoding="utf-8")
        argv += ["--policy", str(pol)]
    res = CliRunner().invoke(cli, ["check", *argv])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


_REPORTS: dict = {}


def report(path: Path) -> dict:
    key = str(path)
    if key not in _REPORTS:
        _REPORTS[key] = analyze_file(key, AnalyzeOptions()).to_dict()
    return _REPORTS[key]


def view(path: Path) -> P.FileView:
    return P.file_views(report(path))[0]


def results_json(res) -> dict:
    return json.loads(res.stdout)


def rule(doc: dict, rule_id: str, file_index: int = 0) -> dict:
    for r in doc["files"][file_index]["results"]:
        if r["id"] == rule_id:
            return r
    raise AssertionError(f"no result {rule_id} in {[r['id'] for r in doc['files'][file_index]['results']]}")


def n_reset(path: Path) -> int:
    return sum(1 for c in report(path)["connections"] if c["reset_by"] is not None)


# ---------------------------------------------------------------------------- rules: pass and fail
def test_max_rst_fails_on_refused_connections_pop3():
    res = run(POP3, "--max-rst", 0)
    assert res.exit_code == 1, res.output
    assert "FAIL max_rst: 2 reset connection(s) > limit 0" in res.stdout
    # evidence: the connection and the SYN and RST frames of the refused handshake
    assert re.search(r"stream 0 192\.168\.0\.4:26242 -> 212\.227\.15\.188:110, frames \d+, \d+: reset by resp: "
                     r"rst refused", res.stdout), res.stdout
    assert "exit code 1" in res.stdout


def test_max_rst_sample_pass_at_count_fail_below():
    n = n_reset(RST)
    assert n > 0
    res = run(RST, "--max-rst", n)
    assert res.exit_code == 0, res.output
    assert f"ok   max_rst: {n} reset connection(s) <= limit {n}" in res.stdout
    res = run(RST, "--max-rst", n - 1)
    assert res.exit_code == 1
    assert f"FAIL max_rst: {n} reset connection(s) > limit {n - 1}" in res.stdout


def test_max_rst_passes_on_clean_capture():
    res = run(CLEAN, "--max-rst", 0)
    assert res.exit_code == 0, res.output
    assert "ok   max_rst: 0 reset connection(s) <= limit 0" in res.stdout


def test_max_rst_per_port():
    per_port: dict = {}
    for c in report(RST)["connections"]:
        if c["reset_by"] is not None:
            per_port[c["resp_p"]] = per_port.get(c["resp_p"], 0) + 1
    worst = max(per_port.values())
    res = run(RST, "--max-rst-per-port", worst)
    assert res.exit_code == 0, res.output
    res = run(RST, "--max-rst-per-port", worst - 1, "--json")
    assert res.exit_code == 1
    r = rule(results_json(res), "max_rst.per_port")
    assert r["status"] == "fail" and r["measured"] == worst and r["limit"] == worst - 1
    bad = sorted(p for p, n in per_port.items() if n == worst)
    assert all(f"server port {p}:" in json.dumps(r["evidence"]) for p in bad)
    # the table form in a policy
    res = run(RST, policy_text=f"max_rst = {{ total = 1000, per_port = {worst - 1} }}\n", tmp_path=_tmp())
    assert res.exit_code == 1
    assert "FAIL max_rst.per_port:" in res.stdout and "ok   max_rst:" in res.stdout


def _tmp() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="tcpa-check-"))


def test_forbid_window_shrink_and_zero_window():
    res = run(SHRINK, "--forbid", "window_shrink")
    assert res.exit_code == 1, res.output
    assert "FAIL forbid.window_shrink: 1 window_shrink finding(s) (forbidden)" in res.stdout
    assert "[warning] window_shrink:" in res.stdout
    res = run(B206, "--forbid", "zero_window,window_shrink")
    assert res.exit_code == 1
    assert "FAIL forbid.zero_window: 2 zero_window finding(s) (forbidden)" in res.stdout
    assert "frames 166, 216" in res.stdout                 # where the first zero window opened and closed
    assert "ok   forbid.window_shrink: 0 window_shrink finding(s)" in res.stdout
    res = run(CLEAN, "--forbid", "zero_window", "--forbid", "window_shrink")
    assert res.exit_code == 0, res.output


def test_forbid_subkind():
    res = run(POP3, "--forbid", "rst/refused")
    assert res.exit_code == 1
    assert "FAIL forbid.rst/refused: 2 rst/refused finding(s)" in res.stdout
    res = run(POP3, "--forbid", "rst/aborted")
    assert res.exit_code == 0, res.output


def test_max_retransmission_rate():
    d = report(LOSSY)
    [f] = [f for f in d["findings"] if f["kind"] == "retransmissions"]
    rate = f["data"]["rate"] * 100
    res = run(LOSSY, "--max-retransmission-rate", 1, "--json")
    assert res.exit_code == 1
    r = rule(results_json(res), "max_retransmission_rate")
    assert r["status"] == "fail" and r["limit"] == 1.0
    assert r["measured"] == pytest.approx(rate, abs=1e-3)     # same rate as the retransmissions finding
    assert r["evidence"][0]["stream"] == 0 and r["evidence"][0]["frames"] == f["frames"][:10]
    res = run(LOSSY, "--max-retransmission-rate", round(rate + 1, 1))
    assert res.exit_code == 0, res.output
    assert f"retransmission rate {rate:.2f}%" in res.stdout
    res = run(HTTP_SMALL, "--max-retransmission-rate", 0)
    assert res.exit_code == 0
    res = run(B206, "--max-retransmission-rate", 1)
    assert res.exit_code == 1
    assert "FAIL max_retransmission_rate: retransmission rate 5.61% (56 of 999 data segments) > limit 1%" in res.stdout


def test_max_time_wait():
    hosts = report(TIMEWAIT)["summary"]["time_wait"]["hosts"]
    peak, host = hosts[0]["peak"], hosts[0]["host"]
    res = run(TIMEWAIT, "--max-time-wait", 100)
    assert peak > 100
    assert res.exit_code == 1
    assert f"FAIL max_time_wait: TIME_WAIT peak {peak} on {host} > limit 100" in res.stdout
    assert f"host {host}: peak {peak} in TIME_WAIT" in res.stdout
    res = run(TIMEWAIT, "--max-time-wait", peak)
    assert res.exit_code == 0, res.output
    res = run(HTTP_SMALL, "--max-time-wait", 1)
    assert res.exit_code == 0


def test_max_time_wait_scoped_recount_matches_report():
    """Within a scope the peak is recounted from connection records: same as the report's."""
    hosts = report(TIMEWAIT)["summary"]["time_wait"]["hosts"]
    for h in hosts:
        sc = P.Scope(name="s", hosts=(P.ipaddress.ip_network(h["host"]),))
        conns = [c for c in view(TIMEWAIT).connections if sc.matches_conn(c)]
        peaks = {e["host"]: e["peak"] for e in P.time_wait_peaks(view(TIMEWAIT), conns)}
        assert peaks[h["host"]] == h["peak"]


def test_max_handshake_rtt():
    res = run(B206, "--max-handshake-rtt-ms", 50, "--max-handshake-rtt-p95-ms", 50)
    assert res.exit_code == 1
    assert ("FAIL max_handshake_rtt_ms.max: handshake RTT maximum 72.383 ms over 2 handshake(s) > limit 50 ms"
            in res.stdout)
    assert "FAIL max_handshake_rtt_ms.p95: handshake RTT p95 72.383 ms" in res.stdout
    assert "stream 1 192.168.72.14:3257 -> 65.54.95.14:80, frames 1303, 1556: handshake RTT 72.383 ms" in res.stdout
    res = run(B206, "--max-handshake-rtt-ms", 100)
    assert res.exit_code == 0, res.output
    rtts = [c["handshake_rtt"] * 1000 for c in report(HTTP_SMALL)["connections"] if c["handshake_rtt"]]
    res = run(HTTP_SMALL, policy_text=f"max_handshake_rtt_ms = {{ p95 = {max(rtts) + 1:.3f}, max = 200 }}\n",
              tmp_path=_tmp())
    assert res.exit_code == 0, res.output
    assert "ok   max_handshake_rtt_ms.p95" in res.stdout and "ok   max_handshake_rtt_ms.max" in res.stdout


def test_handshake_rtt_skipped_without_handshakes(tmp_path):
    pol = "[[rule]]\nname = \"nothing\"\nport = 1\nmax_handshake_rtt_ms = 1\n"
    res = run(HTTP_SMALL, "--json", policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 0, res.output
    r = rule(results_json(res), "nothing/max_handshake_rtt_ms.max")
    assert r["status"] == "skip" and "no connection" in r["message"]


def test_percentile_nearest_rank():
    assert P.percentile([], 95) is None
    assert P.percentile([5.0], 95) == 5.0
    assert P.percentile(list(range(1, 101)), 95) == 95
    assert P.percentile(list(range(1, 21)), 95) == 19


def test_max_zero_window_ms():
    eps = [f["data"]["duration_s"] * 1000 for f in report(ZERO_WINDOW)["findings"] if f["kind"] == "zero_window"]
    longest = max(eps)
    limit = int(longest) - 1
    res = run(ZERO_WINDOW, "--max-zero-window-ms", limit)
    assert res.exit_code == 1
    assert f"FAIL max_zero_window_ms: longest zero-window episode {longest:.3f} ms" in res.stdout
    assert f"> limit {limit} ms" in res.stdout
    res = run(ZERO_WINDOW, "--max-zero-window-ms", round(longest + 1))
    assert res.exit_code == 0, res.output
    res = run(B206, "--max-zero-window-ms", 100)            # 61 ms and 14 ms episodes
    assert res.exit_code == 0, res.output
    assert "longest zero-window episode 61.373 ms (2 episode(s)) <= limit 100 ms" in res.stdout


def test_require_complete():
    for ok in (HTTP_SMALL, CLEAN):
        res = run(ok, "--require-complete")
        assert res.exit_code == 0, res.output
        assert "ok   require_complete: all 1 connection(s) opened and closed cleanly" in res.stdout
    res = run(POP3, "--require-complete")
    assert res.exit_code == 1
    assert "FAIL require_complete: 2 of 7 connection(s) not opened and closed cleanly" in res.stdout
    assert "conn_state REJ" in res.stdout
    res = run(HANDSHAKES, "--require-complete")
    assert res.exit_code == 1
    assert "conn_state S0" in res.stdout
    res = run(POP3, "--require-complete", "--no-require-complete", "--min-connections", 1)
    assert res.exit_code == 0                                 # the last flag wins


def test_allow_server_active_close():
    res = run(HTTP_SMALL, "--no-allow-server-active-close")
    assert res.exit_code == 0, res.output
    res = run(CLEAN, "--no-allow-server-active-close")
    assert res.exit_code == 1
    assert ("FAIL allow_server_active_close: 1 connection(s) closed first by the server" in res.stdout)
    assert "server 98.139.134.187:80 sent the first FIN" in res.stdout
    res = run(TIMEWAIT, "--no-allow-server-active-close", "--json")
    r = rule(results_json(res), "allow_server_active_close")
    assert r["status"] == "fail" and r["measured"] == report(TIMEWAIT)["summary"]["connections"]
    # the policy's false, overridden by the option
    res = run(CLEAN, "--allow-server-active-close", "--max-rst", 0,
              policy_text="allow_server_active_close = false\n", tmp_path=_tmp())
    assert res.exit_code == 0, res.output


def test_min_and_max_connections():
    res = run(HTTP_SMALL, "--min-connections", 1, "--max-connections", 1)
    assert res.exit_code == 0, res.output
    res = run(HTTP_SMALL, "--min-connections", 2)
    assert res.exit_code == 1
    assert "FAIL min_connections: 1 connection(s) < minimum 2" in res.stdout
    n = report(TIMEWAIT)["summary"]["connections"]
    res = run(TIMEWAIT, "--max-connections", 100)
    assert res.exit_code == 1
    assert f"FAIL max_connections: {n} connection(s) > limit 100" in res.stdout


# ---------------------------------------------------------------------------- scopes
def test_scope_by_port_strict_and_loose(tmp_path):
    pol = """
[[rule]]
name = "echo"
port = 7
max_rst = 0

[[rule]]
name = "other"
port = 9999
max_rst = 0
require_complete = true
"""
    res = run(RST, "--json", policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 1
    doc = results_json(res)
    refused = sum(1 for c in report(RST)["connections"] if c["resp_p"] == 7 and c["reset_by"])
    r = rule(doc, "echo/max_rst")
    assert r["status"] == "fail" and r["measured"] == refused and r["scope"] == "echo"
    assert r["evidence"] and all(e["connection"].endswith(":7") for e in r["evidence"] if e.get("connection"))
    # no connection in scope: nothing to measure, so both rules are skipped (not passed)
    for rid in ("other/max_rst", "other/require_complete"):
        r = rule(doc, rid)
        assert r["status"] == "skip" and r["message"] == "nothing to measure (in scope other): no TCP connection"
    assert "echo/max_rst" in ci.text_summary([P.FileResult(file="x", results=[
        P.RuleResult(file="x", rule="max_rst", status="fail", message="m", scope="echo")])])


def test_scope_by_host_network_and_stream(tmp_path):
    pol = """
[[rule]]
name = "stream1"
stream = 1
forbid = ["zero_window"]

[[rule]]
name = "stream0"
stream = [0]
forbid = ["zero_window"]

[[rule]]
name = "msn"
host = "65.54.95.0/24"
port = 80
max_rst = 2
"""
    res = run(B206, "--json", policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 1
    doc = results_json(res)
    assert rule(doc, "stream1/forbid.zero_window")["status"] == "pass"
    r = rule(doc, "stream0/forbid.zero_window")
    assert r["status"] == "fail" and r["measured"] == 2
    r = rule(doc, "msn/max_rst")
    assert r["status"] == "pass" and r["measured"] == 2


def test_scope_by_file(tmp_path):
    pol = ('[[rule]]\nname = "mail"\nfile = "pop3*"\nmax_rst = 0\n\n'
           '[[rule]]\nname = "web"\nfile = ["*fin2.pcap"]\nmax_rst = 0\n')
    res = run(POP3, CLEAN, "--json", policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 1
    doc = results_json(res)
    assert [r["id"] for r in doc["files"][0]["results"]] == ["mail/max_rst"]
    assert [r["id"] for r in doc["files"][1]["results"]] == ["web/max_rst"]
    assert doc["files"][0]["status"] == "fail" and doc["files"][1]["status"] == "pass"


def test_scope_findings_of_aggregates():
    """Aggregate findings (host, port) are selected by host and port, per-connection ones by stream."""
    sc = P.Scope(name="s", ports=(110,))
    assert sc.matches_finding({"stream": None, "host": "212.227.15.188", "port": 110}, set())
    assert not sc.matches_finding({"stream": None, "host": "212.227.15.188", "port": 25}, set())
    assert not sc.matches_finding({"stream": None, "host": None, "port": None}, set())
    assert sc.matches_finding({"stream": 3, "host": None}, {3})
    assert P.Scope(name="f", files=("x*",)).matches_finding({"stream": None, "host": None}, set())


def test_options_override_policy(tmp_path):
    pol = "max_rst = 0\nforbid = [\"rst\"]\n"
    res = run(POP3, policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 1
    res = run(POP3, "--max-rst", 5, "--forbid", "zero_window", policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 0, res.output
    assert "forbid.rst" not in res.stdout and "ok   max_rst: 2 reset connection(s) <= limit 5" in res.stdout


# ---------------------------------------------------------------------------- policy errors (exit 2)
def test_policy_typo_names_key_and_line(tmp_path):
    pol = "# strict\nmin_connections = 1\nmax_rts = 0\n"
    res = run(HTTP_SMALL, policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 2
    assert re.search(r"policy\.toml:3: unknown key 'max_rts' \(did you mean 'max_rst'\?\)", res.stderr), res.stderr
    assert res.stderr.startswith("tcpanalyze: error: ") and "Traceback" not in res.output


@pytest.mark.parametrize("text, line, words", [
    ("forbid = [\"zero_window\",\n  \"window_shrnk\"]\n", 2,
     ["forbid", "window_shrnk", "did you mean 'window_shrink'"]),
    ("max_rst = 1\n\n[[rule]]\nname = \"a\"\nport = 80\nmax_rst = 1\n\n[[rule]]\nname = \"b\"\nport = 81\n"
     "max_rst = { total = 1, perport = 2 }\n", 11, ["[[rule]] #2", "perport", "per_port"]),
    ("max_retransmission_rate = \"high\"\n", 1, ["max_retransmission_rate", "percentage", "'high'"]),
    ("max_retransmission_rate = 101\n", 1, ["max_retransmission_rate", "between 0 and 100"]),
    ("max_rst = -1\n", 1, ["max_rst", "-1"]),
    ("max_rst = true\n", 1, ["max_rst", "true"]),
    ("require_complete = 1\n", 1, ["require_complete", "true or false"]),
    ("max_rst = 1\n[[rule]]\nport = 80\nmax_rst = 1\n[[rule]]\nhost = \"10.0.0.300\"\nmax_rst = 2\n", 6,
     ["host", "10.0.0.300"]),
    ("[[rule]]\nport = 70000\nmax_rst = 1\n", 2, ["port", "70000"]),
    ("[[rule]]\nname = \"x\"\nmax_rst = 1\n", 2, ["selects nothing"]),
    ("[[rule]]\nname = \"x\"\nport = 80\n", 2, ["sets no rule"]),
    ("[[rule]]\nport = 80\nmax_rts = 1\n", 3, ["max_rts", "max_rst"]),
    ("max_rst = 1\n[baseline]\nfile = \"x.json\"\nretransmision_rate = 1\n", 4,
     ["retransmision_rate", "retransmission_rate"]),
    ("max_rst = 1\n[baseline]\nrst = -2\n", 3, ["baseline.rst", "-2"]),
    ("max_rst = 1\n[thresholds]\nx = 1\n", 2, ["thresholds"]),
    ("port = 80\n", 1, ["port", "[[rule]]"]),
    ("min_connections = 5\nmax_connections = 2\n", 1, ["min_connections", "max_connections"]),
    ("max_handshake_rtt_ms = { p95 = 10, p99 = 20 }\n", 1, ["p99", "p95"]),
    ("max_rst = 1\nrequire_complete = yes\n", 2, ["invalid TOML"]),
])
def test_policy_errors(tmp_path, text, line, words):
    res = run(HTTP_SMALL, policy_text=text, tmp_path=tmp_path)
    assert res.exit_code == 2, res.output
    err = res.stderr
    assert f"policy.toml:{line}: " in err, err
    for w in words:
        assert w in err, (w, err)


def test_policy_error_object_carries_key_and_line():
    with pytest.raises(P.PolicyError) as ei:
        P.parse_policy("max_rst = 0\n\n[[rule]]\nport = 1\nmax_rst = 1\n[[rule]]\nport = 2\nmax_zero_window = 5\n",
                       source="p.toml")
    e = ei.value
    assert e.key == "rule[2].max_zero_window" and e.line == 8 and e.source == "p.toml"
    assert str(e).startswith("p.toml:8: ")


def test_locate():
    text = "a = 1\n[[rule]]\nport = 1\n[[rule]]\nport = 2\n[baseline]\nrst = 1\nx = { port = 5 }\n"
    assert P.locate(text, ["a"]) == 1
    assert P.locate(text, ["rule", 0, "port"]) == 3
    assert P.locate(text, ["rule", 1, "port"]) == 5
    assert P.locate(text, ["rule", 1]) == 4
    assert P.locate(text, ["baseline", "rst"]) == 7
    assert P.locate(text, ["baseline"]) == 6
    assert P.locate(text, ["nope"]) is None


def test_usage_errors_exit_2(tmp_path):
    res = run(HTTP_SMALL)
    assert res.exit_code == 2 and "no rules to check" in res.stderr
    res = run(HTTP_SMALL, "--forbid", "zero_windw")
    assert res.exit_code == 2 and "did you mean 'zero_window'" in res.stderr
    res = run(HTTP_SMALL, "--policy", tmp_path / "missing.toml")
    assert res.exit_code == 2 and "missing.toml" in res.stderr and "cannot read policy" in res.stderr
    res = run(HTTP_SMALL, "--max-rst", "-1")
    assert res.exit_code == 2
    res = run(HTTP_SMALL, "--max-rst", 0, "--tolerance", "rst=1")
    assert res.exit_code == 2 and "--tolerance needs a baseline" in res.stderr
    res = run(HTTP_SMALL, "--max-rst", 0, "--github", "--json")
    assert res.exit_code == 2 and "-o FILE" in res.stderr
    res = run(HTTP_SMALL, "--min-connections", 3, "--max-connections", 2)
    assert res.exit_code == 2


def test_tomli_fallback_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(P.PolicyError, match="tomli"):
        P.parse_policy("max_rst = 1\n")


def test_tomli_fallback_used(monkeypatch):
    try:
        import tomllib as toml_impl
    except ModuleNotFoundError:                                  # Python 3.10
        toml_impl = pytest.importorskip("tomli")
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", toml_impl)      # tomli has tomllib's API
    assert P.parse_policy("max_rst = 1\n").rules.max_rst == 1


# ---------------------------------------------------------------------------- exit codes, several files
def test_several_files_checked_independently():
    res = run(HTTP_SMALL, POP3, "--max-rst", 0, "--json")
    assert res.exit_code == 1
    doc = results_json(res)
    assert [f["status"] for f in doc["files"]] == ["pass", "fail"]
    assert doc["totals"] == {"files": 2, "files_passed": 1, "files_failed": 1, "files_unreadable": 0, "rules": 2,
                             "passed": 1, "failed": 1, "skipped": 0}


def test_unreadable_file_does_not_hide_others(tmp_path):
    bad = tmp_path / "garbage.pcap"
    bad.write_bytes(b"this is not a capture")
    junit = tmp_path / "out.xml"
    res = run(POP3, bad, HTTP_SMALL, "--max-rst", 0, "--junit", junit)
    assert res.exit_code == 3                         # 3 wins over 1: the gate did not see everything
    assert "FAIL max_rst: 2 reset connection(s) > limit 0" in res.stdout
    assert f"{bad}: ERROR (unreadable)" in res.stdout
    assert "samples/http_small.pcap: ok" in res.stdout.replace("\\", "/")
    assert "not a pcap or pcapng file" in res.stderr
    xml = JUnitXml.fromfile(str(junit))
    suites = {s.name: s for s in xml}
    s = suites[str(bad)]
    [case] = list(s)
    assert case.name == "read" and isinstance(case.result[0], Error)
    assert "not a pcap or pcapng file" in case.result[0].message
    assert suites[str(POP3)].failures == 1


def test_exit_code_precedence():
    ok = P.FileResult("a", [P.RuleResult("a", "r", "pass", "m")])
    bad = P.FileResult("b", [P.RuleResult("b", "r", "fail", "m")])
    err = P.FileResult("c", error="unreadable")
    skip = P.FileResult("d", [P.RuleResult("d", "r", "skip", "m")])
    assert P.exit_code([ok, skip]) == 0
    assert P.exit_code([ok, bad]) == 1
    assert P.exit_code([ok, err]) == 3
    assert P.exit_code([bad, err]) == 3


def test_policy_error_wins_over_unreadable(tmp_path):
    res = run(tmp_path / "missing.pcap", policy_text="max_rts = 1\n", tmp_path=tmp_path)
    assert res.exit_code == 2


def test_fatally_damaged_file_is_checked_and_is_an_error(tmp_path):
    import struct

    data = bytearray(HTTP_SMALL.read_bytes())
    off = 24
    for _ in range(4):
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    struct.pack_into("<I", data, off + 8, 0x7FFFFFF0)          # the 5th record claims 2 GB
    bad = tmp_path / "corrupt.pcap"
    bad.write_bytes(bytes(data))
    res = run(bad, "--min-connections", 1, "--json")
    assert res.exit_code == 3
    doc = results_json(res)
    f = doc["files"][0]
    assert f["status"] == "error" and "corrupt record" in f["error"]
    assert rule(doc, "min_connections")["status"] == "pass"      # what could be read was checked


# ---------------------------------------------------------------------------- outputs
def test_junit_parsed_by_junitparser(tmp_path):
    junit = tmp_path / "tcp-check.xml"
    res = run(HTTP_SMALL, RST, "--max-rst", 0, "--require-complete", "--forbid", "zero_window",
              "--max-handshake-rtt-ms", 1000, "--junit", junit)
    assert res.exit_code == 1
    xml = JUnitXml.fromfile(str(junit))
    suites = list(xml)
    assert [s.name for s in suites] == [str(HTTP_SMALL), str(RST)]
    names = ["max_rst", "forbid.zero_window", "max_handshake_rtt_ms.max", "require_complete"]
    for s in suites:
        assert sorted(c.name for c in s) == sorted(names)
        assert s.tests == 4 and s.errors == 0
    assert suites[0].failures == 0
    assert all(c.is_passed for c in suites[0])
    assert suites[1].failures == 2
    cases = {c.name: c for c in suites[1]}
    fail = cases["max_rst"].result[0]
    assert isinstance(fail, Failure)
    n = n_reset(RST)
    assert fail.message == f"{n} reset connection(s) > limit 0"
    assert f"measured: {n} reset connections" in fail.text and "limit: 0" in fail.text
    assert re.search(r"stream \d+ 10\.200\.0\.1:\d+ -> 10\.200\.0\.2:\d+, frames? \d+", fail.text)
    assert cases["max_rst"].classname == str(RST)
    assert isinstance(cases["require_complete"].result[0], Failure)
    assert cases["forbid.zero_window"].is_passed


def test_junit_escaping(tmp_path):
    odd = tmp_path / 'a&b <"odd">\'s.pcap'
    shutil.copy(POP3, odd)
    junit = tmp_path / "j.xml"
    res = run(odd, "--max-rst", 0, "--junit", junit)
    assert res.exit_code == 1
    xml = JUnitXml.fromfile(str(junit))
    [suite] = list(xml)
    assert suite.name == str(odd)
    [case] = list(suite)
    assert case.classname == str(odd) and isinstance(case.result[0], Failure)
    # characters XML cannot carry are replaced, the document still parses
    fr = P.FileResult(file="x\x01y.pcap", results=[P.RuleResult("x\x01y.pcap", "max_rst", "fail", "bad \x00 & <msg>",
                                                                evidence=[{"text": "e\x1b[31m"}])])
    path = tmp_path / "ctl.xml"
    path.write_text(ci.junit_string([fr]), encoding="utf-8")
    [s] = list(JUnitXml.fromfile(str(path)))
    [c] = list(s)
    assert c.result[0].message == "bad \ufffd & <msg>"


def test_junit_skipped(tmp_path):
    junit = tmp_path / "j.xml"
    res = run(HANDSHAKES, "--junit", junit, policy_text="[[rule]]\nport = 1\nmax_handshake_rtt_ms = 5\n",
              tmp_path=tmp_path)
    assert res.exit_code == 0
    [s] = list(JUnitXml.fromfile(str(junit)))
    [c] = list(s)
    assert c.name == "rule1/max_handshake_rtt_ms.max" and isinstance(c.result[0], Skipped)


def test_github_annotations():
    res = run(POP3, HTTP_SMALL, "--max-rst", 0, "--require-complete", "--github")
    assert res.exit_code == 1
    lines = [l for l in res.stdout.splitlines() if l.startswith("::")]
    assert len(lines) == 2
    assert lines[0].startswith(
        f"::error file={POP3},title=tcpanalyze check%3A max_rst::2 reset connection(s) > limit 0%0A")
    assert "%0Astream 0 192.168.0.4:26242 -> 212.227.15.188:110" in lines[0]
    assert "\n" not in lines[0] and "\r" not in lines[0]
    assert lines[1].startswith(f"::error file={POP3},title=tcpanalyze check%3A require_complete::")
    # the summary follows
    assert "checked 2 file(s)" in res.stdout


def test_github_escaping():
    assert ci.escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert ci.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    a = ci.annotation("error", "x\ny", "dir/f,1:2.pcap", "t: 1, 2")
    assert a == "::error file=dir/f%2C1%3A2.pcap,title=t%3A 1%2C 2::x%0Ay"
    assert ci.annotation("error", "m", "-", None) == "::error::m"


def test_json_output_and_o_file(tmp_path):
    out = tmp_path / "res.json"
    res = run(B206, "--max-rst", 0, "--forbid", "zero_window", "--json", "-o", out)
    assert res.exit_code == 1
    assert res.stdout == ""
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["schema_version"] == 1 and doc["exit_code"] == 1 and doc["status"] == "fail"
    assert doc["policy"]["rules"] == {"max_rst": 0, "forbid": ["zero_window"]}
    r = rule(doc, "max_rst")
    assert set(r) >= {"id", "rule", "scope", "status", "file", "measured", "limit", "unit", "message", "evidence"}
    assert r["measured"] == 2 and r["limit"] == 0 and r["file"] == str(B206)
    assert {e["stream"] for e in r["evidence"]} == {0, 1}
    assert r["evidence"][0]["frames"] == [1302]
    txt = tmp_path / "summary.txt"
    res = run(B206, "--max-rst", 0, "-o", txt)
    assert res.exit_code == 1 and "FAIL max_rst" in txt.read_text(encoding="utf-8")


def test_quiet_lists_only_failures():
    res = run(POP3, "--max-rst", 0, "--min-connections", 1, "-q")
    assert "FAIL max_rst" in res.stdout and "min_connections" not in res.stdout


# ---------------------------------------------------------------------------- baseline
def _analyze_json(tmp_path: Path, *files: Path, name="base.json") -> Path:
    res = CliRunner().invoke(cli, ["analyze", "--json", *[str(f) for f in files]])
    assert res.exit_code == 0, res.output
    p = tmp_path / name
    p.write_text(res.stdout, encoding="utf-8")
    return p


def test_baseline_same_capture_passes(tmp_path):
    base = _analyze_json(tmp_path, LOSSY, SHRINK)
    res = run(SHRINK, LOSSY, "--baseline", base)
    assert res.exit_code == 0, res.output
    for m in ("retransmission_rate", "rst", "time_wait", "handshake_rtt_p95_ms", "zero_window_ms", "warnings"):
        assert f"ok   baseline.{m}:" in res.stdout


def test_baseline_regression_fails(tmp_path):
    base = _analyze_json(tmp_path, HTTP_SMALL)           # a one-file baseline is compared with every file
    res = run(LOSSY, "--baseline", base, "--json")
    assert res.exit_code == 1
    doc = results_json(res)
    r = rule(doc, "baseline.retransmission_rate")
    assert r["status"] == "fail" and r["limit"] == 0.5
    assert "vs baseline 0%" in r["message"] and "tolerance 0.5 points" in r["message"]
    # a tolerance that covers it
    res = run(LOSSY, "--baseline", base, "--tolerance", "retransmission_rate=50", "--tolerance", "warnings=off",
              "--tolerance", "handshake_rtt_p95_ms=1000", "--json")
    doc = results_json(res)
    assert rule(doc, "baseline.retransmission_rate")["status"] == "pass"
    assert all(r["id"] != "baseline.warnings" for r in doc["files"][0]["results"])
    assert res.exit_code == 0, [r["message"] for r in doc["files"][0]["results"] if r["status"] == "fail"]


def test_baseline_rst_regression_from_policy_table(tmp_path):
    base = _analyze_json(tmp_path, CLEAN, name="release.json")
    copy = tmp_path / "pcapplusplus-one_http_stream_fin2.pcap"
    shutil.copy(POP3, copy)                                   # same base name, worse behaviour
    pol = "[baseline]\nfile = \"release.json\"\nrst = 1\nretransmission_rate = 100\nhandshake_rtt_p95_ms = false\n" \
          "warnings = 100\ntime_wait = 100\n"
    res = run(copy, "--json", policy_text=pol, tmp_path=tmp_path)   # the file is relative to the policy
    assert res.exit_code == 1, res.output
    r = rule(results_json(res), "baseline.rst")
    assert r["status"] == "fail" and r["measured"] == 2 and r["limit"] == 1
    res = run(copy, "--tolerance", "rst=2", policy_text=pol, tmp_path=tmp_path)
    assert res.exit_code == 0, res.output


def test_baseline_no_match_is_skipped_and_bad_baseline_is_usage_error(tmp_path):
    base = _analyze_json(tmp_path, LOSSY, SHRINK)
    res = run(HTTP_SMALL, "--baseline", base, "--json")
    assert res.exit_code == 0
    assert rule(results_json(res), "baseline")["status"] == "skip"
    junk = tmp_path / "junk.json"
    junk.write_text("{}", encoding="utf-8")
    res = run(HTTP_SMALL, "--baseline", junk)
    assert res.exit_code == 2 and "analyze --json" in res.stderr
    junk.write_text("not json", encoding="utf-8")
    res = run(HTTP_SMALL, "--baseline", junk)
    assert res.exit_code == 2 and "not JSON" in res.stderr
    res = run(HTTP_SMALL, "--baseline", tmp_path / "nope.json")
    assert res.exit_code == 2 and "cannot read baseline" in res.stderr
    res = run(HTTP_SMALL, "--baseline", base, "--tolerance", "retransmision_rate=1")
    assert res.exit_code == 2 and "retransmission_rate" in res.stderr


def test_metrics_match_report():
    m = P.metrics(view(B206))
    assert m["rst"] == 2 and m["retransmission_rate"] == pytest.approx(100 * 56 / 999, abs=1e-4)
    assert m["zero_window_ms"] == pytest.approx(61.373, abs=1e-3)
    assert m["handshake_rtt_p95_ms"] == pytest.approx(72.383, abs=1e-3)
    assert m["time_wait"] == 0


# ---------------------------------------------------------------------------- the documented examples
def _fenced(md: str, lang: str) -> list[str]:
    return re.findall(r"```" + lang + r"\n(.*?)```", md, flags=re.S)


DOC_HEADING = "## CI gate: `tcpanalyze check`"


def test_docs_embed_the_example_files():
    """docs/check.md shows the example files verbatim."""
    md = (ROOT / "docs" / "check.md").read_text(encoding="utf-8")
    assert DOC_HEADING in md, f"docs/check.md lacks the heading {DOC_HEADING!r}"
    section = md[md.index(DOC_HEADING):]
    nxt = re.search(r"^## ", section[3:], flags=re.M)
    section = section[:nxt.start() + 3] if nxt else section
    assert (EXAMPLES / "policy.toml").read_text(encoding="utf-8") in _fenced(section, "toml")
    assert (EXAMPLES / "github-workflow.yml").read_text(encoding="utf-8") in _fenced(section, "yaml")
    assert "examples/policy.toml" in section and "--junit" in section


def test_example_policy_on_samples(tmp_path):
    policy = EXAMPLES / "policy.toml"
    pol = P.load_policy(str(policy))
    assert [s.name for s, _r in pol.scoped] == ["web", "bulk"]
    res = run(HTTP_SMALL, "--policy", policy)
    assert res.exit_code == 0, res.output
    assert "ok   web/require_complete" in res.stdout and "ok   web/max_rst" in res.stdout
    res = run(SHRINK, "--policy", policy)
    assert res.exit_code == 1
    assert "FAIL forbid.window_shrink" in res.stdout
    res = run(TIMEWAIT, "--policy", policy)
    assert res.exit_code == 1
    assert "FAIL max_time_wait" in res.stdout and "FAIL allow_server_active_close" in res.stdout
    res = run(B206, "--policy", policy)
    assert res.exit_code == 1
    assert "FAIL web/max_rst" in res.stdout and "FAIL web/forbid.zero_window" in res.stdout


def test_example_workflow_runs_check_with_junit(tmp_path, monkeypatch):
    wf = (EXAMPLES / "github-workflow.yml").read_text(encoding="utf-8")
    runs = [m.group(1).strip() for m in re.finditer(r"^\s*(?:-\s*)?run:\s*(tcpanalyze check .*)$", wf, flags=re.M)]
    assert len(runs) == 1, runs
    cmd = shlex.split(runs[0])
    assert cmd[:2] == ["tcpanalyze", "check"]
    assert "--junit" in cmd and "--policy" in cmd and "--github" in cmd
    junit_name = cmd[cmd.index("--junit") + 1]
    assert re.search(r"report_paths:\s*" + re.escape(junit_name), wf)        # the JUnit file is published
    assert "if: always()" in wf
    assert cmd[cmd.index("--policy") + 1] == "examples/policy.toml"
    # run it as the workflow would, the captures glob replaced by a sample
    args = cmd[2:]
    args = [str(HTTP_SMALL) if a.endswith("*.pcap") else a for a in args]
    monkeypatch.chdir(ROOT)
    args[args.index("--junit") + 1] = str(tmp_path / junit_name)
    res = CliRunner().invoke(cli, ["check", *args])
    assert res.exit_code == 0, res.output
    xml = JUnitXml.fromfile(str(tmp_path / junit_name))
    [suite] = list(xml)
    assert suite.tests > 0 and suite.failures == 0 and suite.errors == 0


def test_forbid_kind_leaves_out_its_note_subkinds():
    """A bare ``forbid = window_shrink`` is about a receiver shrinking its window: the old ACKs
    of the reordering path in samples/reordered_upload.pcap (window_shrink/reordered_ack, info)
    do not fail it; naming the subkind does, and the real shrinks of window_shrink.pcap do."""
    reordered = str(SAMPLES / "reordered_upload.pcap")
    res = CliRunner().invoke(cli, ["check", reordered, "--forbid", "window_shrink"])
    assert res.exit_code == 0, res.output
    assert "0 window_shrink finding(s)" in res.output
    res = CliRunner().invoke(cli, ["check", reordered, "--forbid", "window_shrink/reordered_ack"])
    assert res.exit_code == 1 and "window_shrink/reordered_ack finding(s) (forbidden)" in res.output
    res = CliRunner().invoke(cli, ["check", str(SAMPLES / "window_shrink.pcap"), "--forbid", "window_shrink"])
    assert res.exit_code == 1 and "(forbidden)" in res.output
