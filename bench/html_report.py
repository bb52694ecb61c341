"""The HTML report: screenshots for the docs, and its cost on a big capture.

    python bench/html_report.py shots [--out docs]
        writes docs/html-lossy_bulk.png (the overview and the opened connection of
        samples/lossy_bulk.pcap) and docs/html-multi.png (three sample captures in one report),
        taken in headless Chromium (Debian's chromium, driven by Playwright).

    python bench/html_report.py time CAPTURE [--runs 3]
        best-of-N wall clock and CPU time of `analyze CAPTURE` and of
        `analyze CAPTURE --html FILE`, their ratio, and the size of the HTML file.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "tcpanalyze", *args], check=False, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _shot(page, path: Path, clip_height: int) -> None:
    from PIL import Image

    png = page.screenshot(full_page=True)
    img = Image.open(io.BytesIO(png))
    img = img.crop((0, 0, img.width, min(img.height, clip_height)))
    img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    img.save(path, optimize=True)


def shots(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="tcpa-html-"))
    lossy = tmp / "lossy.html"
    multi = tmp / "multi.html"
    _cli("analyze", "samples/lossy_bulk.pcap", "--html", str(lossy))
    _cli("analyze", "samples/lossy_bulk.pcap", "samples/timewait_server_close.pcap",
         "samples/rst_refused_aborted.pcap", "--html", str(multi))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        pg = b.new_page(viewport={"width": 1280, "height": 900})
        pg.goto(lossy.as_uri())
        pg.wait_for_selector("body[data-ready='1']")
        pg.evaluate("document.querySelectorAll('#findings details.kind').forEach(e => { e.open = true; })")
        pg.evaluate("document.querySelector('#findings details.finding').open = true")
        pg.evaluate("tcpa.showDetail('0:0')")
        pg.wait_for_timeout(1500)
        pg.evaluate("window.scrollTo(0, 0)")
        _shot(pg, out / "html-lossy_bulk.png", 4200)
        pg.goto(multi.as_uri())
        pg.wait_for_selector("body[data-ready='1']")
        pg.evaluate("tcpa.sortBy('severity', -1)")
        pg.wait_for_timeout(800)
        _shot(pg, out / "html-multi.png", 2300)
        b.close()
    shutil.rmtree(tmp)
    for name in ("html-lossy_bulk.png", "html-multi.png"):
        print(f"{out / name}: {(out / name).stat().st_size / 1e3:.0f} kB")


def _timed(args: list[str]) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tcpanalyze", *args], check=False, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def timing(capture: str, runs: int) -> None:
    html = Path(tempfile.mkdtemp(prefix="tcpa-html-")) / "bench.html"
    plain, rep = [], []
    for _ in range(runs):       # interleaved, so both see the same machine load
        plain.append(_timed(["analyze", capture]))
        rep.append(_timed(["analyze", capture, "--html", str(html)]))
    pw, pc = min(w for w, _ in plain), min(c for _, c in plain)
    hw, hc = min(w for w, _ in rep), min(c for _, c in rep)
    print(f"analyze         wall {pw:6.2f} s  cpu {pc:6.2f} s  (best of {runs})")
    print(f"analyze --html  wall {hw:6.2f} s  cpu {hc:6.2f} s  (best of {runs})")
    print(f"ratio           wall {hw / pw:6.2f}    cpu {hc / pc:6.2f}")
    print(f"HTML file       {html.stat().st_size / 1e6:.2f} MB")
    shutil.rmtree(html.parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("shots")
    s.add_argument("--out", default=str(ROOT / "docs"))
    t = sub.add_parser("time")
    t.add_argument("capture")
    t.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if a.cmd == "shots":
        shots(Path(a.out))
    else:
        timing(a.capture, a.runs)


if __name__ == "__main__":
    main()
