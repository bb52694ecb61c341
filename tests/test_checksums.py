"""TCP checksum verification (``--checksums ignore|verify|drop``).

The captures with bad checksums are REAL kernel TCP (samples/http_small.pcap, recorded between
network namespaces) whose checksum fields are rewritten here with scapy: the segments are
otherwise untouched, so only the checksum is wrong.  The samples themselves were captured on a
TAP device, where the kernel writes complete checksums: every segment verifies.
"""
from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpanalyze.cli import cli
from tcpanalyze.decode import (CSUM_BAD, CSUM_GOOD, CSUM_OFFLOAD, CSUM_UNVERIFIED, DecodeState, decode,
                               decode_general, tcp_checksum_state)
from tcpanalyze.engine import Config
from tcpanalyze.session import AnalyzeOptions, analyze_file
from tcpanalyze.sources.pcap import open_capture

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
scapy_all = pytest.importorskip("scapy.all")
from scapy.all import Ether, wrpcap  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
HTTP = SAMPLES / "http_small.pcap"


def _frames(path: Path):
    return [(fr, ts, lt, bytes(d), wl) for fr, ts, lt, d, wl in open_capture(str(path))]


def _tcp_off(frame: bytes) -> int:
    """Offset of the TCP header in an Ethernet + IPv4/IPv6 (no extension headers) frame."""
    if frame[12:14] == b"\x08\x00":
        return 14 + (frame[14] & 0xF) * 4
    return 14 + 40


def _with_checksum(frame: bytes, value) -> bytes:
    o = _tcp_off(frame) + 16
    b = bytearray(frame)
    old = struct.unpack_from("!H", b, o)[0]
    struct.pack_into("!H", b, o, value(old, frame) if callable(value) else value)
    return bytes(b)


def _pseudo_sum(frame: bytes) -> int:
    """The folded pseudo-header sum a sender with checksum offload leaves in the field."""
    if frame[12:14] == b"\x08\x00":
        hl = (frame[14] & 0xF) * 4
        src, dst = frame[26:30], frame[30:34]
        tlen = struct.unpack_from("!H", frame, 16)[0] - hl
    else:
        src, dst = frame[22:38], frame[38:54]
        tlen = struct.unpack_from("!H", frame, 18)[0]
    s = int.from_bytes(src + dst, "big") + 6 + tlen
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _write(tmp_path: Path, name: str, frames) -> Path:
    pkts = []
    for fr, ts, lt, d, wl in frames:
        e = Ether(d)
        e.time = ts / 1e9
        pkts.append(e)
    p = tmp_path / name
    wrpcap(str(p), pkts)
    return p


def _state(frame: bytes) -> int:
    st = DecodeState(None, verify=True)
    assert decode_general(1, 0, 1, frame, st) is not None
    return st.csum


# ------------------------------------------------------------------ the checksum itself
def test_real_frames_verify():
    for fr, ts, lt, d, wl in _frames(HTTP):
        assert _state(d) == CSUM_GOOD, fr
    v6 = [d for fr, ts, lt, d, wl in _frames(SAMPLES / "timewait_server_close.pcap")
          if d[12:14] == b"\x86\xdd" and len(d) == wl][:20]
    assert len(v6) == 20
    for d in v6:
        assert _state(d) == CSUM_GOOD          # IPv6 pseudo-header (RFC 8200 §8.1)


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_bad_zero_and_partial(family):
    frames = _frames(HTTP) if family == "v4" else [
        x for x in _frames(SAMPLES / "timewait_server_close.pcap") if x[3][12:14] == b"\x86\xdd" and len(x[3]) == x[4]]
    for _fr, _ts, _lt, d, _wl in frames[:8]:
        assert _state(_with_checksum(d, lambda old, f: old ^ 0x0101)) == CSUM_BAD
        assert _state(_with_checksum(d, 0)) == CSUM_OFFLOAD
        assert _state(_with_checksum(d, _pseudo_sum(d))) == CSUM_OFFLOAD


def test_ffff_stands_for_zero():
    """RFC 1624: a correct checksum of 0x0000 sent as 0xFFFF is correct (as Wireshark says)."""
    d = bytearray(_frames(HTTP)[3][3])
    t = _tcp_off(bytes(d))
    struct.pack_into("!H", d, t + 16, 0)
    # choose the urgent pointer so that the correct checksum becomes 0x0000
    struct.pack_into("!H", d, t + 18, 0)
    ip_len = struct.unpack_from("!H", d, 16)[0] - (d[14] & 0xF) * 4
    seg = bytes(d[t:t + ip_len]) + (b"\0" if ip_len & 1 else b"")
    x = (int.from_bytes(seg, "big") + int.from_bytes(bytes(d[26:34]), "big") + 6 + ip_len) % 0xFFFF
    struct.pack_into("!H", d, t + 18, (-x) % 0xFFFF)
    struct.pack_into("!H", d, t + 16, 0xFFFF)
    assert _state(bytes(d)) == CSUM_GOOD


def test_snaplen_cut_segment_is_not_verified():
    d = _frames(HTTP)[5][3]                    # the 245-byte response
    cut = d[:len(d) - 100]
    st = DecodeState(None, verify=True)
    seg = decode_general(1, 0, 1, cut, st, len(d))
    assert seg.truncated and st.csum == CSUM_UNVERIFIED


def test_fast_path_is_untouched_by_default():
    """decode() with verification off computes nothing (the fast path does not look)."""
    st = DecodeState(None, verify=False)
    bad = _with_checksum(_frames(HTTP)[3][3], lambda old, f: old ^ 0xFFFF)
    assert decode(1, 0, 1, bad, st) is not None and st.csum == CSUM_UNVERIFIED
    assert tcp_checksum_state(b"", 0, 0, b"", b"", 0) == CSUM_UNVERIFIED


# ------------------------------------------------------------------ a capture with bad checksums
BAD_FRAMES = {4: "C", 6: "c"}                  # client's GET and server's response


@pytest.fixture
def bad_capture(tmp_path):
    frames = _frames(HTTP)
    out = [(fr, ts, lt, _with_checksum(d, lambda old, f: old ^ 0x5A5A) if fr in BAD_FRAMES else d, wl)
           for fr, ts, lt, d, wl in frames]
    return _write(tmp_path, "bad.pcap", out)


@pytest.fixture
def removed_capture(tmp_path):
    return _write(tmp_path, "removed.pcap", [x for x in _frames(HTTP) if x[0] not in BAD_FRAMES])


def _conns(path: Path, mode: str):
    rep = analyze_file(str(path), AnalyzeOptions(engine={"checksums": mode} if mode != "ignore" else {}))
    return rep, [(c["history"], c["conn_state"], c["orig_pkts"], c["resp_pkts"]) for c in rep.connections]


def test_ignore_is_the_default_and_reports_nothing(bad_capture):
    rep, conns = _conns(bad_capture, "ignore")
    base, base_conns = _conns(HTTP, "ignore")
    assert conns == base_conns
    assert "tcp_checksums" not in rep.files[0]
    assert not any(k.startswith("checksum_") for k in rep.summary["capture_quality"])
    assert Config().checksums == "ignore"


def test_verify_counts_and_changes_nothing_else(bad_capture):
    rep, conns = _conns(bad_capture, "verify")
    assert conns == _conns(HTTP, "ignore")[1]
    cs = rep.files[0]["tcp_checksums"]
    assert cs == {"verified": 11, "good": 9, "bad": 2, "offload": 0, "unverified": 0, "dropped": 0}
    cq = rep.summary["capture_quality"]
    assert (cq["checksum_bad"], cq["checksum_offload"], cq["checksum_dropped"]) == (2, 0, 0)
    msgs = [f["message"] for f in rep.findings if f["kind"] == "capture_quality"]
    assert any("2 segment(s) with a bad TCP checksum" in m for m in msgs)


def test_drop_gives_zeek_history(bad_capture, removed_capture):
    """Zeek (without -C) drops a bad segment after finding its connection and marks the
    sender's side with C/c: the rest of the history is that of the capture without them."""
    rep, conns = _conns(bad_capture, "drop")
    (hist, state, op, rp), = conns
    (hist_rm, state_rm, op_rm, rp_rm), = _conns(removed_capture, "ignore")[1]
    assert hist.replace("C", "").replace("c", "") == hist_rm
    assert hist.count("C") == 1 and hist.count("c") == 1
    assert (state, op, rp) == (state_rm, op_rm, rp_rm)
    # each letter sits where its bad segment came (the rest is the history without those segments)
    assert (hist_rm, hist) == ("ShAGagFf", "ShACGacgFf")
    cs = rep.files[0]["tcp_checksums"]
    assert (cs["bad"], cs["dropped"]) == (2, 2)
    assert rep.summary["tcp_segments"] == 9


def test_scaled_checksum_letters(tmp_path):
    """Ten bad segments from the client: 'C' at the 1st and the 10th (Zeek's ScaledHistoryEntry)."""
    frames = _frames(HTTP)
    get = frames[3]
    extra = [(100 + i, get[1] + 1000 * (i + 1), get[2], _with_checksum(get[3], lambda old, f: old ^ 0x1111), get[4])
             for i in range(10)]
    path = _write(tmp_path, "ten.pcap", frames[:4] + extra + frames[4:])
    rep, ((hist, *_),) = _conns(path, "drop")
    assert hist.count("C") == 2
    rep, ((hist9, *_),) = _conns(_write(tmp_path, "nine.pcap", frames[:4] + extra[:9] + frames[4:]), "drop")
    assert hist9.count("C") == 1


def test_offloaded_checksums_are_not_bad(tmp_path):
    """As captured on a sending host with offload: the client's checksums hold the bare
    pseudo-header sum (Linux CHECKSUM_PARTIAL), the server's are zero."""
    frames = _frames(HTTP)
    client = frames[0][3][26:30]
    out = [(fr, ts, lt, _with_checksum(d, _pseudo_sum(d) if d[26:30] == client else 0), wl)
           for fr, ts, lt, d, wl in frames]
    path = _write(tmp_path, "offload.pcap", out)
    rep, conns = _conns(path, "drop")
    assert conns == _conns(HTTP, "ignore")[1]
    cs = rep.files[0]["tcp_checksums"]
    assert (cs["offload"], cs["bad"], cs["dropped"]) == (11, 0, 0)
    kinds = {f["subkind"] for f in rep.findings if f["kind"] == "capture_quality"}
    assert "checksum_offload" in kinds and "bad_checksums" not in kinds


# ------------------------------------------------------------------ the command line
def test_cli_option_on_every_capture_command(bad_capture):
    r = CliRunner()
    res = r.invoke(cli, ["packets", "--checksums", "drop", str(bad_capture)])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln and ln[0].isdigit()]
    assert [int(ln.split("\t")[0]) for ln in lines] == [1, 2, 3, 5, 7, 8, 9, 10, 11]
    res = r.invoke(cli, ["packets", str(bad_capture)])
    assert len([ln for ln in res.output.splitlines() if ln and ln[0].isdigit()]) == 11
    res = r.invoke(cli, ["analyze", "--checksums", "verify", "--json", str(bad_capture)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["files"][0]["tcp_checksums"]["bad"] == 2
    assert doc["summary"]["capture_quality"]["checksum_bad"] == 2
    for cmd in (["flows"], ["check", "--max-rst", "5"], ["ladder", "--stream", "0"]):
        res = r.invoke(cli, cmd + ["--checksums", "drop", str(bad_capture)])
        assert "no such option" not in res.output, (cmd, res.output)
        assert res.exit_code in (0, 1), (cmd, res.output)
    res = r.invoke(cli, ["live", "--help"])
    assert "--checksums" in res.output
    res = r.invoke(cli, ["packets", "--checksums", "maybe", str(bad_capture)])
    assert res.exit_code == 2
