"""``tcpanalyze analyze``: the rich report against golden files, the JSON document
against ``JSON_SCHEMA``, JSON Lines, ``-o``, exit codes, thresholds, and the picklable
``analyze_file`` / ``merge_reports`` pair.

Regenerate the golden files with ``python -m pytest tests/test_analyze_cli.py --update-golden``
and review the diff.
"""
from __future__ import annotations

import json
import pickle
from io import StringIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from tcpanalyze.cli import cli
from tcpanalyze.report.console import render, sparkline
from schema_errors import schema_errors  # noqa: E402
from tcpanalyze.schema import JSON_SCHEMA, SCHEMA_VERSION
from tcpanalyze.session import AnalyzeOptions, Report, analyze_file, merge_reports
from test_findings import Craft, TcpConn

HERE = Path(__file__).parent
TRACES = HERE / "data" / "traces"
GOLDEN = HERE / "golden"
B206 = TRACES / "206_example_b.pcap"
FINRTX = TRACES / "fin_retransmission.pcap"
TEREDO = TRACES / "Teredo.pcap"
SAMPLES = HERE.parent / "samples"


def rendered(report: Report, top: int = 10) -> str:
    buf = StringIO()
    render(report, Console(file=buf, width=100, color_system=None), top=top)
    return buf.getvalue()


def check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {name} missing: run with --update-golden")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (review, then --update-golden)"


def server_close_capture(path: Path, n: int = 120) -> Path:
    """n HTTP-like connections whose server closes first, 50 ms apart: a TIME_WAIT build-up."""
    cap = Craft()
    for i in range(n):
        c = TcpConn(cap, cli="10.1.0.7", cport=20000 + i, srv="10.0.0.2", sport=8080, isn_c=1000 + i)
        c.handshake(dt=0.01)
        c.exchange()
        c.close(first="s")
    c = TcpConn(cap, cli="10.1.0.8", cport=30000, srv="10.0.0.3", sport=7)
    c.send("c", 0x02, dt=0.05)
    c.send("s", 0x14, ack=c.nxt["c"])
    return cap.write(path)


# ---------------------------------------------------------------------------- rendering
def test_render_single_file_golden(update_golden):
    text = rendered(analyze_file(str(B206)))
    for needle in ("206_example_b.pcap", "Findings", "rst/aborted", "retransmissions", "close_wait_stall",
                   "Worst connections", "1,556"):
        assert needle in text
    check_golden("analyze_206_example_b.txt", text, update_golden)


def test_render_several_files_golden(tmp_path, monkeypatch, update_golden):
    monkeypatch.chdir(tmp_path)
    server_close_capture(tmp_path / "server_close.pcap")
    (tmp_path / "fin_retransmission.pcap").write_bytes(FINRTX.read_bytes())
    reps = [analyze_file(p, AnalyzeOptions(keep_connections=5))
            for p in ("server_close.pcap", "fin_retransmission.pcap", "missing.pcap")]
    text = rendered(merge_reports(reps, keep_connections=5), top=5)
    assert "TIME_WAIT per host" in text and "█" in text and "Total: 3 files" in text
    assert "missing.pcap" in text and "time_wait_buildup" in text and "server_active_close" in text
    check_golden("analyze_several_files.txt", text, update_golden)


def test_sparkline():
    assert sparkline([0, 1, 2, 4, 8], 8) == " ▁▂▄█"
    assert sparkline([0, 0]) == "  "
    assert sparkline([5, 5, 5]) == "███"


# ---------------------------------------------------------------------------- JSON / JSONL
def test_json_document_validates_against_schema(tmp_path):
    server_close_capture(tmp_path / "sc.pcap")
    res = CliRunner().invoke(cli, ["analyze", "--json", str(tmp_path / "sc.pcap"), str(B206),
                                   str(tmp_path / "nope.pcap")])
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert schema_errors(doc) == []
    assert [f["error"] is None for f in doc["files"]] == [True, True, False]
    assert doc["summary"]["files"] == 3 and doc["summary"]["files_failed"] == 1
    assert doc["summary"]["connections"] == len(doc["connections"]) == 121 + 2
    per_file = [f["summary"]["connections"] for f in doc["files"]]
    assert per_file == [121, 2, 0]
    assert {c["file"] for c in doc["connections"]} == {str(tmp_path / "sc.pcap"), str(B206)}
    # the check catches what it should
    bad = json.loads(json.dumps(doc))
    bad["findings"][0]["severity"] = "fatal"
    del bad["summary"]["bytes"]
    errs = schema_errors(bad)
    assert any("severity" in e for e in errs) and any("bytes" in e for e in errs)


def test_jsonl_streams_connections_then_findings(tmp_path):
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(cli, ["analyze", "--jsonl", "-o", str(out), str(B206), str(FINRTX)])
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    types = [r["type"] for r in recs]
    order = []
    for t in types:
        if not order or order[-1] != t:
            order.append(t)
    assert order == ["connection", "finding", "file", "connection", "finding", "file", "summary"]
    assert recs[-1]["schema_version"] == SCHEMA_VERSION and recs[-1]["files"] == 2
    for r in recs:
        if r["type"] == "finding":
            rr = dict(r)
            del rr["type"]
            assert schema_errors(rr, {"$defs": JSON_SCHEMA["$defs"], "$ref": "#/$defs/finding"}) == []


def test_table_to_file_is_plain_text(tmp_path):
    out = tmp_path / "report.txt"
    res = CliRunner().invoke(cli, ["analyze", str(B206), "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "rst/aborted" in text and "\x1b[" not in text


# ---------------------------------------------------------------------------- exit codes, thresholds
@pytest.mark.parametrize("fail_on,code", [("never", 0), ("error", 0), ("warning", 1), ("info", 1)])
def test_fail_on(fail_on, code):
    res = CliRunner().invoke(cli, ["analyze", "--json", "--fail-on", fail_on, str(B206)])
    assert res.exit_code == code, res.output


def test_unreadable_input_exit_3_and_others_reported(tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all" * 4)
    res = CliRunner().invoke(cli, ["analyze", "--json", "--fail-on", "warning", str(junk), str(B206)])
    assert res.exit_code == 3
    doc = json.loads(res.stdout)
    assert doc["files"][0]["error"] and doc["files"][1]["error"] is None
    assert doc["summary"]["connections"] == 2
    assert "tcpanalyze: error:" in res.stderr


def test_threshold_options_change_findings():
    def kinds(*args):
        res = CliRunner().invoke(cli, ["analyze", "--json", str(B206), *args])
        assert res.exit_code == 0, res.output
        return {(f["kind"], f["severity"]) for f in json.loads(res.stdout)["findings"]}

    base = kinds()
    assert ("retransmissions", "warning") in base and ("close_wait_stall", "warning") in base
    relaxed = kinds("--retrans-rate", "50", "--close-wait", "60")
    assert ("retransmissions", "info") in relaxed and not any(k == "close_wait_stall" for k, _ in relaxed)
    capped = CliRunner().invoke(cli, ["analyze", "--json", "--max-findings-per-kind", "1", str(B206)])
    doc = json.loads(capped.stdout)
    assert doc["summary"]["findings"]["by_kind"]["rst"] == {"total": 4, "reported": 2, "info": 2, "warning": 2,
                                                              "error": 0}


def test_help_lists_thresholds_and_formats():
    res = CliRunner().invoke(cli, ["analyze", "--help"])
    assert res.exit_code == 0
    for opt in ("--json", "--jsonl", "--format", "--fail-on", "--top", "--retrans-rate", "--time-wait-peak",
                "--close-wait", "--syn-flood", "--msl", "--max-connections"):
        assert opt in res.output


# ---------------------------------------------------------------------------- the pure per-file function
def test_analyze_file_is_picklable_and_merges():
    a = analyze_file(str(B206))
    b = analyze_file(str(TEREDO))
    a2 = pickle.loads(pickle.dumps(a))
    assert a2.to_dict() == a.to_dict()
    total = merge_reports([a, b])
    s = total.summary
    assert s["files"] == 2 and s["connections"] == a.summary["connections"] + b.summary["connections"]
    assert s["packets"] == a.summary["packets"] + b.summary["packets"]
    assert s["findings"]["total"] == a.summary["findings"]["total"] + b.summary["findings"]["total"]
    assert len(total.findings) == len(a.findings) + len(b.findings)
    assert [f["summary"] for f in total.files] == [a.summary, b.summary]
    assert schema_errors(total.to_dict()) == []


# ---------------------------------------------------------------------------- records on disk
def _rtt_outlier_capture(path: Path) -> Path:
    """Ten connections, stream 7 with a slow handshake: its record gets the handshake/
    rtt_outlier label only when the report is built (an aggregate finding)."""
    cap = Craft()
    for i in range(10):
        c = TcpConn(cap, cport=46000 + i)
        c.handshake(dt=0.002 if i != 7 else 0.4)
        c.close()
    return cap.write(path)


def _in_memory_output(paths: list[str], fmt: str) -> str:
    from tcpanalyze.report.jsonout import dumps, summary_record, write_json, write_jsonl_file

    reps = [analyze_file(p, AnalyzeOptions()) for p in paths]
    assert all(isinstance(r.connections, list) for r in reps)
    out = StringIO()
    for r in reps:
        if fmt == "jsonl":
            write_jsonl_file(r, out)
    total = merge_reports(reps)
    if fmt == "json":
        write_json(total, out)
    else:
        out.write(dumps(summary_record(total)) + "\n")
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_spilled_records_give_the_in_memory_document(tmp_path, fmt):
    """analyze --json/--jsonl keep connection records on disk until they are written
    (tcpanalyze.records): the output must be the in-memory one byte for byte, for one file and
    for several, including a record that an aggregate finding changes at the end."""
    rtt = str(_rtt_outlier_capture(tmp_path / "rtt.pcap"))
    samples = sorted(str(p) for p in SAMPLES.glob("*.pcap"))[:4]
    for paths in ([rtt], [samples[0], rtt, *samples[1:]]):
        res = CliRunner().invoke(cli, ["analyze", f"--{fmt}", *paths])
        assert res.exit_code == 0, res.output
        assert res.output == _in_memory_output(paths, fmt)
    assert '"handshake/rtt_outlier"' in res.output


def test_spilled_records_stay_on_disk(tmp_path):
    rtt = str(_rtt_outlier_capture(tmp_path / "rtt.pcap"))
    rep = analyze_file(rtt, AnalyzeOptions(spill_records=True))
    recs = rep.connections
    assert not isinstance(recs, list) and len(recs) == 10
    assert not recs._patched.keys() - {7}      # only the changed record is held as a dict
    assert [r["stream"] for r in recs] == list(range(10))
    assert "handshake/rtt_outlier" in list(recs)[7]["findings"]
    with pytest.raises(TypeError, match="stay in the process"):
        pickle.dumps(rep)
