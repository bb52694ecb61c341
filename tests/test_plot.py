"""Plots: every kind renders a non-blank image from one pass of the engine, and what is drawn
is checked on the figure (axis ranges, marker and line styles, titles, tick labels); a missing
matplotlib, a bad range or a stdin without --stream is a one-line error with exit code 2."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpanalyze.cli import cli
from tcpanalyze.engine import Analyzer
from tcpanalyze.pipeline import analyze_source
from tcpanalyze.report import plots
from tcpanalyze.report.plots import StreamRecorder, byte_tick, parse_range, split_at, time_wait_series

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


# ---------------------------------------------------------------------------------- what is drawn
def one_line_error(r, *words) -> None:
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tcpanalyze: error:"), r.output
    for w in words:
        assert w in lines[0]


def tick_texts(fig, ax, axis: str = "y") -> list[str]:
    fig.canvas.draw()
    labels = (ax.yaxis if axis == "y" else ax.xaxis).get_ticklabels()
    return [t.get_text() for t in labels if t.get_text()]


def data_lines(ax):
    """The Line2D artists drawn with data (not legend proxies or reference lines)."""
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1 or ln.get_marker() not in ("None", "", None)]


def test_parse_range():
    assert parse_range("0:2") == (0.0, 2.0)
    assert parse_range("1.5:") == (1.5, None)
    assert parse_range(":82s") == (None, 82.0)
    assert parse_range(":") == (None, None)
    assert parse_range("1M:1.5MB", "seq") == (1_000_000, 1_500_000)
    assert parse_range("200k:", "seq") == (200_000, None)
    for bad, what in [("2", "time"), ("5:1", "time"), ("a:b", "time"), ("-1:3", "time"), ("1:2:3", "time"),
                      ("1x:2", "seq"), ("nan:", "time"), ("2:2", "seq")]:
        with pytest.raises(ValueError):
            parse_range(bad, what)


def test_byte_tick_units():
    assert byte_tick(0, 5e6, 1e6) == "0"
    assert byte_tick(3_000_000, 5e6, 1e6) == "3 MB"
    assert byte_tick(1_250_000, 1.75e6, 250_000) == "1.25 MB"
    assert byte_tick(20_000, 65_000, 10_000) == "20 kB"
    assert byte_tick(500, 800, 100) == "500 B"
    assert byte_tick(1_234_500, 1.24e6, 500) == "1.2345 MB"


def test_split_at():
    before, after = split_at([0, 1, 3, 5], [0, 2, 4, 0], 2)
    assert before == ([0, 1, 2], [0, 2, 2])
    assert after == ([2, 3, 5], [2, 4, 0])
    assert split_at([0, 1], [0, 1], 2) == (([0, 1], [0, 1]), ([], []))


def test_tseq_title_names_the_data_direction(tmp_path):
    """lossy_bulk is a download (samples/make_samples.sh: the server sends 3 MB): the title
    names the server's address first; reordered_upload is an upload: the client's first."""
    pytest.importorskip("matplotlib")
    down = plots.plot_tseq(record(SAMPLES / "lossy_bulk.pcap", 0), str(tmp_path / "d.png"))
    title = down.figure.axes[0].get_title()
    assert "server 10.200.0.2:5001 → client 10.200.0.1:40734 data" in title, title
    up = plots.plot_tseq(record(SAMPLES / "reordered_upload.pcap", 0), str(tmp_path / "u.png"))
    title = up.figure.axes[0].get_title()
    assert "client 10.200.0.1:58664 → server 10.200.0.2:5004 data" in title, title
    # --direction client on the download draws the client's 19 bytes, titled so
    back = plots.plot_tseq(record(SAMPLES / "lossy_bulk.pcap", 0), str(tmp_path / "c.png"), direction="client")
    assert "client 10.200.0.1:40734 → server 10.200.0.2:5001 data" in back.figure.axes[0].get_title()
    assert back["segments"] == 1


def test_tseq_byte_axis_in_mb(tmp_path):
    pytest.importorskip("matplotlib")
    info = plots.plot_tseq(record(SAMPLES / "lossy_bulk.pcap", 0), str(tmp_path / "t.png"))
    ax = info.figure.axes[0]
    texts = tick_texts(info.figure, ax)
    assert any(t.endswith(" MB") for t in texts), texts
    assert not any(t.isdigit() and int(t) > 1000 for t in texts), texts     # no raw byte counts


def test_tseq_time_range_limits_the_x_axis(tmp_path):
    """206_example_b: the transfer lies in t < 2 s, RTO retransmissions run to 82 s; a time
    range shows the transfer and fits the sequence axis to what is inside it."""
    pytest.importorskip("matplotlib")
    rec = record(TRACES / "206_example_b.pcap", 0)
    whole = plots.plot_tseq(rec, str(tmp_path / "all.png"))
    assert whole.figure.axes[0].get_xlim()[1] > 80
    info = plots.plot_tseq(rec, str(tmp_path / "zoom.png"), time_range=(0.0, 2.0))
    ax = info.figure.axes[0]
    assert ax.get_xlim() == (0.0, 2.0)
    lo, hi = ax.get_ylim()
    assert 0.9e6 < hi < 1.1e6 and lo < 10_000       # the data up to 2 s reach about 1 MB, not 1.2 MB
    assert any("kB" in t or "MB" in t for t in tick_texts(info.figure, ax))
    late = plots.plot_tseq(rec, str(tmp_path / "late.png"), time_range=(10.0, None))
    assert late.figure.axes[0].get_xlim()[0] == 10.0
    assert late.figure.axes[0].get_xlim()[1] == pytest.approx((rec.ts[-1] - rec.t0()) / 1e9)


def test_tseq_seq_range_fits_the_time_axis(tmp_path):
    pytest.importorskip("matplotlib")
    rec = record(SAMPLES / "lossy_bulk.pcap", 0)
    info = plots.plot_tseq(rec, str(tmp_path / "s.png"), seq_range=(1_000_000, 1_200_000))
    ax = info.figure.axes[0]
    assert ax.get_ylim() == (1_000_000, 1_200_000)
    x0, x1 = ax.get_xlim()
    assert 2 < x0 < x1 < 6 and x1 - x0 < 2.5        # 1.0-1.2 MB went by between about 3.5 and 4.7 s


def test_rtt_samples_are_points(tmp_path):
    pytest.importorskip("matplotlib")
    info = plots.plot_rtt(record(SAMPLES / "lossy_bulk.pcap", 0), str(tmp_path / "r.png"))
    ax = info.figure.axes[0]
    samples = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert sum(len(ln.get_xdata()) for ln in samples) == info["samples"] > 1000
    assert all(ln.get_linestyle() == "None" for ln in samples)
    labels = [ln.get_label() for ln in samples]
    assert any(lb.startswith("client → server data (3 samples)") for lb in labels), labels


def test_rtt_time_range(tmp_path):
    pytest.importorskip("matplotlib")
    info = plots.plot_rtt(record(SAMPLES / "lossy_bulk.pcap", 0), str(tmp_path / "r.png"), time_range=(1.0, 3.0))
    assert info.figure.axes[0].get_xlim() == (1.0, 3.0)


def test_window_one_scale_per_side(tmp_path):
    """The download's two directions: the client's few bytes against the server's 64 kB window,
    the server's bytes in flight against the client's window of about 1.8 MB: each panel on
    its own scale, in kB and MB."""
    pytest.importorskip("matplotlib")
    info = plots.plot_window(record(SAMPLES / "lossy_bulk.pcap", 0), str(tmp_path / "w.png"))
    up, down = info.figure.axes
    assert "client 10.200.0.1:40734 → server 10.200.0.2:5001 data" in up.get_title()
    assert "server 10.200.0.2:5001 → client 10.200.0.1:40734 data" in down.get_title()
    assert 60_000 < up.get_ylim()[1] < 100_000
    assert 1_700_000 < down.get_ylim()[1] < 2_000_000
    assert any(t.endswith(" kB") for t in tick_texts(info.figure, up))
    assert any(t.endswith(" MB") for t in tick_texts(info.figure, down))
    assert up.get_shared_x_axes().joined(up, down)
    zoom = plots.plot_window(record(SAMPLES / "lossy_bulk.pcap", 0), str(tmp_path / "z.png"), time_range=(0, 0.5))
    up, down = zoom.figure.axes
    assert down.get_xlim() == (0.0, 0.5)
    assert down.get_ylim()[1] < 400_000             # the client's window before 0.5 s, not its 1.8 MB


def test_timewait_projection_marked_and_bounded(tmp_path):
    """timewait_server_close: 1.2 s of build-up, then 2*MSL of projection.  By default the x
    axis ends a quarter of the capture's span after its end; the projection is dashed, after
    a line at the end of the capture; --time-range 0: shows all of it."""
    pytest.importorskip("matplotlib")
    path = SAMPLES / "timewait_server_close.pcap"
    a = Analyzer(keep_timeline=False)
    analyze_source(str(path), a)
    a.finish()
    last = (a.last_ns - a.first_ns) / 1e9
    info = plots.plot_timewait(a, str(tmp_path / "tw.png"), threshold=20)
    ax = info.figure.axes[0]
    x0, x1 = ax.get_xlim()
    assert x0 == 0 and x1 == pytest.approx(last * 1.25)
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) > 2]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(ln.get_xdata()) > 2]
    assert len(solid) == len(dashed) == 2           # both hosts: the real part and the projection
    assert all(max(ln.get_xdata()) <= last + 1e-9 for ln in solid)
    assert all(min(ln.get_xdata()) == pytest.approx(last) for ln in dashed)
    ends = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":" and list(ln.get_xdata()) == [last, last]]
    assert ends
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "end of capture" in legend and any(t.startswith("projection after the capture") for t in legend)
    assert any("projection continues" in t.get_text() for t in ax.texts)
    full = plots.plot_timewait(a, str(tmp_path / "all.png"), threshold=20, time_range=(0.0, None))
    life = a.cfg.msl_ns * 2 / 1e9
    assert full.figure.axes[0].get_xlim()[1] > life          # the decay after 2*MSL is shown


def test_cli_passes_the_ranges(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    seen = {}
    real = plots.plot_tseq

    def spy(*args, **kw):
        seen["info"] = real(*args, **kw)
        return seen["info"]

    monkeypatch.setattr(plots, "plot_tseq", spy)
    r = run("plot", TRACES / "206_example_b.pcap", "--stream", 0, "--kind", "tseq", "--time-range", "0:2",
            "--seq-range", "100k:", "-o", tmp_path / "t.png")
    assert r.exit_code == 0, r.output
    ax = seen["info"].figure.axes[0]
    assert ax.get_xlim() == (0.0, 2.0) and ax.get_ylim()[0] == 100_000


@pytest.mark.parametrize("args, words", [
    (["--time-range", "2"], ["--time-range", "A:B"]),
    (["--time-range", "5:1"], ["--time-range", "greater"]),
    (["--time-range", "x:"], ["--time-range", "not a number"]),
    (["--seq-range", "1q:"], ["--seq-range", "unit"]),
])
def test_bad_range_is_one_line_exit_2(args, words, tmp_path):
    r = run("plot", TRACES / "pop3.pcap", "--stream", 0, "--kind", "tseq", *args, "-o", tmp_path / "x.png")
    one_line_error(r, *words)
    assert not (tmp_path / "x.png").exists()


def test_seq_range_is_for_tseq_only(tmp_path):
    r = run("plot", TRACES / "pop3.pcap", "--stream", 0, "--kind", "window", "--seq-range", "0:10",
            "-o", tmp_path / "x.png")
    one_line_error(r, "--seq-range", "tseq")


def test_stream_defaults_to_the_most_data(monkeypatch, tmp_path):
    """pop3.pcap: stream 6 carries 19789 payload bytes (tshark: tcp.len summed per tcp.stream),
    far more than any other; without --stream it is drawn and named on stderr."""
    pytest.importorskip("matplotlib")
    seen = {}
    real = plots.plot_tseq

    def spy(rec, *args, **kw):
        seen["rec"] = rec
        return real(rec, *args, **kw)

    monkeypatch.setattr(plots, "plot_tseq", spy)
    out = tmp_path / "t.png"
    r = run("plot", TRACES / "pop3.pcap", "--kind", "tseq", "-o", out)
    assert r.exit_code == 0, r.output
    chosen = [ln for ln in r.output.splitlines() if "--stream not given" in ln]
    assert len(chosen) == 1 and "tcp.stream 6 " in chosen[0] and "19.8 kB" in chosen[0], r.output
    assert seen["rec"].conn.stream == 6
    assert_png(out)


def test_stream_default_needs_a_file_not_stdin(tmp_path):
    r = CliRunner().invoke(cli, ["plot", "-", "--kind", "tseq", "-o", str(tmp_path / "x.png")],
                           input=(TRACES / "pop3.pcap").read_bytes())
    one_line_error(r, "--stream", "standard input")
