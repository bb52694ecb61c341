"""The HTML report (``analyze --html``, ``check --html``).

The data tests read the page's JSON block; the browser tests open the file in a real headless
Chromium (Debian's ``chromium`` package, driven by Playwright with ``executable_path``): no
console error, no request beyond the file itself, the findings and the connection table are
there, sorting and filtering work, opening a connection draws its graphs, dragging on a graph
zooms it, and a screenshot is not blank.

Without chromium or Playwright the browser tests are skipped, except in CI (``CI`` or
``TCPANALYZE_CI`` set, as ``.ci/run`` does), where they fail.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
LOSSY = SAMPLES / "lossy_bulk.pcap"
TW = SAMPLES / "timewait_server_close.pcap"
RST = SAMPLES / "rst_refused_aborted.pcap"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = bool(os.environ.get("CI") or os.environ.get("TCPANALYZE_CI"))

pytest.importorskip("plotly", reason="the [html] extra (plotly) is not installed")


def run(*args, check=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "tcpanalyze", *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=600)
    if check and p.returncode not in (0, 1):
        raise AssertionError(f"exit {p.returncode}: {p.stderr}")
    return p


def page_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="tcpa-data">(.*?)</script>', text, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def lossy_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "lossy.html"
    p = run("analyze", LOSSY, "--html", out)
    assert p.returncode == 0, p.stderr
    assert f"wrote {out}" in p.stderr
    return out


@pytest.fixture(scope="module")
def multi_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "multi.html"
    p = run("analyze", LOSSY, TW, RST, "--html", out)
    assert p.returncode == 0, p.stderr
    return out


# ---------------------------------------------------------------------------- the document
def test_self_contained(lossy_html):
    text = lossy_html.read_text(encoding="utf-8")
    # no reference to anything outside the file: no src/href to a URL, no stylesheet link
    assert not re.search(r'<script[^>]*\bsrc=', text)
    assert not re.search(r'<link[^>]*\bhref=', text)
    assert "Content-Security-Policy" in text
    # plotly.js once
    assert text.count("Plotly=") + text.count("plotly.js v") >= 1
    assert len(re.findall(r"<script>", text)) == 3     # config, plotly.js, the page script
    assert lossy_html.stat().st_size < 8_000_000


def test_data_lossy(lossy_html):
    d = page_data(lossy_html)
    assert d["summary"]["connections"] == 1
    kinds = {f["kind"] for f in d["findings"]}
    assert {"retransmissions", "lost_segment", "out_of_order"} <= kinds
    assert d["explanations"]["retransmissions"]
    (row,) = d["rows"]
    assert row["detail"] and row["client"] == "10.200.0.1" and row["sport"] == 5001
    assert row["limited_by"]
    det = d["details"]["0:0"]
    assert det["segments"] == 4119
    assert det["ladder"].lstrip().startswith("<svg") and det["ladder"].count('class="arrow') == 40
    figs = det["figures"]
    # the Stevens graph: the server's data (the direction that sent more), what the engine counted
    tseq = figs["tseq"]
    assert "server → client data" in tseq["layout"]["title"]["text"]
    assert tseq["counts"] == {"segments": 2235, "retransmissions": 176, "sack_blocks": tseq["counts"]["sack_blocks"],
                              "zero_windows": 0, "stalls": 0}
    assert tseq["counts"]["sack_blocks"] > 0
    metas = {t.get("meta") for t in tseq["data"]}
    assert {"data", "rtx", "sack", "ack", "win", "ctl"} <= metas
    rtx = next(t for t in tseq["data"] if t.get("meta") == "rtx")
    assert rtx["marker"]["symbol"] == "x" and len(rtx["x"]) == 176
    assert all("frame " in t and "retransmission" in t for t in rtx["text"])
    assert tseq["layout"]["yaxis"]["tickformat"] == "~s"
    # RTT as points, never lines
    rtt = figs["rtt"]
    assert all(t["mode"] == "markers" for t in rtt["data"] if t["x"] != [None])
    assert sum(len(t["x"]) for t in rtt["data"] if t["x"] != [None]) == 3 + 1248
    # one panel (and scale) per side
    win = figs["window"]
    assert {t["yaxis"] for t in win["data"]} == {"y", "y2"}
    assert win["layout"]["yaxis"]["domain"] != win["layout"]["yaxis2"]["domain"]
    # both endpoints' states, as the engine's timeline has them
    states = figs["states"]
    names = {t["name"] for t in states["data"]}
    assert {"SYN_SENT", "ESTABLISHED", "TIME_WAIT", "LISTEN"} <= names
    assert {y for t in states["data"] for y in t["y"]} == {"client", "server"}
    thr = figs["throughput"]
    assert any(max(t["y"]) > 1_000_000 for t in thr["data"])


def test_time_wait_projection_marked(multi_html):
    d = page_data(multi_html)
    tw = d["time_wait"]
    real = [t for t in tw["data"] if t.get("meta") == "real"]
    proj = [t for t in tw["data"] if t.get("meta") == "projection"]
    assert real and proj
    assert all(t["line"].get("dash") == "dash" for t in proj)
    assert all("dash" not in t["line"] for t in real)
    end = tw["counts"]["real_end"]
    # the real part stops at the end of its capture, the projection starts there
    assert all(max(t["x"]) <= end + 1e-6 for t in real)
    assert all(min(t["x"]) >= 0 for t in proj)
    assert tw["counts"]["projection_end"] > end
    # the initial view is the capture, not the 2*MSL after it
    assert tw["layout"]["xaxis"]["range"][1] < end * 1.1
    host = next(t for t in real if t["name"].startswith("10.200.0.2 (timewait_server_close.pcap)"))
    assert max(host["y"]) == 423
    # one row per listed connection of every file, a file column in the table
    files = {r["file"] for r in d["rows"]}
    assert {str(LOSSY), str(TW), str(RST)} <= files
    assert len(d["files"]) == 3


def test_connections_bound(tmp_path):
    out = tmp_path / "r.html"
    p = run("analyze", TW, "--html", out, "--html-connections", "2")
    assert p.returncode == 0, p.stderr
    d = page_data(out)
    assert 1 <= len(d["details"]) <= 4
    assert sum(r["detail"] for r in d["rows"]) == len(d["details"])
    out0 = tmp_path / "r0.html"
    run("analyze", TW, "--html", out0, "--html-connections", "0")
    assert page_data(out0)["details"] == {}


def test_terminal_report_unchanged(tmp_path):
    plain = run("analyze", TW).stdout
    with_html = run("analyze", TW, "--html", tmp_path / "x.html").stdout
    assert plain == with_html


@pytest.mark.parametrize("cmd", [["analyze", LOSSY], ["check", LOSSY, "--max-rst", "0"]])
def test_output_error_exit_4(cmd, tmp_path):
    p = run(*cmd, "--html", tmp_path / "missing" / "r.html", check=False)
    assert p.returncode == 4
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("tcpanalyze: error: cannot write") and "Traceback" not in p.stderr


def test_check_html(tmp_path):
    out = tmp_path / "c.html"
    p = run("check", LOSSY, TW, "--max-retransmission-rate", "2", "--max-time-wait", "100", "--html", out)
    assert p.returncode == 1
    d = page_data(out)
    pol = {f["file"]: f for f in d["policy"]}
    assert pol[str(LOSSY)]["status"] == "fail"
    rules = {r["rule"]: r["status"] for r in pol[str(TW)]["results"]}
    assert rules["max_time_wait"] == "fail"


def test_missing_plotly_is_a_usage_error(monkeypatch):
    from click.testing import CliRunner

    import importlib.util

    from tcpanalyze.cli import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a))
    for argv in (["analyze", str(LOSSY)], ["check", str(LOSSY), "--max-rst", "0"]):
        r = CliRunner().invoke(cli, [*argv, "--html", "x.html"])
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert lines == ["tcpanalyze: error: --html needs plotly: pip install 'tcpanalyze[html]'"], lines


# ---------------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (pip install -e '.[test]')")
        pytest.skip("playwright is not installed (pip install playwright)")
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    def __init__(self, browser, path: Path):
        self.page = pg = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        pg.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: self.errors.append(str(e)))
        pg.on("request", lambda r: self.requests.append(r.url))
        pg.goto(path.as_uri())
        pg.wait_for_selector("body[data-ready='1']", timeout=60000)
        self.url = path.as_uri()

    def js(self, expr: str):
        return self.page.evaluate(expr)

    def close(self):
        self.page.close()


def pixel_stddev(png: bytes) -> float:
    from PIL import Image, ImageStat

    img = Image.open(io.BytesIO(png)).convert("L")
    return ImageStat.Stat(img).stddev[0]


def test_browser_lossy(browser, lossy_html):
    p = Page(browser, lossy_html)
    try:
        pg = p.page
        # findings, with their evidence
        assert pg.locator("#findings details.kind[data-kind='retransmissions']").count() == 1
        pg.locator("#findings details.kind[data-kind='retransmissions'] > summary").click()
        f = pg.locator("#findings details.kind[data-kind='retransmissions'] details.finding").first
        f.locator("summary").click()
        ev = f.locator(".evidence").inner_text()
        assert "frames: 41 43 67" in ev and "segments" in ev
        # the TIME_WAIT chart is drawn
        assert p.js("document.querySelectorAll('#tw-chart .main-svg').length") >= 1
        # the table; open the connection by clicking its row
        assert pg.locator("#conns tbody tr").count() == 1
        pg.locator("#conns tbody tr").first.click()
        pg.wait_for_selector("#fig-tseq .main-svg")
        for fig in ("states", "tseq", "window", "rtt", "throughput"):
            assert p.js(f"document.querySelectorAll('#fig-{fig} .main-svg').length") >= 1, fig
        assert pg.locator("#detail .ladder svg line.arrow").count() == 40
        # plotly drew the retransmissions trace
        n_rtx = p.js("document.getElementById('fig-tseq').data.filter(t => t.meta === 'rtx')[0].x.length")
        assert n_rtx == 176
        # zoom: drag across the middle of the time-sequence plot
        before = p.js("document.getElementById('fig-tseq')._fullLayout.xaxis.range.slice()")
        pg.locator("#fig-tseq").scroll_into_view_if_needed()
        box = pg.locator("#fig-tseq .nsewdrag").first.bounding_box()
        y = box["y"] + box["height"] / 2
        pg.mouse.move(box["x"] + box["width"] * 0.3, y)
        pg.mouse.down()
        pg.mouse.move(box["x"] + box["width"] * 0.45, y + 5, steps=8)
        pg.mouse.move(box["x"] + box["width"] * 0.6, y + 10, steps=8)
        pg.mouse.up()
        pg.wait_for_timeout(500)
        after = p.js("document.getElementById('fig-tseq')._fullLayout.xaxis.range.slice()")
        assert after[1] - after[0] < 0.5 * (before[1] - before[0]), (before, after)
        assert after[0] > before[0] and after[1] < before[1]
        # and through the library: relayout to a chosen window
        p.js("Plotly.relayout('fig-tseq', {'xaxis.range': [1, 2]})")
        assert p.js("document.getElementById('fig-tseq')._fullLayout.xaxis.range") == [1, 2]
        # hover text names the frame and its verdict
        texts = p.js("document.getElementById('fig-tseq').data.filter(t => t.meta === 'rtx')[0].text.slice(0, 3)")
        assert all(t.startswith("frame ") for t in texts)
        shot = pg.screenshot()
        assert pixel_stddev(shot) > 20
        assert p.errors == []
        assert p.requests == [p.url]
    finally:
        p.close()


def test_browser_multi_sort_filter(browser, multi_html):
    p = Page(browser, multi_html)
    try:
        pg = p.page
        d = page_data(multi_html)
        n = len(d["rows"])
        assert pg.locator("#conns tbody tr").count() == n
        assert pg.locator("#conns thead th[data-key='file']").count() == 1
        # sort by bytes (click: largest first), then again (smallest first)
        pg.locator("#conns thead th[data-key='bytes']").click()
        first = pg.locator("#conns tbody tr").first.get_attribute("data-key")
        biggest = max(d["rows"], key=lambda r: (r["bytes"], -r["fid"], -r["stream"]))
        assert first == f"{biggest['fid']}:{biggest['stream']}"
        keys = p.js("tcpa.sortBy('bytes', 1)")
        sizes = [next(r["bytes"] for r in d["rows"] if f"{r['fid']}:{r['stream']}" == k) for k in keys]
        assert sizes == sorted(sizes)
        # filters: host, port, state, finding kind, limited_by
        pg.fill("#f-host", "10.200.0.1")
        want = sum(1 for r in d["rows"] if "10.200.0.1" in (r["client"], r["server"]))
        assert pg.locator("#conns tbody tr:visible").count() == want
        pg.fill("#f-host", "")
        pg.fill("#f-port", "5001")
        assert pg.locator("#conns tbody tr:visible").count() == sum(
            1 for r in d["rows"] if 5001 in (r["cport"], r["sport"]))
        pg.fill("#f-port", "")
        kind = next(f for r in d["rows"] for f in r["findings"] if f.startswith("rst"))
        pg.select_option("#f-kind", kind)
        shown = pg.locator("#conns tbody tr:visible").count()
        assert shown == sum(1 for r in d["rows"] if kind in r["findings"]) and shown > 0
        pg.select_option("#f-kind", "")
        st = d["rows"][0]["state"]
        pg.select_option("#f-state", st)
        assert pg.locator("#conns tbody tr:visible").count() == sum(1 for r in d["rows"] if r["state"] == st)
        pg.select_option("#f-state", "")
        lim = next(r["limited_by"] for r in d["rows"] if r["limited_by"])
        pg.select_option("#f-limited", lim)
        assert pg.locator("#conns tbody tr:visible").count() == sum(1 for r in d["rows"] if r["limited_by"] == lim)
        pg.select_option("#f-limited", "")
        # a finding's "show connection" opens that connection
        p.js("document.querySelectorAll('#findings details').forEach(e => { e.open = true; })")
        btn = pg.locator("#findings button[data-show]").first
        key = btn.get_attribute("data-show")
        btn.click()
        assert p.js("document.getElementById('detail').dataset.key") == key
        # a summary-only row says so
        plain = next((r for r in d["rows"] if not r["detail"]), None)
        if plain is not None:
            assert p.js(f"tcpa.showDetail('{plain['fid']}:{plain['stream']}')") is False
            assert "Summary only" in pg.locator("#detail").inner_text()
        # the TIME_WAIT chart has the projection traces, dashed
        dashes = p.js("document.getElementById('tw-chart').data.filter(t => t.meta === 'projection')"
                      ".map(t => t.line.dash)")
        assert dashes and set(dashes) == {"dash"}
        assert pixel_stddev(pg.screenshot()) > 20
        assert p.errors == []
        assert p.requests == [p.url]
    finally:
        p.close()


def test_browser_check_report(browser, tmp_path):
    out = tmp_path / "c.html"
    run("check", TW, "--max-time-wait", "100", "--html", out)
    p = Page(browser, out)
    try:
        assert "FAIL" in p.page.locator("#policy").inner_text()
        assert p.errors == [] and p.requests == [p.url]
    finally:
        p.close()


def test_long_connection_is_thinned():
    """Past K_MAX_POINTS segments a connection's graphs draw 1 in k segments (marked ones
    first) and say so in the title; the counts stay those of what is drawn."""
    from tcpanalyze.report import htmldata as HD
    from tcpanalyze.session import analyze_file

    rep = analyze_file(str(LOSSY))
    (d,) = HD.collect_details(str(LOSSY), list(rep.connections)).values()
    full = HD.tseq_figure(d)
    assert "drawn" not in full["layout"]["title"]["text"]
    thin = HD.tseq_figure(d, max_points=1000)
    assert "(1 in " in thin["layout"]["title"]["text"]
    assert thin["counts"]["segments"] < full["counts"]["segments"] // 2
    marked = HD.tseq_figure(d, max_points=3000)
    # under the budget for marked segments: every retransmission is still drawn
    assert marked["counts"]["retransmissions"] == 176
    assert marked["counts"]["segments"] < full["counts"]["segments"]


@pytest.mark.parametrize("name, zero_windows, stalls", [("slow_reader_zero_window.pcap", 5, 0),
                                                         ("slow_rto.pcap", 0, 2)])
def test_zero_windows_and_stalls_marked(name, zero_windows, stalls):
    """The receiver's zero-window episodes and the sender's stalls are shaded on the
    time-sequence graph (and the zero windows on that side's window panel)."""
    from tcpanalyze.report import htmldata as HD
    from tcpanalyze.session import analyze_file

    path = str(SAMPLES / name)
    rep = analyze_file(path)
    (d,) = HD.collect_details(path, HD.choose(list(rep.connections), rep.slowest, 10)).values()
    t = HD.tseq_figure(d)
    assert t["counts"]["zero_windows"] == zero_windows and t["counts"]["stalls"] == stalls
    rects = [s for s in t["layout"]["shapes"] if s["type"] == "rect"]
    assert len(rects) == zero_windows + stalls and all(s["x1"] > s["x0"] for s in rects)
    legend = [x["name"] for x in t["data"] if x["x"] == [None]]
    assert any(n.startswith("stall") for n in legend) == bool(stalls)
    assert any("zero window" in n for n in legend) == bool(zero_windows)
    w = HD.window_figure(d)
    assert len(w["layout"]["shapes"]) == zero_windows


def test_rows_bound(tmp_path):
    """--html-rows N lists the N worst connections (plus those with detail) and counts the rest;
    0 lists every connection."""
    out = tmp_path / "r.html"
    run("analyze", TW, "--html", out, "--html-rows", "5", "--html-connections", "1")
    d = page_data(out)
    total = d["rows_total"]
    assert total > 300
    assert 5 <= d["rows_listed"] == len(d["rows"]) <= 7
    run("analyze", TW, "--html", out, "--html-rows", "0", "--html-connections", "1")
    d = page_data(out)
    assert d["rows_listed"] == len(d["rows"]) == d["rows_total"] == total
    assert len({(r["fid"], r["stream"]) for r in d["rows"]}) == total
    run("analyze", TW, "--html", out, "--html-connections", "1")
    assert page_data(out)["rows_listed"] == 300
