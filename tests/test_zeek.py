"""Zeek-compatible history / endpoint states / conn_state (tcpanalyze.zeek).

Expected strings come from Zeek's own logs in tests/data/traces (*.zeek-conn.log,
fin_retransmission.pcap.zeek-out.txt) and from Zeek's documented conn_state rules.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpanalyze.model import ACK, FIN, PSH, RST, SYN
from tcpanalyze.zeek import (CLOSED, ESTABLISHED, INACTIVE, PARTIAL, RESET, SYN_ACK_SENT, SYN_SENT,
                             ZeekConn)

O, R = True, False          # sent by the originator / the responder (construction orientation)
S_, SA, A, PA, FA, F_, RA, R_ = SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, FIN, RST | ACK, RST


def run(segs, orig_is_first_sender=True):
    """segs: (is_orig, flags, rel_seq, paylen[, win[, rtx]])"""
    z = ZeekConn(orig_is_first_sender=orig_is_first_sender)
    for s in segs:
        is_orig, flags, seq, n = s[:4]
        win = s[4] if len(s) > 4 else 65535
        rtx = s[5] if len(s) > 5 else False
        z.update(is_orig, flags, seq, n, win, rtx)
    return z


HANDSHAKE = [(O, S_, 0, 0), (R, SA, 0, 0), (O, A, 1, 0)]


# ---------------------------------------------------------------------- history strings
def test_normal_ShADadFf_SF():
    z = run(HANDSHAKE + [(O, PA, 1, 100), (R, A, 1, 0), (R, PA, 1, 500), (O, A, 101, 0),
                         (O, FA, 101, 0), (R, FA, 501, 0), (O, A, 102, 0)])
    assert z.history == "ShADadFf"
    assert (z.os, z.rs) == (CLOSED, CLOSED)
    assert z.conn_state() == "SF"


def test_pop3_ShAdDafF_SF():
    # pop3.pcap.zeek-conn.log: server banner first, server closes first
    z = run(HANDSHAKE + [(R, PA, 1, 40), (O, PA, 1, 6), (R, A, 41, 0), (R, PA, 41, 30), (O, PA, 7, 6),
                         (R, FA, 71, 0), (O, A, 13, 0), (O, FA, 13, 0), (R, A, 72, 0)])
    assert z.history == "ShAdDafF"
    assert z.conn_state() == "SF"


def test_rej_Sr():
    z = run([(O, S_, 0, 0), (R, RA, 0, 0)])
    assert z.history == "Sr"
    assert (z.os, z.rs) == (SYN_SENT, RESET)
    assert z.conn_state() == "REJ"


def test_rej_both_reset_sizes():
    z = run([(O, S_, 0, 0), (R, RA, 0, 0), (O, R_, 1, 0)])
    assert z.history == "SrR"
    assert (z.os, z.rs) == (RESET, RESET)
    assert z.conn_state(0, 0) == "REJ"
    assert z.conn_state(10, 0) == "RSTR"


# missing-syn.pcap, frame by frame (tshark: srcport, relative seq, len, flags, window).
MISSING_SYN = [
    (80, 0, 0, SA, 57344), (56730, 1, 0, A, 1460), (56730, 1, 98, PA, 1460), (80, 1, 1448, A, 57920),
    (80, 1449, 1448, A, 57920), (56730, 99, 0, A, 2184), (56730, 99, 0, A, 2908),
    (80, 2897, 1448, A, 57920), (80, 4345, 1448, A, 57920), (80, 5793, 1448, A, 57920),
    (80, 7241, 1448, A, 57920), (56730, 99, 0, A, 3632), (56730, 99, 0, A, 4356),
    (56730, 99, 0, A, 5080), (56730, 99, 0, A, 5804), (80, 8689, 729, PA, 57920),
    (56730, 99, 0, A, 6528), (56730, 99, 0, FA, 6528), (80, 9418, 0, A, 57920),
    (80, 9418, 0, FA, 57920), (56730, 100, 0, A, 6528),
]


def test_missing_syn_flipped_at_creation():
    # missing-syn.pcap.zeek-conn.log: "^hADdFaf", SF.  The first packet is a SYN/ACK from
    # port 80, so Zeek flips the roles when it creates the connection; the engine then
    # makes the client (port 56730) the originator.
    z = ZeekConn(orig_is_first_sender=False)
    for sport, seq, n, flags, win in MISSING_SYN:
        z.update(sport == 56730, flags, seq, n, win, False)
    assert z.history == "^hADdFaf"
    assert z.flipped and not z.orig_is_first_sender
    assert (z.os, z.rs) == (CLOSED, CLOSED)
    assert z.conn_state() == "SF"


def test_missing_syn_flipped_by_H_then_A_rule():
    # The same packets when the SYN/ACK's source port is not a likely server port: Zeek keeps
    # the first sender as originator ("H"), then flips on the first ACK/data (PR
    # zeek/zeek#2191).  The engine keeps passing is_orig in its own, unflipped orientation.
    z = ZeekConn(orig_is_first_sender=True)
    for sport, seq, n, flags, win in MISSING_SYN:
        z.update(sport == 80, flags, seq, n, win, False)
    assert z.history == "^hADdFaf"
    assert z.flipped and not z.orig_is_first_sender
    assert (z.os, z.rs) == (CLOSED, CLOSED)
    assert z.conn_state() == "SF"


def test_H_then_data_from_synack_sender_flips_too():
    z = run([(O, SA, 0, 0), (O, PA, 1, 10)])
    assert z.history == "^hd"
    assert not z.orig_is_first_sender


def test_H_alone_is_not_flipped():
    z = run([(O, SA, 0, 0), (O, SA, 0, 0)])       # SYN/ACK retransmitted: still "H", backscatter
    assert z.history == "H"
    assert not z.flipped and z.os == SYN_ACK_SENT
    assert z.conn_state() == "OTH"


def test_syn_synack_reversal_flips():
    # SYN/ACK captured before its SYN (Zeek: "SYN/SYN-ACK reversal", UpdateInactiveState)
    z = run([(O, SA, 0, 0), (R, S_, 0, 0), (R, A, 1, 0)])
    assert z.history == "Hs^A"
    assert z.flipped and not z.orig_is_first_sender
    assert (z.os, z.rs) == (ESTABLISHED, ESTABLISHED)
    assert z.conn_state() == "S1"


def test_retransmissions_logarithmic_T():
    segs = HANDSHAKE + [(O, PA, 1, 100)]
    segs += [(O, PA, 1, 100, 65535, True)] * 100          # 100 retransmissions of the same bytes
    z = run(segs)
    assert z.history == "ShADTTT"                         # 1st, 10th, 100th
    z = run(HANDSHAKE + [(O, PA, 1, 100)] + [(O, PA, 1, 100, 65535, True)] * 99)
    assert z.history == "ShADTT"


def test_retransmit_fast009_style_ShADaGdgtR_RSTO():
    # retransmit-fast009.pcap.zeek-conn-1.log: "ShADaGdgtR", RSTO (gaps reported by reassembly)
    z = ZeekConn()
    for s in HANDSHAKE + [(O, PA, 1, 100), (R, A, 1, 0)]:
        z.update(*s, 65535, False)
    z.gap(True)
    z.update(R, PA, 1, 1000, 65535, False)
    z.gap(False)
    z.update(R, PA, 1, 1000, 65535, True)
    z.update(O, RA, 201, 0, 0, False)
    assert z.history == "ShADaGdgtR"
    assert z.conn_state() == "RSTO"


def test_zero_window_W_rules():
    z = run(HANDSHAKE + [(O, PA, 1, 100), (R, A, 1, 0, 0)])   # responder advertises 0
    assert z.history == "ShADaw"
    z = run(HANDSHAKE + [(R, A, 1, 0, 0)] * 10)                 # logarithmic: 1st and 10th
    assert z.history == "ShAaww"
    z = run(HANDSHAKE + [(R, RA, 1, 0, 0)])                     # not with a RST
    assert z.history == "ShAr"
    z = run(HANDSHAKE + [(O, FA, 1, 0), (R, A, 1, 0, 0)])       # not after the peer's FIN
    assert z.history == "ShAFa"


def test_checksum_C():
    z = run(HANDSHAKE)
    for _ in range(10):
        z.checksum_error(False)
    assert z.history == "ShAcc"


def test_repeat_rules_SFR():
    # SYN retried with the same ISN: one S; a new ISN: another S
    assert run([(O, S_, 0, 0), (O, S_, 0, 0), (O, S_, 0, 0)]).history == "S"
    assert run([(O, S_, 0, 0), (O, S_, 77, 0)]).history == "SS"
    # FIN retransmitted (same end seq) vs FIN at a new end seq (taken after its data)
    base = HANDSHAKE + [(O, FA, 1, 0)]
    assert run(base + [(O, FA, 1, 0)]).history == "ShAF"
    assert run(base + [(O, FA, 1, 10)]).history == "ShAFF"
    # RSTs at different seqs repeat, same seq doesn't
    assert run(HANDSHAKE + [(O, RA, 1, 0), (O, RA, 1, 0)]).history == "ShAR"
    assert run(HANDSHAKE + [(O, RA, 1, 0), (O, RA, 5, 0)]).history == "ShARR"


def test_once_only_ADIQ():
    z = run(HANDSHAKE + [(O, A, 1, 0), (O, PA, 1, 5), (O, PA, 6, 5),
                         (O, FIN | RST, 11, 0), (O, FIN | RST | ACK, 11, 0),
                         (R, SYN | FIN, 0, 0), (R, SYN | RST, 0, 0)])
    assert z.history == "ShADIq"


def test_fin_retransmission_trace_states():
    # fin_retransmission.pcap: S, FIN (no ACK) before the SYN/ACK, SYN/ACK, FIN+ACK at the
    # same seq, RST.  Zeek's endpoint records: orig state=5 (CLOSED), resp state=6 (RESET).
    z = run([(O, S_, 0, 0), (O, F_, 0, 0), (R, SA, 0, 0), (O, FA, 0, 0), (R, R_, 1, 0)])
    assert (z.os, z.rs) == (5, 6)
    assert z.history == "SFhr"
    assert z.conn_state() == "RSTR"


# ---------------------------------------------------------------------- conn_state values
def test_S0():
    z = run([(O, S_, 0, 0), (O, S_, 0, 0)])
    assert z.history == "S" and z.conn_state() == "S0"
    # ssh.client-side-half-duplex: only the client's side captured
    z = run([(O, S_, 0, 0), (O, A, 1, 0), (O, PA, 1, 30)])
    assert z.history == "SAD" and z.conn_state() == "S0"


def test_S1():
    z = run(HANDSHAKE + [(O, PA, 1, 10), (R, PA, 1, 10)])
    assert z.history == "ShADd" and z.conn_state() == "S1"


def test_S2():
    z = run(HANDSHAKE + [(O, PA, 1, 10), (O, FA, 11, 0), (R, A, 1, 0)])
    assert z.history == "ShADFa" and z.conn_state() == "S2"


def test_S3():
    z = run(HANDSHAKE + [(R, PA, 1, 10), (R, FA, 11, 0), (O, A, 1, 0)])
    assert z.history == "ShAdf" and z.conn_state() == "S3"


def test_SH():
    z = run([(O, S_, 0, 0), (O, FA, 1, 0)])
    assert z.history == "SF" and z.conn_state() == "SH"
    z = run([(O, S_, 0, 0), (O, A, 1, 0), (O, PA, 1, 10), (O, FA, 11, 0)])
    assert z.history == "SADF" and z.conn_state() == "SH"
    z = run([(O, PA, 1, 10), (O, A, 11, 0), (O, FA, 11, 0)])    # midstream, one side only
    assert z.history == "DAF" and z.conn_state() == "SH"
    z = run([(O, FA, 1, 0), (R, A, 1, 0)])                       # Teredo.pcap: "Fa", SH
    assert z.history == "Fa" and z.conn_state() == "SH"


def test_SHR():
    z = run([(R, SA, 0, 0), (R, FA, 1, 0)], orig_is_first_sender=False)
    assert z.history == "^hf" and z.conn_state() == "SHR"
    # Teredo.pcap: "^fA", SHR (a FIN from port 80 starts the connection)
    z = run([(R, FA, 1, 0), (O, A, 1, 0)], orig_is_first_sender=False)
    assert z.history == "^fA" and z.conn_state() == "SHR"


def test_RSTO():
    z = run(HANDSHAKE + [(O, PA, 1, 10), (R, A, 1, 0), (R, PA, 1, 10), (O, RA, 11, 0)])
    assert z.history == "ShADadR" and z.conn_state() == "RSTO"      # Teredo.pcap


def test_RSTR():
    z = run(HANDSHAKE + [(O, PA, 1, 10), (R, RA, 1, 0)])
    assert z.history == "ShADr" and z.conn_state() == "RSTR"


def test_RSTOS0():
    z = run([(O, S_, 0, 0), (O, R_, 1, 0)])
    assert z.history == "SR"
    assert (z.os, z.rs) == (RESET, INACTIVE)
    assert z.conn_state() == "RSTOS0"


def test_RSTRH():
    z = run([(R, SA, 0, 0), (R, R_, 1, 0)], orig_is_first_sender=False)
    assert z.history == "^hr" and z.conn_state() == "RSTRH"
    z = run([(R, R_, 1, 0)], orig_is_first_sender=False)            # Teredo.pcap: "^r", RSTRH
    assert z.history == "^r" and z.conn_state() == "RSTRH"


def test_OTH():
    z = run([(O, R_, 1, 0)])                                         # Teredo.pcap: "R", OTH
    assert z.history == "R" and z.conn_state() == "OTH"
    z = run([(O, PA, 1, 10), (R, PA, 1, 10)])                        # midstream both ways
    assert z.history == "Dd" and (z.os, z.rs) == (PARTIAL, PARTIAL)
    assert z.conn_state() == "OTH"


def test_fin_then_rst_is_normal_close():
    # UpdateEstablishedState: a peer that went CLOSED then RESET is put back to CLOSED
    z = run(HANDSHAKE + [(O, FA, 1, 0), (O, RA, 2, 0), (R, FA, 1, 0)])
    assert z.history == "ShAFRf"
    assert (z.os, z.rs) == (CLOSED, CLOSED)
    assert z.conn_state() == "SF"


def test_responder_ack_before_synack_ignored():
    # "eccentric TCPs" ACK the SYN before the SYN/ACK: not a partial connection
    z = run([(O, S_, 0, 0), (R, A, 0, 0)])
    assert (z.os, z.rs) == (SYN_SENT, INACTIVE)
    assert z.conn_state() == "S0"


# ---------------------------------------------------------------------- robustness
@settings(max_examples=200)
@given(st.booleans(), st.lists(st.tuples(st.booleans(), st.integers(0, 0x1FF), st.integers(0, 2 ** 32),
                                         st.integers(0, 1500), st.integers(0, 65535), st.booleans()),
                               max_size=40))
def test_update_never_raises(first, segs):
    z = ZeekConn(orig_is_first_sender=first)
    for s in segs:
        z.update(*s)
    z.gap(True)
    z.checksum_error(False)
    assert z.conn_state() in {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                              "SH", "SHR", "OTH"}
    assert isinstance(z.history, str)
    assert 0 <= z.os <= 6 and 0 <= z.rs <= 6


def test_update_garbage_does_not_raise():
    z = ZeekConn()
    z.update(True, None, 0, 0, 0, False)
    z.update(True, SYN, "x", 0, 0, False)
    z.update(None, ACK, 0, None, None, None)
    assert z.conn_state() in {"S0", "OTH"}
