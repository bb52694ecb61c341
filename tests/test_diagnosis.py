"""What limited each connection (tcpanalyze/diagnosis.py, docs/diagnosis.md): one real capture
per cause (samples/make_slow_samples.sh); the data direction gets its cause and no other."""
from __future__ import annotations

from pathlib import Path

import pytest

from tcpanalyze.api import Connection, connections
from tcpanalyze.diagnosis import LIMITS, STATES
from tcpanalyze.summary import summarize  # noqa: F401 - the records below are summaries

SAMPLES = Path(__file__).parent.parent / "samples"
TRACES = Path(__file__).parent / "data" / "traces"

#: capture -> (data direction, its limited_by)
CAUSES = {
    "slow_rwnd": ("orig", "receiver_window"),
    "slow_bandwidth": ("orig", "bandwidth"),
    "slow_loss": ("orig", "loss_recovery"),
    "slow_app": ("orig", "application"),
    "slow_rto": ("orig", "loss_recovery"),
    "slow_latency": ("resp", "latency"),
    "slow_reader_zero_window": ("orig", "zero_window"),
}


def _conns(name: str) -> list[Connection]:
    return list(connections(SAMPLES / f"{name}.pcap"))


@pytest.mark.parametrize("name", sorted(CAUSES))
def test_the_data_direction_gets_its_cause(name):
    side, cause = CAUSES[name]
    conns = _conns(name)
    assert conns
    for c in conns:
        s = getattr(c, side)
        assert s.limited_by == cause, (c.stream, s.limited_by, s.limited_by_reason)
        # and none of the other captures' causes comes out for any direction with data here
        others = {v[1] for k, v in CAUSES.items() if v[1] != cause}
        for d in (c.orig, c.resp):
            if d.data_bytes:
                assert d.limited_by not in others, (c.stream, d.limited_by, d.limited_by_reason)


def test_loss_capture_is_congestion_or_loss_limited_by_its_breakdown():
    """2% loss: the sender spends a large share of the transfer repairing losses and the rest
    below the window (the congestion window), never waiting on the receiver."""
    c, = _conns("slow_loss")
    t = c.orig.time
    assert t.loss_recovery > 0.3 and t.congestion > 0.3 and t.receiver_window == 0.0
    assert "25 segment(s) resent" in c.orig.limited_by_reason


def test_reasons_carry_the_deciding_values():
    c, = _conns("slow_rwnd")
    r = c.orig.limited_by_reason
    assert "advertised window 20,272 B" in r and "RTT 50.7" in r and "window/RTT = 3.2 Mbit/s" in r
    c, = _conns("slow_bandwidth")
    assert "evenly spaced" in c.orig.limited_by_reason and "no loss" in c.orig.limited_by_reason


def test_numbers_of_the_receive_window_capture():
    c, = _conns("slow_rwnd")
    o = c.orig
    assert o.data_bytes == 800000 and o.bytes == 800000
    assert 1.9 < o.transfer_s < 2.1
    assert o.goodput_bps == pytest.approx(800000 * 8 / o.transfer_s, rel=1e-6)
    assert o.throughput_bps == pytest.approx(o.goodput_bps)       # nothing resent
    assert 50 < o.rtt_min_ms <= o.rtt_avg_ms <= o.rtt_max_ms < 52
    assert o.time.receiver_window > 0.9
    assert c.resp.data_bytes == 0 and c.resp.limited_by is None and c.resp.time is None


def test_rto_waits_back_off():
    """The return path dropped everything for 4 s: five time-outs, each about twice the last."""
    c, = _conns("slow_rto")
    w = c.orig.rto_waits
    assert len(w) == 5 and w[0].backoff is None
    assert all(1.8 < x.backoff < 2.2 for x in w[1:])
    assert 3.5 < w[-1].wait_s < 4.2
    assert c.orig.time.loss_recovery > 0.8
    assert c.orig.throughput_bps > c.orig.goodput_bps      # the retransmissions count in throughput only


def test_breakdown_adds_up_to_one_everywhere():
    paths = sorted(SAMPLES.glob("*.pcap")) + sorted(p for p in TRACES.iterdir() if p.suffix in (".pcap", ".pcapng"))
    seen = 0
    for p in paths:
        for c in connections(p):
            for s in (c.orig, c.resp):
                assert s.limited_by in LIMITS + (None,)
                if s.time is not None:
                    seen += 1
                    assert sum(getattr(s.time, k) for k in STATES) == pytest.approx(1.0, abs=1e-9)
                    assert all(0 <= getattr(s.time, k) <= 1 for k in STATES)
                    assert s.limited_by is not None and s.limited_by_reason
                if not s.data_bytes:
                    assert s.limited_by is None and s.throughput_bps is None
    assert seen > 50


def test_one_sided_capture_is_unknown(tmp_path):
    """Data without a single ACK from the receiver: no RTT, no window, no verdict."""
    from test_findings import A, Craft, P, TcpConn
    cap = Craft()
    c = TcpConn(cap)
    for _ in range(5):
        c.send("c", P | A, 1000, dt=0.01)
    conn, = connections(cap.write(tmp_path / "one_sided.pcap"))
    side = conn.orig if conn.orig.data_bytes else conn.resp
    assert side.data_bytes == 5000 and side.limited_by == "unknown" and "one-sided" in side.limited_by_reason


def test_think_times():
    c, = _conns("slow_server")
    assert c.server_think.exchanges == 5 and 390 < c.server_think.min_ms <= c.server_think.max_ms < 420
    assert c.client_think.exchanges == 4 and c.client_think.max_ms < 5
    for c in _conns("slow_latency"):
        assert c.server_think.exchanges == 1 and c.server_think.max_ms < 10 and c.client_think is None


def test_records_round_trip_through_the_api():
    for name in ("slow_rto", "slow_server"):
        for c in _conns(name):
            d = c.to_dict()
            assert Connection.from_dict(d).to_dict() == d
            assert list(d)[-2:] == ["server_think", "client_think"]


def test_analyze_json_follows_the_schema():
    """The per-direction keys and think times are in the JSON contract (tcpanalyze/schema.py)."""
    pytest.importorskip("jsonschema", reason="the schema check needs jsonschema")
    from schema_errors import schema_errors
    from test_findings import run
    for name in ("slow_rto", "slow_server", "slow_latency"):
        doc = run(SAMPLES / f"{name}.pcap")
        assert schema_errors(doc) == []
    bad = run(SAMPLES / "slow_rto.pcap")
    bad["connections"][0]["orig"]["limited_by"] = "network"
    assert schema_errors(bad)
