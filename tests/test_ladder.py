"""Ladder diagrams: golden terminal renderings of real captures, the seed's label
wording, elision, and the SVG writer.

Regenerate the golden files with ``TCPANALYZE_REGEN_GOLDEN=1 python -m pytest tests/test_ladder.py``
and review the diff: the label assertions below stay in force whatever the golden files say.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from tcpanalyze.cli import cli
from tcpanalyze.engine import Analyzer
from tcpanalyze.pipeline import analyze_source
from tcpanalyze.report.ladder import (CLIENT, SERVER, ElisionRow, LadderCollector, SegmentRow, analysis_notes,
                                      print_ladder, render_svg, segment_label, xml_escape)

HERE = Path(__file__).parent
TRACES = HERE / "data" / "traces"
SAMPLES = HERE.parent / "samples"
GOLDEN = HERE / "golden"
REGEN = bool(os.environ.get("TCPANALYZE_REGEN_GOLDEN"))


def build(path: Path, stream: int = 0, max_packets: int = 40, absolute: bool = False):
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    analyzer = Analyzer(keep_timeline=True)
    col = LadderCollector(stream, max_packets=max_packets, absolute=absolute)
    analyze_source(str(path), analyzer, on_segment=col)
    analyzer.finish()
    return col.build()


def render(ladder, width: int = 100) -> str:
    buf = StringIO()
    print_ladder(ladder, Console(file=buf, width=width, color_system=None))
    return buf.getvalue()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"ladder_{name}.txt"
    if REGEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    elif not path.exists():
        pytest.fail(f"golden file {path.name} missing: regenerate with TCPANALYZE_REGEN_GOLDEN=1 and review")
    assert text == path.read_text(encoding="utf-8"), f"ladder differs from {path.name}"


def seg_rows(ladder) -> list[SegmentRow]:
    return [r for r in ladder.rows if isinstance(r, SegmentRow)]


def handshake_ok(rows) -> None:
    """The seed's three handshake arrows, word for word, in the right directions."""
    assert [(r.direction, r.label) for r in rows[:3]] == [
        (CLIENT, "SYN(SEQ=0, LEN=0)"),
        (SERVER, "SYN, ACK(SEQ=0, ACK=1, LEN=0)"),
        (CLIENT, "ACK(SEQ=1, ACK=1, LEN=0)"),
    ]
    assert rows[0].states[0] == "SYN_SENT"
    assert rows[1].states == ("ESTABLISHED", "SYN_RECEIVED")
    assert rows[2].states[1] == "ESTABLISHED"


# ---------------------------------------------------------------------------------- labels
def test_segment_label_wording():
    assert segment_label(0x002, 0, 0, 0) == "SYN(SEQ=0, LEN=0)"
    assert segment_label(0x012, 0, 1, 0) == "SYN, ACK(SEQ=0, ACK=1, LEN=0)"
    assert segment_label(0x010, 1, 1, 0) == "ACK(SEQ=1, ACK=1, LEN=0)"
    # PSH is left out, as the seed does; data segments carry their flags only
    assert segment_label(0x018, 1, 1, 562) == "ACK(SEQ=1, ACK=1, LEN=562)"
    assert segment_label(0x011, 563, 1, 0) == "FIN, ACK(SEQ=563, ACK=1, LEN=0)"
    assert segment_label(0x004, 1, 0, 0) == "RST(SEQ=1, LEN=0)"
    assert segment_label(0x010, 1, 1, 0, win=0) == "ACK(SEQ=1, ACK=1, LEN=0, WIN=0)"
    assert segment_label(0x000, 5, 0, 0) == "NONE(SEQ=5, LEN=0)"


def test_analysis_notes():
    from tcpanalyze import analysis as A

    assert [n.text for n in analysis_notes(A.RETRANSMISSION)] == ["retransmission"]
    assert [n.text for n in analysis_notes(A.RETRANSMISSION | A.FAST_RETRANSMISSION)] == ["fast retransmission"]
    assert [n.text for n in analysis_notes(A.DUPLICATE_ACK, 3)] == ["dup ACK #3"]
    assert [n.text for n in analysis_notes(A.ZERO_WINDOW | A.WINDOW_FULL)] == ["zero window", "window full"]
    assert analysis_notes(0) == []


def test_xml_escape():
    assert xml_escape("a<b & c>\"d'") == "a&lt;b &amp; c&gt;&quot;d&apos;"


# ---------------------------------------------------------------------------------- goldens
def test_handshake_data_4way_close():
    """zeek-tls1_1: handshake, TLS data, client FIN / server ACK / server FIN / client ACK."""
    lad = build(TRACES / "zeek-tls1_1.pcap")
    rows = seg_rows(lad)
    handshake_ok(rows)
    assert lad.total == 23 and len(rows) == 23
    assert rows[3].label == "ACK(SEQ=1, ACK=1, LEN=200)"          # PSH, ACK with data: flags only
    fin = next(r for r in rows if r.label.startswith("FIN") and r.direction == CLIENT)
    assert fin.label == "FIN, ACK(SEQ=404, ACK=4813, LEN=0)"
    assert fin.states == ("FIN_WAIT_1", "CLOSE_WAIT")
    states = [s for r in rows for s in r.states if s]
    for s in ("FIN_WAIT_2", "LAST_ACK", "TIME_WAIT", "CLOSED"):
        assert s in states
    assert (lad.final) == ("TIME_WAIT", "CLOSED")
    # the handshake shows no WIN (SYNs do not set it); a later change does
    assert not any("WIN=" in r.label for r in rows[:4])
    assert any("WIN=" in r.label for r in rows)
    text = render(lad)
    assert "FIN, ACK(SEQ=404, ACK=4813, LEN=0)" in text
    assert "[retransmission]" in text and "[dup ACK #1]" in text
    assert max(len(ln) for ln in text.splitlines()) <= 100
    check_golden("tls_4way_close", text)


def test_handshake_data_fin_close():
    """pcapplusplus one_http_stream_fin2: GET, response, server FIN piggybacked on data (FIN, FIN, ACK)."""
    lad = build(TRACES / "pcapplusplus-one_http_stream_fin2.pcap")
    rows = seg_rows(lad)
    handshake_ok(rows)
    assert rows[3].direction == CLIENT and rows[3].label == "ACK(SEQ=1, ACK=1, LEN=406)"
    assert rows[4].direction == SERVER and rows[4].label == "ACK(SEQ=1, ACK=407, LEN=1448)"
    fins = [r for r in rows if r.label.startswith("FIN, ACK")]
    assert [r.direction for r in fins] == [SERVER, CLIENT]
    assert fins[0].states == ("CLOSE_WAIT", "FIN_WAIT_1")
    assert rows[-1].label.startswith("ACK(SEQ=7073, ACK=408, LEN=0")
    text = render(lad)
    assert "SYN, ACK(SEQ=0, ACK=1, LEN=0)" in text
    check_golden("http_fin_close", text)


def test_refused_connection():
    """pop3 stream 0: a SYN answered by RST (three times: the SYN retransmissions are marked)."""
    lad = build(TRACES / "pop3.pcap")
    rows = seg_rows(lad)
    assert (rows[0].direction, rows[0].label) == (CLIENT, "SYN(SEQ=0, LEN=0)")
    assert (rows[1].direction, rows[1].label) == (SERVER, "RST, ACK(SEQ=1, ACK=1, LEN=0)")
    assert rows[0].states[0] == "SYN_SENT"
    assert rows[1].states[0] == "CLOSED"
    assert rows[1].cls == "rst"
    assert [n.text for n in rows[2].notes] == ["retransmission"]
    assert lad.end_reason == "rst"
    text = render(lad)
    assert "RST, ACK(SEQ=1, ACK=1, LEN=0)" in text
    assert "SYN(SEQ=0, LEN=0) [retransmission]" in text
    check_golden("refused", text)


def test_retransmissions():
    """retransmit-fast009: dup ACKs #1..#5, a fast retransmission and two more retransmissions."""
    lad = build(TRACES / "retransmit-fast009.pcap")
    rows = seg_rows(lad)
    handshake_ok(rows)
    notes = [n.text for r in rows for n in r.notes]
    assert [n for n in notes if n.startswith("dup ACK")] == [f"dup ACK #{i}" for i in range(1, 6)]
    assert notes.count("fast retransmission") == 1
    assert notes.count("retransmission") == 2
    fast = next(r for r in rows if any(n.text == "fast retransmission" for n in r.notes))
    assert (fast.direction, fast.label, fast.cls) == (SERVER, "ACK(SEQ=12871, ACK=475, LEN=1430)", "rtx")
    assert rows[-1].label == "RST, ACK(SEQ=475, ACK=23784, LEN=0)"
    text = render(lad)
    assert "[fast retransmission]" in text
    check_golden("retransmit", text)


def test_elision_keeps_first_and_last():
    lad = build(TRACES / "retransmit-fast009.pcap", max_packets=10)
    full = build(TRACES / "retransmit-fast009.pcap", max_packets=0)
    assert full.total == lad.total == 39
    rows = lad.rows
    assert isinstance(rows[5], ElisionRow) and rows[5].count == 29
    assert [r.label for r in rows[:5]] == [r.label for r in full.rows[:5]]
    assert [r.label for r in rows[6:]] == [r.label for r in full.rows[-5:]]
    assert lad.shown == 10 and full.shown == 39
    text = render(lad)
    assert "… 29 segments elided …" in text
    assert "(10 shown)" in text
    check_golden("retransmit_elided", text)
    # the default is 40: this 39-segment connection is drawn whole
    assert build(TRACES / "retransmit-fast009.pcap").shown == 39


def test_elision_shows_states_reached_inside():
    lad = build(TRACES / "zeek-tls1_1.pcap", max_packets=4)
    el = next(r for r in lad.rows if isinstance(r, ElisionRow))
    assert el.count == 19
    assert el.states == ("TIME_WAIT", "LAST_ACK")             # last states reached among the elided


def test_collector_memory_is_bounded():
    col = LadderCollector(0, max_packets=6)
    analyzer = Analyzer()
    analyze_source(str(TRACES / "retransmit-fast009.pcap"), analyzer, on_segment=col)
    assert len(col.head) == 3 and len(col.tail) == 3 and col.total == 39


def test_absolute_numbers():
    lad = build(TRACES / "pop3.pcap", absolute=True)
    rows = seg_rows(lad)
    assert rows[0].label == "SYN(SEQ=3145310914, LEN=0)"
    assert rows[1].label == "RST, ACK(SEQ=0, ACK=3145310915, LEN=0)"


@pytest.mark.parametrize("name, stream", [("http_small", 0)])
def test_sample_http_small(name, stream):
    lad = build(SAMPLES / f"{name}.pcap", stream)
    rows = seg_rows(lad)
    handshake_ok(rows)
    assert any(r.label.startswith("FIN, ACK") for r in rows)
    check_golden(f"sample_{name}", render(lad))


def test_sample_handshake_variety_3way_close():
    """samples/handshake_variety.pcap: find a connection closed by FIN, FIN+ACK, ACK (3-way close)."""
    path = SAMPLES / "handshake_variety.pcap"
    if not path.exists():
        pytest.skip("samples/handshake_variety.pcap not present")
    analyzer = Analyzer()
    cols = [LadderCollector(i, max_packets=0) for i in range(16)]
    analyze_source(str(path), analyzer, on_segment=lambda s, a: [c(s, a) for c in cols])
    analyzer.finish()
    for col in cols:
        if col.conn is None:
            continue
        lad = col.build()
        rows = seg_rows(lad)
        fins = [i for i, r in enumerate(rows) if r.label.startswith("FIN")]
        if len(fins) == 2 and fins[1] == fins[0] + 1 and rows[fins[1]].direction != rows[fins[0]].direction \
                and len(rows) == fins[1] + 2 and not rows[-1].label.startswith(("FIN", "RST")):
            handshake_ok(rows)
            first, second, last = rows[fins[0]], rows[fins[1]], rows[-1]
            assert first.label.startswith("FIN, ACK(") and second.label.startswith("FIN, ACK(")
            closer = first.direction                     # the active closer: FIN_WAIT_1 -> TIME_WAIT
            other = closer ^ 1
            assert first.states[closer] == "FIN_WAIT_1" and first.states[other] == "CLOSE_WAIT"
            assert second.states[closer] == "TIME_WAIT" and second.states[other] == "LAST_ACK"
            assert last.direction == closer and last.label.startswith("ACK(") and last.states[other] == "CLOSED"
            check_golden("sample_3way_close", render(lad))
            return
    pytest.fail("no 3-way close (FIN, FIN/ACK, ACK) found in samples/handshake_variety.pcap")


def test_sample_simultaneous_close():
    """samples/handshake_variety.pcap also holds a simultaneous close: both sides pass CLOSING."""
    path = SAMPLES / "handshake_variety.pcap"
    if not path.exists():
        pytest.skip("samples/handshake_variety.pcap not present")
    analyzer = Analyzer()
    cols = [LadderCollector(i, max_packets=0) for i in range(16)]
    analyze_source(str(path), analyzer, on_segment=lambda s, a: [c(s, a) for c in cols])
    analyzer.finish()
    for col in cols:
        if col.conn is None:
            continue
        lad = col.build()
        states = [r.states for r in seg_rows(lad)]
        if any(c == "CLOSING" for c, _ in states) and any(s == "CLOSING" for _, s in states):
            assert lad.final == ("TIME_WAIT", "TIME_WAIT")
            check_golden("sample_simultaneous_close", render(lad))
            return
    pytest.fail("no simultaneous close found in samples/handshake_variety.pcap")


# ---------------------------------------------------------------------------------- svg
@pytest.mark.parametrize("max_packets", [0, 10])
def test_svg_is_xml_with_one_arrow_per_segment(max_packets):
    lad = build(TRACES / "retransmit-fast009.pcap", max_packets=max_packets)
    doc = render_svg(lad)
    root = ET.fromstring(doc)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    arrows = [e for e in root.iter() if "arrow" in (e.get("class") or "").split()]
    assert len(arrows) == lad.shown == (39 if max_packets == 0 else 10)
    assert all(e.tag in ("{http://www.w3.org/2000/svg}line", "{http://www.w3.org/2000/svg}path") for e in arrows)
    texts = ["".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "SYN(SEQ=0, LEN=0)" in texts and "SYN, ACK(SEQ=0, ACK=1, LEN=0)" in texts
    assert "SYN_SENT" in texts and "ESTABLISHED" in texts
    if not max_packets:
        assert any("fast retransmission" in t for t in texts)
    else:
        assert "… 29 segments elided …" in texts


def test_svg_escapes_text():
    lad = build(TRACES / "pop3.pcap")
    lad.client = "<evil & \"client\">"
    root = ET.fromstring(render_svg(lad))
    assert any("<evil & \"client\">" in "".join(e.itertext()) for e in root.iter())


# ---------------------------------------------------------------------------------- command
def test_cli_ladder_terminal():
    r = CliRunner().invoke(cli, ["ladder", str(TRACES / "pop3.pcap"), "--stream", "0", "--width", "100"])
    assert r.exit_code == 0, r.output
    assert "SYN(SEQ=0, LEN=0)" in r.output and "RST, ACK(SEQ=1, ACK=1, LEN=0)" in r.output
    assert "SYN_SENT" in r.output


def test_cli_ladder_svg(tmp_path):
    out = tmp_path / "l.svg"
    r = CliRunner().invoke(cli, ["ladder", str(TRACES / "zeek-tls1_1.pcap"), "--stream", "0",
                                 "--max-packets", "8", "--svg", str(out)])
    assert r.exit_code == 0, r.output
    root = ET.parse(out).getroot()
    assert sum(1 for e in root.iter() if "arrow" in (e.get("class") or "").split()) == 8


def test_cli_ladder_unknown_stream_is_usage_error():
    r = CliRunner().invoke(cli, ["ladder", str(TRACES / "pop3.pcap"), "--stream", "999"])
    assert r.exit_code == 2
    assert "no stream 999" in r.output


def test_cli_ladder_needs_stream():
    r = CliRunner().invoke(cli, ["ladder", str(TRACES / "pop3.pcap")])
    assert r.exit_code == 2


def test_cli_ladder_unreadable_input(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    r = CliRunner().invoke(cli, ["ladder", str(bad), "--stream", "0"])
    assert r.exit_code == 3
