"""The ``slow_server`` detector (tcpanalyze/findings/slow_server.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_findings import of, run

SAMPLES = Path(__file__).parent.parent / "samples"


def test_server_thinking_400_ms_before_each_answer():
    f, = of(run(SAMPLES / "slow_server.pcap"), "slow_server")
    v = f["data"]
    assert f["severity"] == "warning" and v["server"] == "10.200.0.2:5107" and v["exchanges"] == 5
    assert 390 < v["min_ms"] <= v["avg_ms"] <= v["max_ms"] < 420
    assert len(f["frames"]) == 1 and "> 250 ms" in f["message"]


@pytest.mark.parametrize("name", ["slow_latency", "slow_rwnd", "http_small", "slow_app"])
def test_quick_servers_are_not_slow(name):
    """slow_latency: 20 exchanges over a 100 ms RTT, answered at once: the network's round
    trip is taken out of the think time."""
    assert not of(run(SAMPLES / f"{name}.pcap"), "slow_server")


def test_threshold_is_an_option():
    assert not of(run(SAMPLES / "slow_server.pcap", extra={"slow_server_ms": 450.0}), "slow_server")
    assert of(run(SAMPLES / "slow_server.pcap", extra={"slow_server_ms": 300.0}), "slow_server")


def test_command_line_option():
    """--slow-server-ms is an option of analyze (declared by the detector module)."""
    import json

    from click.testing import CliRunner

    from tcpanalyze.cli import cli
    for limit, found in (("500", False), ("300", True)):
        r = CliRunner().invoke(cli, ["analyze", "--json", "--slow-server-ms", limit,
                                     str(SAMPLES / "slow_server.pcap")])
        doc = json.loads(r.output)
        assert doc["summary"]["thresholds"]["slow_server_ms"] == float(limit)
        assert any(f["kind"] == "slow_server" for f in doc["findings"]) is found
