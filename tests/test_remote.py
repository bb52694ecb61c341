"""Captures named by URL go through fsspec (tcpanalyze.sources.remote): reading, directory and
glob expansion, one-line errors; local paths never import fsspec."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tcpanalyze.errors import SourceError
from tcpanalyze.parallel import expand_inputs
from tcpanalyze.session import analyze_file
from tcpanalyze.sources.pcap import capture_format, open_capture
from tcpanalyze.sources.remote import is_url

fsspec = pytest.importorskip("fsspec", reason="fsspec (the dask extra) reads URLs")

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"
NAMES = ["206_example_b.pcap", "missing-syn.pcap", "zeek-smb_many_open_files_500.pcap.gz"]


def _doc(rep, old: str | None = None, new: str | None = None) -> dict:
    text = json.dumps(rep.to_dict())
    if old is not None:
        text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
    return json.loads(text)


@pytest.fixture()
def memdir():
    """A directory in fsspec's in-memory file system: three captures and a text file."""
    fs = fsspec.filesystem("memory")
    base = f"/tcpa-{uuid.uuid4().hex[:8]}"
    for n in NAMES:
        fs.pipe(f"{base}/{n}", (TRACES / n).read_bytes())
    fs.pipe(f"{base}/README.txt", b"not a capture\n")
    fs.pipe(f"{base}/odd-name.bin", (TRACES / "bruteforce.pcap").read_bytes())
    yield base
    fs.rm(base, recursive=True)


def test_is_url():
    assert is_url("s3://bucket/a.pcap") and is_url("file:///tmp/a.pcap") and is_url("memory://x/y")
    assert not any(is_url(p) for p in ("a.pcap", "/tmp/a.pcap", "-", "C:/caps/a.pcap", "C:\\a.pcap", "x:/y"))


def test_local_paths_do_not_import_fsspec(tmp_path):
    code = ("import sys; from tcpanalyze.session import analyze_file; from tcpanalyze.parallel import expand_inputs; "
            f"expand_inputs([{str(TRACES)!r}]); analyze_file({str(TRACES / NAMES[0])!r}); "
            "print('fsspec' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "False"


def test_memory_url_reads_the_same_frames(memdir):
    for n in NAMES:
        with open_capture(f"memory://{memdir}/{n}") as r_url, open_capture(str(TRACES / n)) as r_loc:
            a, b = list(r_url), list(r_loc)
            assert a == b and len(a) > 0
            assert r_url.format == r_loc.format
            assert r_url.frames == r_loc.frames and r_url.bytes_read == r_loc.bytes_read
        if not n.endswith(".gz"):
            assert r_url.size == (TRACES / n).stat().st_size


def test_memory_url_report_equals_local(memdir):
    for n in NAMES:
        url = f"memory://{memdir}/{n}"
        rep = analyze_file(url)
        assert rep.files[0]["source"] == url and rep.files[0]["error"] is None
        assert _doc(rep, url, str(TRACES / n)) == _doc(analyze_file(str(TRACES / n)))


def test_url_directory_and_glob_expansion(memdir):
    skipped: dict = {}
    got = expand_inputs([f"memory://{memdir}/"], skipped)
    # capture names, and a file whose first bytes are a capture's; the text file is left out
    assert got == [f"memory://{memdir}/{n}" for n in sorted(NAMES + ["odd-name.bin"])]
    assert skipped == {f"memory://{memdir}/": ["README.txt"]}
    assert expand_inputs([f"memory://{memdir}/*.pcap"]) == [f"memory://{memdir}/{n}" for n in sorted(NAMES)
                                                          if n.endswith(".pcap")]
    # no match, or a plain object: kept as given (a missing one is reported when opened)
    assert expand_inputs([f"memory://{memdir}/*.nothing"]) == [f"memory://{memdir}/*.nothing"]
    assert expand_inputs([f"memory://{memdir}/{NAMES[0]}"]) == [f"memory://{memdir}/{NAMES[0]}"]
    assert capture_format(f"memory://{memdir}/{NAMES[2]}") == "pcap, gzip"
    assert capture_format(f"memory://{memdir}/README.txt") is None
    assert capture_format(f"memory://{memdir}/gone.pcap") is None


def test_file_urls_expand_to_file_urls(tmp_path):
    for n in NAMES:
        (tmp_path / n).write_bytes((TRACES / n).read_bytes())
    urls = expand_inputs([tmp_path.as_uri()])
    assert urls == [(tmp_path / n).as_uri() for n in sorted(NAMES)]
    for u, n in zip(urls, sorted(NAMES)):
        assert _doc(analyze_file(u), u, str(tmp_path / n)) == _doc(analyze_file(str(tmp_path / n)))


@pytest.mark.parametrize("suffix, message", [
    ("/gone.pcap", "cannot open memory://{d}/gone.pcap: No such file or directory"),
    ("/", "cannot open memory://{d}/: Is a directory"),
    ("/README.txt", "not a pcap or pcapng file"),
])
def test_url_errors_are_one_line(memdir, suffix, message):
    url = f"memory://{memdir}{suffix}"
    with pytest.raises(SourceError) as e:
        open_capture(url)
    assert message.format(d=memdir) in str(e.value) and "\n" not in str(e.value)
    rep = analyze_file(url)
    assert message.format(d=memdir) in rep.files[0]["error"]


def test_unknown_protocol_and_missing_fsspec(monkeypatch):
    with pytest.raises(SourceError, match=r"^cannot open nosuchproto://a/b\.pcap: "):
        open_capture("nosuchproto://a/b.pcap")
    monkeypatch.setitem(sys.modules, "fsspec", None)     # "import fsspec" raises ImportError
    with pytest.raises(SourceError, match=r"reading URLs needs fsspec \(pip install 'tcpanalyze\[dask\]'"):
        open_capture("s3://bucket/a.pcap")


def test_cli_file_url(tmp_path):
    src = TRACES / NAMES[0]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    url = src.as_uri()
    r = subprocess.run([sys.executable, "-m", "tcpanalyze", "analyze", "--json", url], capture_output=True,
                       text=True, env=env, cwd=tmp_path)
    loc = subprocess.run([sys.executable, "-m", "tcpanalyze", "analyze", "--json", str(src)], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert r.returncode == loc.returncode == 0
    assert json.loads(r.stdout.replace(url, str(src))) == json.loads(loc.stdout)
    gone = (tmp_path / "gone.pcap").as_uri()
    r = subprocess.run([sys.executable, "-m", "tcpanalyze", "analyze", gone], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 3
    assert f"cannot open {gone}: No such file or directory" in r.stderr and "Traceback" not in r.stderr
