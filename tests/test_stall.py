"""The ``stall`` detector (tcpanalyze/findings/stall.py): a direction with unacknowledged data
that sends nothing for longer than max(1 s, 4x RTT)."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_findings import A, Craft, P, R, TcpConn, of, run

HERE = Path(__file__).parent
B206 = HERE / "data" / "traces" / "206_example_b.pcap"
SAMPLES = HERE.parent / "samples"


def test_rto_back_off_is_a_series_of_stalls():
    """206_example_b: the server retransmits one segment with RTO back-off (silences of 0.5,
    0.8, 1.5, 1.2, 2.1, 4.0, 7.9 and 3 x 15.6 s), then resets 15.6 s after its last one."""
    doc = run(B206)
    stall, = of(doc, "stall")
    v = stall["data"]
    assert stall["stream"] == 0 and stall["severity"] == "warning" and v["sender"] == "resp"
    # the silences under 1 s (before frames 1282 and 1284) are not stalls; the eight from
    # frame 1286 on end with a retransmission, the last one with the RST
    assert stall["frames"] == [1286, 1288, 1290, 1292, 1294, 1296, 1298, 1300]
    assert v["stalls"] == 9 and v["ended_by_retransmission"] == 8 and v["stalled_at_end"]
    assert 15.5 < v["longest_s"] < 15.6 and v["limit_s"] == 1.0
    assert "still stalled when the connection ended (rst)" in stall["message"]


def test_crafted_stalls_ended_by_a_retransmission_and_by_a_reset(tmp_path):
    cap = Craft()
    c = TcpConn(cap)
    c.handshake()
    c.exchange()
    seq = c.nxt["c"]
    c.send("c", P | A, 500)                             # unacknowledged ...
    rtx = c.send("c", P | A, 500, seq=seq, dt=3.0)      # ... and retransmitted after 3 s of silence
    c.send("s", A)
    reset = TcpConn(cap, cport=40001)
    reset.handshake()
    reset.exchange()
    acked = reset.nxt["c"]
    reset.send("c", P | A, 200)                          # never acknowledged: the server resets 10 s later
    still = TcpConn(cap, cport=40002)
    still.handshake()
    still.exchange()
    still.send("c", P | A, 300)                          # never acknowledged, open at the end of the capture
    reset.send("s", R | A, ack=acked, dt=10.0)
    doc = run(cap.write(tmp_path / "stall.pcap"))
    first, = of(doc, "stall", stream=0)
    assert first["severity"] == "warning" and first["frames"] == [rtx]
    assert first["data"]["stalls"] == 1 and not first["data"]["stalled_at_end"]
    assert 2.9 < first["data"]["longest_s"] < 3.1
    end, = of(doc, "stall", stream=1)
    assert end["severity"] == "info" and end["frames"] == [] and end["data"]["sender"] == "orig"
    assert end["data"]["stalled_at_end"] and end["data"]["ended_by_retransmission"] == 0
    assert 9.9 < end["data"]["longest_s"] < 10.1
    assert not of(doc, "stall", stream=2)               # what followed was not captured


@pytest.mark.parametrize("name", ["http_small.pcap", "lossy_bulk.pcap", "slow_reader_zero_window.pcap",
                                  "keepalive.pcap", "close_wait.pcap"])
def test_no_stall_on_samples(name):
    """Fast retransmissions, a zero window, keep-alives and a CLOSE_WAIT are no stalls."""
    assert not of(run(SAMPLES / name), "stall")
