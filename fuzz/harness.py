"""The robustness oracle shared by the atheris fuzzer (``fuzz/fuzz_capture.py``) and the
hypothesis tests (``tests/test_fuzz.py``): untrusted bytes in, only *values* out.

``one_input(data, workdir)`` interprets its input as

    byte 0  selector: bits 0-1 source  0 = file (memory-mapped, compared with the stdin walk)
                                       1 = standard input (stream)
                                       2 = gzip of the rest, read from standard input
                                           (bit 7: the compressed stream is cut short)
                                       3 = one raw frame straight into the decoder:
                                           byte 1 picks the link type, bytes 2-3 the wire
                                           length (0: unknown), the rest is the frame
                      bit 2  tiny engine bounds (max_connections 4, max_unacked 8, ...)
                      bit 3  explain mode (per-packet reasons, the ``packets --jsonl`` path)
    bytes 1..       the capture (or frame)

and runs it through ``open_capture`` -> ``decode`` -> ``Analyzer.feed``/``finish`` ->
``summarize``, asserting on the way what the code promises:

* ``open_capture`` raises nothing but ``SourceError`` (one line); iteration raises nothing;
  frame numbers increase; damage is a ``CaptureDamage`` naming its byte offset and frame;
  warnings stay bounded; the file walk and the stdin walk of the same bytes agree exactly;
* ``decode`` returns a ``Segment`` or None (and counts why) or raises ``DecodeError`` -- and
  never needs its ``struct.error``/``IndexError`` safety net (kind ``truncated``), and its
  Ethernet fast path agrees with the general path;
* the engine never raises, keeps its documented bounds (unacked segments per direction,
  events per connection, live connections) and every summary is JSON-serialisable.

Any violation is an exception (``AssertionError`` or whatever escaped): a crash to the fuzzer.
Keep this module free of atheris and pytest imports.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import sys

from tcpanalyze import decode as _decmod
from tcpanalyze.analysis import analysis_str
from tcpanalyze.decode import decode
from tcpanalyze.engine import Analyzer, Config
from tcpanalyze.errors import CaptureDamage, DecodeError, SourceError
from tcpanalyze.model import Segment, addr_str, flag_str
from tcpanalyze.sources.pcap import open_capture
from tcpanalyze.summary import summarize

#: link types mode 3 can pick: every supported one plus two the decoder does not know
LINKTYPES = sorted(_decmod._LINKTYPES) + [3, 147]

#: the "tiny bounds" engine configuration (bit 2 of the selector)
TINY = dict(max_connections=4, max_unacked=8, max_events=3, linger_ns=1_000, idle_timeout_ns=50_000)

#: records read from one input at most (a 4 KiB fuzz input cannot hold more anyway)
MAX_RECORDS = 100_000


class _Stdin:
    """Stands in for ``sys.stdin``: ``open_capture("-")`` reads ``sys.stdin.buffer``."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


# ------------------------------------------------------------------------------ reader
def read_capture(path_or_dash: str, stdin_data: bytes | None = None):
    """Walk a capture completely; return a comparable outcome; assert the reader's promises."""
    saved = sys.stdin
    try:
        if stdin_data is not None:
            sys.stdin = _Stdin(stdin_data)
        try:
            reader = open_capture(path_or_dash)
        except SourceError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, repr(msg)
            return ("error", msg)
        with reader:
            recs = []
            last = 0
            for rec in reader:
                frame, ts, lt, data, wirelen = rec
                assert type(frame) is int and frame > last, (frame, last)
                assert type(ts) is int and type(lt) is int and type(wirelen) is int
                assert 0 <= ts < 1 << 63, ts              # int64 nanoseconds, differences too
                assert isinstance(data, (bytes, memoryview))
                last = frame
                recs.append((frame, ts, lt, bytes(data), wirelen))
                assert len(recs) <= MAX_RECORDS
            assert reader.frames == len(recs), (reader.frames, len(recs))
            dmg = reader.damage
            if dmg is not None:
                assert isinstance(dmg, CaptureDamage)
                text = str(dmg)
                assert "\n" not in text
                assert f"byte {dmg.offset}" in text and f"frame {dmg.frame}" in text, text
                assert dmg.frame >= 1 and dmg.offset >= 0
            assert len(reader.warnings) <= 101
            for w in reader.warnings:
                assert isinstance(w, str) and "\n" not in w
            return ("ok", recs, None if dmg is None else (str(dmg), dmg.offset, dmg.frame, dmg.fatal),
                    tuple(reader.warnings), reader.format, tuple(sorted(reader.linktypes)))
    finally:
        sys.stdin = saved


# ------------------------------------------------------------------------------ decoder
def _seg_tuple(s: Segment) -> tuple:
    return tuple(getattr(s, k) for k in Segment.__slots__)


def check_frame(frame: int, ts: int, linktype: int, data: bytes, wirelen: int, counts: dict) -> Segment | None:
    """``decode`` one frame; assert its contract; return the segment or None."""
    before = sum(counts.values())
    try:
        seg = decode(frame, ts, linktype, data, counts, wirelen)
    except DecodeError as e:
        assert isinstance(e.kind, str) and e.kind and isinstance(e.offset, int) and e.offset >= 0
        # "truncated" is the safety net's kind: a bounds check is missing somewhere.
        assert e.kind != "truncated", f"decoder needed its safety net: {e}"
        seg = e
    else:
        if seg is None:
            after = sum(counts.values())
            assert after == before + 1, "a skipped frame must be counted once"
        else:
            assert isinstance(seg, Segment)
            assert len(seg.src) in (4, 16) and len(seg.dst) == len(seg.src)
            assert 0 <= seg.sport <= 0xFFFF and 0 <= seg.dport <= 0xFFFF
            assert 0 <= seg.seq <= 0xFFFFFFFF and 0 <= seg.ack <= 0xFFFFFFFF
            assert 0 <= seg.flags <= 0x1FF and 0 <= seg.win <= 0xFFFF
            # From the IP length (cut to the wire length when known), or for an IP length of 0
            # (TSO, jumbogram) from the frame's wire/captured length.
            bound = max(len(data), wirelen) if wirelen else max(len(data), 0xFFFF)
            assert 0 <= seg.paylen <= bound, (seg.paylen, len(data), wirelen)
            assert seg.sack is None or all(0 <= a <= 0xFFFFFFFF and 0 <= b <= 0xFFFFFFFF for a, b in seg.sack)
            assert seg.sack is None or len(seg.sack) <= 4
    # The fast path (Ethernet/IPv4/TCP) must agree with the table-driven path it shortcuts.
    if linktype == 1:
        c2: dict = {}
        try:
            ref = _decmod._decode_general(frame, ts, linktype, data, c2, wirelen)
        except DecodeError as e:
            ref = e
        if isinstance(seg, Segment) or isinstance(ref, Segment):
            assert isinstance(seg, Segment) and isinstance(ref, Segment), (seg, ref)
            assert _seg_tuple(seg) == _seg_tuple(ref), (_seg_tuple(seg), _seg_tuple(ref))
    return seg if isinstance(seg, Segment) else None


# ------------------------------------------------------------------------------ engine
def _check_conn_bounds(a: Analyzer, conn, cfg: Config) -> None:
    for f in conn.flows:
        assert len(f.segs) <= cfg.max_unacked, (len(f.segs), cfg.max_unacked)
        for lst in (f.track.shrinks, f.track.reorders, f.track.zw_episodes):
            assert lst is None or len(lst) <= cfg.max_events
    assert conn.anomalies is None or len(conn.anomalies) <= cfg.max_events
    assert conn.handshake.syn_times is None or len(conn.handshake.syn_times) <= 64
    assert a.live <= cfg.max_connections and len(a.table) <= 2 * a.live, (a.live, len(a.table))


def _check_summary(rec: dict) -> None:
    json.dumps(rec, allow_nan=False)
    assert rec["orig_pkts"] >= 0 and rec["resp_pkts"] >= 0


def run_engine(segments, cfg: Config, explain_rows: bool = False) -> list[dict]:
    """Feed segments; check each verdict and the bounds; finish; summarise every connection."""
    done: list = []
    a = Analyzer(cfg, keep_timeline=True, keep_rtt=True, on_conn_done=done.append)
    for seg in segments:
        v = a.feed(seg)
        conn = v.conn
        assert v is a.verdict
        assert 0 <= a.verdict.rel_seq <= 0xFFFFFFFF and 0 <= a.verdict.rel_ack <= 0xFFFFFFFF
        assert a.verdict.bytes_in_flight >= -1 and a.verdict.win >= 0
        _check_conn_bounds(a, conn, cfg)
        if explain_rows:
            # What `tcpanalyze packets` prints for the row.
            "\t".join((addr_str(seg.src), addr_str(seg.dst), flag_str(seg.flags), analysis_str(a.verdict.analysis)))
            json.dumps(a.verdict.reasons or {})
    rest = a.finish()
    assert rest == [], "with on_conn_done every connection is handed over"
    streams = sorted(c.stream for c in done)
    assert streams == list(range(a.streams)), "every stream is finalized exactly once"
    assert a.evicted >= 0 and a.ts_backwards >= 0
    recs = []
    for conn in done:
        rec = summarize(conn, timelines=True)
        _check_summary(rec)
        recs.append(rec)
    return recs


# ------------------------------------------------------------------------------ the driver
def config_for(selector: int) -> Config:
    kw = dict(TINY) if selector & 4 else {}
    return Config(explain=bool(selector & 8), **kw)


def _segments(recs, counts):
    for frame, ts, lt, data, wirelen in recs:
        seg = check_frame(frame, ts, lt, data, wirelen, counts)
        if seg is not None:
            yield seg


def one_input(data: bytes, workdir: str) -> None:
    """Run one fuzz input (see the module docstring for its layout)."""
    if not data:
        return
    sel = data[0]
    body = data[1:]
    source = sel & 3
    cfg = config_for(sel)
    counts: dict = {}
    if source == 3:
        if len(body) < 3:
            return
        lt = LINKTYPES[body[0] % len(LINKTYPES)]
        wirelen = (body[1] << 8) | body[2]
        seg = check_frame(1, 0, lt, body[3:], wirelen, counts)
        if seg is not None:
            run_engine([seg], cfg, explain_rows=True)
        return
    if source == 0:
        path = os.path.join(workdir, "input.cap")
        with open(path, "wb") as f:
            f.write(body)
        out = read_capture(path)
        ref = read_capture("-", body)
        if out[0] == "ok" or ref[0] == "ok":
            # The same bytes read from a regular file and from a pipe must agree exactly;
            # only the way an unopenable input is worded may differ.
            assert out == ref, (out[:1] + out[2:] if out[0] == "ok" else out,
                                ref[:1] + ref[2:] if ref[0] == "ok" else ref)
    elif source == 1:
        out = read_capture("-", body)
    else:
        z = gzip.compress(body, compresslevel=1, mtime=0)
        if sel & 0x80 and len(z) > 12:
            z = z[: 10 + (len(z) - 10) * (data[-1] % 16 + 1) // 17]
        out = read_capture("-", z)
    if out[0] != "ok":
        return
    run_engine(_segments(out[1], counts), cfg, explain_rows=bool(sel & 8))
