"""The Python API (tcpanalyze.analyze / packets / connections) gives what the commands print,
streams, raises SourceError on unreadable input, and ``import tcpanalyze`` stays light."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcpanalyze
from tcpanalyze.api import connection_dicts
from tcpanalyze import api
from tcpanalyze.cli import cli

from test_findings import Craft, TcpConn

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.pcap"))
BIG = ROOT / "samples" / "timewait_server_close.pcap"       # 14,029 frames, 600 connections
LOSSY = ROOT / "samples" / "lossy_bulk.pcap"


def _cli(*args: str) -> str:
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("code", ["import tcpanalyze",
                                  "import tcpanalyze; tcpanalyze.analyze; tcpanalyze.Packet",
                                  "import tcpanalyze.api, tcpanalyze.session, tcpanalyze.parquet, tcpanalyze.policy"])
def test_import_tcpanalyze_is_light(code):
    """The package, and the core its API loads, import no UI, capture or optional data library."""
    code += ("\nimport sys\nheavy = ('rich', 'click', 'scapy', 'pyshark', 'pyarrow', 'matplotlib', 'duckdb')\n"
             "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


def test_exports():
    for name in tcpanalyze.__all__:
        assert hasattr(tcpanalyze, name), name
    assert tcpanalyze.analyze is api.analyze and tcpanalyze.Report is api.Report


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_connections_are_flows_jsonl(path):
    cli_text = _cli("flows", "--format", "jsonl", path)
    api_text = "".join(json.dumps(c.to_dict(), separators=(",", ":")) + "\n" for c in tcpanalyze.connections(path))
    assert api_text == cli_text


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_analyze_is_analyze_json(path):
    doc = json.loads(_cli("analyze", "--json", path))
    rep = tcpanalyze.analyze(path)
    assert json.loads(json.dumps(rep.to_dict())) == doc
    assert all(isinstance(c, tcpanalyze.Connection) for c in rep.connections)
    assert all(isinstance(f, tcpanalyze.Finding) for f in rep.findings)


def test_analyze_options_are_the_command_options():
    args = ["--msl", "5", "--retrans-rate", "0.5", "--time-wait-peak", "3", "--fast-rtx-ms", "10",
            "--max-findings-per-kind", "2", "--hs-rtt-min-ms", "1"]
    doc = json.loads(_cli("analyze", "--json", *args, BIG, LOSSY))
    rep = tcpanalyze.analyze([BIG, str(LOSSY)], msl=5, retrans_rate=0.5, time_wait_peak=3, fast_rtx_ms=10,
                             max_findings_per_kind=2, hs_rtt_min_ms=1)
    assert json.loads(json.dumps(rep.to_dict())) == doc
    assert doc["summary"]["thresholds"]["msl_s"] == 5


def test_analyze_keep_connections_and_jobs():
    full = tcpanalyze.analyze(BIG)
    top = tcpanalyze.analyze(BIG, keep_connections=3, jobs=2)
    assert len(top.connections) == 3
    assert top.summary["connections"] == full.summary["connections"] == 600
    assert top.findings == full.findings


def _tsv_row(p: tcpanalyze.Packet) -> str:
    sec, frac = divmod(p.ts_ns, 1_000_000_000)
    rtt = "" if p.ack_rtt is None else "%.9f" % p.ack_rtt
    return "\t".join(map(str, (p.frame, f"{sec}.{frac:09d}", p.stream, p.src, p.sport, p.dst, p.dport, p.seq, p.ack,
                               p.len, p.flags, p.win, ",".join(p.analysis), rtt,
                               "" if p.bytes_in_flight is None else p.bytes_in_flight,
                               "" if p.dup_ack_num is None else p.dup_ack_num)))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_packets_are_the_packets_rows(path):
    lines = _cli("packets", path).splitlines()
    assert lines[0].split("\t")[:3] == ["frame", "time", "stream"]
    assert [_tsv_row(p) for p in tcpanalyze.packets(path)] == lines[1:]


@pytest.mark.parametrize("opts,args", [({"absolute": True}, ["--absolute"]), ({"stream": 3}, ["--stream", "3"]),
                                       ({"host": "10.200.0.1", "port": 5001}, ["--host", "10.200.0.1", "--port", "5001"])])
def test_packets_options(opts, args):
    path = LOSSY if "port" in opts else BIG
    lines = _cli("packets", *args, path).splitlines()[1:]
    assert lines and [_tsv_row(p) for p in tcpanalyze.packets(path, **opts)] == lines


def test_packets_explain_gives_the_jsonl_reasons():
    recs = [json.loads(x) for x in _cli("packets", "--format", "jsonl", LOSSY).splitlines()]
    pkts = list(tcpanalyze.packets(LOSSY, explain=True))
    assert [r["analysis"] for r in recs] == [p.reasons for p in pkts]
    assert all(set(p.reasons) <= set(p.analysis) for p in pkts)
    assert any(p.reasons for p in pkts)
    assert all(p.reasons is None for p in tcpanalyze.packets(LOSSY))


def test_packets_stream_a_block_at_a_time():
    it = tcpanalyze.packets(BIG)
    gen = iter(it)
    first = next(gen)
    assert first.frame == 1
    assert 0 < it.stats.frames <= api.K_BLOCK_FRAMES < 14029     # only the first block was read
    assert it._analyzer.done == []          # finished connections are not kept
    rest = sum(1 for _ in gen)
    assert rest + 1 == it.stats.frames == 14029


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory):
    """1000 short connections, one a second: each has ended long before the capture does."""
    cap = Craft()
    for i in range(1000):
        c = TcpConn(cap, cport=20000 + i)
        c.handshake(dt=1.0)
        c.close()
    return cap.write(tmp_path_factory.mktemp("api") / "long.pcap")


@pytest.mark.parametrize("order", ["stream", "end"])
def test_connections_stream(long_capture, order):
    it = tcpanalyze.connections(long_capture, order=order)
    gen = iter(it)
    first = next(gen)
    assert it.stats.frames < 7000           # a record came before the end of the file
    streams = [first.stream] + [c.stream for c in gen]
    assert it.stats.frames == 7000
    assert (streams if order == "stream" else sorted(streams)) == list(range(1000))
    assert "".join(json.dumps(c.to_dict(), separators=(",", ":")) + "\n"
                   for c in tcpanalyze.connections(long_capture)) == _cli("flows", "--jsonl", long_capture)


def test_unknown_order():
    with pytest.raises(ValueError):
        tcpanalyze.connections(BIG, order="random")


@pytest.mark.parametrize("call", [tcpanalyze.analyze, tcpanalyze.packets, tcpanalyze.connections])
@pytest.mark.parametrize("bad", ["samples/SOURCES.md", "no/such/file.pcap"])
def test_unreadable_input_raises_source_error(call, bad):
    with pytest.raises(tcpanalyze.SourceError) as e:
        list(call(ROOT / bad) if call is not tcpanalyze.analyze else [call(str(ROOT / bad))])
    assert str(ROOT / bad) in str(e.value) or Path(bad).name in str(e.value)


def test_records_are_frozen_and_slotted():
    c = next(iter(tcpanalyze.connections(LOSSY)))
    p = next(iter(tcpanalyze.packets(LOSSY)))
    f = tcpanalyze.analyze(LOSSY).findings[0]
    for rec in (c, c.orig, p, f):
        assert not hasattr(rec, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(rec, dataclasses.fields(rec)[0].name, 1)
    assert isinstance(c.orig, tcpanalyze.EndpointSummary) and isinstance(c.unexpected, tuple)
    assert tcpanalyze.Connection.from_dict(c.to_dict()) == c
    assert tcpanalyze.Finding.from_dict(f.to_dict()) == f


def test_analyze_takes_the_detectors_thresholds():
    """The thresholds a detector module declares are keyword values of tcpanalyze.analyze:
    the 400 ms think time of samples/slow_server.pcap is slow above 300 ms, not above 450 ms."""
    cap = ROOT / "samples" / "slow_server.pcap"
    kinds = lambda rep: [f.kind for f in rep.findings]        # noqa: E731
    assert "slow_server" in kinds(tcpanalyze.analyze(cap, thresholds={"slow_server_ms": 300}))
    assert "slow_server" not in kinds(tcpanalyze.analyze(cap, thresholds={"slow_server_ms": 450}))
    with pytest.raises(ValueError, match="no threshold 'slow_servr_ms'"):
        tcpanalyze.analyze(cap, thresholds={"slow_servr_ms": 1})


@pytest.mark.parametrize("name", ["samples/lossy_bulk.pcap", "samples/rst_refused_aborted.pcap",
                                  "samples/slow_latency.pcap", "tests/data/traces/206_example_b.pcap",
                                  "tests/data/traces/pcapplusplus-one_ipv6_http_stream.pcap"])
def test_connection_dicts_are_the_records_to_dict(name):
    """flows --format jsonl writes connection_dicts(): the same bytes as the typed records'
    to_dict(), in the same order, without building the records."""
    typed = [json.dumps(c.to_dict()) for c in tcpanalyze.connections(ROOT / name)]
    plain = [json.dumps(d) for d in connection_dicts(ROOT / name)]
    assert typed and plain == typed
    with pytest.raises(TypeError, match="unknown option"):
        connection_dicts(ROOT / name, msll=1)
