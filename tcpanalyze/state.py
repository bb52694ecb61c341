"""RFC 9293 endpoint state machine, as a passive observer can infer it.

Theory of operation
-------------------
A host's TCP state is private; a capture only shows the segments on the wire at one point
between the hosts.  ``tcpanalyze`` keeps one :class:`TcpState` per endpoint of a connection
and moves it with the segments it sees:

* every captured segment is *sent* by one endpoint and *received* by the other, so
  :func:`classify` turns it into two events, ``(sender event, receiver event)``;
* :func:`step` applies one event to one endpoint through the single table
  :data:`TRANSITIONS`.  A pair that is not in the table is an *anomaly*: the state does not
  change and the anomaly id ``unexpected_<event>_in_<STATE>`` is returned
  (e.g. ``unexpected_snd_syn_in_ESTABLISHED``);
* :func:`initial_states` chooses the starting states from the first captured segment.

The observer sees a segment when it passes the capture point, not when the host sends or
processes it, so the table is the RFC's machine (RFC 9293 §3.3.2, Figure 5; segment
processing in §3.10.7) with the detours that capture placement, capture loss and
retransmission produce added, each with a comment.  Timers (2 MSL, user timeout) are not
events here: TIME_WAIT simply stays until the engine decides the connection is over.

The RFC machine (RFC 9293 §3.3.2, https://www.rfc-editor.org/rfc/rfc9293 ; redrawn)::

                                   +----------+
              passive OPEN  .------|  CLOSED  |------.  active OPEN
                            |      +----------+      |  snd SYN
                            v        ^      ^        v
                     +----------+  CLOSE  CLOSE  +----------+
                     |  LISTEN  |----'      '----| SYN-SENT |
                     +----------+                +----------+
           rcv SYN     |      |  SEND / snd SYN     ^  |   |
           snd SYN,ACK |      '---------------------'  |   | rcv SYN,ACK
                       v                               |   | snd ACK
                 +----------+  rcv SYN / snd SYN,ACK   |   |
                 | SYN-RCVD |<-------------------------'   |
                 +----------+   (simultaneous open)        |
     CLOSE / snd FIN |    | rcv ACK of SYN                 |
          .----------'    v                                v
          |      +------------------------------------------------+
          |      |                   ESTABLISHED                  |
          |      +------------------------------------------------+
          |        | CLOSE / snd FIN                  | rcv FIN / snd ACK
          |        v                                  v
          '--> +------------+                    +------------+
               | FIN-WAIT-1 |                    | CLOSE-WAIT |
               +------------+                    +------------+
    rcv ACK of FIN |     | rcv FIN / snd ACK           | CLOSE / snd FIN
                   v     v                             v
        +------------+  +---------+               +----------+
        | FIN-WAIT-2 |  | CLOSING |               | LAST-ACK |
        +------------+  +---------+               +----------+
   rcv FIN  |                | rcv ACK of FIN          | rcv ACK of FIN
   snd ACK  v                v                         v
        +-------------------------+  2 MSL timeout +----------+
        |        TIME-WAIT        |--------------->|  CLOSED  |
        +-------------------------+                +----------+

Not drawn: the RST arrows (RFC 9293 §3.10.7.4: in every synchronized state a valid RST
closes the connection; in SYN-RCVD reached from LISTEN it returns to LISTEN; in LISTEN it
is ignored), the FIN-WAIT-1 shortcut "rcv FIN that also acks our FIN -> TIME-WAIT"
(§3.10.7.4, "if our FIN has been ACKed ... enter TIME-WAIT") and SYN-RCVD's "rcv FIN ->
CLOSE-WAIT" (§3.10.7.4, eighth step).

The observer differs from a host in these ways (all encoded in :data:`TRANSITIONS`):

* it sees "rcv" only as "the segment passed the capture point on its way to the host";
* a segment missing from the capture (the SYN/ACK, the handshake's ACK) is inferred from
  the next one that could only be sent after it (``SND_ACK`` in SYN_SENT/SYN_RECEIVED/LISTEN);
* retransmitted SYN, SYN/ACK, FIN and final ACK keep the state;
* segments in flight when one side reset or finished arrive "after" the end: receiving them
  in CLOSED is not an anomaly (the *sender's* event carries the anomaly, so each stray
  segment is reported once);
* a FIN passing the capture point has not necessarily reached its receiver.  When the
  receiver's own FIN does not acknowledge it (``SND_FIN`` rather than
  ``SND_FIN_ACKS_THEIRS`` in CLOSE_WAIT) the receiver closed actively: the FINs crossed
  (or the first one was lost beyond the capture point), which is RFC 9293's simultaneous
  close, so it goes to CLOSING instead of LAST_ACK.

Events are lower-cased in anomaly ids; states keep their names (``str(state)`` is the name).
"""
from __future__ import annotations

import enum

try:
    import cython
except ImportError:  # plain Python without Cython installed: the declarations are no-ops
    from tcpanalyze import _cyshim as cython

from tcpanalyze.model import ACK, FIN, RST, SYN

__all__ = ["TcpState", "Ev", "TRANSITIONS", "classify", "step", "initial_states", "anomaly_id"]


class TcpState(enum.IntEnum):
    """RFC 9293 §3.3.2 connection states (``str()`` and ``format()`` give the name)."""

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10

    def __str__(self) -> str:          # Python 3.11 made IntEnum.__str__ the number; keep the name
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)


class Ev(enum.IntEnum):
    """What one segment means for ONE endpoint: something it sent (SND_*) or received (RCV_*)."""

    SND_SYN = 0              # SYN without ACK
    SND_SYNACK = 1           # SYN with ACK
    SND_FIN = 2
    SND_RST = 3
    SND_ACK = 4              # any segment without SYN/FIN/RST: pure ACK or data
    RCV_SYN = 5
    RCV_SYNACK = 6
    RCV_FIN = 7              # FIN from the peer that does not ack our FIN
    RCV_FIN_ACKS_OURS = 8    # FIN from the peer whose ACK covers our FIN
    RCV_ACK_OF_FIN = 9       # non-FIN (no SYN/RST) segment whose ACK covers our FIN
    RCV_ACK = 10             # other segment without SYN/FIN/RST
    RCV_RST = 11
    # Added to the list the engine was designed with (values above unchanged): a FIN whose
    # ACK covers the peer's FIN.  It tells "closing second" (CLOSE_WAIT -> LAST_ACK) from
    # crossing FINs (a FIN that does not ack a FIN already seen: CLOSE_WAIT -> CLOSING).
    SND_FIN_ACKS_THEIRS = 12

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)


S = TcpState
E = Ev

_RSTS = ((E.SND_RST, S.CLOSED), (E.RCV_RST, S.CLOSED))

#: The one transition table: (state, event) -> new state.  Pairs not listed are anomalies.
TRANSITIONS: dict[tuple[TcpState, Ev], TcpState] = {
    # ---- CLOSED ----------------------------------------------------------------------
    (S.CLOSED, E.SND_SYN): S.SYN_SENT,             # active open
    (S.CLOSED, E.SND_RST): S.CLOSED,               # answer to a segment for no connection
    (S.CLOSED, E.RCV_RST): S.CLOSED,
    # A new SYN on the 4-tuple after the connection ended: a new incarnation.  If something
    # listens it answers SYN/ACK (LISTEN -> SYN_RECEIVED), otherwise RST (LISTEN -> CLOSED).
    (S.CLOSED, E.RCV_SYN): S.LISTEN,
    # Segments in flight when this side reset, or the peer's retransmissions of its final
    # ACK / FIN after our LAST_ACK ended: they reach a closed endpoint, which answers RST or
    # drops them.  The sender's SND_* event is where an anomaly is reported, if any.
    (S.CLOSED, E.RCV_ACK): S.CLOSED,
    (S.CLOSED, E.RCV_ACK_OF_FIN): S.CLOSED,
    (S.CLOSED, E.RCV_FIN): S.CLOSED,
    (S.CLOSED, E.RCV_FIN_ACKS_OURS): S.CLOSED,

    # ---- LISTEN (the passive side, from the moment the SYN is seen) -------------------
    (S.LISTEN, E.RCV_SYN): S.LISTEN,               # SYN seen; SYN-RCVD once the SYN/ACK is seen
    (S.LISTEN, E.SND_SYNACK): S.SYN_RECEIVED,
    (S.LISTEN, E.SND_SYN): S.SYN_SENT,             # a listener may open actively (RFC 9293 §3.10.2)
    (S.LISTEN, E.SND_RST): S.CLOSED,               # refused: nothing listening on the port
    (S.LISTEN, E.RCV_RST): S.LISTEN,               # §3.10.7.2: an RST in LISTEN is ignored
    (S.LISTEN, E.RCV_ACK): S.LISTEN,               # SYN/ACK not captured, or an ACK probe (answered by RST)
    # Data or an ACK from the passive side before any SYN/ACK was captured: the SYN/ACK
    # was lost by the capture (it can only send after synchronizing).  Zeek's note on
    # "eccentric TCPs" that ACK the SYN before their SYN/ACK also lands here; the SYN/ACK
    # that follows is then accepted in ESTABLISHED as a retransmission.
    (S.LISTEN, E.SND_ACK): S.ESTABLISHED,

    # ---- SYN_SENT ----------------------------------------------------------------------
    (S.SYN_SENT, E.SND_SYN): S.SYN_SENT,           # SYN retry (RFC 6298 backoff)
    (S.SYN_SENT, E.RCV_SYNACK): S.ESTABLISHED,
    (S.SYN_SENT, E.RCV_SYN): S.SYN_RECEIVED,       # simultaneous open (§3.5, Figure 8)
    (S.SYN_SENT, E.RCV_RST): S.CLOSED,             # refused
    (S.SYN_SENT, E.SND_RST): S.CLOSED,
    (S.SYN_SENT, E.SND_ACK): S.ESTABLISHED,        # SYN/ACK not captured: the opener only ACKs after it
    (S.SYN_SENT, E.RCV_ACK): S.SYN_SENT,           # eccentric ACK before the SYN/ACK; or SYN/ACK not captured
    # A SYN/ACK can only answer a SYN: simultaneous open whose SYNs crossed so that the
    # peer's SYN passed the capture point first (we were still LISTEN for the observer when
    # it went by), or a peer SYN the capture lost.
    (S.SYN_SENT, E.SND_SYNACK): S.SYN_RECEIVED,
    # Deliberately NOT listed: SND_FIN in SYN_SENT.  RFC 9293 §3.10.4 says CLOSE in
    # SYN-SENT deletes the TCB without sending anything, yet some stacks (seen from macOS
    # in tests/data/traces/fin_retransmission.pcap) send a FIN before the SYN/ACK
    # arrives.  Reporting it and keeping SYN_SENT lets the SYN/ACK that follows establish
    # normally.  A FIN from the peer (RCV_FIN) is likewise reported: the opener only
    # leaves SYN_SENT on its own evidence (SND_ACK) or on the SYN/ACK.

    # ---- SYN_RECEIVED --------------------------------------------------------------------
    (S.SYN_RECEIVED, E.SND_SYNACK): S.SYN_RECEIVED,   # SYN/ACK retransmission
    (S.SYN_RECEIVED, E.RCV_SYN): S.SYN_RECEIVED,      # the peer's SYN retry
    (S.SYN_RECEIVED, E.RCV_ACK): S.ESTABLISHED,
    (S.SYN_RECEIVED, E.RCV_SYNACK): S.ESTABLISHED,    # simultaneous open
    (S.SYN_RECEIVED, E.RCV_FIN): S.CLOSE_WAIT,        # §3.10.7.4: FIN acking our SYN
    (S.SYN_RECEIVED, E.SND_FIN): S.FIN_WAIT_1,        # CLOSE in SYN-RCVD (§3.10.4)
    (S.SYN_RECEIVED, E.SND_RST): S.CLOSED,
    (S.SYN_RECEIVED, E.RCV_RST): S.CLOSED,
    # Data from the passive side (a server-first banner) before the handshake ACK was
    # captured: the ACK was lost by the capture or overtaken at the capture point.
    (S.SYN_RECEIVED, E.SND_ACK): S.ESTABLISHED,

    # ---- ESTABLISHED ---------------------------------------------------------------------
    (S.ESTABLISHED, E.SND_ACK): S.ESTABLISHED,
    (S.ESTABLISHED, E.RCV_ACK): S.ESTABLISHED,
    (S.ESTABLISHED, E.SND_FIN): S.FIN_WAIT_1,
    (S.ESTABLISHED, E.RCV_FIN): S.CLOSE_WAIT,
    (S.ESTABLISHED, E.SND_SYNACK): S.ESTABLISHED,     # SYN/ACK retransmitted (its ACK was lost)
    (S.ESTABLISHED, E.RCV_SYNACK): S.ESTABLISHED,
    (S.ESTABLISHED, E.SND_RST): S.CLOSED,
    (S.ESTABLISHED, E.RCV_RST): S.CLOSED,
    # Our FIN acks a FIN of the peer we were never moved by (its RCV_FIN was an anomaly,
    # e.g. a FIN before the SYN/ACK): we closed second.
    (S.ESTABLISHED, E.SND_FIN_ACKS_THEIRS): S.LAST_ACK,

    # ---- FIN_WAIT_1: our FIN sent, not yet acknowledged ------------------------------------
    (S.FIN_WAIT_1, E.RCV_ACK_OF_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, E.RCV_FIN): S.CLOSING,             # simultaneous close
    (S.FIN_WAIT_1, E.RCV_FIN_ACKS_OURS): S.TIME_WAIT,  # FIN+ACK: the "3-way close"
    (S.FIN_WAIT_1, E.SND_FIN): S.FIN_WAIT_1,          # FIN retransmission
    (S.FIN_WAIT_1, E.SND_ACK): S.FIN_WAIT_1,          # ACKs for the peer's data (half-close)
    (S.FIN_WAIT_1, E.RCV_ACK): S.FIN_WAIT_1,          # peer data, or ACKs below our FIN
    (S.FIN_WAIT_1, E.SND_RST): S.CLOSED,
    (S.FIN_WAIT_1, E.RCV_RST): S.CLOSED,

    # ---- FIN_WAIT_2: our FIN acknowledged, the peer may still send ---------------------------
    (S.FIN_WAIT_2, E.RCV_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_2, E.RCV_FIN_ACKS_OURS): S.TIME_WAIT,
    (S.FIN_WAIT_2, E.RCV_ACK): S.FIN_WAIT_2,          # half-close: the peer keeps sending data
    (S.FIN_WAIT_2, E.RCV_ACK_OF_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_2, E.SND_ACK): S.FIN_WAIT_2,
    # Our FIN retransmitted, crossing the peer's ACK: at a capture point near the peer the
    # ACK is seen before the retransmission that was already on its way.
    (S.FIN_WAIT_2, E.SND_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_2, E.SND_RST): S.CLOSED,
    (S.FIN_WAIT_2, E.RCV_RST): S.CLOSED,

    # ---- CLOSE_WAIT: the peer's FIN received; we may still send ------------------------------
    (S.CLOSE_WAIT, E.SND_ACK): S.CLOSE_WAIT,          # half-close: data keeps flowing our way out
    (S.CLOSE_WAIT, E.RCV_ACK): S.CLOSE_WAIT,
    (S.CLOSE_WAIT, E.RCV_FIN): S.CLOSE_WAIT,          # the peer's FIN retransmitted
    (S.CLOSE_WAIT, E.SND_FIN_ACKS_THEIRS): S.LAST_ACK,
    # Our FIN does not ack the peer's FIN although that FIN has passed the capture point:
    # we had not received it when we closed (crossing FINs, or the FIN was lost after the
    # capture point -- tests/data/traces/bruteforce.pcap streams 2 and 3).  We closed
    # actively: RFC 9293 simultaneous close (§3.6, Figure 13), FIN-WAIT-1 -> CLOSING.
    (S.CLOSE_WAIT, E.SND_FIN): S.CLOSING,
    (S.CLOSE_WAIT, E.SND_RST): S.CLOSED,
    (S.CLOSE_WAIT, E.RCV_RST): S.CLOSED,

    # ---- CLOSING: both FINs sent, ours not yet acknowledged -----------------------------------
    (S.CLOSING, E.RCV_ACK_OF_FIN): S.TIME_WAIT,
    (S.CLOSING, E.RCV_FIN_ACKS_OURS): S.TIME_WAIT,    # the peer's FIN retransmitted, now acking ours
    (S.CLOSING, E.SND_ACK): S.CLOSING,
    (S.CLOSING, E.RCV_ACK): S.CLOSING,
    (S.CLOSING, E.RCV_FIN): S.CLOSING,
    (S.CLOSING, E.SND_FIN): S.CLOSING,               # our FIN retransmitted ...
    (S.CLOSING, E.SND_FIN_ACKS_THEIRS): S.CLOSING,   # ... after the peer's FIN reached us
    (S.CLOSING, E.SND_RST): S.CLOSED,
    (S.CLOSING, E.RCV_RST): S.CLOSED,

    # ---- LAST_ACK: FIN sent after the peer's FIN; waiting for its ACK --------------------------
    (S.LAST_ACK, E.RCV_ACK_OF_FIN): S.CLOSED,
    (S.LAST_ACK, E.RCV_FIN_ACKS_OURS): S.CLOSED,      # the peer's FIN retransmitted with the ACK
    (S.LAST_ACK, E.SND_FIN): S.LAST_ACK,              # FIN retransmission
    (S.LAST_ACK, E.SND_FIN_ACKS_THEIRS): S.LAST_ACK,
    (S.LAST_ACK, E.SND_ACK): S.LAST_ACK,
    (S.LAST_ACK, E.RCV_ACK): S.LAST_ACK,
    (S.LAST_ACK, E.RCV_FIN): S.LAST_ACK,
    (S.LAST_ACK, E.SND_RST): S.CLOSED,
    (S.LAST_ACK, E.RCV_RST): S.CLOSED,

    # ---- TIME_WAIT -------------------------------------------------------------------------
    # RFC 9293 §3.10.7.4: "The only thing that can arrive in this state is a
    # retransmission of the remote FIN.  Acknowledge it, and restart the 2 MSL timeout."
    (S.TIME_WAIT, E.RCV_FIN): S.TIME_WAIT,
    (S.TIME_WAIT, E.RCV_FIN_ACKS_OURS): S.TIME_WAIT,
    (S.TIME_WAIT, E.SND_ACK): S.TIME_WAIT,            # the final ACK and its retransmissions
    (S.TIME_WAIT, E.RCV_ACK): S.TIME_WAIT,            # peer segments that were in flight
    (S.TIME_WAIT, E.RCV_ACK_OF_FIN): S.TIME_WAIT,
    (S.TIME_WAIT, E.SND_FIN): S.TIME_WAIT,            # our FIN retransmission crossing the peer's ACK
    (S.TIME_WAIT, E.SND_FIN_ACKS_THEIRS): S.TIME_WAIT,
    # RFC 1337 ("TIME-WAIT assassination") recommends that a host ignore RST in TIME-WAIT;
    # many do not, and the observer cannot tell, so an RST ends the connection here.
    (S.TIME_WAIT, E.RCV_RST): S.CLOSED,
    (S.TIME_WAIT, E.SND_RST): S.CLOSED,
    # A new SYN reusing the 4-tuple while TIME_WAIT lasts: hosts accept it when its ISN is
    # above the old sequence space (RFC 6191; BSD/Linux behaviour).  The engine normally
    # starts a new connection on it; should it reach this table it is a new incarnation.
    (S.TIME_WAIT, E.RCV_SYN): S.LISTEN,
    (S.TIME_WAIT, E.SND_SYN): S.SYN_SENT,
}

del S, E

_NEV = cython.declare(cython.longlong, len(Ev))


def anomaly_id(state: TcpState, ev: Ev) -> str:
    """``unexpected_<event>_in_<STATE>`` for a pair that is not in :data:`TRANSITIONS`."""
    return f"unexpected_{Ev(ev).name.lower()}_in_{TcpState(state).name}"


# Precomputed step results, keyed by ``state * len(Ev) + event``: (new state, None) for a
# transition, (same state, anomaly id) otherwise.  step() returns these tuples as they are.
_STEP: dict[int, tuple[TcpState, str | None]] = {}
for _s in TcpState:
    for _e in Ev:
        _n = TRANSITIONS.get((_s, _e))
        _STEP[_s * _NEV + _e] = (_n, None) if _n is not None else (_s, anomaly_id(_s, _e))
del _s, _e, _n


def step(state: TcpState, ev: Ev) -> tuple[TcpState, str | None]:
    """Apply one event to one endpoint: ``(new_state, None)`` or ``(state, "unexpected_...")``.

    Never raises.  For a value that is not a TcpState/Ev it returns a valid state
    (the given one when it is one, else CLOSED) and an anomaly id.
    """
    try:
        if 0 <= ev < _NEV:
            r = _STEP.get(state * _NEV + ev)
            if r is not None:
                return r
    except Exception:           # non-numeric input
        pass
    return _step_invalid(state, ev)


def _step_invalid(state, ev) -> tuple[TcpState, str]:
    try:
        st = TcpState(state)
    except Exception:
        st = TcpState.CLOSED
    try:
        name = Ev(ev).name.lower()
    except Exception:
        name = "invalid_event"
    return st, f"unexpected_{name}_in_{st.name}"


# ---- classification --------------------------------------------------------------------
_FLAG_MASK = cython.declare(cython.longlong, FIN | SYN | RST | ACK)      # 0x17: the only bits that matter here


def _classify_slow(flags: int, acks_peer_fin: bool) -> tuple[Ev, Ev]:
    if flags & RST:
        return Ev.SND_RST, Ev.RCV_RST
    if flags & SYN:
        return (Ev.SND_SYNACK, Ev.RCV_SYNACK) if flags & ACK else (Ev.SND_SYN, Ev.RCV_SYN)
    acks = acks_peer_fin and bool(flags & ACK)      # without the ACK bit nothing is acknowledged
    if flags & FIN:
        if acks:
            return Ev.SND_FIN_ACKS_THEIRS, Ev.RCV_FIN_ACKS_OURS
        return Ev.SND_FIN, Ev.RCV_FIN
    return Ev.SND_ACK, (Ev.RCV_ACK_OF_FIN if acks else Ev.RCV_ACK)


# index: (flags & 0x17) + 32 * acks_peer_fin
_CLASSIFY: tuple[tuple[Ev, Ev], ...] = tuple(
    _classify_slow(i & 31, bool(i & 32)) for i in range(64))


def classify(flags: int, acks_peer_fin: bool) -> tuple[Ev, Ev]:
    """``(sender event, receiver event)`` of one segment.

    RST wins over SYN, SYN over FIN; SYN with ACK is a SYN/ACK.  ``acks_peer_fin`` says
    whether the segment's ACK field covers the *receiver's* FIN (engine: the receiver has
    sent a FIN and ``ack >= its FIN seq + 1``); it is ignored when the ACK bit is clear.
    A table lookup; never raises.
    """
    try:
        return _CLASSIFY[(flags & _FLAG_MASK) | (32 if acks_peer_fin else 0)]
    except Exception:
        return _CLASSIFY[0]


# ---- the engine's per-segment calls ---------------------------------------------------------
# classify() and step() check their arguments, so any value is accepted; the engine passes only
# valid ones and reads the same tables by index (compiled: C functions, state.pxd, and C reads
# of the tuples).
_STEPS = cython.declare(tuple, tuple(_STEP[i] for i in range(len(TcpState) * len(Ev))))
_EVENTS = cython.declare(tuple, tuple((int(s) << 4) | int(r) for s, r in _CLASSIFY))


@cython.ccall
@cython.locals(flags=cython.longlong, acks_peer_fin=cython.bint)
@cython.returns(cython.longlong)
def event_codes(flags, acks_peer_fin):
    """``classify(flags, acks_peer_fin)`` as one int: ``(sender event << 4) | receiver event``."""
    return _EVENTS[(flags & _FLAG_MASK) | (32 if acks_peer_fin else 0)]


@cython.ccall
@cython.locals(state=cython.longlong, ev=cython.longlong)
@cython.returns(tuple)
def step_code(state, ev):
    """``step(state, ev)`` for a valid state and event (ints or the enums), unchecked."""
    return _STEPS[state * _NEV + ev]


# ---- initial states ----------------------------------------------------------------------
def _initial_slow(flags: int) -> tuple[TcpState, TcpState, bool]:
    if flags & SYN and not flags & RST:
        if flags & ACK:
            # SYN/ACK first (the SYN was not captured): its sender listened, its receiver
            # had sent the SYN.  The engine then applies SND_SYNACK / RCV_SYNACK.
            return TcpState.LISTEN, TcpState.SYN_SENT, True
        # A pure SYN: the engine then applies SND_SYN (-> SYN_SENT) and RCV_SYN (LISTEN).
        return TcpState.CLOSED, TcpState.LISTEN, False
    # Anything else: picked up mid-stream (or mid-close); both sides assumed synchronized.
    return TcpState.ESTABLISHED, TcpState.ESTABLISHED, True


_INITIAL = tuple(_initial_slow(i) for i in range(32))


def initial_states(flags: int) -> tuple[TcpState, TcpState, bool]:
    """Starting states for (sender of the first captured segment, its peer, inferred).

    Pure SYN -> (CLOSED, LISTEN, False); SYN/ACK -> (LISTEN, SYN_SENT, True); anything
    else -> (ESTABLISHED, ESTABLISHED, True).  The engine then steps the first segment's
    events through :func:`step` like any other segment's.  Never raises.
    """
    try:
        return _INITIAL[flags & _FLAG_MASK]
    except Exception:
        return _INITIAL[0]
