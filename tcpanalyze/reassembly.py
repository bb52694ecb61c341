"""IP fragment reassembly (IPv4 RFC 791 §3.2, IPv6 RFC 8200 §4.5), sans-IO.

A :class:`Reassembler` holds the fragments of the datagrams not yet complete.  The decoder
(``decode.py``) hands it each fragment's payload; when a fragment completes a datagram the
decoder gets the whole payload back and decodes the datagram like any other packet (so a
fragmented tunnel datagram is decoded through its tunnel).  The table lives for one run
(the pipeline owns it through ``decode.DecodeState``); the per-frame fast path never
sees it, because a fragment never takes the fast path.

Rules (the receiver's, as Linux applies them to IPv4 and IPv6 alike):

* A fragment whose bytes lie entirely inside data already received is a duplicate: it is
  ignored and the datagram is kept (the bytes received first stay).
* Any other overlap discards the whole datagram (RFC 5722 for IPv6; Linux does the same
  for IPv4).  Fragments of it that arrive later start a new datagram, which will normally
  never complete and expires.
* A non-last fragment whose length is not a multiple of 8 is malformed for IPv6 (RFC 8200)
  and cut to a multiple of 8 for IPv4 (as Linux does); a last fragment that ends before
  data already received, or a second last fragment with a different end, is malformed
  (dropped, the datagram is kept); a datagram longer than 65,535 bytes is malformed.
* Bounded memory: at most ``max_datagrams`` datagrams and ``max_bytes`` payload bytes are
  held; beyond either, the oldest datagram is evicted (counted).
* Timeout: a datagram not complete ``timeout_ns`` (IPv4, Linux ``ipfrag_time`` 30 s) or
  ``timeout6_ns`` (IPv6, ``ip6frag_time`` 60 s) of capture time after its first fragment
  is dropped (counted) when a later fragment arrives; what is left at the end of the
  capture is counted as incomplete.

Counters (``counts``): ``fragments`` seen, ``reassembled`` datagrams, ``duplicates``,
``overlapping`` (datagrams discarded), ``timed_out``, ``evicted``, ``malformed``,
``truncated`` (fragments captured shorter than their IP length: not reassembled),
``incomplete`` (datagrams still waiting when :meth:`finish` is called).
"""
from __future__ import annotations

__all__ = ["FragmentError", "Reassembler", "K_FRAG_TIMEOUT_S", "K_FRAG6_TIMEOUT_S", "K_FRAG_MAX_DATAGRAMS",
           "K_FRAG_MAX_BYTES"]

#: Seconds of capture time an IPv4 datagram may wait for its fragments (Linux ipfrag_time).
K_FRAG_TIMEOUT_S = 30
#: The same for IPv6 (Linux ip6frag_time).
K_FRAG6_TIMEOUT_S = 60
#: Datagrams held at once.
K_FRAG_MAX_DATAGRAMS = 4096
#: Fragment payload bytes held at once (Linux ipfrag_high_thresh: 4 MiB).
K_FRAG_MAX_BYTES = 4 << 20

_MAX_DATAGRAM = 65535


class FragmentError(ValueError):
    """A malformed fragment (the message says why); the decoder reports it with its offset."""


class _Datagram:
    __slots__ = ("deadline", "head", "total", "pieces", "have")

    def __init__(self, deadline: int):
        self.deadline = deadline
        self.head = None            # the offset-0 fragment's header (the decoder's to rewrite)
        self.total = -1             # payload length, known once the last fragment arrived
        self.pieces: list = []      # (start, end, bytes), never overlapping
        self.have = 0               # payload bytes held


class Reassembler:
    """The fragment table of one capture; see the module docstring for the rules."""

    def __init__(self, timeout_s: float = K_FRAG_TIMEOUT_S, timeout6_s: float = K_FRAG6_TIMEOUT_S,
                 max_datagrams: int = K_FRAG_MAX_DATAGRAMS, max_bytes: int = K_FRAG_MAX_BYTES):
        if max_datagrams < 1 or max_bytes < 1:
            raise ValueError("max_datagrams and max_bytes must be positive")
        self.timeout_ns = int(timeout_s * 1e9)
        self.timeout6_ns = int(timeout6_s * 1e9)
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.table: dict = {}       # key -> _Datagram, oldest first (insertion order)
        self.bytes = 0
        self.counts = {"fragments": 0, "reassembled": 0, "duplicates": 0, "overlapping": 0, "timed_out": 0,
                       "evicted": 0, "malformed": 0, "truncated": 0, "incomplete": 0}

    def add(self, key, ts_ns: int, v6: bool, offset: int, more: bool, data: bytes, head=None):
        """One fragment: payload ``data`` at byte ``offset`` of its datagram, ``more`` = more
        fragments follow; ``head`` is the header of the offset-0 fragment (kept as given).

        Returns ``(head, payload)`` when this fragment completes the datagram, else None.
        Raises FragmentError for a malformed fragment (counted; the fragment is dropped).
        """
        counts = self.counts
        counts["fragments"] += 1
        table = self.table
        if table:
            self._expire(ts_ns)
        end = offset + len(data)
        if more and end & 7:
            if v6:
                counts["malformed"] += 1
                self._drop(key)
                raise FragmentError(f"non-last fragment of {len(data)} bytes is not a multiple of 8")
            end &= ~7                           # IPv4: the receiver ignores the odd tail
            data = data[:end - offset]
        if end > _MAX_DATAGRAM:
            counts["malformed"] += 1
            raise FragmentError(f"fragment ends at byte {end}, beyond the 65,535-byte datagram limit")
        if end == offset:
            counts["malformed"] += 1
            raise FragmentError("fragment without payload")
        dg = table.get(key)
        if dg is None:
            while len(table) >= self.max_datagrams:
                self._evict_oldest()
            dg = _Datagram(ts_ns + (self.timeout6_ns if v6 else self.timeout_ns))
            table[key] = dg
        if not more:
            if dg.total >= 0 and end != dg.total or any(e > end for _s, e, _d in dg.pieces):
                counts["malformed"] += 1
                raise FragmentError(f"last fragment ends at byte {end}, inconsistent with the fragments received")
        elif dg.total >= 0 and end > dg.total:
            counts["malformed"] += 1
            raise FragmentError(f"fragment ends at byte {end}, after the last fragment's end {dg.total}")
        # overlaps: inside data already held -> duplicate; anything else -> discard the datagram
        if dg.pieces:
            ov = False
            for s, e, _d in dg.pieces:
                if offset < e and end > s:
                    ov = True
                    break
            if ov:
                if self._covered(dg, offset, end):
                    counts["duplicates"] += 1
                    return None
                counts["overlapping"] += 1
                self._drop(key)
                return None
        dg.pieces.append((offset, end, data))
        dg.have += end - offset
        self.bytes += end - offset
        if not more:
            dg.total = end
        if offset == 0:
            dg.head = head
        if dg.total >= 0 and dg.have == dg.total and dg.head is not None:
            del table[key]
            self.bytes -= dg.have
            counts["reassembled"] += 1
            dg.pieces.sort(key=_start)
            return dg.head, b"".join([d for _s, _e, d in dg.pieces])
        while self.bytes > self.max_bytes and table:
            self._evict_oldest()
        return None

    def finish(self) -> dict:
        """Count the datagrams still waiting as incomplete, empty the table; the counters."""
        self.counts["incomplete"] += len(self.table)
        self.table.clear()
        self.bytes = 0
        return self.counts

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _covered(dg, start: int, end: int) -> bool:
        """Is [start, end) inside the union of the pieces held?"""
        pos = start
        for s, e, _d in sorted(dg.pieces, key=_start):
            if s > pos:
                break
            if e > pos:
                pos = e
                if pos >= end:
                    return True
        return pos >= end

    def _drop(self, key) -> None:
        dg = self.table.pop(key, None)
        if dg is not None:
            self.bytes -= dg.have

    def _evict_oldest(self) -> None:
        key = next(iter(self.table))
        self._drop(key)
        self.counts["evicted"] += 1

    def _expire(self, now: int) -> None:
        table = self.table
        while table:
            key = next(iter(table))
            if table[key].deadline > now:
                return
            self._drop(key)
            self.counts["timed_out"] += 1


def _start(piece) -> int:
    return piece[0]
