"""Plots: every kind renders a non-blank image from one pass of the engine;
a missing matplotlib is a one-line error with exit code 2."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpanalyze.cli import cli
from tcpanalyze.engine import Analyzer
from tcpanalyze.pipeline import analyze_source
from tcpanalyze.report.plots import StreamRecorder, time_wait_series

HERE = Path(__file__).parent
TRACES = HERE / "data" / "traces"
SAMPLES = HERE.parent / "samples"


def _first(*paths: Path) -> Path:
    for p in paths:
        if p.exists():
            return p
    pytest.skip(f"none of {', '.join(p.name for p in paths)} present")


def bulk_capture() -> Path:
    return _first(SAMPLES / "lossy_bulk.pcap", TRACES / "206_example_b.pcap")


def timewait_capture() -> Path:
    return _first(SAMPLES / "timewait_server_close.pcap", TRACES / "bruteforce.pcap")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_png(path: Path) -> None:
    mpimg = pytest.importorskip("matplotlib.image")
    assert path.stat().st_size > 10_000, f"{path.name}: {path.stat().st_size} bytes"
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.02, "blank image"
    # the data are drawn in colour (axes and text are black and grey): some of it must be there
    coloured = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.2
    assert float(coloured.mean()) > 0.002, "no coloured data drawn"


# ---------------------------------------------------------------------------------- the images
@pytest.mark.parametrize("kind", ["tseq", "window", "rtt"])
def test_stream_plots(kind, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / f"{kind}.png"
    r = run("plot", bulk_capture(), "--stream", 0, "--kind", kind, "-o", out)
    assert r.exit_code == 0, r.output
    assert_png(out)


def test_timewait_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "tw.png"
    r = run("plot", timewait_capture(), "--kind", "timewait", "--threshold", "20", "-o", out)
    assert r.exit_code == 0, r.output
    assert "hosts" in r.output
    assert_png(out)


def test_svg_output(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "tseq.svg"
    r = run("plot", TRACES / "retransmit-fast009.pcap", "--stream", 0, "--kind", "tseq", "-o", out)
    assert r.exit_code == 0, r.output
    assert ET.parse(out).getroot().tag.endswith("svg")


def test_tseq_counts_retransmissions_and_sacks(tmp_path):
    pytest.importorskip("matplotlib")
    from tcpanalyze.report.plots import plot_tseq

    rec = record(TRACES / "retransmit-fast009.pcap", 0)
    info = plot_tseq(rec, str(tmp_path / "t.png"))
    assert info["retransmissions"] == 3          # one fast retransmission, two more
    assert info["sack_blocks"] > 0
    assert info["segments"] == 20


# ---------------------------------------------------------------------------------- the data
def record(path: Path, stream: int) -> StreamRecorder:
    rec = StreamRecorder(stream)
    a = Analyzer(keep_timeline=False)
    analyze_source(str(path), a, on_segment=rec)
    a.finish()
    return rec


def test_recorder_keeps_only_its_stream():
    rec = record(TRACES / "bruteforce.pcap", 3)
    assert rec.conn.stream == 3
    assert len(rec) == 23
    assert all(f == rec.frame[0] or f > rec.frame[0] for f in rec.frame)
    # the engine's per-flow RTT sample lists are switched on for this stream only
    assert rec.conn.flows[0].track.rtt_samples is not None and rec.conn.flows[1].track.rtt_samples is not None


def test_recorder_rtt_samples_and_sack_are_relative():
    rec = record(TRACES / "retransmit-fast009.pcap", 0)
    samples = rec.conn.flows[rec.conn.orig ^ 1].track.rtt_samples
    assert samples and all(s[2] > 0 for s in samples)
    assert rec.sack
    for i, blocks in rec.sack.items():
        for lo, hi in blocks:
            assert rec.ack[i] < lo < hi < 30_000     # relative to the server's data, beyond the ACK


def test_time_wait_series():
    xs, ys = time_wait_series([0, 10, 10, 50], 30)
    assert list(zip(xs, ys)) == [(0, 1), (10, 3), (30, 2), (40, 0), (50, 1), (80, 0)]


# ---------------------------------------------------------------------------------- the command
def test_missing_matplotlib_is_one_line_exit_2(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # `import matplotlib` raises ImportError
    r = run("plot", TRACES / "pop3.pcap", "--stream", 0, "--kind", "tseq", "-o", tmp_path / "x.png")
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "matplotlib" in lines[0] and "tcpanalyze[plot]" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_plot_module_does_not_import_matplotlib():
    import subprocess

    code = ("import sys, tcpanalyze.report.plots, tcpanalyze.commands.plot, tcpanalyze.cli; "
            "sys.exit(1 if 'matplotlib' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_stream_kinds_need_stream(tmp_path):
    r = run("plot", TRACES / "pop3.pcap", "--kind", "rtt", "-o", tmp_path / "x.png")
    assert r.exit_code == 2
    assert "--stream" in r.output


def test_unknown_stream(tmp_path):
    pytest.importorskip("matplotlib")
    r = run("plot", TRACES / "pop3.pcap", "--stream", 999, "--kind", "window", "-o", tmp_path / "x.png")
    assert r.exit_code == 2
    assert "no stream 999" in r.output


def test_bad_extension(tmp_path):
    r = run("plot", TRACES / "pop3.pcap", "--stream", 0, "--kind", "rtt", "-o", tmp_path / "x.bmp")
    assert r.exit_code == 2


def test_tiny_rtt_plot_still_written(tmp_path):
    """A refused connection (one RTT sample: the RST acks the SYN) still gives an image."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "rtt.png"
    r = run("plot", TRACES / "pop3.pcap", "--stream", 0, "--kind", "rtt", "-o", out)
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 5_000


@pytest.mark.parametrize("name, key", [("slow_reader_zero_window", "zero_window_episodes"),
                                       ("window_shrink", "shrinks")])
def test_window_plot_marks_samples(name, key, tmp_path):
    """The real-kernel samples: zero-window episodes and window shrinks are found and drawn."""
    pytest.importorskip("matplotlib")
    from tcpanalyze.report.plots import plot_window

    path = SAMPLES / f"{name}.pcap"
    if not path.exists():
        pytest.skip(f"samples/{name}.pcap not present")
    out = tmp_path / "w.png"
    info = plot_window(record(path, 0), str(out))
    assert info[key] > 0
    assert_png(out)
