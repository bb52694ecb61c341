"""Frame decoder: link layer -> (tunnels) -> innermost IPv4/IPv6 -> TCP header.

``decode()`` turns one captured frame into a :class:`~tcpanalyze.model.Segment`, returns
``None`` for a frame that carries no decodable TCP segment (after counting the reason in
``counts``), or raises :class:`~tcpanalyze.errors.DecodeError` (``TruncatedError`` when the
frame ends before a header it announces) for a malformed frame.

Design (speed is the product):

* One buffer, integer offsets, module-level ``struct.Struct`` objects and ``unpack_from``;
  no per-layer slicing (the only bytes objects created are the packed src/dst addresses).
* The overwhelmingly common frame -- Ethernet, IPv4 without options, TCP with no options
  or with exactly ``NOP NOP Timestamp`` (Linux) -- is decoded by one ``unpack_from`` in
  ``decode()`` itself.  Everything else goes through small per-protocol handlers chosen by
  dict look-ups on the link type, the ethertype and the IP protocol number.
* Every handler has the signature ``(frame, ts_ns, buf, off, end, lim, depth, counts)``:
  ``off`` is where its header starts; ``lim`` is the *reported* end of this packet: the
  frame's wire length lowered by every enclosing length field (PPPoE, 802.3, outer IP,
  UDP), or ``_NOLIM`` when nothing bounds it; ``end`` is the *captured* end,
  ``min(len(buf), lim)`` -- headers must fit before ``end``.  An IP length larger than
  ``lim`` is cut to ``lim`` (as Wireshark does), so a lying IP header cannot inflate
  ``paylen`` beyond the frame.  ``depth`` counts the tunnels entered so far.
* IP fragments never take the fast path.  When the caller passes a ``DecodeState`` with a
  reassembler as ``counts``, ``_ipv4``/``_ipv6`` hand fragments to it (``reassembly.py``)
  and decode a completed datagram from a new buffer at the same tunnel depth.
* Termination: header chains that can repeat (VLAN tags, MPLS labels, NFLOG TLVs, GRE
  routing entries) are walked in loops that advance by at least one byte per step; IPv6
  extension headers are capped at ``_MAX_EXT``; recursion happens only when entering a
  tunnel, capped at ``_MAX_DEPTH``.  Every ``unpack_from``/index is preceded by a bounds
  check, and ``decode()`` additionally turns any stray ``struct.error``/``IndexError`` into a
  ``DecodeError`` so that no other exception can escape.
"""
from __future__ import annotations

import struct

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.errors import DecodeError, TruncatedError
from tcpanalyze.model import Segment, new_segment
from tcpanalyze.reassembly import FragmentError

__all__ = ["decode", "decode_general", "DecodeState", "tcp_checksum_state", "LINKTYPE_NAMES", "CSUM_GOOD",
           "CSUM_BAD", "CSUM_OFFLOAD", "CSUM_UNVERIFIED"]

# pcap LINKTYPE_* numbers (https://www.tcpdump.org/linktypes.html) -> name, for messages.
LINKTYPE_NAMES: dict[int, str] = {
    0: "NULL", 1: "ETHERNET", 3: "AX25", 6: "IEEE802_5", 7: "ARCNET_BSD", 8: "SLIP", 9: "PPP",
    10: "FDDI", 12: "RAW (DLT_RAW)", 14: "RAW (OpenBSD DLT_RAW)", 50: "PPP_HDLC", 51: "PPP_ETHER",
    100: "ATM_RFC1483", 101: "RAW", 104: "C_HDLC", 105: "IEEE802_11", 106: "ATM_CLIP",
    107: "FRELAY", 108: "LOOP", 113: "LINUX_SLL", 114: "LTALK", 117: "PFLOG",
    119: "IEEE802_11_PRISM", 122: "IP_OVER_FC", 123: "SUNATM", 127: "IEEE802_11_RADIOTAP",
    129: "ARCNET_LINUX", 138: "APPLE_IP_OVER_IEEE1394", 139: "MTP2_WITH_PHDR", 140: "MTP2",
    141: "MTP3", 142: "SCCP", 143: "DOCSIS", 144: "LINUX_IRDA",
    **{147 + i: f"USER{i}" for i in range(16)},
    163: "IEEE802_11_AVS", 165: "BACNET_MS_TP", 166: "PPP_PPPD", 169: "GPRS_LLC",
    177: "LINUX_LAPD", 187: "BLUETOOTH_HCI_H4", 189: "USB_LINUX", 192: "PPI",
    195: "IEEE802_15_4_WITHFCS", 201: "BLUETOOTH_HCI_H4_WITH_PHDR", 215: "IEEE802_15_4_NONASK_PHY",
    220: "USB_LINUX_MMAPPED", 224: "FC_2", 226: "IPNET", 227: "CAN_SOCKETCAN", 228: "IPV4",
    229: "IPV6", 230: "IEEE802_15_4_NOFCS", 231: "DBUS", 235: "DVB_CI", 239: "NFLOG",
    240: "NETANALYZER", 241: "NETANALYZER_TRANSPARENT", 242: "IPOIB", 243: "MPEG_2_TS",
    247: "INFINIBAND", 248: "SCTP", 249: "USBPCAP", 251: "BLUETOOTH_LE_LL", 252: "WIRESHARK_UPPER_PDU",
    253: "NETLINK", 254: "BLUETOOTH_LINUX_MONITOR", 256: "BLUETOOTH_LE_LL_WITH_PHDR",
    274: "ETHERNET_MPACKET", 276: "LINUX_SLL2",
}

_NOLIM = 1 << 62  # "no enclosing length known" (wire length not given, no length fields)
_MAX_DEPTH = 8   # tunnels (IP-in-IP, GRE, VXLAN, Teredo) entered before giving up
_MAX_EXT = 8     # IPv6 extension headers before declaring the chain a loop

# --- struct layouts (network byte order unless noted) ----------------------------------
_U8x2 = struct.Struct("!BB")
_U16 = struct.Struct("!H")
_U16x2 = struct.Struct("!HH")
_U16x3 = struct.Struct("!HHH")
_U32 = struct.Struct("!I")
_U32LE = struct.Struct("<I")
_U16LEx2 = struct.Struct("<HH")
_U16LE = struct.Struct("<H")
_II = struct.Struct("!II")
_III = struct.Struct("!III")
# IPv4 (RFC 791 §3.1): ver/IHL, [tos], total length, [id], flags/fragment offset, [ttl],
# protocol, [checksum], source, destination.
_IP4 = struct.Struct("!BxHxxHxBxx4s4s")
_IP4ADDR = struct.Struct("4s")
# IPv6 (RFC 8200 §3): [ver/class/flow], payload length, next header, [hop limit], src, dst.
_IP6 = struct.Struct("!4xHBx16s16s")
# TCP (RFC 9293 §3.1): sport, dport, seq, ack, data offset/reserved/flags, window.
_TCP = struct.Struct("!HHIIHH")
# Fast path: Ethernet (dst, src, type) + IPv4 without options + TCP (ports, seq, ack,
# offset/flags, window, skip checksum and urgent pointer) + 12 option bytes read as the
# (NOP NOP 8 10) word, TSval, TSecr: 66 bytes.  Of IPv4, one 32-bit word holds the
# ethertype, version/IHL and TOS, one the flags/fragment offset, TTL and protocol (each
# tested with one mask), then total length, src, dst: fewer values to make per frame.  _FAST54 stops at the TCP window, for 54..65-byte frames.
_FAST66 = struct.Struct("!12xIHxxI2x4s4sHHIIHH4xIII")
_FAST54 = struct.Struct("!12xIHxxI2x4s4sHHIIHH")
# The same for IPv6 without extension headers, from offset 14: version/class/flow label,
# payload length, next header, (hop limit), src, dst, then TCP as above.  86 bytes with the
# timestamp word, 74 without (_FAST74 stops at the window).
_FAST86 = struct.Struct("!IHBx16s16sHHIIHH4xIII")
_FAST74 = struct.Struct("!IHBx16s16sHHIIHH")

_TS_WORD = 0x0101080A   # NOP, NOP, kind 8, length 10 (RFC 7323 Appendix A layout)


def _skip(counts, reason):
    """Count a frame that carries no TCP segment and return None."""
    counts[reason] = counts.get(reason, 0) + 1
    return None


class DecodeState(dict):
    """The ``counts`` dict of one run, carrying what the general path keeps across frames.

    ``frags``: a :class:`~tcpanalyze.reassembly.Reassembler` (IP fragments are then
    reassembled; with None, or with a plain dict as ``counts``, a first fragment is decoded
    with what it holds and the others are counted as ``ip_fragment``).  ``verify``: compute
    each TCP checksum (only :func:`decode_general` should be called then, the fast path
    does not look); the outcome of the last segment decoded is in ``csum``: one of
    ``CSUM_GOOD``, ``CSUM_BAD``, ``CSUM_OFFLOAD`` (zero or the bare pseudo-header sum:
    written by a host that left the checksum to its network card) or ``CSUM_UNVERIFIED``
    (segment not captured whole)."""

    __slots__ = ("frags", "verify", "csum")

    def __init__(self, frags=None, verify: bool = False):
        super().__init__()
        self.frags = frags
        self.verify = verify
        self.csum = CSUM_UNVERIFIED


CSUM_UNVERIFIED = 0
CSUM_GOOD = 1
CSUM_BAD = 2
CSUM_OFFLOAD = 3


def tcp_checksum_state(buf, off, end, src, dst, plen) -> int:
    """Check the TCP checksum of the ``plen``-byte segment at ``buf[off:]`` (RFC 9293 §3.1:
    ones' complement sum over the pseudo-header -- source, destination, protocol 6, TCP
    length, with IPv6's layout from RFC 8200 §8.1 summing the same -- and the segment).

    A sum of 16-bit words in ones' complement arithmetic is the number the bytes spell,
    modulo 0xFFFF (2**16 = 1 mod 0xFFFF), so a correct segment sums to 0 mod 0xFFFF; a
    checksum field of 0xFFFF where 0x0000 is due counts as correct (RFC 1624, as Wireshark
    does).  Not correct: ``CSUM_OFFLOAD`` when the field is 0 or holds the pseudo-header
    sum alone (what a sender leaves for its NIC to finish: Linux CHECKSUM_PARTIAL), else
    ``CSUM_BAD``."""
    if off + plen > end or plen < 20:
        return CSUM_UNVERIFIED
    seg = bytes(buf[off:off + plen])
    if plen & 1:
        seg += b"\0"
    pseudo = int.from_bytes(src + dst, "big") + 6 + plen
    if (int.from_bytes(seg, "big") + pseudo) % 0xFFFF == 0:
        return CSUM_GOOD
    field = (seg[16] << 8) | seg[17]
    if field == 0 or field % 0xFFFF == pseudo % 0xFFFF:
        return CSUM_OFFLOAD
    return CSUM_BAD


# ======================================================================================
# TCP
# ======================================================================================

def _tcp(frame, ts, buf, off, end, counts, src, dst, plen):
    """TCP header at ``off``; ``plen`` = IP payload length (from the IP header, see _ipv4).

    RFC 9293 §3.1: data offset (4 bits, 32-bit words), 3 reserved bits, 9 flag bits
    (AE CWR ECE URG ACK PSH RST SYN FIN); options up to 40 bytes (§3.2).
    """
    if plen < 20:
        raise DecodeError("bad_tcp_length", off, f"IP payload of {plen} bytes cannot hold a TCP header")
    if off + 20 > end:
        raise TruncatedError("truncated_tcp", off, f"{end - off} of 20 header bytes captured")
    if type(counts) is DecodeState and counts.verify:
        counts.csum = tcp_checksum_state(buf, off, end, src, dst, plen)
    sport, dport, seq, ack, offfl, win = _TCP.unpack_from(buf, off)
    hl = (offfl >> 10) & 0x3C
    if hl < 20:
        raise DecodeError("bad_tcp_offset", off + 12, f"data offset {hl >> 2} < 5")
    paylen = plen - hl
    if paylen < 0:
        raise DecodeError("bad_tcp_length", off + 12,
                          f"TCP header of {hl} bytes longer than IP payload of {plen}")
    if off + hl > end:
        raise TruncatedError("truncated_tcp", off, f"{end - off} of {hl} header bytes captured")
    pay = off + hl
    cap = end - pay             # captured payload bytes
    flags = offfl & 0x1FF
    if hl == 20:
        return new_segment(frame, ts, src, dst, sport, dport, seq, ack, flags, win, paylen,
                           -1, -1, False, None, -1, -1, cap < paylen)
    if hl == 32:
        word, tsval, tsecr = _III.unpack_from(buf, off + 20)
        if word == _TS_WORD:
            return new_segment(frame, ts, src, dst, sport, dport, seq, ack, flags, win, paylen,
                               -1, -1, False, None, tsval, tsecr, cap < paylen)
    # General option walk (RFC 9293 §3.2, RFC 7323, RFC 2018).
    mss = wscale = tsval = tsecr = -1
    sack_perm = False
    sack = None
    bad = False
    i = off + 20
    while i < pay:
        kind = buf[i]
        if kind == 0:                       # End of Option List
            break
        if kind == 1:                       # No-Operation
            i += 1
            continue
        if i + 2 > pay:                     # kind byte without a length byte
            bad = True
            break
        ln = buf[i + 1]
        if ln < 2 or i + ln > pay:          # length 0/1 would loop; past the header: stop
            bad = True
            break
        if kind == 8:                       # Timestamps: kind, len 10, TSval, TSecr (RFC 7323 §3.2)
            if ln == 10:
                tsval, tsecr = _II.unpack_from(buf, i + 2)
            else:
                bad = True
        elif kind == 2:                     # Maximum Segment Size: kind, len 4, 16-bit MSS
            if ln == 4:
                mss = _U16.unpack_from(buf, i + 2)[0]
            else:
                bad = True
        elif kind == 3:                     # Window Scale: kind, len 3, shift (RFC 7323 §2.2)
            if ln == 3:
                wscale = buf[i + 2]
            else:
                bad = True
        elif kind == 4:                     # SACK-Permitted: kind, len 2 (RFC 2018 §2)
            if ln == 2:
                sack_perm = True
            else:
                bad = True
        elif kind == 5:                     # SACK: kind, len 2+8n, n (left, right) edges (RFC 2018 §3)
            if ln >= 10 and (ln - 2) & 7 == 0:
                j = i + 2
                blocks = []
                while j < i + ln:
                    blocks.append(_II.unpack_from(buf, j))
                    j += 8
                sack = tuple(blocks)
            else:
                bad = True
        i += ln                             # unknown kinds are skipped by their length
    if bad:
        counts["bad_tcp_option"] = counts.get("bad_tcp_option", 0) + 1
    return new_segment(frame, ts, src, dst, sport, dport, seq, ack, flags, win, paylen,
                       mss, wscale, sack_perm, sack, tsval, tsecr, cap < paylen)


# ======================================================================================
# IP layer and IP-level tunnels
# ======================================================================================

def _ipv4_final_dst(buf, i, oend, dst):
    """Walk IPv4 options (RFC 791 §3.1); with a pending loose/strict source route (LSRR 131,
    SSRR 137: type, length, pointer, route data) the final destination is the last route
    address, not the header's next hop -- report that one, as Wireshark's ``ip.dst`` does.
    A malformed option list just ends the walk (the header fields stay as they are)."""
    while i < oend:
        kind = buf[i]
        if kind == 0:               # End of Option List
            break
        if kind == 1:               # No Operation
            i += 1
            continue
        if i + 2 > oend:
            break
        ln = buf[i + 1]
        if ln < 2 or i + ln > oend:
            break
        if (kind == 131 or kind == 137) and ln >= 7 and (ln - 3) & 3 == 0:
            ptr = buf[i + 2]
            if 4 <= ptr <= ln and not ptr & 3:      # route not yet completed
                return _IP4ADDR.unpack_from(buf, i + ln - 4)[0]
        i += ln
    return dst


def _ipv4(frame, ts, buf, off, end, lim, depth, counts):
    """IPv4 (RFC 791 §3.1): IHL in 32-bit words (options skipped), total length, fragments."""
    if off + 20 > end:
        raise TruncatedError("truncated_ipv4", off, f"{end - off} of 20 header bytes captured")
    vihl, tot, frag, proto, src, dst = _IP4.unpack_from(buf, off)
    if vihl >> 4 != 4:
        raise DecodeError("bad_ip_version", off, f"version {vihl >> 4} in an IPv4 header")
    hl = (vihl & 0xF) << 2
    if hl < 20:
        raise DecodeError("bad_ipv4_ihl", off, f"IHL {hl >> 2} < 5")
    if off + hl > end:
        raise TruncatedError("truncated_ipv4", off, f"{end - off} of {hl} header bytes captured")
    if hl > 20:
        dst = _ipv4_final_dst(buf, off + 20, off + hl, dst)
    if frag & 0x3FFF:               # a fragment: more fragments (MF) or an offset
        if type(counts) is DecodeState and counts.frags is not None:
            return _defrag4(frame, ts, buf, off, hl, tot, end, lim, depth, counts, frag, proto)
        if frag & 0x1FFF:
            # Not the first fragment: no TCP header here.
            return _skip(counts, "ip_fragment")
        # First fragment and no reassembly: decode what it holds (Wireshark without defragmentation).
    if tot:
        if tot < hl:
            raise DecodeError("bad_ipv4_length", off + 2, f"total length {tot} < header length {hl}")
        e = off + tot
        if e < lim:
            lim = e
            if e < end:
                end = e             # drop Ethernet padding / trailers
        plen = lim - off - hl
    else:
        # Total length 0: TSO/GSO capture; the frame (wire length, else captured) decides.
        plen = (end if lim == _NOLIM else lim) - off - hl
    if proto == 6:
        return _tcp(frame, ts, buf, off + hl, end, counts, src, dst, plen)
    return _l4(proto, frame, ts, buf, off + hl, end, lim, depth, counts, src, dst, plen)


# IPv6 extension headers whose length byte counts 8-octet units beyond the first 8
# (RFC 8200 §4.3-4.6 hop-by-hop/routing/destination; RFC 6275 mobility; RFC 7401 HIP;
# RFC 5533 shim6).  Fragment (44) and AH (51) are handled separately.
_IP6_EXT_8 = frozenset((0, 43, 60, 135, 139, 140))
_IP6_EXT = _IP6_EXT_8 | {44, 51}


def _ipv6(frame, ts, buf, off, end, lim, depth, counts):
    """IPv6 (RFC 8200 §3/§4): fixed 40-byte header, then the extension-header chain."""
    if off + 40 > end:
        raise TruncatedError("truncated_ipv6", off, f"{end - off} of 40 header bytes captured")
    if buf[off] >> 4 != 6:
        raise DecodeError("bad_ip_version", off, f"version {buf[off] >> 4} in an IPv6 header")
    plen, nh, src, dst = _IP6.unpack_from(buf, off)
    p = off + 40
    if plen:
        e = p + plen
        if e < lim:
            lim = e
            if e < end:
                end = e
    # else payload length 0: jumbogram (RFC 2675) or TSO capture: the frame decides (below).
    n = 0
    while nh in _IP6_EXT:
        n += 1
        if n > _MAX_EXT:
            raise DecodeError("ipv6_ext_loop", p, f"more than {_MAX_EXT} extension headers")
        if p + 8 > end:             # every extension header is at least 8 bytes
            raise TruncatedError("truncated_ipv6_ext", p, f"extension header {nh} not captured")
        nxt, hlen = _U8x2.unpack_from(buf, p)
        if nh == 44:
            # Fragment header (RFC 8200 §4.5): next, reserved, offset(13)/res(2)/M(1), id.
            fo = _U16.unpack_from(buf, p + 2)[0]
            if fo & 0xFFF9:         # offset or M set (offset 0 without M: an atomic fragment, RFC 6946)
                if type(counts) is DecodeState and counts.frags is not None:
                    return _defrag6(frame, ts, buf, off, p, end, lim, depth, counts, nxt, fo)
                if fo & 0xFFF8:
                    return _skip(counts, "ip_fragment")
            ln = 8
        elif nh == 51:
            ln = (hlen + 2) << 2    # Authentication Header (RFC 4302 §2.2): 4-octet units, minus 2
        else:
            ln = (hlen + 1) << 3
        if p + ln > end:
            raise TruncatedError("truncated_ipv6_ext", p, f"extension header {nh} of {ln} bytes not captured")
        p += ln
        nh = nxt
    if nh == 59:                    # No Next Header (RFC 8200 §4.7)
        return _skip(counts, "non_tcp")
    return _l4(nh, frame, ts, buf, p, end, lim, depth, counts, src, dst,
               (end if lim == _NOLIM else lim) - p)


def _defrag4(frame, ts, buf, off, hl, tot, end, lim, depth, counts, frag, proto):
    """An IPv4 fragment into the run's reassembler; the datagram it completes is decoded
    (with its tunnels) as if it had arrived whole in this frame."""
    r = counts.frags
    e = off + tot
    if tot < hl:
        raise DecodeError("bad_ipv4_length", off + 2, f"total length {tot} < header length {hl} in a fragment")
    if e > end:
        # Not captured whole (or the frame is shorter than the IP length): not reassembled.
        r.counts["truncated"] += 1
        if frag & 0x1FFF:
            return _skip(counts, "ip_fragment")
        return _unreassembled(_ipv4, frame, ts, buf, off, end, lim, depth, counts)
    key = (4, bytes(buf[off + 12:off + 20]), proto, _U16.unpack_from(buf, off + 4)[0], depth)
    head = bytes(buf[off:off + hl]) if not frag & 0x1FFF else None
    try:
        done = r.add(key, ts, False, (frag & 0x1FFF) << 3, bool(frag & 0x2000), bytes(buf[off + hl:e]), head)
    except FragmentError as x:
        raise DecodeError("bad_ip_fragment", off + 6, str(x)) from None
    if done is None:
        return _skip(counts, "ip_fragment")
    head, payload = done
    n = len(head) + len(payload)
    dg = bytearray(head)
    dg[2:4] = n.to_bytes(2, "big")                  # total length
    dg[6] &= 0x40                                   # keep DF; no MF, offset 0
    dg[7] = 0
    dg += payload
    return _ipv4(frame, ts, bytes(dg), 0, n, n, depth, counts)


def _unreassembled(h, frame, ts, buf, off, end, lim, depth, counts):
    """A first fragment that cannot be reassembled (not captured whole): decode what it
    holds, as without reassembly (Wireshark does the same)."""
    r = counts.frags
    counts.frags = None
    try:
        return h(frame, ts, buf, off, end, lim, depth, counts)
    finally:
        counts.frags = r


def _defrag6(frame, ts, buf, off, p, end, lim, depth, counts, nxt, fo):
    """An IPv6 fragment (Fragment header at ``p``) into the run's reassembler; a completed
    datagram is rebuilt as the offset-0 fragment's fixed header with the Fragment header's
    next header and the reassembled payload (the extension headers before the Fragment
    header are left out: nothing after them depends on them)."""
    r = counts.frags
    plen = _U16.unpack_from(buf, off + 4)[0]
    e = off + 40 + plen
    if not plen or e > end:
        r.counts["truncated"] += 1
        if fo & 0xFFF8:
            return _skip(counts, "ip_fragment")
        return _unreassembled(_ipv6, frame, ts, buf, off, end, lim, depth, counts)
    if p + 8 > e:
        raise DecodeError("bad_ip_fragment", p, "Fragment header beyond the payload length")
    key = (6, bytes(buf[off + 8:off + 40]), _U32.unpack_from(buf, p + 4)[0], depth)
    head = None
    if not fo & 0xFFF8:
        h = bytearray(buf[off:off + 40])
        h[6] = nxt
        head = bytes(h)
    try:
        done = r.add(key, ts, True, fo & 0xFFF8, bool(fo & 1), bytes(buf[p + 8:e]), head)
    except FragmentError as x:
        raise DecodeError("bad_ip_fragment", p + 2, str(x)) from None
    if done is None:
        return _skip(counts, "ip_fragment")
    head, payload = done
    dg = bytearray(head)
    dg[4:6] = len(payload).to_bytes(2, "big")
    dg += payload
    n = len(dg)
    return _ipv6(frame, ts, bytes(dg), 0, n, n, depth, counts)


def _l4(proto, frame, ts, buf, off, end, lim, depth, counts, src, dst, plen):
    """Dispatch on the IP protocol number (IANA): TCP, or a tunnel carrying IP."""
    if proto == 6:
        return _tcp(frame, ts, buf, off, end, counts, src, dst, plen)
    h = _TUNNEL_PROTO.get(proto)
    if h is None:
        return _skip(counts, "non_tcp")
    if depth >= _MAX_DEPTH:
        raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
    return h(frame, ts, buf, off, end, lim, depth + 1, counts)


def _gre(frame, ts, buf, off, end, lim, depth, counts):
    """GRE (RFC 2784 + RFC 2890 key/sequence; RFC 1701 routing; RFC 2637 enhanced GRE).

    Header: C R K S s Recur | flags | version (16 bits), protocol type (16 bits), then
    optional checksum+offset (C or R), key (K), sequence number (S), routing (R),
    and for version 1 an acknowledgement number (A, 0x0080).
    """
    if off + 4 > end:
        raise TruncatedError("truncated_gre", off, "GRE header not captured")
    fl, pt = _U16x2.unpack_from(buf, off)
    ver = fl & 7
    p = off + 4
    if ver == 0:
        if fl & 0xC000:
            p += 4                  # checksum + reserved1 / offset
        if fl & 0x2000:
            p += 4                  # key
        if fl & 0x1000:
            p += 4                  # sequence number
        if fl & 0x4000:
            # RFC 1701 source route entries: address family(2), SRE offset(1), SRE length(1),
            # routing information; the list ends with an entry of length 0.
            while True:
                if p + 4 > end:
                    raise TruncatedError("truncated_gre", p, "GRE routing entry not captured")
                sre_len = buf[p + 3]
                p += 4 + sre_len
                if sre_len == 0:
                    break
    elif ver == 1:
        # Enhanced GRE (PPTP): key (payload length + call id) always present.
        if pt != 0x880B:
            return _skip(counts, "non_ip")
        p += 4
        if fl & 0x1000:
            p += 4
        if fl & 0x0080:
            p += 4                  # acknowledgement number
    else:
        return _skip(counts, "non_ip")
    if p > end:
        raise TruncatedError("truncated_gre", off, "GRE optional fields not captured")
    if pt == 0x6558:                # Transparent Ethernet Bridging
        return _ether(frame, ts, buf, p, end, lim, depth, counts)
    if pt == 0x88BE:
        # ERSPAN: type I has no header (GRE without sequence number); type II an 8-byte one:
        # ver(4) vlan(12) | cos(3) en(2) t(1) session(10) | reserved(12) index(20).
        if fl & 0x1000:
            p += 8
        if p > end:
            raise TruncatedError("truncated_erspan", off, "ERSPAN II header not captured")
        return _ether(frame, ts, buf, p, end, lim, depth, counts)
    if pt == 0x22EB:
        # ERSPAN type III: 12 bytes: ver/vlan, cos/bso/t/session, timestamp,
        # sgt(16) p(1) ft(5) hw id(6) d(1) gra(2) o(1); O set -> 8-byte platform subheader.
        if p + 12 > end:
            raise TruncatedError("truncated_erspan", p, "ERSPAN III header not captured")
        p += 20 if buf[p + 11] & 1 else 12
        if p > end:
            raise TruncatedError("truncated_erspan", p - 8, "ERSPAN III platform sub-header not captured")
        return _ether(frame, ts, buf, p, end, lim, depth, counts)
    if pt == 0x880B:                # PPP (PPTP)
        return _ppp(frame, ts, buf, p, end, lim, depth, counts)
    if 0x8200 <= pt <= 0x8370 and not pt & 0xF:
        # Aruba access points tunnel 802.11 frames to their controller with these
        # protocol types (as Wireshark's gre.proto table lists them).
        return _wlan(frame, ts, buf, p, end, lim, depth, counts)
    if pt == 0x883E:
        # WCCP redirection (draft-wilson-wrec-wccp-v2 §4.12): an optional 4-byte redirect
        # header before the IPv4 packet; Wireshark tells them apart by the first nibble.
        if p < end and buf[p] >> 4 != 4:
            p += 4
        return _raw(frame, ts, buf, p, end, lim, depth, counts)
    return _ethertype(pt, frame, ts, buf, p, end, lim, depth, counts)


_VXLAN_PORT = 4789
_TEREDO_PORT = 3544


def _udp(frame, ts, buf, off, end, lim, depth, counts):
    """UDP (RFC 768): the length field bounds the datagram; the payload goes to _udp_payload."""
    if off + 8 > end:
        raise TruncatedError("truncated_udp", off, "UDP header not captured")
    sport, dport, ulen = _U16x3.unpack_from(buf, off)
    if ulen >= 8 and off + ulen < lim:
        lim = off + ulen
        if lim < end:
            end = lim
    return _udp_payload(frame, ts, buf, off + 8, end, lim, depth, counts, sport, dport)


def _udp_payload(frame, ts, buf, p, end, lim, depth, counts, sport, dport):
    """A UDP payload at ``p`` (``lim`` = the datagram's end): tunnels by port, then by content.

    Ports as Wireshark registers them (``_UDP_PORTS``), the lower port tried first; a
    datagram on no tunnel port is recognised by content (Teredo, Geneve, GTP-U, VXLAN,
    AYIYA, see the ``_is_*`` checks), and otherwise counted as ``non_tcp``.  The payload
    may sit in any buffer: a datagram rebuilt from IP fragments decodes the same way.
    """
    if sport > dport:
        sport, dport = dport, sport
    h = _UDP_PORTS.get(sport)
    if h is None:
        h = _UDP_PORTS.get(dport)
    if h is not None:
        return h(frame, ts, buf, p, end, lim, depth, counts)
    if p + 8 > end:
        return _skip(counts, "non_tcp")
    b0 = buf[p]
    if (b0 == 0 or b0 >> 4 == 6) and p + 40 <= lim:
        q = _teredo_heuristic(buf, p, end, lim)
        if q >= 0:
            return _ipv6(frame, ts, buf, q, end, lim, depth, counts)
    if b0 & 0xF8 == 0x30 and buf[p + 1] == 0xFF and _is_gtpu(buf, p, end, lim):
        return _gtp(frame, ts, buf, p, end, lim, depth, counts)
    if b0 == 0x08 and _is_vxlan(buf, p, end, lim):
        return _vxlan(frame, ts, buf, p, end, lim, depth, counts)
    if b0 < 0x40 and _is_geneve(buf, p, end, lim):
        return _geneve(frame, ts, buf, p, end, lim, depth, counts)
    if buf[p + 1] == 0x52 and buf[p + 2] == 0x11 and _is_ayiya(buf, p, end, lim):
        return _ayiya(frame, ts, buf, p, end, lim, depth, counts)
    return _skip(counts, "non_tcp")


def _teredo_skip(buf, p, end):
    """Teredo (RFC 4380 §5.1.1): skip the optional authentication indicator
    00 01 id-len au-len client-id auth-value nonce(8) confirmation(1) and the optional origin
    indication 00 00 port(2) address(4); the IPv6 packet starts at the offset returned."""
    if p + 4 <= end and buf[p] == 0 and buf[p + 1] == 1:
        p += 4 + buf[p + 2] + buf[p + 3] + 9
    if p + 8 <= end and buf[p] == 0 and buf[p + 1] == 0:
        p += 8
    return p


def _teredo(frame, ts, buf, p, end, lim, depth, counts):
    """Teredo on its port 3544: an IPv6 packet behind the optional indications."""
    p = _teredo_skip(buf, p, end)
    if p < end and buf[p] >> 4 == 6:
        return _ipv6(frame, ts, buf, p, end, lim, depth, counts)
    return _skip(counts, "non_tcp")


def _teredo_heuristic(buf, p, end, lim):
    """Teredo off its port (relays use any port): as Zeek does, accepted when the payload is
    exactly one IPv6 packet whose payload length fills the datagram and whose next header is
    plausible; the IPv6 offset, or -1."""
    p = _teredo_skip(buf, p, end)
    if p + 40 <= end and buf[p] >> 4 == 6 and p + 40 + _U16.unpack_from(buf, p + 4)[0] == lim \
            and buf[p + 6] in _TEREDO_NEXT:
        return p
    return -1


#: Next headers accepted after a heuristic (off-port) Teredo IPv6 header.
_TEREDO_NEXT = frozenset((0, 6, 17, 43, 44, 58, 59, 60))


def _fills(buf, p, end, lim):
    """True when an IPv4/IPv6 packet starts at ``p`` and its length field ends exactly at
    ``lim`` (the end of the enclosing datagram): the content checks' last test."""
    if p >= end or lim == _NOLIM:
        return False
    v = buf[p] >> 4
    if v == 4:
        return p + 4 <= end and buf[p] & 0xF >= 5 and p + _U16.unpack_from(buf, p + 2)[0] == lim
    if v == 6:
        return p + 6 <= end and p + 40 + _U16.unpack_from(buf, p + 4)[0] == lim
    return False


def _fills_ether(buf, p, end, lim):
    """An Ethernet frame at ``p`` whose IP packet (behind at most two VLAN tags) fills the datagram."""
    q = p + 12
    for _ in range(3):
        if q + 2 > end:
            return False
        et = _U16.unpack_from(buf, q)[0]
        if et == 0x0800 or et == 0x86DD:
            return _fills(buf, q + 2, end, lim)
        if et != 0x8100 and et != 0x88A8:
            return False
        q += 4
    return False


def _vxlan(frame, ts, buf, p, end, lim, depth, counts):
    """VXLAN (RFC 7348 §5): flags (I = 0x08 means a valid VNI), 24 reserved bits, VNI(24),
    reserved(8); then an Ethernet frame."""
    if p + 8 > end:
        raise TruncatedError("truncated_vxlan", p, "VXLAN header not captured")
    if not buf[p] & 0x08:
        return _skip(counts, "non_tcp")
    return _ether(frame, ts, buf, p + 8, end, lim, depth, counts)


def _is_vxlan(buf, p, end, lim):
    """VXLAN off port 4789 (e.g. Linux's 8472): flags exactly I, reserved fields zero, and an
    Ethernet frame whose IP packet fills the datagram."""
    return (p + 8 <= end and buf[p] == 0x08 and not buf[p + 1] and not buf[p + 2] and not buf[p + 3]
            and not buf[p + 7] and _fills_ether(buf, p + 8, end, lim))


def _vxlan_gpe(frame, ts, buf, p, end, lim, depth, counts):
    """VXLAN-GPE (draft-ietf-nvo3-vxlan-gpe §3.3, UDP 4790): flags(8: R R Ver(2) I P B O),
    reserved(16), next protocol(8: 1 IPv4, 2 IPv6, 3 Ethernet, 4 NSH, 5 MPLS), VNI(24), reserved(8)."""
    if p + 8 > end:
        raise TruncatedError("truncated_vxlan", p, "VXLAN-GPE header not captured")
    fl = buf[p]
    if fl & 0x30:                   # a version other than 0
        return _skip(counts, "non_tcp")
    if not fl & 0x04:               # no P bit: plain VXLAN, Ethernet follows
        return _vxlan(frame, ts, buf, p, end, lim, depth, counts)
    h = _GPE_NEXT.get(buf[p + 3])
    if h is None:
        return _skip(counts, "non_ip")
    return h(frame, ts, buf, p + 8, end, lim, depth, counts)


def _geneve(frame, ts, buf, p, end, lim, depth, counts):
    """Geneve (RFC 8926 §3.4): ver(2) opt len(6, 4-byte words) | O C reserved(6) | protocol
    type(16) | VNI(24) reserved(8), then the options (up to 252 bytes), then the payload of
    that protocol type (0x6558: an Ethernet frame)."""
    if p + 8 > end:
        raise TruncatedError("truncated_geneve", p, "Geneve header not captured")
    b0 = buf[p]
    if b0 >> 6:                     # version other than 0 (RFC 8926 §3.4: not to be parsed)
        return _skip(counts, "non_tcp")
    pt = _U16.unpack_from(buf, p + 2)[0]
    q = p + 8 + ((b0 & 0x3F) << 2)
    if q > end:
        raise TruncatedError("truncated_geneve", p, f"Geneve options of {(b0 & 0x3F) << 2} bytes not captured")
    if pt == 0x6558:
        return _ether(frame, ts, buf, q, end, lim, depth, counts)
    return _ethertype(pt, frame, ts, buf, q, end, lim, depth, counts)


def _is_geneve(buf, p, end, lim):
    """Geneve off port 6081: version 0, reserved bits zero, options that tile their length
    exactly (class(16) type(8) reserved(3) length(5, 4-byte words) + data), and an Ethernet
    frame or IP packet that fills the datagram."""
    if p + 8 > end or buf[p + 1] & 0x3F or buf[p + 7]:
        return False
    q = p + 8
    o = q + ((buf[p] & 0x3F) << 2)
    if o > end:
        return False
    while q < o:
        if q + 4 > o:
            return False
        q += 4 + ((buf[q + 3] & 0x1F) << 2)
    if q != o:
        return False
    pt = _U16.unpack_from(buf, p + 2)[0]
    if pt == 0x6558:
        return _fills_ether(buf, o, end, lim)
    if pt == 0x0800 or pt == 0x86DD:
        return _fills(buf, o, end, lim)
    return False


def _gtp(frame, ts, buf, p, end, lim, depth, counts):
    """GTP-U version 1 (3GPP TS 29.281 §5.1) at ``p`` (a UDP payload, whole or rebuilt from
    IP fragments): flags (version(3) = 1, PT = 1, reserved, E, S, PN), message type
    (255 = G-PDU: a user packet follows), length (bytes after the first 8), TEID(32); with
    E, S or PN set: sequence number(16), N-PDU number(8), next extension header type(8);
    extension headers: length (4-byte words, 0 invalid), contents, next type (0 = last).

    GTP' (PT = 0), GTPv0 and GTPv2-C (version 2, control only) and GTPv1 signalling messages
    carry no user packet: counted as ``non_tcp``."""
    if p + 8 > end:
        raise TruncatedError("truncated_gtp", p, "GTP header not captured")
    fl = buf[p]
    if fl & 0xF0 != 0x30 or buf[p + 1] != 0xFF:
        return _skip(counts, "non_tcp")
    e = p + 8 + _U16.unpack_from(buf, p + 2)[0]
    if fl & 0x07 and e < p + 12:
        raise DecodeError("bad_gtp_length", p + 2, f"length {e - p - 8} < 4 with optional fields")
    if e < lim:
        lim = e
        if e < end:
            end = e
    q = p + 8
    if fl & 0x07:
        if q + 4 > end:
            raise TruncatedError("truncated_gtp", q, "GTP optional fields not captured")
        nxt = buf[q + 3] if fl & 0x04 else 0
        q += 4
        while nxt:
            if q >= end:
                raise TruncatedError("truncated_gtp", q, f"GTP extension header {nxt:#x} not captured")
            n = buf[q] << 2
            if not n:
                raise DecodeError("bad_gtp_extension", q, f"extension header {nxt:#x} of length 0")
            if q + n > end:
                raise TruncatedError("truncated_gtp", q, f"GTP extension header {nxt:#x} of {n} bytes not captured")
            nxt = buf[q + n - 1]
            q += n
    if q >= end:
        return _skip(counts, "non_ip")  # an empty G-PDU
    v = buf[q] >> 4
    if v == 4:
        return _ipv4(frame, ts, buf, q, end, lim, depth, counts)
    if v == 6:
        return _ipv6(frame, ts, buf, q, end, lim, depth, counts)
    return _skip(counts, "non_ip")


def _is_gtpu(buf, p, end, lim):
    """GTP-U off ports 2152/2123: a version 1 G-PDU whose length field ends exactly at the
    datagram's end and whose user packet (after any extension headers) fills it."""
    if p + 8 > end or p + 8 + _U16.unpack_from(buf, p + 2)[0] != lim:
        return False
    q = p + 8
    if buf[p] & 0x07:
        if q + 4 > end:
            return False
        nxt = buf[q + 3] if buf[p] & 0x04 else 0
        q += 4
        while nxt:
            if q >= end or not buf[q] or q + (buf[q] << 2) > end:
                return False
            q += buf[q] << 2
            nxt = buf[q - 1]
    return _fills(buf, q, end, lim)


def _ayiya(frame, ts, buf, p, end, lim, depth, counts):
    """AYIYA (draft-massar-v6ops-ayiya §5, UDP 5072): id len(4, 2^n bytes) id type(4) |
    signature len(4, 4-byte words) hash method(4) | auth method(4) opcode(4) | next header(8)
    | epoch time(32) | identity | signature | payload.  Opcode 1 (forward) carries a packet
    of the next header's IP protocol (4 IPv4, 41 IPv6)."""
    if p + 8 > end:
        raise TruncatedError("truncated_ayiya", p, "AYIYA header not captured")
    q = p + 8 + (1 << (buf[p] >> 4)) + ((buf[p + 1] >> 4) << 2)
    if q > end:
        raise TruncatedError("truncated_ayiya", p, "AYIYA identity/signature not captured")
    if buf[p + 2] & 0x0F != 1:
        return _skip(counts, "non_tcp")
    nh = buf[p + 3]
    if nh == 41:
        return _ipv6(frame, ts, buf, q, end, lim, depth, counts)
    if nh == 4:
        return _ipv4(frame, ts, buf, q, end, lim, depth, counts)
    return _skip(counts, "non_ip")


def _is_ayiya(buf, p, end, lim):
    """AYIYA off port 5072 (Zeek's signature: bytes 1-2 = 0x52 0x11, i.e. a SHA-1 signature
    and a forward); also the next header must be IPv4/IPv6 and that packet fill the datagram."""
    nh = buf[p + 3]
    if nh != 41 and nh != 4:
        return False
    q = p + 8 + (1 << (buf[p] >> 4)) + ((buf[p + 1] >> 4) << 2)
    return q < end and buf[q] >> 4 == (6 if nh == 41 else 4) and _fills(buf, q, end, lim)


def _gre_udp(frame, ts, buf, p, end, lim, depth, counts):
    """GRE-in-UDP (RFC 8086 §3, UDP 4754): a GRE header without the IP header around it."""
    return _gre(frame, ts, buf, p, end, lim, depth, counts)


def _mpls_udp(frame, ts, buf, p, end, lim, depth, counts):
    """MPLS-in-UDP (RFC 7510 §3, UDP 6635): an MPLS label stack."""
    return _mpls(frame, ts, buf, p, end, lim, depth, counts)


def _lisp_data(frame, ts, buf, p, end, lim, depth, counts):
    """LISP data plane (RFC 9300 §5.3, UDP 4341): an 8-byte header, then an IP packet."""
    if p + 8 >= end:
        raise TruncatedError("truncated_lisp", p, "LISP header not captured")
    v = buf[p + 8] >> 4
    if v == 4:
        return _ipv4(frame, ts, buf, p + 8, end, lim, depth, counts)
    if v == 6:
        return _ipv6(frame, ts, buf, p + 8, end, lim, depth, counts)
    return _skip(counts, "non_ip")      # a LISP control message, or another protocol on the port


def _l2tp(frame, ts, buf, p, end, lim, depth, counts):
    """L2TPv2 data messages (RFC 2661 §3.1, UDP 1701): flags T L x x S x O P x x x x ver(4);
    [length(16)]; tunnel id(16), session id(16); [Ns(16) Nr(16)]; [offset size(16), pad];
    then a PPP frame.  Control messages (T) and L2TPv3 carry no user packet."""
    if p + 2 > end:
        raise TruncatedError("truncated_l2tp", p, "L2TP header not captured")
    fl = _U16.unpack_from(buf, p)[0]
    if fl & 0x8000 or fl & 0x0F != 2:
        return _skip(counts, "non_tcp")
    q = p + 6
    if fl & 0x4000:
        q += 2
    if fl & 0x0800:
        q += 4
    if fl & 0x0200:
        if q + 2 > end:
            raise TruncatedError("truncated_l2tp", p, "L2TP offset size not captured")
        q += 2 + _U16.unpack_from(buf, q)[0]
    if q > end:
        raise TruncatedError("truncated_l2tp", p, "L2TP header not captured")
    return _ppp(frame, ts, buf, q, end, lim, depth, counts)


#: UDP ports of tunnels (IANA assignments, as Wireshark 4.0 registers them).
_UDP_PORTS = {
    _VXLAN_PORT: _vxlan,        # VXLAN (RFC 7348)
    4790: _vxlan_gpe,           # VXLAN-GPE
    6081: _geneve,              # Geneve (RFC 8926)
    2152: _gtp,                 # GTP-U (3GPP TS 29.281)
    2123: _gtp,                 # GTP-C: control messages only (counted), as Zeek registers it
    _TEREDO_PORT: _teredo,      # Teredo (RFC 4380)
    5072: _ayiya,               # AYIYA
    4754: _gre_udp,             # GRE-in-UDP (RFC 8086)
    6635: _mpls_udp,            # MPLS-in-UDP (RFC 7510)
    4341: _lisp_data,           # LISP data plane (RFC 9300)
    1701: _l2tp,                # L2TPv2 (RFC 2661)
}


# IP protocol numbers of tunnels (handlers get depth + 1 from _l4).
_TUNNEL_PROTO = {
    4: _ipv4,       # IP-in-IP (RFC 2003), also 4in6 (RFC 2473)
    41: _ipv6,      # IPv6 encapsulation (RFC 2473 / 6in4 RFC 4213)
    47: _gre,
    17: _udp,
}


# ======================================================================================
# Layer-2.5 / shims keyed by ethertype
# ======================================================================================

_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))


def _ether(frame, ts, buf, off, end, lim, depth, counts):
    """Ethernet II (IEEE 802.3 §3.2.6): dst(6), src(6), type/length(2)."""
    if off + 14 > end:
        raise TruncatedError("truncated_ethernet", off, f"{end - off} of 14 header bytes captured")
    return _ethertype(_U16.unpack_from(buf, off + 12)[0], frame, ts, buf, off + 14, end, lim, depth, counts)


def _ethertype(et, frame, ts, buf, off, end, lim, depth, counts):
    """Dispatch on an ethertype; values < 0x0600 are IEEE 802.3 lengths: an LLC header follows."""
    h = _ETHERTYPES.get(et)
    if h is not None:
        return h(frame, ts, buf, off, end, lim, depth, counts)
    if et < 0x0600:
        e = off + et                # IEEE 802.3 length of the LLC data (padding excluded)
        if e < lim:
            lim = e
            if e < end:
                end = e
        return _llc(frame, ts, buf, off, end, lim, depth, counts)
    return _skip(counts, "non_ip")


def _llc(frame, ts, buf, off, end, lim, depth, counts):
    """IEEE 802.2 LLC: DSAP, SSAP, control.  SNAP (aa aa 03, RFC 1042) with OUI 000000 or
    0000f8 (802.1H) carries an ethertype; OUI 0080c2 PID 0001/0007 a bridged Ethernet frame
    (RFC 2684 §5.2, with/without FCS); SAP 06 (RFC 948 style) an IPv4 packet."""
    if off + 3 > end:
        raise TruncatedError("truncated_llc", off, "LLC header not captured")
    if buf[off] == 0x06 and buf[off + 1] == 0x06 and buf[off + 2] == 0x03:
        return _ipv4(frame, ts, buf, off + 3, end, lim, depth, counts)
    if off + 8 > end:
        raise TruncatedError("truncated_llc", off, "LLC/SNAP header not captured")
    if buf[off] != 0xAA or buf[off + 1] != 0xAA or buf[off + 2] != 0x03:
        return _skip(counts, "non_ip")
    et = _U16.unpack_from(buf, off + 6)[0]
    if buf[off + 3] or buf[off + 4] or buf[off + 5] not in (0x00, 0xF8):
        if buf[off + 3] == 0x00 and buf[off + 4] == 0x80 and buf[off + 5] == 0xC2 and (et == 1 or et == 7):
            if off + 10 > end:
                raise TruncatedError("truncated_llc", off, "bridged frame's padding not captured")
            if depth >= _MAX_DEPTH:
                raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
            return _ether(frame, ts, buf, off + 10 if et == 1 else off + 8, end, lim, depth + 1, counts)
        return _skip(counts, "non_ip")
    h = _ETHERTYPES.get(et)
    if h is None:                   # includes et < 0x0600: no LLC-in-LLC
        return _skip(counts, "non_ip")
    return h(frame, ts, buf, off + 8, end, lim, depth, counts)


def _vlan(frame, ts, buf, off, end, lim, depth, counts):
    """IEEE 802.1Q / 802.1ad / legacy QinQ tags: TCI(2), then the next type; tags may stack."""
    while True:
        if off + 4 > end:
            raise TruncatedError("truncated_vlan", off, "VLAN tag not captured")
        et = _U16.unpack_from(buf, off + 2)[0]
        off += 4
        if et not in _VLAN_TPIDS:
            return _ethertype(et, frame, ts, buf, off, end, lim, depth, counts)


def _mpls(frame, ts, buf, off, end, lim, depth, counts):
    """MPLS label stack (RFC 3032 §2.1): label(20) TC(3) S(1) TTL(8); S marks the bottom.

    The payload has no type field: guess IPv4/IPv6 from the first nibble (RFC 4385 §2: a
    pseudowire control word starts with 0000, so it is not mistaken for IP).
    """
    while True:
        if off + 4 > end:
            raise TruncatedError("truncated_mpls", off, "MPLS label not captured")
        bos = buf[off + 2] & 1
        off += 4
        if bos:
            break
    if off >= end:
        raise TruncatedError("truncated_mpls", off, "MPLS payload not captured")
    v = buf[off] >> 4
    if v == 4:
        return _ipv4(frame, ts, buf, off, end, lim, depth, counts)
    if v == 6:
        return _ipv6(frame, ts, buf, off, end, lim, depth, counts)
    return _skip(counts, "non_ip")


def _pppoe(frame, ts, buf, off, end, lim, depth, counts):
    """PPPoE session stage (RFC 2516 §4): ver/type(1), code(1) = 0, session id(2), length(2), PPP."""
    if off + 6 > end:
        raise TruncatedError("truncated_pppoe", off, "PPPoE header not captured")
    if buf[off + 1] != 0:           # not a session data packet (discovery codes are non-zero)
        return _skip(counts, "non_ip")
    e = off + 6 + _U16.unpack_from(buf, off + 4)[0]     # the length field excludes padding
    if e < lim:
        lim = e
        if e < end:
            end = e
    return _ppp_proto(frame, ts, buf, off + 6, end, lim, depth, counts)


def _ppp(frame, ts, buf, off, end, lim, depth, counts):
    """PPP frame (RFC 1661 §2) optionally in HDLC-like framing (RFC 1662 §3.1: ff 03 prefix)."""
    if off + 2 <= end and buf[off] == 0xFF and buf[off + 1] == 0x03:
        off += 2
    return _ppp_proto(frame, ts, buf, off, end, lim, depth, counts)


_PPP_PROTO = {
    0x0021: _ipv4,      # RFC 1332
    0x0057: _ipv6,      # RFC 5072
    0x0281: _mpls,      # RFC 3032 §5 (unicast)
    0x0283: _mpls,      # (multicast)
}


def _ppp_proto(frame, ts, buf, off, end, lim, depth, counts):
    """PPP protocol field (RFC 1661 §2): 2 bytes, or 1 when compressed (PFC: first byte odd)."""
    if off >= end:
        raise TruncatedError("truncated_ppp", off, "PPP protocol not captured")
    if buf[off] & 1:
        proto = buf[off]
        off += 1
    else:
        if off + 2 > end:
            raise TruncatedError("truncated_ppp", off, "PPP protocol not captured")
        proto = _U16.unpack_from(buf, off)[0]
        off += 2
    h = _PPP_PROTO.get(proto)
    if h is None:
        return _skip(counts, "non_ip")
    return h(frame, ts, buf, off, end, lim, depth, counts)


def _vntag(frame, ts, buf, off, end, lim, depth, counts):
    """VN-Tag (Cisco, ethertype 0x8926): D P dst vif(14) | L R ver(2) src vif(12), then the
    next ethertype; VLAN tags may stand before and after it."""
    if off + 6 > end:
        raise TruncatedError("truncated_vntag", off, "VN-Tag not captured")
    if depth >= _MAX_DEPTH:         # tags that lead back to tags: bounded like tunnels
        raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
    return _ethertype(_U16.unpack_from(buf, off + 4)[0], frame, ts, buf, off + 6, end, lim, depth + 1, counts)


def _etag(frame, ts, buf, off, end, lim, depth, counts):
    """IEEE 802.1BR E-TAG (ethertype 0x893F): 6 bytes of tag, then the next ethertype."""
    if off + 8 > end:
        raise TruncatedError("truncated_etag", off, "E-TAG not captured")
    if depth >= _MAX_DEPTH:         # tags that lead back to tags: bounded like tunnels
        raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
    return _ethertype(_U16.unpack_from(buf, off + 6)[0], frame, ts, buf, off + 8, end, lim, depth + 1, counts)


def _cisco_md(frame, ts, buf, off, end, lim, depth, counts):
    """Cisco MetaData (ethertype 0x8909): version(8) length(8) option type(16) SGT(16), then
    the next ethertype."""
    if off + 8 > end:
        raise TruncatedError("truncated_cmd", off, "Cisco MetaData header not captured")
    if depth >= _MAX_DEPTH:         # tags that lead back to tags: bounded like tunnels
        raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
    return _ethertype(_U16.unpack_from(buf, off + 6)[0], frame, ts, buf, off + 8, end, lim, depth + 1, counts)


def _pbb(frame, ts, buf, off, end, lim, depth, counts):
    """IEEE 802.1ah provider backbone bridging, I-TAG (ethertype 0x88E7): PCP(3) DEI UCA
    reserved(3) I-SID(24), then the customer's Ethernet frame (dst, src, type)."""
    if off + 4 > end:
        raise TruncatedError("truncated_pbb", off, "I-TAG not captured")
    if depth >= _MAX_DEPTH:
        raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
    return _ether(frame, ts, buf, off + 4, end, lim, depth + 1, counts)


def _fabricpath(frame, ts, buf, off, end, lim, depth, counts):
    """Cisco FabricPath: the outer header's type 0x8903, then FTAG(10) TTL(6), then the
    original Ethernet frame (Zeek skips the same 16 bytes)."""
    if off + 2 > end:
        raise TruncatedError("truncated_fabricpath", off, "FabricPath tag not captured")
    if depth >= _MAX_DEPTH:
        raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
    return _ether(frame, ts, buf, off + 2, end, lim, depth + 1, counts)


def _nsh(frame, ts, buf, off, end, lim, depth, counts):
    """Network Service Header (RFC 8300 §2.2, ethertype 0x894F): ver(2) O U TTL(6) length(6,
    4-byte words) | U(4) MD type(4) | next protocol (1 IPv4, 2 IPv6, 3 Ethernet, 5 MPLS) |
    service path id(24) index(8) | context headers."""
    if off + 8 > end:
        raise TruncatedError("truncated_nsh", off, "NSH not captured")
    if buf[off] >> 6:
        return _skip(counts, "non_ip")
    n = (_U16.unpack_from(buf, off)[0] & 0x3F) << 2
    if n < 8:
        raise DecodeError("bad_nsh_length", off, f"NSH length {n} < 8")
    if off + n > end:
        raise TruncatedError("truncated_nsh", off, f"NSH of {n} bytes not captured")
    h = _GPE_NEXT.get(buf[off + 3])
    if h is None or h is _nsh:
        return _skip(counts, "non_ip")
    if depth >= _MAX_DEPTH:
        raise DecodeError("tunnel_depth", off, f"more than {_MAX_DEPTH} nested tunnels")
    return h(frame, ts, buf, off + n, end, lim, depth + 1, counts)


_ETHERTYPES = {
    0x0800: _ipv4,
    0x86DD: _ipv6,
    0x8100: _vlan,      # IEEE 802.1Q
    0x88A8: _vlan,      # IEEE 802.1ad service tag
    0x9100: _vlan,      # pre-standard QinQ
    0x9200: _vlan,
    0x8864: _pppoe,     # PPPoE session stage (0x8863 discovery carries no IP)
    0x8847: _mpls,      # MPLS unicast
    0x8848: _mpls,      # MPLS multicast
    0x8926: _vntag,     # VN-Tag
    0x893F: _etag,      # IEEE 802.1BR E-TAG
    0x8909: _cisco_md,  # Cisco MetaData (SGT)
    0x88E7: _pbb,       # IEEE 802.1ah I-TAG
    0x8903: _fabricpath,  # Cisco FabricPath
    0x894F: _nsh,       # Network Service Header
}

#: VXLAN-GPE and NSH "next protocol" values.
_GPE_NEXT = {1: _ipv4, 2: _ipv6, 3: _ether, 4: _nsh, 5: _mpls}


# ======================================================================================
# Link layers (pcap LINKTYPE_*), all called with off = 0, end = len(buf), depth = 0
# ======================================================================================

def _raw(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_RAW 101 (and 12/14): a bare IP packet; the version nibble tells which."""
    if off >= end:
        raise TruncatedError("truncated_ip", off, "empty frame")
    v = buf[off] >> 4
    if v == 4:
        return _ipv4(frame, ts, buf, off, end, lim, depth, counts)
    if v == 6:
        return _ipv6(frame, ts, buf, off, end, lim, depth, counts)
    raise DecodeError("bad_ip_version", off, f"IP version {v}")


# BSD address families: AF_INET 2; AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (Darwin).
_AF = {2: _ipv4, 24: _ipv6, 28: _ipv6, 30: _ipv6}


def _null(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_NULL 0 (4-byte AF in the capturing host's byte order) / LOOP 108 (network order)."""
    if off + 4 > end:
        raise TruncatedError("truncated_null", off, "loopback header not captured")
    fam = _U32LE.unpack_from(buf, off)[0]
    if fam > 0xFFFF:                # written big-endian
        fam = _U32.unpack_from(buf, off)[0]
    h = _AF.get(fam)
    if h is None:
        return _skip(counts, "non_ip")
    return h(frame, ts, buf, off + 4, end, lim, depth, counts)


def _ppp_hdlc(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_PPP_HDLC 50: PPP in HDLC-like framing, or Cisco HDLC when the first byte is 0x0f/0x8f."""
    if off < end and buf[off] in (0x0F, 0x8F):
        return _chdlc(frame, ts, buf, off, end, lim, depth, counts)
    return _ppp(frame, ts, buf, off, end, lim, depth, counts)


def _chdlc(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_C_HDLC 104 (Cisco HDLC): address(1), control(1), ethertype(2)."""
    if off + 4 > end:
        raise TruncatedError("truncated_chdlc", off, "Cisco HDLC header not captured")
    return _ethertype(_U16.unpack_from(buf, off + 2)[0], frame, ts, buf, off + 4, end, lim, depth, counts)


def _sll(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_LINUX_SLL 113: packet type(2), ARPHRD(2), addr len(2), addr(8), protocol(2)."""
    if off + 16 > end:
        raise TruncatedError("truncated_sll", off, "Linux cooked header not captured")
    return _ethertype(_U16.unpack_from(buf, off + 14)[0], frame, ts, buf, off + 16, end, lim, depth, counts)


def _sll2(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_LINUX_SLL2 276: protocol(2), reserved(2), ifindex(4), ARPHRD(2), pkttype(1), addr len(1), addr(8)."""
    if off + 20 > end:
        raise TruncatedError("truncated_sll2", off, "Linux cooked v2 header not captured")
    return _ethertype(_U16.unpack_from(buf, off)[0], frame, ts, buf, off + 20, end, lim, depth, counts)


def _wlan(frame, ts, buf, off, end, lim, depth, counts, datapad=False):
    """IEEE 802.11 MAC header (IEEE 802.11-2020 §9.2.3) of a data frame, then LLC/SNAP.

    Frame control byte 0: subtype(4) type(2) version(2); byte 1: order, protected, more data,
    power mgmt, retry, more fragments, from DS, to DS.  Header: 24 bytes, 30 with four
    addresses (to DS and from DS), +2 QoS control for QoS subtypes, +4 HT control when a
    QoS frame has the +HTC/Order bit.  ``datapad`` (radiotap flag 0x20) pads the header to
    a multiple of 4 bytes.
    """
    if off + 2 > end:
        raise TruncatedError("truncated_80211", off, "frame control not captured")
    fc0 = buf[off]
    fc1 = buf[off + 1]
    if fc0 & 0x0C != 0x08 or fc0 & 0x43 or fc1 & 0x40:
        # Not version 0 / not a data frame / a no-data subtype (null, CF-ack/poll only) / protected.
        return _skip(counts, "non_ip")
    hl = 30 if fc1 & 3 == 3 else 24
    if fc0 & 0x80:                  # QoS subtypes
        if off + hl + 2 > end:
            raise TruncatedError("truncated_80211", off, "802.11 header not captured")
        amsdu = buf[off + hl] & 0x80
        hl += 2
        if fc1 & 0x80:
            hl += 4
    else:
        amsdu = 0
    if datapad:
        hl = (hl + 3) & ~3
    if off + hl > end:
        raise TruncatedError("truncated_80211", off, "802.11 header not captured")
    if amsdu:
        return _amsdu(frame, ts, buf, off + hl, end, lim, depth, counts)
    return _llc(frame, ts, buf, off + hl, end, lim, depth, counts)


def _amsdu(frame, ts, buf, off, end, lim, depth, counts):
    """An A-MSDU (IEEE 802.11-2020 §9.3.2.2.2): subframes of DA(6) SA(6) length(16, big
    endian), then that many bytes (LLC/SNAP + packet), padded to a multiple of 4.

    One frame gives one segment: the first subframe holding a TCP segment (the row tshark
    shows for the frame); the frame is counted as skipped only when none does."""
    seen = None
    while off + 14 <= end:
        n = _U16.unpack_from(buf, off + 12)[0]
        e = off + 14 + n
        sub = {}
        if n < 3:                   # no room for an LLC header
            sub["non_ip"] = 1
        else:
            seg = _llc(frame, ts, buf, off + 14, e if e < end else end, e if e < lim else lim, depth, sub)
            if seg is not None:
                return seg
        seen = sub
        off += (14 + n + 3) & ~3
    if seen is None:
        raise TruncatedError("truncated_amsdu", off, "A-MSDU subframe header not captured")
    for k, v in seen.items():
        counts[k] = counts.get(k, 0) + v
    return None


def _radiotap(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_IEEE802_11_RADIOTAP 127: version(1) = 0, pad(1), length(2, LE), present(4, LE)...

    Only the Flags field is looked at (for the "data pad" bit 0x20); it follows the
    present words and the 8-byte-aligned TSFT field when those are present.
    """
    if off + 8 > end:
        raise TruncatedError("truncated_radiotap", off, "radiotap header not captured")
    if buf[off] != 0:
        raise DecodeError("bad_radiotap_version", off, f"radiotap version {buf[off]}")
    rlen = _U16LE.unpack_from(buf, off + 2)[0]
    if rlen < 8:
        raise DecodeError("bad_radiotap_length", off + 2, f"radiotap length {rlen} < 8")
    rend = off + rlen
    if rend > end:
        raise TruncatedError("truncated_radiotap", off, f"radiotap header of {rlen} bytes not captured")
    present = _U32LE.unpack_from(buf, off + 4)[0]
    datapad = False
    if present & 2:                 # Flags field present
        p = off + 8
        w = present
        while w & 0x80000000 and p + 4 <= rend:     # extended present bitmaps
            w = _U32LE.unpack_from(buf, p)[0]
            p += 4
        if present & 1:             # TSFT: 8 bytes, 8-byte aligned from the header start
            p = off + ((p - off + 7) & ~7) + 8
        if p < rend:
            datapad = bool(buf[p] & 0x20)
    return _wlan(frame, ts, buf, rend, end, lim, depth, counts, datapad)


def _wlan_link(frame, ts, buf, off, end, lim, depth, counts):
    return _wlan(frame, ts, buf, off, end, lim, depth, counts)


def _nflog(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_NFLOG 239: family(1), version(1), resource id(2, BE), then TLVs.

    TLV: length(2, LE, includes the 4-byte TLV header), type(2, LE); values padded to 4
    bytes.  Type 9 (NFULA_PAYLOAD) holds the network-layer packet.
    """
    if off + 4 > end:
        raise TruncatedError("truncated_nflog", off, "NFLOG header not captured")
    p = off + 4
    while p + 4 <= end:
        tlen, ttype = _U16LEx2.unpack_from(buf, p)
        if tlen < 4:
            raise DecodeError("bad_nflog_tlv", p, f"TLV length {tlen} < 4")
        if ttype & 0x3FFF == 9:     # strip the netlink NLA_F_NESTED / NLA_F_NET_BYTEORDER bits
            # The TLV holds what netlink copied (the copy range may cut the packet): it bounds
            # the captured bytes only, the IP length still tells the packet's real size.
            s = p + 4
            e = p + tlen
            if e < end:
                end = e
            if s >= end:
                return _skip(counts, "non_ip")
            v = buf[s] >> 4
            if v == 4:
                return _ipv4(frame, ts, buf, s, end, lim, depth, counts)
            if v == 6:
                return _ipv6(frame, ts, buf, s, end, lim, depth, counts)
            return _skip(counts, "non_ip")
        p += (tlen + 3) & ~3
    return _skip(counts, "non_ip")


def _fddi(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_FDDI 10 (ANSI X3.139): frame control(1), dst(6), src(6), then 802.2 LLC.

    Wireshark reads link type 10 as bit-swapped FDDI (the MAC addresses' bit order), which
    changes no offset.  Frame control C L F F Z Z Z Z: FF = 01 is an LLC frame; SMT and MAC
    frames carry no IP."""
    if off + 13 > end:
        raise TruncatedError("truncated_fddi", off, "FDDI header not captured")
    if buf[off] & 0x30 != 0x10:
        return _skip(counts, "non_ip")
    return _llc(frame, ts, buf, off + 13, end, lim, depth, counts)


def _token_ring(frame, ts, buf, off, end, lim, depth, counts):
    """LINKTYPE_IEEE802_5 6 (IEEE 802.5 §3.2): access control(1), frame control(1), dst(6),
    src(6); with the source's route bit (0x80 of its first byte) a routing information field
    whose length is the low 5 bits of its first byte; then 802.2 LLC.  Frame control type
    bits 01 mark an LLC frame."""
    if off + 14 > end:
        raise TruncatedError("truncated_token_ring", off, "Token Ring header not captured")
    if buf[off + 1] & 0xC0 != 0x40:
        return _skip(counts, "non_ip")
    p = off + 14
    if buf[off + 8] & 0x80:
        if p >= end:
            raise TruncatedError("truncated_token_ring", p, "routing information not captured")
        rif = buf[p] & 0x1F
        if rif < 2:
            raise DecodeError("bad_token_ring_rif", p, f"routing information length {rif} < 2")
        p += rif
        if p > end:
            raise TruncatedError("truncated_token_ring", off + 14, f"routing information of {rif} bytes not captured")
    return _llc(frame, ts, buf, p, end, lim, depth, counts)


_LINKTYPES = {
    0: _null,
    108: _null,
    1: _ether,
    9: _ppp,
    50: _ppp_hdlc,
    51: _pppoe,         # LINKTYPE_PPP_ETHER: starts with the PPPoE header
    104: _chdlc,
    105: _wlan_link,
    127: _radiotap,
    113: _sll,
    276: _sll2,
    12: _raw,
    14: _raw,
    101: _raw,
    228: _ipv4,
    229: _ipv6,
    239: _nflog,
    10: _fddi,
    6: _token_ring,
    100: _llc,          # LINKTYPE_ATM_RFC1483: LLC/SNAP-encapsulated packets (RFC 2684 §5)
}


def _decode_general(frame, ts_ns, linktype, buf, counts, wirelen=0):
    """The table-driven path (also what the tests fuzz: no exception safety net here)."""
    h = _LINKTYPES.get(linktype)
    if h is None:
        name = LINKTYPE_NAMES.get(linktype)
        raise DecodeError("unsupported_linktype", 0,
                          f"link type {linktype} ({name})" if name else f"link type {linktype}")
    n = len(buf)
    return h(frame, ts_ns, buf, 0, n, (wirelen if wirelen > n else n) if wirelen else _NOLIM, 0, counts)


# ======================================================================================
# Compiled fast path (only when Cython built this module, see setup.py)
# ======================================================================================
# The same frames and the same Segment as the struct fast path in decode(), read with C
# byte access instead of struct.unpack_from (which makes a tuple and a Python int per
# field).  Plain Python never calls these functions.

@cython.cfunc
@cython.inline
@cython.locals(p=cython.p_uchar, i=cython.Py_ssize_t)
@cython.returns(cython.longlong)
def _be16(p, i):
    return (cython.cast(cython.longlong, p[i]) << 8) | p[i + 1]


@cython.cfunc
@cython.inline
@cython.locals(p=cython.p_uchar, i=cython.Py_ssize_t)
@cython.returns(cython.longlong)
def _be32(p, i):
    return ((cython.cast(cython.longlong, p[i]) << 24) | (cython.cast(cython.longlong, p[i + 1]) << 16)
            | (cython.cast(cython.longlong, p[i + 2]) << 8) | p[i + 3])


#: _TS_WORD as a C constant (the module's name is a Python object, looked up at each use)
_TS_WORD_C = cython.declare(cython.longlong, 0x0101080A)

#: the packed addresses made last, by a hash of their last two bytes: a capture has few
#: hosts, so most segments reuse both of theirs instead of making two bytes objects (the
#: slots start as the all-zero address, which is what they would hold for it)
_ADDR4 = cython.declare(list, [bytes(4)] * 64)
_ADDR16 = cython.declare(list, [bytes(16)] * 64)


@cython.cfunc
@cython.locals(p=cython.p_uchar, a=cython.Py_ssize_t, n=cython.Py_ssize_t, h=cython.Py_ssize_t,
               q=cython.p_uchar, o=bytes, cache=list)
def _addr(p, a, n):
    """``bytes(p[a:a + n])`` (n is 4 or 16): the object kept for that address when there is
    one, else a new one, kept in place of its slot's."""
    cache = _ADDR4 if n == 4 else _ADDR16
    h = (p[a + n - 1] + 31 * p[a + n - 2]) & 63
    o = cache[h]
    q = o
    if memcmp(q, p + a, n) == 0:
        return o
    o = cython.cast(cython.p_char, p)[a:a + n]
    cache[h] = o
    return o


@cython.cfunc
@cython.inline
@cython.locals(buf=bytes)
def _fast_ether(frame, ts_ns, buf, wirelen):
    """_fast_ether_at() of a whole bytes object."""
    return _fast_ether_at(frame, ts_ns, cython.cast(cython.p_uchar, cython.cast(cython.p_char, buf)), len(buf),
                          wirelen)


@cython.cfunc
@cython.locals(p=cython.p_uchar, n=cython.Py_ssize_t, frame=cython.longlong, ts_ns=cython.longlong,
               wirelen=cython.longlong, et=cython.longlong, tot=cython.longlong, hl=cython.longlong,
               paylen=cython.longlong, t=cython.Py_ssize_t, a=cython.Py_ssize_t, asz=cython.Py_ssize_t,
               seg=Segment, tsval=cython.longlong, tsecr=cython.longlong, hdr=cython.Py_ssize_t,
               mss=cython.longlong, wscale=cython.longlong, sack_perm=cython.bint, i=cython.Py_ssize_t,
               j=cython.Py_ssize_t, pay=cython.Py_ssize_t, kind=cython.longlong, ln=cython.Py_ssize_t)
def _fast_ether_at(frame, ts_ns, p, n, wirelen):
    """Ethernet II + IPv4 (IHL 5, not a fragment) or IPv6 (TCP first) + TCP with a
    captured header, the ``n`` bytes at ``p``: the Segment, or None for the general path
    (which also takes every option list _tcp would count as ``bad_tcp_option``)."""
    if n < 54:
        return None
    et = _be16(p, 12)
    if et == 0x0800:
        if p[14] != 0x45 or p[23] != 6 or _be16(p, 20) & 0x3FFF:
            return None
        tot = _be16(p, 16)
        if wirelen and tot + 14 > wirelen:
            return None
        t = 34                       # TCP header
        a = 26                       # source address
        asz = 4
    elif et == 0x86DD:
        if n < 74 or p[20] != 6 or p[14] >> 4 != 6:
            return None
        tot = _be16(p, 18)           # payload length
        if not tot or (wirelen and tot + 54 > wirelen):
            return None
        t = 54
        a = 22
        asz = 16
    else:
        return None
    hl = p[t + 12] >> 4
    mss = wscale = -1
    sack_perm = False
    sack = None
    if hl == 5:
        hdr = 20
        tsval = tsecr = -1
    elif hl == 8 and n >= t + 32 and _be32(p, t + 20) == _TS_WORD_C:
        hdr = 32
        tsval = _be32(p, t + 24)
        tsecr = _be32(p, t + 28)
    else:
        # _tcp's option walk (SYNs, SACK blocks): any option it would count as bad goes there
        hdr = hl * 4
        if hdr < 20 or n < t + hdr:
            return None
        tsval = tsecr = -1
        i = t + 20
        pay = t + hdr
        while i < pay:
            kind = p[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 2 > pay:
                return None
            ln = p[i + 1]
            if ln < 2 or i + ln > pay:
                return None
            if kind == 8:
                if ln != 10:
                    return None
                tsval = _be32(p, i + 2)
                tsecr = _be32(p, i + 6)
            elif kind == 2:
                if ln != 4:
                    return None
                mss = _be16(p, i + 2)
            elif kind == 3:
                if ln != 3:
                    return None
                wscale = p[i + 2]
            elif kind == 4:
                if ln != 2:
                    return None
                sack_perm = True
            elif kind == 5:
                if ln < 10 or (ln - 2) & 7:
                    return None
                blocks = []
                j = i + 2
                while j < i + ln:
                    blocks.append((_be32(p, j), _be32(p, j + 4)))
                    j += 8
                sack = tuple(blocks)
            i += ln
    # IPv4: total length covers the 20-byte IP header; IPv6: the payload length does not
    paylen = tot - hdr - (20 if asz == 4 else 0)
    if paylen < 0:
        return None
    seg = Segment.__new__(Segment)
    seg.frame = frame
    seg.ts_ns = ts_ns
    seg.src = _addr(p, a, asz)
    seg.dst = _addr(p, a + asz, asz)
    seg.sport = _be16(p, t)
    seg.dport = _be16(p, t + 2)
    seg.seq = _be32(p, t + 4)
    seg.ack = _be32(p, t + 8)
    seg.flags = _be16(p, t + 12) & 0x1FF
    seg.win = _be16(p, t + 14)
    seg.paylen = paylen
    seg.mss = mss
    seg.wscale = wscale
    seg.sack_perm = sack_perm
    seg.sack = sack
    seg.tsval = tsval
    seg.tsecr = tsecr
    seg.truncated = n - t - hdr < paylen
    return seg


def decode(frame: int, ts_ns: int, linktype: int, buf, counts, wirelen: int = 0) -> Segment | None:
    """Decode one frame to its innermost TCP segment.

    ``buf`` is the captured frame (bytes, bytearray or memoryview); ``counts`` a dict of skip
    reasons (or a :class:`DecodeState`, a dict that carries the run's state: left without an
    annotation, which the compiled build would enforce as an exact dict).  ``wirelen`` (optional)
    is the frame's original length on the wire; when given, an IP length that claims more
    than the frame held is cut to the frame (as Wireshark does) instead of being trusted.

    Returns None (and increments ``counts[reason]``: ``non_ip``, ``non_tcp``,
    ``ip_fragment``) when the frame carries no TCP header; counts ``bad_tcp_option`` when an
    option list had to be abandoned (the segment is still returned).  IP fragments are
    reassembled when ``counts`` is a :class:`DecodeState` with a reassembler: a fragment
    then returns None (counted as ``ip_fragment``) until one completes its datagram, and
    that frame returns the segment the datagram carries.  Raises
    DecodeError/TruncatedError for malformed frames and
    ``DecodeError("unsupported_linktype", 0, "link type N (NAME)")`` for unknown link types.
    """
    if linktype == 1:
        if cython.compiled:
            if type(buf) is bytes:
                seg = _fast_ether(frame, ts_ns, buf, wirelen)
                if seg is not None:
                    return seg
                return _decode_general_safe(frame, ts_ns, linktype, buf, counts, wirelen)
        # Fast path: Ethernet II, IPv4 with IHL 5, not a fragment, IP length set
        # (and within the wire length when known), or IPv6 with TCP as the first next
        # header and a payload length; TCP with no options or with exactly NOP NOP
        # Timestamp.  Anything else falls through to the general path.
        n = len(buf)
        if n >= 66:
            etv, tot, fpr, src, dst, sport, dport, seq, ack, offfl, win, word, tsval, tsecr = \
                _FAST66.unpack_from(buf)
            # etv: ethertype, version/IHL, TOS; fpr: flags/fragment offset, TTL, protocol
            if etv & 0xFFFFFF00 == 0x08004500 and fpr & 0x3FFF00FF == 6 and (not wirelen or tot + 14 <= wirelen):
                hl = offfl & 0xF000
                if hl == 0x8000 and word == _TS_WORD_C and tot >= 52:
                    paylen = tot - 52
                    return new_segment(frame, ts_ns, src, dst, sport, dport, seq, ack, offfl & 0x1FF, win,
                                       paylen, -1, -1, False, None, tsval, tsecr, n - 66 < paylen)
                if hl == 0x5000 and tot >= 40:
                    paylen = tot - 40
                    return new_segment(frame, ts_ns, src, dst, sport, dport, seq, ack, offfl & 0x1FF, win,
                                       paylen, -1, -1, False, None, -1, -1, n - 54 < paylen)
            elif etv >> 16 == 0x86DD and n >= 74:
                # IPv6, next header TCP, payload length set (and within the wire length)
                if n >= 86:
                    vtc, plen, nh, src, dst, sport, dport, seq, ack, offfl, win, word, tsval, tsecr = \
                        _FAST86.unpack_from(buf, 14)
                else:
                    vtc, plen, nh, src, dst, sport, dport, seq, ack, offfl, win = _FAST74.unpack_from(buf, 14)
                    word = 0
                if nh == 6 and vtc >> 28 == 6 and plen and (not wirelen or plen + 54 <= wirelen):
                    hl = offfl & 0xF000
                    if hl == 0x8000 and word == _TS_WORD_C and plen >= 32:
                        paylen = plen - 32
                        return new_segment(frame, ts_ns, src, dst, sport, dport, seq, ack, offfl & 0x1FF, win,
                                           paylen, -1, -1, False, None, tsval, tsecr, n - 86 < paylen)
                    if hl == 0x5000 and plen >= 20:
                        paylen = plen - 20
                        return new_segment(frame, ts_ns, src, dst, sport, dport, seq, ack, offfl & 0x1FF, win,
                                           paylen, -1, -1, False, None, -1, -1, n - 74 < paylen)
        elif n >= 54:
            etv, tot, fpr, src, dst, sport, dport, seq, ack, offfl, win = _FAST54.unpack_from(buf)
            if etv & 0xFFFFFF00 == 0x08004500 and fpr & 0x3FFF00FF == 6 and offfl & 0xF000 == 0x5000 \
                    and tot >= 40 and (not wirelen or tot + 14 <= wirelen):
                paylen = tot - 40
                return new_segment(frame, ts_ns, src, dst, sport, dport, seq, ack, offfl & 0x1FF, win,
                                   paylen, -1, -1, False, None, -1, -1, n - 54 < paylen)
    return _decode_general_safe(frame, ts_ns, linktype, buf, counts, wirelen)


@cython.ccall
def decode_frame(frame: cython.longlong, ts_ns: cython.longlong, linktype: cython.longlong, buf, counts,
                 wirelen: cython.longlong):
    """:func:`decode`, called by the compiled packet loop (``pipeline._run``) as a C function:
    the C fast path, else the general path, as ``decode`` does."""
    if linktype == 1 and cython.compiled and type(buf) is bytes:
        seg = _fast_ether(frame, ts_ns, buf, wirelen)
        if seg is not None:
            return seg
        return _decode_general_safe(frame, ts_ns, linktype, buf, counts, wirelen)
    return decode(frame, ts_ns, linktype, buf, counts, wirelen)


@cython.ccall
@cython.locals(p=cython.p_uchar)
def decode_at(frame: cython.longlong, ts_ns: cython.longlong, linktype: cython.longlong, buf: bytes,
              off: cython.Py_ssize_t, caplen: cython.Py_ssize_t, counts, wirelen: cython.longlong):
    """:func:`decode` of the frame ``buf[off:off + caplen]`` (the compiled batch loop,
    ``pipeline.run_batches``, calls it as a C function): compiled, the fast path reads the
    frame where it is, and only a frame for the general path is copied out."""
    if linktype == 1 and cython.compiled:
        p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, buf))
        seg = _fast_ether_at(frame, ts_ns, p + off, caplen, wirelen)
        if seg is not None:
            return seg
        return _decode_general_safe(frame, ts_ns, linktype, buf[off:off + caplen], counts, wirelen)
    return decode(frame, ts_ns, linktype, buf[off:off + caplen], counts, wirelen)


def decode_general(frame: int, ts_ns: int, linktype: int, buf, counts, wirelen: int = 0) -> Segment | None:
    """:func:`decode` without its fast path: every frame through the per-protocol handlers
    (a run that verifies TCP checksums decodes with this, see ``DecodeState.verify``)."""
    return _decode_general_safe(frame, ts_ns, linktype, buf, counts, wirelen)


def _decode_general_safe(frame, ts_ns, linktype, buf, counts, wirelen):
    try:
        return _decode_general(frame, ts_ns, linktype, buf, counts, wirelen)
    except (struct.error, IndexError) as exc:   # safety net only: every access is bounds-checked
        raise TruncatedError("truncated", 0, f"{type(exc).__name__}: {exc}") from None


# As plain Python, decode() and _tcp() run with new_segment written into them
# (tcpanalyze/_fuse.py): a segment is an allocation and its stores, not a class call.
# Compiled, the fast path builds segments with C stores and this does not run.
if not cython.compiled:
    from tcpanalyze import _fuse
    _FUSE_ENTRIES = ("decode", "_tcp")
    _FUSE_INLINE = ("new_segment",)
    _fuse.fuse(globals(), _FUSE_ENTRIES, _FUSE_INLINE, cache=True)
