"""Names, bits and thresholds of the per-packet sequence analysis.

The names are Wireshark's ``tcp.analysis.*`` field names without the prefix, so a
tcpanalyze verdict can be compared with Wireshark's packet by packet.  The bit values are
Wireshark's ``TCP_A_*`` values (epan/dissectors/packet-tcp.c), which keeps the two easy to
cross-reference when reading both.  The rules themselves live in ``engine.py``.
"""
from __future__ import annotations

RETRANSMISSION = 0x0001
LOST_SEGMENT = 0x0002
ACK_LOST_SEGMENT = 0x0004
KEEP_ALIVE = 0x0008
DUPLICATE_ACK = 0x0010
ZERO_WINDOW = 0x0020
ZERO_WINDOW_PROBE = 0x0040
ZERO_WINDOW_PROBE_ACK = 0x0080
KEEP_ALIVE_ACK = 0x0100
OUT_OF_ORDER = 0x0200
FAST_RETRANSMISSION = 0x0400
WINDOW_UPDATE = 0x0800
WINDOW_FULL = 0x1000
REUSED_PORTS = 0x2000
SPURIOUS_RETRANSMISSION = 0x4000

#: Any of the retransmission family (a fast or spurious retransmission is also a retransmission).
RETRANSMISSION_FAMILY = RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION

#: Output order of the names in the ``analysis`` column.
FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (RETRANSMISSION, "retransmission"),
    (FAST_RETRANSMISSION, "fast_retransmission"),
    (SPURIOUS_RETRANSMISSION, "spurious_retransmission"),
    (OUT_OF_ORDER, "out_of_order"),
    (LOST_SEGMENT, "lost_segment"),
    (ACK_LOST_SEGMENT, "ack_lost_segment"),
    (DUPLICATE_ACK, "duplicate_ack"),
    (ZERO_WINDOW, "zero_window"),
    (ZERO_WINDOW_PROBE, "zero_window_probe"),
    (ZERO_WINDOW_PROBE_ACK, "zero_window_probe_ack"),
    (WINDOW_FULL, "window_full"),
    (WINDOW_UPDATE, "window_update"),
    (KEEP_ALIVE, "keep_alive"),
    (KEEP_ALIVE_ACK, "keep_alive_ack"),
    (REUSED_PORTS, "reused_ports"),
)
NAME_TO_BIT = {name: bit for bit, name in FLAG_NAMES}

_NAMES_CACHE: dict[int, str] = {}


def analysis_str(bits: int) -> str:
    """Comma-separated names for a bit set; fast and fine-grained retransmissions also say ``retransmission``."""
    s = _NAMES_CACHE.get(bits)
    if s is None:
        b = bits | RETRANSMISSION if bits & RETRANSMISSION_FAMILY else bits
        s = ",".join(name for bit, name in FLAG_NAMES if b & bit)
        _NAMES_CACHE[bits] = s
    return s


def analysis_names(bits: int) -> list[str]:
    s = analysis_str(bits)
    return s.split(",") if s else []


# Thresholds Wireshark hard-codes (packet-tcp.c), as named defaults the CLI can override.
#: A retransmission within this time of the peer's last segment, after >= 2 dup ACKs, is "fast".
K_FAST_RETRANSMIT_NS = 20_000_000
#: Out-of-order window while the initial RTT is unknown; once known, the iRTT is used instead.
K_OOO_DEFAULT_NS = 3_000_000
#: Wireshark's TCP_MAX_UNACKED_SEGMENTS: segments remembered per direction for ACK matching.
K_MAX_UNACKED = 10_000
