"""The ``app_limited`` detector (tcpanalyze/findings/app_limited.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_findings import of, run

SAMPLES = Path(__file__).parent.parent / "samples"


def test_sender_writing_a_chunk_every_30_ms():
    f, = of(run(SAMPLES / "slow_app.pcap"), "app_limited")
    v = f["data"]
    assert f["severity"] == "info" and v["sender"] == "orig" and v["data_bytes"] == 80000
    assert 2.3 < v["transfer_s"] < 2.5 and v["application_share"] > 0.9
    assert f["frames"] == [4]
    assert "nothing unacknowledged or the send buffer empty" in f["message"]


@pytest.mark.parametrize("name", ["slow_rwnd", "slow_bandwidth", "slow_loss", "slow_rto", "slow_latency",
                                  "lossy_bulk"])
def test_not_when_tcp_or_the_network_limited(name):
    assert not of(run(SAMPLES / f"{name}.pcap"), "app_limited")


def test_min_transfer_is_an_option():
    assert not of(run(SAMPLES / "slow_app.pcap", extra={"app_limited_min_s": 3.0}), "app_limited")
    assert not of(run(SAMPLES / "slow_app.pcap", extra={"app_limited_min_bytes": 100000}), "app_limited")


def test_a_few_requests_are_no_transfer():
    """206_example_b: the client's two requests, 1.2 s apart, are application-limited but
    too small (580 B) to report."""
    doc = run(Path(__file__).parent / "data" / "traces" / "206_example_b.pcap")
    c = next(c for c in doc["connections"] if c["stream"] == 0)
    assert c["orig"]["limited_by"] == "application" and c["orig"]["data_bytes"] == 580
    assert not of(doc, "app_limited")
