"""The ``receiver_limited`` detector (tcpanalyze/findings/receiver_limited.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_findings import of, run

SAMPLES = Path(__file__).parent.parent / "samples"


def test_small_receive_buffer_caps_the_upload():
    """slow_rwnd: a 16 KB SO_RCVBUF reader over 50 ms RTT: window 20,272 B, 3.2 Mbit/s ceiling."""
    f, = of(run(SAMPLES / "slow_rwnd.pcap"), "receiver_limited")
    v = f["data"]
    assert f["severity"] == "warning" and f["stream"] == 0 and v["sender"] == "orig"
    assert v["window_bytes"] == 20272 and 50 < v["rtt_ms"] < 52 and v["share"] > 0.9
    assert v["ceiling_bps"] == pytest.approx(20272 * 8 / (v["rtt_ms"] / 1000), rel=1e-3)
    assert v["goodput_bps"] <= v["ceiling_bps"] * 1.05
    assert len(f["frames"]) == 1 and f["frames"][0] > 3
    assert "window 20,272 B" in f["message"] and "ceiling window/RTT = 3.2 Mbit/s" in f["message"]


@pytest.mark.parametrize("name", ["slow_bandwidth", "slow_loss", "slow_rto", "slow_app", "slow_latency",
                                  "lossy_bulk", "http_small", "window_shrink", "slow_reader_zero_window"])
def test_not_when_something_else_limited(name):
    assert not of(run(SAMPLES / f"{name}.pcap"), "receiver_limited")


def test_thresholds_are_options():
    from tcpanalyze.findings.base import Thresholds
    assert of(run(SAMPLES / "slow_rwnd.pcap", extra={"receiver_limited_share": 0.5}), "receiver_limited")
    assert not of(run(SAMPLES / "slow_rwnd.pcap", extra={"receiver_limited_share": 0.99}), "receiver_limited")
    assert not of(run(SAMPLES / "slow_rwnd.pcap", extra={"receiver_limited_min_s": 5.0}), "receiver_limited")
    assert Thresholds().to_dict()["receiver_limited_share"] == 0.5
