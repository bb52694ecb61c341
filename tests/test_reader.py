"""Tests for tcpanalyze.sources.pcap: formats, conversions, truncation, corruption, fuzzing."""
from __future__ import annotations

import csv
import gzip
import io
import os
import random
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpanalyze.errors import CaptureDamage, SourceError
from tcpanalyze.sources.pcap import open_capture

TRACES = Path(__file__).parent / "data" / "traces"
CAPTURES = sorted(p for p in TRACES.iterdir()
                  if p.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")))
NS = 1_000_000_000


# --------------------------------------------------------------------------- helpers

def read_all(path, **kw):
    """(records, reader) with records as RawPacket-ordered tuples; the reader is closed."""
    with open_capture(str(path), **kw) as r:
        recs = list(r)
    return recs, r


def read_bytes(tmp_path, data: bytes, name="cap", **kw):
    p = tmp_path / name
    p.write_bytes(data)
    return read_all(p, **kw)


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


def read_stdin(monkeypatch, data: bytes, **kw):
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    return read_all("-", **kw)


def pcap_header(e="<", ns=False, snaplen=65535, linktype=1, major=2, minor=4):
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    return struct.pack(e + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)


def pcap_record(e, ts_ns, data, wirelen=None, ns=False):
    sec, frac = divmod(ts_ns, NS)
    if not ns:
        frac //= 1000
    return struct.pack(e + "IIII", sec, frac, len(data), len(data) if wirelen is None else wirelen) + data


def write_pcap(records, e="<", ns=False, snaplen=65535, linktype=1):
    """records: iterable of (ts_ns, data, wirelen)."""
    return pcap_header(e, ns, snaplen, linktype) + b"".join(
        pcap_record(e, ts, d, w, ns) for ts, d, w in records)


def pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def ng_block(e, btype, body: bytes) -> bytes:
    body = pad4(body)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def ng_opt(e, code, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + pad4(value)


def ng_shb(e, options=b""):
    return ng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def ng_idb(e, linktype=1, snaplen=0, tsresol=None, tsoffset=None, extra_opts=b""):
    opts = extra_opts
    if tsresol is not None:
        opts += ng_opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += ng_opt(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += ng_opt(e, 0, b"")
    return ng_block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def ng_epb(e, iid, ts_units, data, wirelen=None, options=b""):
    body = struct.pack(e + "IIIII", iid, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                       len(data) if wirelen is None else wirelen) + pad4(data) + options
    return ng_block(e, 6, body)


def ng_pb(e, iid, ts_units, data, wirelen=None):
    body = struct.pack(e + "HHIIII", iid, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                       len(data) if wirelen is None else wirelen) + data
    return ng_block(e, 2, body)


def ng_spb(e, data, wirelen=None):
    return ng_block(e, 3, struct.pack(e + "I", len(data) if wirelen is None else wirelen) + data)


def ts_units(ts_ns, tsresol, tsoffset=0):
    """Timestamp units written for ts_ns, and the ts_ns a reader should compute back."""
    t = ts_ns - tsoffset * NS
    if tsresol & 0x80:
        u = (t << (tsresol & 0x7F)) // NS
        back = (u * NS >> (tsresol & 0x7F)) + tsoffset * NS
    elif tsresol > 9:
        scale = 10 ** (tsresol - 9)
        u = t * scale
        back = u // scale + tsoffset * NS
    else:
        scale = 10 ** (9 - tsresol)
        u = t // scale
        back = u * scale + tsoffset * NS
    return u, back


def boundaries(data: bytes) -> list[int]:
    """Offsets where records/blocks start (plus the end), for a well-formed capture."""
    out = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        p = 0
        e = "<"
        while p < len(data):
            if data[p:p + 4] == b"\x0a\x0d\x0d\x0a":
                e = "<" if data[p + 8:p + 12] == struct.pack("<I", 0x1A2B3C4D) else ">"
            out.append(p)
            p += struct.unpack_from(e + "I", data, p + 4)[0]
    else:
        e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        p = 24
        while p < len(data):
            out.append(p)
            p += 16 + struct.unpack_from(e + "I", data, p + 8)[0]
    out.append(len(data))
    return out


def tsv_times(path: Path) -> dict[int, int]:
    with open(str(path) + ".tshark.tsv", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        head = next(rows)
        fi = head.index("frame.number")
        ti = head.index("frame.time_epoch")
        return {int(r[fi]): int(Decimal(r[ti]) * NS) for r in rows if r and r[fi]}


def strip(recs):
    """(ts_ns, linktype, data, wirelen) of records, frame numbers dropped."""
    return [(ts, lt, bytes(d), w) for _f, ts, lt, d, w in recs]


@pytest.fixture(scope="module")
def pop3():
    recs, r = read_all(TRACES / "pop3.pcap")
    assert r.damage is None and len(recs) == 125
    return recs


# --------------------------------------------------------------------------- real captures

@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_real_capture_matches_tshark(path):
    recs, r = read_all(path)
    assert r.damage is None, r.damage
    assert r.warnings == []
    assert recs, "no frames"
    assert [x[0] for x in recs] == list(range(1, len(recs) + 1))
    assert r.frames == len(recs)
    assert r.linktypes and all(x[2] in r.linktypes for x in recs)
    assert all(len(x[3]) <= x[4] or x[4] == 0 for x in recs) or path.name.startswith(("zeek-fuzz", "tcp-bad"))
    if r.size is not None:
        assert r.bytes_read == r.size
    assert r.format.startswith(("pcap", "pcapng"))
    assert r.format.endswith(", gzip") == path.name.endswith(".gz")
    if Path(str(path) + ".tshark.tsv").exists():
        times = tsv_times(path)
        assert times
        by_frame = {x[0]: x[1] for x in recs}
        for frame, ts in times.items():
            assert by_frame[frame] == ts, (frame, by_frame.get(frame), ts)


def test_formats_reported():
    assert read_all(TRACES / "pop3.pcap")[1].format == "pcap"
    assert read_all(TRACES / "zeek-get-to-ssh-server.pcap")[1].format == "pcap-ns"
    r = read_all(TRACES / "pcapplusplus-ldap.pcapng")[1]
    assert r.format == "pcapng" and r.linktypes == {1, 113}
    r = read_all(TRACES / "wireshark-grpc_web.pcapng.gz")[1]
    assert r.format == "pcapng, gzip" and r.size is None
    assert read_all(TRACES / "zeek-smb_many_open_files_500.pcap.gz")[1].format == "pcap, gzip"


def test_file_and_stdin_agree(monkeypatch):
    for name in ("pop3.pcap", "pcapplusplus-ldap.pcapng", "zeek-get-to-ssh-server.pcap"):
        data = (TRACES / name).read_bytes()
        a, ra = read_all(TRACES / name)
        b, rb = read_stdin(monkeypatch, data)
        assert a == b and ra.format == rb.format and rb.size is None and ra.size == len(data)
        assert ra.bytes_read == rb.bytes_read == len(data) and ra.frames == rb.frames == len(a)


# --------------------------------------------------------------------------- conversions

def expected_from(recs, linktype=None):
    return [(ts, linktype if linktype is not None else lt, bytes(d), w) for _f, ts, lt, d, w in recs]


@pytest.mark.parametrize("e", ["<", ">"])
@pytest.mark.parametrize("ns", [False, True])
def test_pcap_byte_orders_and_ns(tmp_path, pop3, e, ns):
    data = write_pcap(((ts, d, w) for _f, ts, _lt, d, w in pop3), e=e, ns=ns)
    recs, r = read_bytes(tmp_path, data)
    assert r.damage is None
    assert r.format == ("pcap-ns" if ns else "pcap")
    assert strip(recs) == expected_from(pop3)


def test_pcap_ns_keeps_nanoseconds(tmp_path):
    rec = [(1_700_000_000 * NS + 123_456_789, b"x" * 20, 20)]
    recs, _ = read_bytes(tmp_path, write_pcap(rec, ns=True))
    assert recs[0][1] == 1_700_000_000 * NS + 123_456_789
    recs, _ = read_bytes(tmp_path, write_pcap(rec, ns=False))
    assert recs[0][1] == 1_700_000_000 * NS + 123_456_000


def test_pcap_linktype_fcs_bits_masked(tmp_path):
    data = write_pcap([(NS, b"abc", 3)], linktype=0x1000_0000 | 0x0400_0000 | 228)
    recs, r = read_bytes(tmp_path, data)
    assert r.linktypes == {228} and recs[0][2] == 228


def test_pcap_huge_snaplen(tmp_path, pop3):
    data = write_pcap(((ts, d, w) for _f, ts, _lt, d, w in pop3), snaplen=0xFFFFFFFF)
    recs, r = read_bytes(tmp_path, data)
    assert r.damage is None and strip(recs) == expected_from(pop3)


def test_gzip_pcap_file_and_stdin(tmp_path, monkeypatch, pop3):
    raw = write_pcap(((ts, d, w) for _f, ts, _lt, d, w in pop3), e=">")
    gz = gzip.compress(raw)
    recs, r = read_bytes(tmp_path, gz, name="x.pcap.gz")
    assert r.format == "pcap, gzip" and r.damage is None and r.size is None
    assert strip(recs) == expected_from(pop3)
    assert r.bytes_read == len(raw)
    recs2, r2 = read_stdin(monkeypatch, gz)
    assert recs2 == recs and r2.format == "pcap, gzip"


@pytest.mark.parametrize("e", ["<", ">"])
@pytest.mark.parametrize("tsresol,tsoffset", [(None, None), (9, None), (6, 1_000_000_000), (0x80 | 20, None),
                                             (0x80 | 32, -5), (3, None), (12, 1_377_000_000)])
def test_pcapng_single_interface(tmp_path, pop3, e, tsresol, tsoffset):
    res = 6 if tsresol is None else tsresol
    blocks = [ng_shb(e), ng_idb(e, 1, 65535, tsresol, tsoffset)]
    expected = []
    for _f, ts, _lt, d, w in pop3:
        u, back = ts_units(ts, res, tsoffset or 0)
        blocks.append(ng_epb(e, 0, u, d, w))
        expected.append((back, 1, bytes(d), w))
    recs, r = read_bytes(tmp_path, b"".join(blocks))
    assert r.damage is None and r.warnings == []
    assert r.format == "pcapng"
    assert strip(recs) == expected
    # Resolution loss is bounded by one timestamp unit.
    unit = NS >> (res & 0x7F) if res & 0x80 else 10 ** max(0, 9 - res)
    assert all(abs(a[1] - b[1]) <= max(unit, 1000) for a, b in zip(recs, pop3))


def test_pcapng_everything(tmp_path, pop3, monkeypatch):
    """Two sections of different byte order, several interfaces, SPB, PB, unknown blocks."""
    half = len(pop3) // 2
    first, second = pop3[:half], pop3[half:]
    blocks = [ng_shb("<", ng_opt("<", 4, b"tcpanalyze test") + ng_opt("<", 0, b"")),
              ng_idb("<", 1, 0, 9, None, ng_opt("<", 2, b"eth0")),
              ng_block("<", 0x1234, b"unknown block body"),
              ng_idb("<", 228, 0, 0x80 | 30, 100)]
    expected = []
    for i, (_f, ts, _lt, d, w) in enumerate(first):
        iid = i % 2
        res, off = (9, 0) if iid == 0 else (0x80 | 30, 100)
        u, back = ts_units(ts, res, off)
        if i == 5:
            blocks.append(ng_block("<", 4, b"\0" * 8))        # NRB
            blocks.append(ng_block("<", 5, b"\0" * 12))       # ISB
            blocks.append(ng_block("<", 0xBAD, b"\0" * 9))    # custom block
        if i % 7 == 3 and iid == 0:
            blocks.append(ng_pb("<", iid, u, d, w))
        else:
            blocks.append(ng_epb("<", iid, u, d, w, options=ng_opt("<", 2, b"\1\0\0\0") + ng_opt("<", 0, b"")))
        expected.append((back, 1 if iid == 0 else 228, bytes(d), w))
    # Second section, big-endian: interfaces reset; SPB uses interface 0's snaplen.
    snap = 100
    blocks += [ng_shb(">"), ng_idb(">", 101, snap), ng_block(">", 0x40000BAD, b"xyz")]
    for i, (_f, ts, _lt, d, w) in enumerate(second):
        if i % 3 == 0:
            blocks.append(ng_spb(">", bytes(d), w))
            expected.append((0, 101, bytes(d[:min(snap, w)]), w))
        else:
            u, back = ts_units(ts, 6)
            blocks.append(ng_epb(">", 0, u, d, w))
            expected.append((back, 101, bytes(d), w))
    data = b"".join(blocks)
    recs, r = read_bytes(tmp_path, data)
    assert r.damage is None and r.warnings == []
    assert r.linktypes == {1, 228, 101}
    assert [x[0] for x in recs] == list(range(1, len(pop3) + 1))
    assert strip(recs) == expected
    assert r.bytes_read == len(data)
    # Same through gzip on stdin.
    recs2, r2 = read_stdin(monkeypatch, gzip.compress(data))
    assert recs2 == recs and r2.format == "pcapng, gzip" and r2.damage is None


def test_pcapng_spb_without_snaplen(tmp_path):
    d = b"0123456789a"          # 11 bytes: padded to 12 in the block
    data = ng_shb("<") + ng_idb("<", 1, 0) + ng_spb("<", d, 11) + ng_spb("<", d[:5], 1500)
    recs, r = read_bytes(tmp_path, data)
    assert strip(recs) == [(0, 1, d, 11), (0, 1, d[:5] + b"\0\0\0", 1500)]


def test_pcapng_undefined_interface_is_skipped(tmp_path):
    e = "<"
    data = (ng_shb(e) + ng_idb(e, 1) + ng_epb(e, 0, 1, b"a") + ng_epb(e, 3, 2, b"b") +
            ng_epb(e, 0, 3, b"c"))
    recs, r = read_bytes(tmp_path, data)
    assert [(x[0], x[3]) for x in recs] == [(1, b"a"), (3, b"c")]
    assert isinstance(r.damage, CaptureDamage) and not r.damage.fatal
    assert r.damage.frame == 2 and "undefined interface 3" in str(r.damage)
    assert len(r.warnings) == 1
    # SPB before any IDB and an EPB whose caplen overruns its block are damage too.
    bad = bytearray(ng_epb(e, 0, 4, b"dddd"))
    struct.pack_into("<I", bad, 20, 4000)
    data = ng_shb(e) + ng_spb(e, b"x") + ng_idb(e, 1) + bytes(bad) + ng_epb(e, 0, 5, b"e")
    recs, r = read_bytes(tmp_path, data)
    assert [(x[0], x[3]) for x in recs] == [(3, b"e")]
    assert len(r.warnings) == 2 and not r.damage.fatal and r.damage.frame == 1
    assert "and 1 more" in str(r.damage)


# --------------------------------------------------------------------------- truncation

TRUNCATION_CASES = {"pcap": "pop3.pcap", "pcap-ns": "zeek-get-to-ssh-server.pcap",
                    "pcapng": "pcapplusplus-ldap.pcapng"}


@pytest.mark.parametrize("kind", sorted(TRUNCATION_CASES))
@pytest.mark.parametrize("mode", ["file", "stream"])
def test_truncation_at_every_offset(tmp_path, monkeypatch, kind, mode):
    """Cut within the last 3 records/blocks at every byte: all complete frames, then damage."""
    src = TRACES / TRUNCATION_CASES[kind]
    data = src.read_bytes()
    bounds = boundaries(data)
    with open_capture(str(src)) as r:
        full = []
        ends = []                           # end offset of every frame
        for rec in r:
            full.append(rec)
            ends.append(r.bytes_read)
    start = bounds[-4]
    path = tmp_path / "cut"
    for cut in range(start, len(data) + 1):
        chunk = data[:cut]
        if mode == "file":
            path.write_bytes(chunk)
            recs, r = read_all(path)
        else:
            recs, r = read_stdin(monkeypatch, chunk)
        n = sum(1 for x in ends if x <= cut)
        assert recs == full[:n], cut
        if cut in bounds:
            assert r.damage is None, (cut, r.damage)
        else:
            assert r.damage is not None and not r.damage.fatal, (cut, r.damage)
            blk = max(b for b in bounds if b <= cut)
            assert r.damage.offset == blk and r.damage.frame == n + 1, (cut, r.damage)
            assert f"byte {blk}" in str(r.damage) and f"frame {n + 1}" in str(r.damage)
            assert str(r.damage).startswith("capture truncated")
            assert r.warnings == []


def test_truncated_gzip_stream(tmp_path):
    raw = (TRACES / "pop3.pcap").read_bytes()
    gz = gzip.compress(raw)
    full, _ = read_all(TRACES / "pop3.pcap")
    (tmp_path / "short.gz").write_bytes(gz[:11])
    with pytest.raises(SourceError, match="cannot read gzip-compressed capture"):
        open_capture(str(tmp_path / "short.gz"))
    for cut in (len(gz) // 3, len(gz) // 2, len(gz) - 9, len(gz) - 1):
        recs, r = read_bytes(tmp_path, gz[:cut], name="cut.gz")
        assert recs == full[:len(recs)]
        assert r.damage is not None and not r.damage.fatal, (cut, r.damage)
        assert "truncated" in str(r.damage)
    # Corrupt deflate data: damage (CRC or deflate error), no exception.
    bad = bytearray(gz)
    for i in range(len(gz) // 2, len(gz) // 2 + 60):
        bad[i] ^= 0x55
    recs, r = read_bytes(tmp_path, bytes(bad), name="bad.gz")
    # (deflate may turn the flipped bits into wrong bytes before the CRC check catches it)
    assert r.damage is not None and f"byte {r.damage.offset}" in str(r.damage)
    # Corruption right at the start: nothing readable, so open fails cleanly.
    bad = bytearray(gz)
    for i in range(30, 90):
        bad[i] ^= 0x55
    (tmp_path / "bad2.gz").write_bytes(bytes(bad))
    with pytest.raises(SourceError, match="cannot read gzip-compressed capture"):
        open_capture(str(tmp_path / "bad2.gz"))


# --------------------------------------------------------------------------- bad input

def test_not_a_capture(tmp_path):
    for data in (os.urandom(1000), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10, b"abc", b"\x00" * 24):
        p = tmp_path / "junk"
        p.write_bytes(data)
        with pytest.raises(SourceError) as ei:
            open_capture(str(p))
        msg = str(ei.value)
        assert "\n" not in msg and ("not a pcap or pcapng" in msg or "too short" in msg)
    p = tmp_path / "text"
    p.write_text("hello world\n")
    with pytest.raises(SourceError, match=r"not a pcap or pcapng file \(magic 0x68656c6c\)"):
        open_capture(str(p))


def test_empty_missing_directory(tmp_path, monkeypatch):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        open_capture(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="No such file"):
        open_capture(str(tmp_path / "missing.pcap"))
    with pytest.raises(SourceError, match="directory"):
        open_capture(str(tmp_path))
    monkeypatch.setattr(sys, "stdin", _Stdin(b""))
    with pytest.raises(SourceError, match="empty"):
        open_capture("-")
    (tmp_path / "gz").write_bytes(gzip.compress(b"hello world, not a capture"))
    with pytest.raises(SourceError, match="gzip-compressed data is not a pcap"):
        open_capture(str(tmp_path / "gz"))
    (tmp_path / "badgz").write_bytes(b"\x1f\x8b" + os.urandom(30))
    with pytest.raises(SourceError):
        open_capture(str(tmp_path / "badgz"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied(tmp_path):
    p = tmp_path / "secret.pcap"
    p.write_bytes(pcap_header())
    p.chmod(0)
    with pytest.raises(SourceError, match="Permission denied"):
        open_capture(str(p))


def test_bad_headers(tmp_path):
    for hdr, pat in ((pcap_header(major=3), "version 3.4"), (pcap_header(minor=9), "version 2.9"),
                     (pcap_header()[:20], "truncated pcap file header"),
                     (struct.pack("<I", 0xA1B2CD34) + b"\0" * 20, "Kuznetzov"),
                     (ng_shb("<")[:8] + b"\x01\x02\x03\x04" + ng_shb("<")[12:], "byte-order magic"),
                     (ng_shb("<").replace(struct.pack("<HH", 1, 0), struct.pack("<HH", 2, 0)), "pcapng version 2")):
        p = tmp_path / "h"
        p.write_bytes(hdr)
        with pytest.raises(SourceError, match=pat):
            open_capture(str(p))


def test_header_only_files_are_empty_captures(tmp_path):
    for data in (pcap_header(), ng_shb("<"), ng_shb(">") + ng_idb(">", 1)):
        recs, r = read_bytes(tmp_path, data)
        assert recs == [] and r.damage is None


@pytest.mark.parametrize("e", ["<", ">"])
@pytest.mark.parametrize("bad", [0x7FFFFFFF, 262145, 0xFFFFFFFF])
def test_pcap_corrupt_caplen(tmp_path, pop3, e, bad):
    data = bytearray(write_pcap(((ts, d, w) for _f, ts, _lt, d, w in pop3), e=e))
    k = 40
    off = boundaries(bytes(data))[k - 1]
    struct.pack_into(e + "I", data, off + 8, bad)
    recs, r = read_bytes(tmp_path, bytes(data))
    assert strip(recs) == expected_from(pop3[:k - 1])
    assert r.damage.fatal and r.damage.offset == off and r.damage.frame == k
    assert f"byte {off}" in str(r.damage) and f"frame {k}" in str(r.damage)


def test_pcap_max_record_bound(tmp_path):
    data = write_pcap([(NS, b"a" * 100, 100), (NS, b"b" * 5000, 5000)], snaplen=0xFFFFFFFF)
    recs, r = read_bytes(tmp_path, data, max_record=1000)
    assert len(recs) == 1 and r.damage.fatal and r.damage.frame == 2


def _ng_from(pop3, e="<"):
    blocks = [ng_shb(e), ng_idb(e, 1, 65535)]
    for _f, ts, _lt, d, w in pop3:
        blocks.append(ng_epb(e, 0, ts // 1000, d, w))
    return blocks


@pytest.mark.parametrize("e", ["<", ">"])
@pytest.mark.parametrize("how", ["zero", "unaligned", "huge", "too-long", "too-short", "trailer", "garbage"])
def test_pcapng_resync(tmp_path, monkeypatch, pop3, e, how):
    blocks = _ng_from(pop3, e)
    k = 50                                  # corrupt the block of frame k
    bi = k + 1
    blk = bytearray(blocks[bi])
    blen = len(blk)
    if how == "zero":
        struct.pack_into(e + "I", blk, 4, 0)
    elif how == "unaligned":
        struct.pack_into(e + "I", blk, 4, blen + 2)
    elif how == "huge":
        struct.pack_into(e + "I", blk, 4, 0x7FFFFFF0)
    elif how == "too-long":
        struct.pack_into(e + "I", blk, 4, blen + 64)
    elif how == "too-short":
        struct.pack_into(e + "I", blk, 4, blen - 8)
    elif how == "trailer":
        struct.pack_into(e + "I", blk, blen - 4, blen + 4)
    elif how == "garbage":
        blk = b"\xde\xad\xbe" + bytes(blk)  # bytes inserted before the block
    blocks[bi] = bytes(blk)
    data = b"".join(blocks)
    off = sum(len(b) for b in blocks[:bi])
    expected = expected_from(pop3[:k - 1]) + expected_from(pop3[k:])
    if how == "garbage":
        expected = expected_from(pop3[:k - 1]) + expected_from(pop3[k - 1:])
    for mode in ("file", "stream"):
        if mode == "file":
            recs, r = read_bytes(tmp_path, data)
        else:
            recs, r = read_stdin(monkeypatch, data)
        assert strip(recs) == expected, (mode, r.damage, r.warnings)
        assert [x[0] for x in recs] == list(range(1, len(recs) + 1))
        assert len(r.warnings) == 1 and "resynchronised" in r.warnings[0], r.warnings
        assert f"bad block at byte {off}" in r.warnings[0]
        assert r.damage is not None and not r.damage.fatal and r.damage.offset == off and r.damage.frame == k


def test_pcapng_zero_length_block_terminates(tmp_path):
    e = "<"
    base = ng_shb(e) + ng_idb(e, 1) + ng_epb(e, 0, 1, b"a")
    zero = struct.pack(e + "II", 6, 0)
    for tail in (b"", b"\0" * 4, b"\0" * 100, zero * 50, os.urandom(5000)):
        recs, r = read_bytes(tmp_path, base + zero + tail)
        assert [x[3] for x in recs] == [b"a"]
        assert r.damage is not None and r.damage.frame == 2
        assert r.damage.offset == len(base)
    # Enough trailing junk: fatal, and the message says why.
    recs, r = read_bytes(tmp_path, base + zero + b"\0" * 100)
    assert r.damage.fatal and "too small" in str(r.damage)


def test_pcapng_unsupported_later_section(tmp_path):
    e = "<"
    later = ng_shb(">").replace(struct.pack(">HH", 1, 0), struct.pack(">HH", 7, 0))
    data = ng_shb(e) + ng_idb(e, 1) + ng_epb(e, 0, 1, b"a") + later + ng_idb(">", 1) + ng_epb(">", 0, 1, b"b")
    recs, r = read_bytes(tmp_path, data)
    assert [x[3] for x in recs] == [b"a"] and r.damage.fatal and "version 7.0" in str(r.damage)


def test_iteration_is_single_pass_and_close(tmp_path):
    with open_capture(str(TRACES / "pop3.pcap")) as r:
        it = iter(r)
        first = next(it)
        assert first[0] == 1 and r.frames == 1 and 0 < r.bytes_read < r.size
        rest = list(r)
        assert len(rest) == 124 and list(r) == []
    r = open_capture(str(TRACES / "pop3.pcap"))
    next(iter(r))
    r.close()
    assert list(r) == []
    r.close()


def test_pcapng_resync_into_next_section(tmp_path, pop3):
    """A bad block right before a new (big-endian) section resynchronises onto its SHB."""
    first = _ng_from(pop3[:10], "<")
    second = _ng_from(pop3[10:20], ">")
    bad = bytearray(first[-1])
    struct.pack_into("<I", bad, 4, 0)       # last block of section 1: length 0
    first[-1] = bytes(bad)
    recs, r = read_bytes(tmp_path, b"".join(first + second))
    assert strip(recs) == expected_from(pop3[:9]) + expected_from(pop3[10:20])
    assert len(r.warnings) == 1 and not r.damage.fatal and r.damage.frame == 10


def test_pcapng_bad_obsolete_packet_block_and_idb_options(tmp_path):
    e = "<"
    bad_pb = bytearray(ng_pb(e, 0, 1, b"zz"))
    struct.pack_into("<I", bad_pb, 20, 999)  # caplen beyond the block
    idb = bytearray(ng_idb(e, 1, 0, 9))
    struct.pack_into("<H", idb, 18, 200)     # if_tsresol option length overruns the block
    data = ng_shb(e) + bytes(idb) + bytes(bad_pb) + ng_pb(e, 0, 7, b"ok")
    recs, r = read_bytes(tmp_path, data)
    # The overrun option is ignored, so the default microsecond resolution applies.
    assert strip(recs) == [(7000, 1, b"ok", 2)]
    assert recs[0][0] == 2 and r.frames == 1
    assert any("overruns" in w for w in r.warnings) and any("captured length 999" in w for w in r.warnings)


def test_warnings_are_bounded(tmp_path):
    e = "<"
    data = ng_shb(e) + ng_idb(e, 1) + ng_epb(e, 9, 1, b"x") * 1000 + ng_epb(e, 0, 1, b"y")
    recs, r = read_bytes(tmp_path, data)
    assert [x[0] for x in recs] == [1001]
    assert len(r.warnings) == 101 and r.warnings[-1] == "further warnings suppressed"
    assert not r.damage.fatal and r.damage.frame == 1 and "999 more" in str(r.damage)


def test_interface_table_is_bounded(tmp_path):
    e = "<"
    data = ng_shb(e) + ng_idb(e, 1) * 65536 + ng_idb(e, 5) + ng_epb(e, 65535, 1, b"x") + ng_epb(e, 65536, 1, b"y")
    recs, r = read_bytes(tmp_path, data)
    assert [(x[0], x[3]) for x in recs] == [(1, b"x")]
    assert r.linktypes == {1} and any("more than 65536 interfaces" in w for w in r.warnings)
    assert not r.damage.fatal and r.damage.frame == 2


class _Trickle(io.RawIOBase):
    """A stream handing out a few bytes per read, like a slow pipe."""

    def __init__(self, data: bytes, seed: int):
        self._data = memoryview(data)
        self._pos = 0
        self._rnd = random.Random(seed)

    def readable(self):
        return True

    def read1(self, n=-1):
        k = self._rnd.choice((1, 2, 3, 7, 13, 64, 1000))
        if n is not None and n >= 0:
            k = min(k, n)
        chunk = bytes(self._data[self._pos:self._pos + k])
        self._pos += len(chunk)
        return chunk

    read = read1


def _trickle_cases():
    pop3 = [(ts, d, w) for _f, ts, _lt, d, w in read_all(TRACES / "pop3.pcap")[0]]
    ng = b"".join(_ng_from(read_all(TRACES / "pop3.pcap")[0][:30], ">"))
    cut = (TRACES / "pcapplusplus-ldap.pcapng").read_bytes()[:-37]
    resync = bytearray(ng)
    struct.pack_into(">I", resync, boundaries(ng)[12] + 4, 3)
    return [write_pcap(pop3, e=">"), ng, cut, bytes(resync),
            (TRACES / "zeek-get-to-ssh-server.pcap").read_bytes()[:-5],
            gzip.decompress((TRACES / "wireshark-grpc_web.pcapng.gz").read_bytes())]


def test_small_stream_reads_match_file(tmp_path, monkeypatch):
    """Refilling the stream window at every possible place gives the file result (read in 1 MiB chunks)."""
    for i, data in enumerate(_trickle_cases()):
        expected, rm = read_bytes(tmp_path, data)
        for seed in range(3):
            stdin = _Stdin(b"")
            stdin.buffer = _Trickle(data, seed)
            monkeypatch.setattr(sys, "stdin", stdin)
            recs, rs = read_all("-")
            assert recs == expected, (i, seed)
            def dmg(r):
                return r.damage and (str(r.damage), r.damage.offset, r.damage.frame, r.damage.fatal)
            assert dmg(rs) == dmg(rm)
            assert rs.warnings == rm.warnings and rs.frames == rm.frames and rs.bytes_read == rm.bytes_read


# --------------------------------------------------------------------------- stdin

def test_stdin_via_pipe():
    code = ("import sys; from tcpanalyze.sources.pcap import open_capture\n"
            "r = open_capture('-'); n = sum(1 for _ in r)\n"
            "print(n, r.format, r.damage is None, r.bytes_read)")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name, fmt in (("pop3.pcap", "pcap"), ("wireshark-grpc_web.pcapng.gz", "pcapng, gzip")):
        data = (TRACES / name).read_bytes()
        out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, env=env,
                             check=True, timeout=60).stdout.decode()
        n, rest = out.split(" ", 1)
        assert int(n) == len(read_all(TRACES / name)[0])
        assert rest.startswith(fmt + " True")


# --------------------------------------------------------------------------- fuzzing

_SMALL_PCAP = (TRACES / "fin_retransmission.pcap").read_bytes()
_SMALL_NG = (ng_shb("<") + ng_idb("<", 1, 0, 9) + ng_epb("<", 0, 10**18, b"a" * 30) +
             ng_block("<", 5, b"\0" * 12) + ng_idb("<", 228, 0, 0x80 | 10) + ng_epb("<", 1, 77, b"b" * 7) +
             ng_spb("<", b"c" * 9) + ng_shb(">") + ng_idb(">", 101) + ng_epb(">", 0, 5, b"d" * 13))


def _outcome(path_or_dash, monkeypatch=None, data=None):
    """Run a reader to the end; only SourceError may escape (from open)."""
    try:
        if data is not None:
            monkeypatch.setattr(sys, "stdin", _Stdin(data))
        r = open_capture(path_or_dash)
    except SourceError as exc:
        assert "\n" not in str(exc)
        return ("error", str(exc))
    with r:
        recs = list(r)
    for f, ts, lt, d, w in recs:
        assert isinstance(f, int) and isinstance(ts, int) and isinstance(lt, int) and isinstance(w, int)
        assert isinstance(d, (bytes, memoryview))
    assert [x[0] for x in recs] == sorted(set(x[0] for x in recs))
    assert r.frames == len(recs)
    if r.damage is not None:
        assert isinstance(r.damage, CaptureDamage)
        assert f"byte {r.damage.offset}" in str(r.damage) and f"frame {r.damage.frame}" in str(r.damage)
    assert len(r.warnings) <= 101
    return ("ok", recs, None if r.damage is None else (str(r.damage), r.damage.fatal), r.warnings)


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b:
            b.append(val)
            continue
        i = pos % (len(b) + (kind == "insert"))
        if kind == "flip":
            b[i % len(b)] ^= val or 1
        elif kind == "insert":
            b[i:i] = bytes([val]) * (1 + val % 5)
        elif kind == "delete":
            del b[i:i + 1 + val % 9]
        elif kind == "set32":
            b[i:i + 4] = struct.pack("<I", val * 0x01010101 & 0xFFFFFFFF)
    return bytes(b)


_ops = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "set32"]),
                          st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6)
_inputs = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=200).map(lambda b: b"\x0a\x0d\x0d\x0a" + b),
    st.binary(max_size=200).map(lambda b: pcap_header() + b),
    _ops.map(lambda ops: _mutate(_SMALL_PCAP, ops)),
    _ops.map(lambda ops: _mutate(_SMALL_NG, ops)),
    _ops.map(lambda ops: _mutate(_SMALL_NG.replace(b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d", 1), ops)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_inputs, gz=st.booleans())
def test_fuzz_never_escapes(tmp_path_factory, monkeypatch, data, gz):
    if gz:
        data = gzip.compress(data)
        if len(data) > 20:
            data = _mutate(data, [("flip", len(data) // 2, 0x40)]) if data[-1] & 1 else data
    path = tmp_path_factory.getbasetemp() / "fuzz.bin"
    path.write_bytes(data)
    a = _outcome(str(path))
    b = _outcome("-", monkeypatch, data)
    # The file walk and the stream walk must agree exactly.
    assert a == b


def test_random_mutations_deterministic(tmp_path, monkeypatch):
    """A larger seeded sweep of mutations of a real capture and a real pcapng file."""
    rnd = random.Random(1234)
    sources = [(TRACES / "pop3.pcap").read_bytes(), (TRACES / "pcapplusplus-ldap.pcapng").read_bytes()]
    path = tmp_path / "m"
    for i in range(150):
        src = sources[i % 2]
        ops = [(rnd.choice(["flip", "insert", "delete", "set32"]), rnd.randrange(len(src)), rnd.randrange(256))
               for _ in range(rnd.randrange(1, 4))]
        data = _mutate(src, ops)
        path.write_bytes(data)
        assert _outcome(str(path)) == _outcome("-", monkeypatch, data)
