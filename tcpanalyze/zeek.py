# cython: annotation_typing=False
# (compiled: update() must keep accepting any argument types, as it does as plain Python)
"""Zeek-compatible TCP endpoint states, ``history`` and ``conn_state``.

Zeek (``src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc``, ``TCP_Endpoint.{h,cc}``,
``src/Conn.cc``, ``scripts/base/protocols/conn/main.zeek``) summarises a TCP connection with
one coarse state per endpoint, a history string and a ``conn_state`` derived from both.
:class:`ZeekConn` reproduces them from the segments the engine already decoded, with ints
and a list of letters, so it can run in the per-packet loop.

Endpoint states (``TCP_ENDPOINT_*``; index = Zeek's enum value, which the ``conn`` record's
``orig$state``/``resp$state`` also carry)::

    INACTIVE 0  nothing seen from this side          PARTIAL 3      data without a SYN
    SYN_SENT 1  SYN, no ack                          ESTABLISHED 4
    SYN_ACK_SENT 2  SYN/ACK seen, no initial SYN     CLOSED 5 (FIN seen)   RESET 6 (RST seen)

How the engine uses it
----------------------
1. At the connection's first segment: ``zc = ZeekConn(orig_is_first_sender)``.  Pass
   ``True`` when Zeek would make the first sender the originator, ``False`` when Zeek flips
   the roles when it creates the connection (``TCP.cc`` ``WantConnection``: the first
   segment is not a pure SYN and its *source* port is a likely server port, unless both
   ports are and it is a SYN/ACK or ``src_port >= dst_port``).  A flip at creation starts
   the history with ``^`` as in Zeek.
2. For every segment, in capture order and *before* anything else about Zeek:
   ``zc.update(is_orig, flags, rel_seq, paylen, win, is_retransmission)``.

   * ``is_orig`` -- the sender is the originator **as fixed at construction** (the engine
     keeps one orientation for the connection's lifetime).  Zeek may flip the roles later
     (the "``H`` then ``A``/``D``" rule and the SYN/SYN-ACK reversal); :class:`ZeekConn`
     then swaps internally.  Read ``zc.orig_is_first_sender`` at the end to know who Zeek
     calls the originator (``zc.flipped`` says whether any flip happened).
   * ``rel_seq`` -- the segment's sequence number relative to any fixed base of that side
     (only equality between segments of the same side matters: it decides whether a
     SYN/FIN/RST letter repeats).
   * ``paylen`` -- TCP payload length; ``win`` -- the raw 16-bit window field.
   * ``is_retransmission`` -- Zeek's ``update_last_seq`` rule: with
     ``seg_len = paylen + SYN + FIN`` (``- paylen`` for a RST) and
     ``delta_last = seq + seg_len - last_seq`` (32-bit signed), it is
     ``delta_last <= 0 and paylen > 0``, except that SYN/RST segments with
     ``|delta_last| > 2**20`` and a FIN when ``last_seq == start_seq + 1`` never count.
     This class adds Zeek's remaining gate itself: nothing counts once the sender is RESET.
3. A segment with a bad checksum is dropped by Zeek before any of this: call
   ``zc.checksum_error(is_orig)`` *instead of* ``update``.  Content gaps found by
   reassembly: ``zc.gap(is_orig)`` (Zeek only counts them while established or cleanly
   closing; that decision is the caller's).
4. At the end: ``zc.history`` and ``zc.conn_state(orig_size, resp_size)`` (the sizes are
   only used for ``REJ`` when both sides reset; pass Zeek's ``orig$size``/``resp$size``).

Never raises: a malformed call leaves the object as it was.
"""
from __future__ import annotations

import re

try:
    import cython
except ImportError:  # plain Python without Cython installed: the declarations are no-ops
    from tcpanalyze import _cyshim as cython

from tcpanalyze._fields import slots
from tcpanalyze.model import ACK, FIN, RST, SYN

__all__ = ["ZeekConn", "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED",
           "RESET", "STATE_NAMES"]

# TCP_Endpoint.h, enum EndpointState
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
#: Script-level names, as ``orig$state``/``resp$state`` print in Zeek.
STATE_NAMES = ("TCP_INACTIVE", "TCP_SYN_SENT", "TCP_SYN_ACK_SENT", "TCP_PARTIAL", "TCP_ESTABLISHED",
               "TCP_CLOSED", "TCP_RESET")

# C copies of the endpoint states for the per-segment functions below (compiled, module
# globals are C variables there and not attributes of the module)
_INA = cython.declare(cython.longlong, INACTIVE)
_SSENT = cython.declare(cython.longlong, SYN_SENT)
_SASENT = cython.declare(cython.longlong, SYN_ACK_SENT)
_PART = cython.declare(cython.longlong, PARTIAL)
_EST = cython.declare(cython.longlong, ESTABLISHED)
_CLO = cython.declare(cython.longlong, CLOSED)
_RES = cython.declare(cython.longlong, RESET)

# Once-only / first-time history bits (our own values; the responder's are shifted by 16).
_H_SYN = cython.declare(cython.longlong, 1)
_H_FIN = cython.declare(cython.longlong, 2)
_H_RST = cython.declare(cython.longlong, 4)
_H_FIN_RST = cython.declare(cython.longlong, 8)
_H_DATA = cython.declare(cython.longlong, 0x10)
_H_ACK = cython.declare(cython.longlong, 0x20)
_H_MULTI = cython.declare(cython.longlong, 0x40)
_LOW = cython.declare(cython.longlong, 0xFFFF)

# Segment kinds by (flags & FIN|SYN|RST|ACK), following update_history's bits_set logic.
_K_NONE = cython.declare(cython.longlong, 0)
_K_SYN = cython.declare(cython.longlong, 1)
_K_FIN = cython.declare(cython.longlong, 2)
_K_RST = cython.declare(cython.longlong, 3)
_K_FIN_RST = cython.declare(cython.longlong, 4)
_K_MULTI = cython.declare(cython.longlong, 5)


def _kind(f: int) -> int:
    n = bool(f & SYN) + bool(f & FIN) + bool(f & RST)
    if n > 1:
        return _K_FIN_RST if f & FIN and f & RST else _K_MULTI
    if n == 0:
        return _K_NONE
    return _K_SYN if f & SYN else _K_FIN if f & FIN else _K_RST


_KIND = cython.declare(tuple, tuple(_kind(i) for i in range(32)))
_CTL = cython.declare(cython.longlong, FIN | SYN | RST | ACK)
_SYN = cython.declare(cython.longlong, SYN)
_FIN = cython.declare(cython.longlong, FIN)
_RST = cython.declare(cython.longlong, RST)
_ACK = cython.declare(cython.longlong, ACK)

# Logarithmic ("scaled") letters: index into the counter lists is letter * 2 + side.
_T = cython.declare(cython.longlong, 0)
_W = cython.declare(cython.longlong, 1)
_G = cython.declare(cython.longlong, 2)
_C = cython.declare(cython.longlong, 3)
_SCALED = cython.declare(tuple, ("Tt", "Ww", "Gg", "Cc"))

# Zeek's regex for RSTOS0 (main.zeek): /\^?S[^HAFGIQ]*R.*/, matched against the whole string.
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*", re.S)


class ZeekConn:
    """Zeek's per-connection TCP summary state; see the module docstring for the protocol.
    A C record when compiled (generated from FIELDS; ``__init__`` below sets every field)."""

    FIELDS = (("os", "long long"), ("rs", "long long"), ("oprev", "long long"), ("rprev", "long long"),
              ("hist", "list"), ("seen", "long long"), ("last_syn", "list"), ("last_fin", "list"),
              ("last_rst", "list"), ("cnt", "list"), ("thr", "list"), ("flipped", "bint"),
              ("orig_is_first_sender", "bint"), ("_swap", "bint"))
    __slots__ = slots(FIELDS)

    def __init__(self, orig_is_first_sender: bool = True):
        self.os = INACTIVE          # originator's endpoint state
        self.rs = INACTIVE          # responder's endpoint state
        self.oprev = INACTIVE       # previous states (Zeek's prev_state; used by the rules)
        self.rprev = INACTIVE
        self.hist: list[str] = []   # history letters
        self.seen = 0               # once-only bits: originator's low 16, responder's high 16
        self.last_syn = [0, 0]      # [orig, resp]: hist_last_SYN/FIN/RST
        self.last_fin = [0, 0]
        self.last_rst = [0, 0]
        self.cnt = [0] * 8          # scaled-letter counters, index letter*2 + side
        self.thr = [1] * 8          # ... and their next thresholds (1, 10, 100, ...)
        self.flipped = False
        self.orig_is_first_sender = True
        self._swap = False          # roles swapped relative to the constructor's orientation
        if not orig_is_first_sender:
            # Zeek's Connection::FlipRoles at creation: '^' before any letter.
            self.hist.append("^")
            self.flipped = True
            self.orig_is_first_sender = False

    # ------------------------------------------------------------------ per packet
    def update(self, is_orig: bool, flags: int, rel_seq: int, paylen: int, win: int,
               is_retransmission: bool) -> None:
        """Account one segment (see the module docstring for the arguments)."""
        try:
            zeek_update(self, bool(is_orig), flags, rel_seq, paylen, win, bool(is_retransmission))
        except Exception:
            pass

    def attempt(self) -> bool:
        """An unanswered connection attempt (Zeek's AttemptTimer condition)."""
        return self.os in (SYN_SENT, SYN_ACK_SENT) and self.rs == INACTIVE

    def expirable(self) -> bool:
        """Whether Zeek's timers (tcp_close_delay, tcp_reset_delay, tcp_attempt_delay, 5 s each)
        would have removed this connection after a quiet period: one endpoint closed or reset
        and the other closed too, or never more than partially active.  A later segment then
        starts a new Zeek connection."""
        os, rs = self.os, self.rs
        if os == RESET or rs == RESET:          # tcp_reset_delay: a reset ends it either way
            return True
        if os >= CLOSED:
            return rs >= CLOSED or rs == INACTIVE or rs == PARTIAL
        if rs >= CLOSED:
            return os == INACTIVE or os == PARTIAL
        return False

    def settled(self, is_orig: bool) -> bool:
        """True when an ordinary segment (no SYN/FIN/RST, window > 0, not a retransmission) from
        this side can no longer change anything here: its A and D letters are written and its
        endpoint is past INACTIVE.  The engine then skips ``update`` for such segments."""
        return zeek_settled(self, bool(is_orig))

    def checksum_error(self, is_orig: bool) -> None:
        """A segment Zeek drops for its checksum ('C'/'c', logarithmic)."""
        try:
            _scaled(self, _C * 2 + (0 if bool(is_orig) != self._swap else 1))
        except Exception:
            pass

    def gap(self, is_orig: bool) -> None:
        """A content gap reported by reassembly ('G'/'g', logarithmic)."""
        try:
            _scaled(self, _G * 2 + (0 if bool(is_orig) != self._swap else 1))
        except Exception:
            pass

    # ------------------------------------------------------------------ results
    @property
    def history(self) -> str:
        """The ``history`` string, as in Zeek's conn.log."""
        return "".join(self.hist)

    @property
    def orig_state(self) -> str:
        return STATE_NAMES[self.os]

    @property
    def resp_state(self) -> str:
        return STATE_NAMES[self.rs]

    def conn_state(self, orig_size: int = 0, resp_size: int = 0) -> str:
        """Zeek's ``conn_state`` (main.zeek ``function conn_state``), in its check order."""
        try:
            os, rs = self.os, self.rs
            o_inactive = os == INACTIVE or os == PARTIAL
            r_inactive = rs == INACTIVE or rs == PARTIAL
            if rs == RESET:
                if os == SYN_SENT or os == SYN_ACK_SENT or (os == RESET and orig_size == 0 and resp_size == 0):
                    return "REJ"
                return "RSTRH" if o_inactive else "RSTR"
            if os == RESET:
                if r_inactive:
                    return "RSTOS0" if _RSTOS0.fullmatch(self.history) else "OTH"
                return "RSTO"
            if rs == CLOSED and os == CLOSED:
                return "SF"
            if os == CLOSED:
                return "SH" if r_inactive else "S2"
            if rs == CLOSED:
                return "SHR" if o_inactive else "S3"
            if os == SYN_SENT and rs == INACTIVE:
                return "S0"
            if os == ESTABLISHED and rs == ESTABLISHED:
                return "S1"
            return "OTH"
        except Exception:
            return "OTH"

    def __repr__(self) -> str:
        return (f"ZeekConn(history={self.history!r}, orig={STATE_NAMES[self.os]}, "
                f"resp={STATE_NAMES[self.rs]}, flipped={self.flipped})")


# ---------------------------------------------------------------------- per segment
# ZeekConn's per-segment work, as functions of the record (C functions when compiled, with C
# arguments: the engine calls zeek_update without a Python call; the methods
# above take any argument and never raise).

@cython.ccall
@cython.locals(is_orig=cython.bint, flags=cython.longlong, rel_seq=cython.longlong,
               paylen=cython.longlong, win=cython.longlong, is_retransmission=cython.bint, zc=ZeekConn,
               side=cython.longlong, bit=cython.longlong, me=cython.longlong, peer=cython.longlong, hist=list,
               sender=cython.bint)
@cython.returns(cython.bint)
def zeek_update(z, is_orig, flags, rel_seq, paylen, win, is_retransmission):
    """``ZeekConn.update`` with typed arguments (it raises on a malformed call); returns
    ``zeek_settled(z, is_orig)`` after the update."""
    zc = z
    sender = is_orig
    if zc._swap:
        is_orig = not is_orig
    side = 0 if is_orig else 1
    if not flags & 7:
        # -- no SYN/FIN/RST: 'D' or 'A', once per direction (update_history) --
        if paylen > 0:
            bit = _H_DATA
        elif flags & _ACK:
            bit = _H_ACK
        else:
            bit = 0
        if bit and not zc.seen & (bit << (16 * side)):
            hist = zc.hist
            if len(hist) == 1 and hist[0] == "H":
                # PR zeek/zeek#2191: a connection that began with a SYN/ACK and now
                # sees an ACK or data (either direction) lost its SYN; it is no
                # stealth scan.  Flip the roles and write the history as "^h".
                _flip(zc, True)
                is_orig = not is_orig
                side ^= 1
            zc.seen |= bit << (16 * side)
            hist.append(("Dd" if bit == _H_DATA else "Aa")[side])
    else:
        _control_letter(zc, side, flags, rel_seq, paylen)

    if is_orig:
        me, peer = zc.os, zc.rs
    else:
        me, peer = zc.rs, zc.os
    # -- zero window (update_window), then retransmission (update_last_seq) --
    if win == 0 and not flags & _RST and peer != _CLO and me != _RES:
        _scaled(zc, _W * 2 + side)
    if is_retransmission and paylen > 0 and me != _RES:
        _scaled(zc, _T * 2 + side)
    # -- endpoint states (UpdateStateMachine); nothing changes otherwise --
    if flags & 7 or me == _INA:
        _states(zc, is_orig, flags, paylen)
    # zeek_settled(z, sender), written out (no second call per segment)
    if zc._swap:
        sender = not sender
    bit = (_H_DATA | _H_ACK) << (0 if sender else 16)
    return zc.seen & bit == bit and (zc.os if sender else zc.rs) != _INA


@cython.ccall
@cython.locals(is_orig=cython.bint, zc=ZeekConn, side=cython.longlong, both=cython.longlong)
@cython.returns(cython.bint)
def zeek_settled(z, is_orig):
    """``ZeekConn.settled`` with a typed argument."""
    zc = z
    if zc._swap:
        is_orig = not is_orig
    side = 0 if is_orig else 1
    both = (_H_DATA | _H_ACK) << (16 * side)
    return zc.seen & both == both and (zc.os if is_orig else zc.rs) != _INA


@cython.cfunc
@cython.locals(z=ZeekConn, side=cython.longlong, flags=cython.longlong, rel_seq=cython.longlong,
               paylen=cython.longlong, k=cython.longlong, shift=cython.longlong, bit=cython.longlong,
               end=cython.longlong, hist=list)
def _control_letter(z, side: int, flags: int, rel_seq: int, paylen: int) -> None:
    """History letter of a segment with SYN, FIN or RST (update_history)."""
    k = _KIND[flags & _CTL]
    shift = 16 * side
    hist = z.hist
    if k == _K_SYN:
        code = ("Hh" if flags & _ACK else "Ss")[side]
        bit = _H_SYN << shift
        if not z.seen & bit:
            z.seen |= bit
            hist.append(code)
        elif rel_seq != z.last_syn[side]:
            hist.append(code)             # a SYN at a new sequence number repeats
        z.last_syn[side] = rel_seq
    elif k == _K_FIN:
        end = rel_seq + paylen            # a FIN's sequence is taken after its data
        bit = _H_FIN << shift
        if not z.seen & bit:
            z.seen |= bit
            hist.append("Ff"[side])
        elif end != z.last_fin[side]:
            hist.append("Ff"[side])
        z.last_fin[side] = end
    elif k == _K_RST:
        bit = _H_RST << shift
        if not z.seen & bit:
            z.seen |= bit
            hist.append("Rr"[side])
        elif rel_seq != z.last_rst[side]:
            hist.append("Rr"[side])
        z.last_rst[side] = rel_seq
    else:                                 # more than one of SYN/FIN/RST: once only
        if k == _K_FIN_RST:
            bit, code = _H_FIN_RST << shift, "Ii"[side]
        else:
            bit, code = _H_MULTI << shift, "Qq"[side]
        if not z.seen & bit:
            z.seen |= bit
            hist.append(code)


@cython.cfunc
@cython.locals(z=ZeekConn, i=cython.longlong, c=cython.longlong, t=cython.longlong, nt=cython.longlong)
def _scaled(z, i: int) -> None:
    """Session::ScaledHistoryEntry: letter at the 1st, 10th, 100th ... event."""
    c = z.cnt[i] + 1
    t = z.thr[i]
    if c == t:
        z.hist.append(_SCALED[i >> 1][i & 1])
        nt = (t * 10) & 0xFFFFFFFF       # uint32 arithmetic, as in Zeek
        if nt <= t:
            c = 0                        # wrapped: restart the count, keep the threshold
        else:
            z.thr[i] = nt
    z.cnt[i] = c


@cython.cfunc
@cython.locals(z=ZeekConn, is_orig=cython.bint, flags=cython.longlong, paylen=cython.longlong,
               me=cython.longlong, mp=cython.longlong, pe=cython.longlong, pp=cython.longlong, ns=cython.longlong,
               syn=cython.longlong, fin=cython.longlong, rst=cython.longlong, ack=cython.longlong,
               flip=cython.bint)
def _states(z, is_orig: bool, flags: int, paylen: int) -> None:
    """Zeek's UpdateStateMachine for the sender, with Zeek's SetState/prev_state rules."""
    if is_orig:
        me, mp, pe, pp = z.os, z.oprev, z.rs, z.rprev
    else:
        me, mp, pe, pp = z.rs, z.rprev, z.os, z.oprev
    syn = flags & _SYN
    fin = flags & _FIN
    rst = flags & _RST
    ack = flags & _ACK
    flip = False

    if me == _INA:                                    # UpdateInactiveState
        if syn:
            if is_orig:
                ns = _SASENT if ack else _SSENT
                if ns != me:
                    me, mp = ns, me
            else:
                if not ack and pe == _SASENT:
                    # SYN/SYN-ACK reversal (captured out of order): Zeek flips the roles
                    # and establishes the connection.
                    flip = True
                    pe, pp = _EST, pe
                if pe == _SSENT:
                    pe, pp = _EST, pe
                me, mp = _EST, me
        if fin and me != _CLO:
            me, mp = _CLO, me
        if rst and me != _RES:
            me, mp = _RES, me
        if me == _INA:                                # no control flag moved it
            if not is_orig and paylen == 0 and pe == _SSENT:
                pass                                      # ACK of a SYN before the SYN/ACK
            elif ack and pe == _EST:
                me, mp = _EST, me                  # SYN/ACK seen, its SYN missed
            else:
                me, mp = _PART, me
    elif me == _SSENT or me == _SASENT:            # UpdateSYN_SentState
        if fin:
            me, mp = _CLO, me
        if rst:
            me, mp = _RES, me
    elif me == _EST or me == _PART:              # UpdateEstablishedState
        if syn and me == _PART and pe == _INA and not ack:
            me, mp = _SSENT, me                         # SYN_after_partial
        if fin and not rst:
            if me != _CLO:
                me, mp = _CLO, me
            if pe == _RES and pp == _CLO:
                pe, pp = _CLO, pe                       # FIN then RST was a normal close
        if rst and me != _RES:
            me, mp = _RES, me
    elif me == _CLO:                                    # UpdateClosedState
        if rst and pe != _CLO:
            me, mp = _RES, me
    # RESET: UpdateResetState only raises weirds

    if is_orig:
        z.os, z.oprev, z.rs, z.rprev = me, mp, pe, pp
    else:
        z.rs, z.rprev, z.os, z.oprev = me, mp, pe, pp
    if flip:
        _flip(z, False)


@cython.cfunc
@cython.locals(z=ZeekConn, rewrite_h=cython.bint, s=cython.longlong)
def _flip(z, rewrite_h: bool) -> None:
    """Swap originator and responder (Zeek's Connection::FlipRoles)."""
    z.os, z.rs = z.rs, z.os
    z.oprev, z.rprev = z.rprev, z.oprev
    s = z.seen
    z.seen = ((s & _LOW) << 16) | ((s >> 16) & _LOW)
    for lst in (z.last_syn, z.last_fin, z.last_rst):
        lst[0], lst[1] = lst[1], lst[0]
    for lst in (z.cnt, z.thr):
        for i in (0, 2, 4, 6):
            lst[i], lst[i + 1] = lst[i + 1], lst[i]
    z._swap = not z._swap
    z.orig_is_first_sender = not z.orig_is_first_sender
    z.flipped = True
    if rewrite_h:
        # History was exactly "H": the SYN/ACK's sender is the responder.
        z.hist[:] = ["^", "h"]
        # Inference (not stated by the notes): the SYN/ACK sender now stands where Zeek
        # would have put it had it flipped at creation -- a responder that sent SYN/ACK
        # is ESTABLISHED (UpdateInactiveState) -- so the rest of the connection is
        # summarised exactly like a creation-time flip ("^hADdFaf", SF).
        if z.rs == _SASENT:
            z.rs, z.rprev = _EST, _SASENT
    else:
        z.hist.append("^")
