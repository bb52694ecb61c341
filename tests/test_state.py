"""RFC 9293 observer state machine (tcpanalyze.state), driven as the engine drives it."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpanalyze.model import ACK, FIN, PSH, RST, SYN
from tcpanalyze.state import TRANSITIONS, Ev, TcpState, classify, initial_states, step

T = TcpState
A_, B_ = 0, 1


class Sim:
    """Two endpoints and the capture point between them, with the engine's call sequence.

    Endpoint 0 sends the first captured segment.  Sequence numbers are tracked only as far as
    needed for ``acks_peer_fin``: a segment's ACK covers the receiver's FIN when the ACK bit
    is set and ack >= (receiver's FIN seq + 1), exactly the engine's test.
    """

    def __init__(self, first_flags: int):
        s0, s1, inferred = initial_states(first_flags)
        self.st = [s0, s1]
        self.inferred = inferred
        self.nxt = [1000, 9000]          # next sequence number each side will send
        self.fin_next = [None, None]     # seq just after each side's FIN
        self.anoms: list[tuple[int, str]] = []
        self.path = ([s0], [s1])

    def seg(self, d: int, flags: int, paylen: int = 0, ack: int | None = None, retx: bool = False):
        r = d ^ 1
        if ack is None:
            ack = self.nxt[r]            # by default everything the peer sent has arrived
        if not retx:
            self.nxt[d] += paylen + (1 if flags & SYN else 0)
            if flags & FIN and self.fin_next[d] is None:
                self.nxt[d] += 1
                self.fin_next[d] = self.nxt[d]
        fin_r = self.fin_next[r]
        acks_fin = bool(flags & ACK) and fin_r is not None and ack >= fin_r
        ev_s, ev_r = classify(flags, acks_fin)
        for ep, ev in ((d, ev_s), (r, ev_r)):
            new, anom = step(self.st[ep], ev)
            assert isinstance(new, TcpState)
            if anom is not None:
                assert new is self.st[ep]
                self.anoms.append((ep, anom))
            elif new is not self.st[ep]:
                self.path[ep].append(new)
            self.st[ep] = new
        return self

    # shorthands
    def syn(self, d, **kw):
        return self.seg(d, SYN, **kw)

    def synack(self, d, **kw):
        return self.seg(d, SYN | ACK, **kw)

    def ack(self, d, **kw):
        return self.seg(d, ACK, **kw)

    def data(self, d, n=100, **kw):
        return self.seg(d, ACK | PSH, n, **kw)

    def fin(self, d, **kw):
        return self.seg(d, FIN | ACK, **kw)

    def rst(self, d, **kw):
        return self.seg(d, RST | ACK, **kw)


def opened() -> Sim:
    return Sim(SYN).syn(A_).synack(B_).ack(A_)


# ---------------------------------------------------------------------- enums and basics
def test_names_and_str():
    assert [s.name for s in TcpState] == ["CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED",
                                          "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK",
                                          "TIME_WAIT"]
    assert str(T.TIME_WAIT) == "TIME_WAIT" and f"{T.SYN_SENT:>10}" == "  SYN_SENT"
    assert str(Ev.RCV_ACK_OF_FIN) == "RCV_ACK_OF_FIN"


def test_anomaly_id_format():
    assert step(T.ESTABLISHED, Ev.SND_SYN) == (T.ESTABLISHED, "unexpected_snd_syn_in_ESTABLISHED")
    assert step(T.CLOSED, Ev.SND_ACK) == (T.CLOSED, "unexpected_snd_ack_in_CLOSED")


def test_classify_precedence():
    assert classify(RST | SYN | FIN | ACK, True) == (Ev.SND_RST, Ev.RCV_RST)
    assert classify(SYN | FIN, False) == (Ev.SND_SYN, Ev.RCV_SYN)
    assert classify(SYN | ACK | PSH, True) == (Ev.SND_SYNACK, Ev.RCV_SYNACK)
    assert classify(FIN | ACK, False) == (Ev.SND_FIN, Ev.RCV_FIN)
    assert classify(FIN | ACK, True) == (Ev.SND_FIN_ACKS_THEIRS, Ev.RCV_FIN_ACKS_OURS)
    assert classify(ACK, True) == (Ev.SND_ACK, Ev.RCV_ACK_OF_FIN)
    assert classify(ACK | PSH, False) == (Ev.SND_ACK, Ev.RCV_ACK)
    assert classify(0, False) == (Ev.SND_ACK, Ev.RCV_ACK)
    # without the ACK bit a segment acknowledges nothing
    assert classify(FIN, True) == (Ev.SND_FIN, Ev.RCV_FIN)
    assert classify(PSH, True) == (Ev.SND_ACK, Ev.RCV_ACK)


def test_initial_states():
    assert initial_states(SYN) == (T.CLOSED, T.LISTEN, False)
    assert initial_states(SYN | ACK) == (T.LISTEN, T.SYN_SENT, True)
    assert initial_states(ACK | PSH) == (T.ESTABLISHED, T.ESTABLISHED, True)
    assert initial_states(FIN | ACK) == (T.ESTABLISHED, T.ESTABLISHED, True)
    assert initial_states(RST | SYN) == (T.ESTABLISHED, T.ESTABLISHED, True)


# ---------------------------------------------------------------------- opening
def test_normal_open():
    s = Sim(SYN).syn(A_)
    assert s.st == [T.SYN_SENT, T.LISTEN]
    s.synack(B_)
    assert s.st == [T.ESTABLISHED, T.SYN_RECEIVED]
    s.ack(A_)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED]
    assert s.path == ([T.CLOSED, T.SYN_SENT, T.ESTABLISHED], [T.LISTEN, T.SYN_RECEIVED, T.ESTABLISHED])
    assert not s.anoms and not s.inferred


def test_simultaneous_open_synacks_in_order():
    s = Sim(SYN).syn(A_).syn(B_)               # crossing SYNs: A's passed the capture point first
    assert s.st == [T.SYN_RECEIVED, T.SYN_SENT]
    s.synack(A_)
    assert s.st == [T.SYN_RECEIVED, T.ESTABLISHED]
    s.synack(B_)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED]
    s.ack(A_).ack(B_)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED] and not s.anoms


def test_simultaneous_open_other_synack_first():
    s = Sim(SYN).syn(A_).syn(B_).synack(B_)
    assert s.st == [T.ESTABLISHED, T.SYN_RECEIVED]
    s.synack(A_)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED] and not s.anoms


def test_syn_retries():
    s = Sim(SYN).syn(A_).syn(A_, retx=True).syn(A_, retx=True)
    assert s.st == [T.SYN_SENT, T.LISTEN]
    s.synack(B_).synack(B_, retx=True)         # SYN/ACK retransmitted too
    assert s.st == [T.ESTABLISHED, T.SYN_RECEIVED]
    s.ack(A_)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED] and not s.anoms


def test_syn_answered_by_rst_refused_and_retried():
    s = Sim(SYN).syn(A_).rst(B_)
    assert s.st == [T.CLOSED, T.CLOSED] and not s.anoms
    # the client tries again on the same 4-tuple (pop3.pcap: "Sr" twice)
    s.syn(A_).rst(B_)
    assert s.st == [T.CLOSED, T.CLOSED] and not s.anoms


def test_synack_not_captured():
    s = Sim(SYN).syn(A_).ack(A_)               # the SYN/ACK is missing from the capture
    assert s.st == [T.ESTABLISHED, T.LISTEN]
    s.data(B_)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED] and not s.anoms


def test_handshake_ack_not_captured_server_banner():
    s = Sim(SYN).syn(A_).synack(B_).data(B_)   # the client's ACK is missing
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED] and not s.anoms


def test_synack_first():
    s = Sim(SYN | ACK)
    assert s.st == [T.LISTEN, T.SYN_SENT] and s.inferred
    s.synack(A_)
    assert s.st == [T.SYN_RECEIVED, T.ESTABLISHED]
    s.ack(B_).data(B_).data(A_)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED] and not s.anoms


# ---------------------------------------------------------------------- closing
def test_four_way_close():
    s = opened().data(A_).data(B_)
    s.fin(A_)
    assert s.st == [T.FIN_WAIT_1, T.CLOSE_WAIT]
    s.ack(B_)
    assert s.st == [T.FIN_WAIT_2, T.CLOSE_WAIT]
    s.fin(B_)
    assert s.st == [T.TIME_WAIT, T.LAST_ACK]
    s.ack(A_)
    assert s.st == [T.TIME_WAIT, T.CLOSED]
    assert s.path[A_][-3:] == [T.FIN_WAIT_1, T.FIN_WAIT_2, T.TIME_WAIT]
    assert s.path[B_][-3:] == [T.CLOSE_WAIT, T.LAST_ACK, T.CLOSED]
    assert not s.anoms


def test_three_way_close_fin_ack_combined():
    s = opened().fin(A_)
    s.fin(B_)                                  # FIN that also acks A's FIN
    assert s.st == [T.TIME_WAIT, T.LAST_ACK]
    assert s.path[A_][-2:] == [T.FIN_WAIT_1, T.TIME_WAIT]
    s.ack(A_)
    assert s.st == [T.TIME_WAIT, T.CLOSED] and not s.anoms


def test_simultaneous_close_closing():
    s = opened()
    a_fin_seq = s.nxt[A_]
    s.fin(A_)
    s.fin(B_, ack=a_fin_seq)                   # crossing FIN: does not ack A's FIN
    assert s.st == [T.CLOSING, T.CLOSING]      # both closed actively (RFC 9293 Figure 13)
    s.ack(B_)                                  # B acks A's FIN
    assert s.st == [T.TIME_WAIT, T.CLOSING]
    s.ack(A_)                                  # A acks B's FIN
    assert s.st == [T.TIME_WAIT, T.TIME_WAIT]
    assert s.path[A_][-3:] == [T.FIN_WAIT_1, T.CLOSING, T.TIME_WAIT]
    assert s.path[B_][-3:] == [T.CLOSE_WAIT, T.CLOSING, T.TIME_WAIT]
    assert not s.anoms


def test_simultaneous_close_other_ack_first():
    s = opened()
    a_fin_seq = s.nxt[A_]
    s.fin(A_).fin(B_, ack=a_fin_seq).ack(A_)
    assert s.st == [T.CLOSING, T.TIME_WAIT]
    s.ack(B_)
    assert s.st == [T.TIME_WAIT, T.TIME_WAIT] and not s.anoms


def test_first_fin_lost_beyond_capture_point():
    # tests/data/traces/bruteforce.pcap stream 2 (frames 58-74): the server's FIN passes the
    # capture point but never reaches the client, which closes on its own; the server's FIN
    # is retransmitted 0.4 s later.
    s = opened()
    srv_fin = s.nxt[B_]
    s.fin(B_)                                  # 58 server FIN
    s.fin(A_, ack=srv_fin)                     # 59 client FIN, not acking it
    s.ack(B_)                                  # 60 server acks the client's FIN
    s.ack(A_, ack=srv_fin)                     # 61 client still has not seen the server FIN
    assert s.st == [T.TIME_WAIT, T.CLOSING]
    s.fin(B_, retx=True)                       # 73 server FIN retransmitted
    s.ack(A_)                                  # 74 client acks it
    assert s.st == [T.TIME_WAIT, T.TIME_WAIT] and not s.anoms


def test_half_close_data_flows_other_way():
    s = opened().fin(A_).ack(B_)
    assert s.st == [T.FIN_WAIT_2, T.CLOSE_WAIT]
    for _ in range(5):
        s.data(B_).ack(A_)                     # the server keeps sending, the client keeps acking
    assert s.st == [T.FIN_WAIT_2, T.CLOSE_WAIT]
    s.fin(B_).ack(A_)
    assert s.st == [T.TIME_WAIT, T.CLOSED] and not s.anoms


def test_fin_retransmitted():
    s = opened().fin(A_).fin(A_, retx=True)
    assert s.st == [T.FIN_WAIT_1, T.CLOSE_WAIT]
    s.ack(B_)
    s.fin(A_, retx=True)                       # crossing the ACK (capture near B)
    assert s.st == [T.FIN_WAIT_2, T.CLOSE_WAIT]
    s.fin(B_).fin(B_, retx=True)               # B's FIN retransmitted: TIME_WAIT re-acks it
    assert s.st == [T.TIME_WAIT, T.LAST_ACK]
    s.ack(A_)
    assert s.st == [T.TIME_WAIT, T.CLOSED]
    s.fin(B_, retx=True).ack(A_)               # once more after the ACK: B already CLOSED
    assert s.anoms == [(B_, "unexpected_snd_fin_acks_theirs_in_CLOSED")]
    assert s.st == [T.TIME_WAIT, T.CLOSED]


def test_last_ack_fin_retransmission_and_duplicate_final_ack():
    s = opened().fin(B_).ack(A_).fin(A_).fin(A_, retx=True)
    assert s.st == [T.LAST_ACK, T.TIME_WAIT]
    s.ack(B_).ack(B_)                          # final ACK and its duplicate
    assert s.st == [T.CLOSED, T.TIME_WAIT] and not s.anoms


def test_data_after_fin():
    # The FIN's receiver keeps sending (legal half-close); the FIN's sender only ACKs.
    s = opened()
    before_fin = s.nxt[A_]
    s.fin(A_)
    s.data(B_, ack=before_fin)                 # sent before B saw the FIN
    assert s.st == [T.FIN_WAIT_1, T.CLOSE_WAIT]
    s.data(B_)                                 # acks the FIN
    assert s.st == [T.FIN_WAIT_2, T.CLOSE_WAIT]
    s.ack(A_)
    # A segment from the FIN's sender after its FIN is not an event the state machine can
    # tell from an ACK (the engine detects new bytes past the FIN by sequence number).
    s.data(A_)
    assert s.st == [T.FIN_WAIT_2, T.CLOSE_WAIT] and not s.anoms


def test_rst_after_fin_exchange():
    s = opened().fin(A_).fin(B_).ack(A_).rst(A_)
    assert s.st == [T.CLOSED, T.CLOSED]


# ---------------------------------------------------------------------- RST in every state
def _reach(target: TcpState) -> tuple[Sim, int]:
    """A capture that leaves endpoint ``ep`` in ``target``; returns (sim, ep)."""
    if target is T.CLOSED:
        return Sim(SYN).syn(A_).rst(B_), A_
    if target is T.LISTEN:
        return Sim(SYN).syn(A_), B_
    if target is T.SYN_SENT:
        return Sim(SYN).syn(A_), A_
    if target is T.SYN_RECEIVED:
        return Sim(SYN).syn(A_).synack(B_), B_
    if target is T.ESTABLISHED:
        return opened(), A_
    if target is T.FIN_WAIT_1:
        return opened().fin(A_), A_
    if target is T.FIN_WAIT_2:
        return opened().fin(A_).ack(B_), A_
    if target is T.CLOSE_WAIT:
        return opened().fin(A_), B_
    if target is T.CLOSING:
        s = opened()
        a = s.nxt[A_]
        return s.fin(A_).fin(B_, ack=a), A_
    if target is T.LAST_ACK:
        return opened().fin(A_).ack(B_).fin(B_), B_
    if target is T.TIME_WAIT:
        return opened().fin(A_).ack(B_).fin(B_), A_
    raise AssertionError(target)


@pytest.mark.parametrize("target", list(TcpState))
@pytest.mark.parametrize("sender", ["self", "peer"])
def test_rst_in_every_state(target, sender):
    s, ep = _reach(target)
    assert s.st[ep] is target and not s.anoms
    s.rst(ep if sender == "self" else ep ^ 1)
    if target is T.LISTEN and sender == "peer":
        assert s.st[ep] is T.LISTEN            # RFC 9293 §3.10.7.2: RST in LISTEN is ignored
    else:
        assert s.st[ep] is T.CLOSED
    assert not s.anoms


# ---------------------------------------------------------------------- pickups
def test_mid_stream_pickup():
    s = Sim(ACK | PSH)
    assert s.st == [T.ESTABLISHED, T.ESTABLISHED] and s.inferred
    s.data(A_).data(B_).ack(A_).fin(B_).ack(A_).fin(A_).ack(B_)
    assert s.st == [T.CLOSED, T.TIME_WAIT] and not s.anoms


def test_mid_close_pickup_first_segment_is_fin():
    s = Sim(FIN | ACK).fin(A_)
    assert s.st == [T.FIN_WAIT_1, T.CLOSE_WAIT] and s.inferred
    s.fin(B_)
    assert s.st == [T.TIME_WAIT, T.LAST_ACK]
    s.ack(A_)
    assert s.st == [T.TIME_WAIT, T.CLOSED] and not s.anoms


def test_mid_close_pickup_after_first_fin():
    # A's FIN happened before the capture started: B's FIN arrives first, then the last ACK.
    s = Sim(FIN | ACK).fin(A_)            # this is B's FIN really; endpoint 0 is its sender
    s.ack(B_)
    assert s.st == [T.FIN_WAIT_2, T.CLOSE_WAIT]
    s.data(B_)
    assert not s.anoms


def test_mid_stream_rst_pickup():
    s = Sim(RST).rst(A_)
    assert s.st == [T.CLOSED, T.CLOSED] and not s.anoms


# ---------------------------------------------------------------------- table properties
def test_table_covers_every_pair_with_state_or_anomaly():
    for s in TcpState:
        for e in Ev:
            new, anom = step(s, e)
            if (s, e) in TRANSITIONS:
                assert (new, anom) == (TRANSITIONS[(s, e)], None)
            else:
                assert new is s and anom == f"unexpected_{e.name.lower()}_in_{s.name}"


def test_rsts_close_every_synchronized_state():
    for s in TcpState:
        assert step(s, Ev.SND_RST)[0] is T.CLOSED
        assert step(s, Ev.RCV_RST)[0] is (T.LISTEN if s is T.LISTEN else T.CLOSED)


def test_step_returns_shared_objects():
    # no allocation per call: the same tuple comes back every time
    assert step(T.ESTABLISHED, Ev.SND_ACK) is step(T.ESTABLISHED, Ev.SND_ACK)
    assert classify(ACK, False) is classify(ACK, False)


@given(st.sampled_from(list(TcpState)), st.sampled_from(list(Ev)))
def test_step_every_state_every_event(s, e):
    new, anom = step(s, e)
    assert isinstance(new, TcpState)
    assert anom is None or (new is s and anom.startswith("unexpected_"))


@settings(max_examples=300)
@given(st.sampled_from(list(TcpState)), st.sampled_from(list(TcpState)),
       st.lists(st.tuples(st.integers(0, 1), st.integers(0, 0x1FF), st.booleans()), max_size=60))
def test_any_segment_sequence_never_raises(s0, s1, segs):
    state = [s0, s1]
    for d, flags, acks in segs:
        ev_s, ev_r = classify(flags, acks)
        assert isinstance(ev_s, Ev) and isinstance(ev_r, Ev)
        assert ev_s.name.startswith("SND_") and ev_r.name.startswith("RCV_")
        for ep, ev in ((d, ev_s), (d ^ 1, ev_r)):
            new, anom = step(state[ep], ev)
            assert isinstance(new, TcpState)
            assert anom is None or isinstance(anom, str)
            state[ep] = new


@given(st.one_of(st.integers(), st.none(), st.floats(allow_nan=True), st.text(max_size=3)),
       st.one_of(st.integers(), st.none(), st.floats(allow_nan=True), st.text(max_size=3)))
def test_step_garbage_never_raises(s, e):
    new, anom = step(s, e)
    assert isinstance(new, TcpState)
    assert anom is None or isinstance(anom, str)


@given(st.integers(), st.booleans())
def test_classify_and_initial_any_int(flags, acks):
    ev_s, ev_r = classify(flags, acks)
    assert isinstance(ev_s, Ev) and isinstance(ev_r, Ev)
    a, b, inferred = initial_states(flags)
    assert isinstance(a, TcpState) and isinstance(b, TcpState) and isinstance(inferred, bool)
