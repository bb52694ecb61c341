"""tcpanalyze.dask: per-file analysis mapped over a Dask bag on a local cluster; the total equals
the sequential run's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dask.bag")
distributed = pytest.importorskip("dask.distributed")

from tcpanalyze.session import analyze_file, merge_reports  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "tests" / "data" / "traces"
FILES = ["206_example_b.pcap", "bruteforce.pcap", "zeek-tracker.pcap", "missing-syn.pcap",
         "pcapplusplus-one_ipv6_http_stream.pcap", "zeek-smb_many_open_files_500.pcap.gz", "tcp-badsegments.pcap"]


def _doc(rep) -> dict:
    return json.loads(json.dumps(rep.to_dict()))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    out = []
    for n in FILES:
        p = d / n
        p.write_bytes((TRACES / n).read_bytes())
        out.append(str(p))
    gen = d / "gen.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(gen), "--conns", "300",
                    "--seed", "9"], check=True, capture_output=True)
    out.append(str(gen))
    return out


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with distributed.Client(cl) as c:
            yield c


def test_import_is_lazy():
    r = subprocess.run([sys.executable, "-c", "import sys, tcpanalyze.dask; print('dask' in sys.modules)"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_local_cluster_total_equals_sequential(files, client):
    from tcpanalyze.dask import analyze_many

    seq = merge_reports([analyze_file(p) for p in files])
    tot = analyze_many(files, client, npartitions=3)
    assert _doc(tot) == _doc(seq)
    assert tot.summary["files"] == len(files)
    assert tot.summary["connections"] == sum(analyze_file(p).summary["connections"] for p in files)


def test_local_cluster_per_file_and_keep(files, client):
    from tcpanalyze.dask import analyze_many

    reps, tot = analyze_many(files, client, per_file=True, keep_connections=5)
    assert [r.files[0]["source"] for r in reps] == files
    seq = merge_reports([analyze_file(p) for p in files], keep_connections=5)
    assert tot.summary == seq.summary
    assert len(tot.connections) == 5


def test_directory_input_default_scheduler(files):
    """No client: Dask's default scheduler; a directory expands to its captures."""
    from tcpanalyze.dask import analyze_many

    d = str(Path(files[0]).parent)
    tot = analyze_many([d])
    assert tot.summary["files"] == len(files)


def test_local_cluster_file_urls_per_file_equal_serial(files, client):
    """A directory given as a file:// URL: the workers (separate processes) open every capture
    through fsspec; each per-file report equals the serial run over the local path."""
    pytest.importorskip("fsspec", reason="URLs are read through fsspec (the dask extra)")
    from tcpanalyze.dask import analyze_many

    d = Path(files[0]).parent
    url = d.as_uri() + "/"
    with distributed.get_task_stream(client) as ts:
        reps, tot = analyze_many([url], client, per_file=True, npartitions=len(files))
    local = sorted(files)
    assert [r.files[0]["source"] for r in reps] == [Path(p).as_uri() for p in local]
    for rep, path in zip(reps, local):
        assert rep.files[0]["error"] is None
        u = Path(path).as_uri()
        assert _doc(rep) == _doc(analyze_file(u))                    # serial run over the same URL
        text = json.dumps(rep.to_dict()).replace(json.dumps(u)[1:-1], json.dumps(path)[1:-1])
        assert json.loads(text) == _doc(analyze_file(path))          # ... and over the local path
    assert _doc(tot) == _doc(merge_reports([analyze_file(Path(p).as_uri()) for p in local]))
    workers = {t["worker"] for t in ts.data if "analyze_file" in str(t["key"])}
    assert len(workers) >= 2, f"the files were analysed by {workers}, expected several worker processes"


def test_memory_url_glob_synchronous(files):
    """fsspec's in-memory file system lives in one process: Dask's synchronous scheduler."""
    fsspec = pytest.importorskip("fsspec", reason="URLs are read through fsspec (the dask extra)")
    import dask

    from tcpanalyze.dask import analyze_many

    fs = fsspec.filesystem("memory")
    base = "/tcpa-dask-test"
    for p in files:
        fs.pipe(f"{base}/{Path(p).name}", Path(p).read_bytes())
    try:
        with dask.config.set(scheduler="synchronous"):
            reps, tot = analyze_many([f"memory://{base}/*.pcap*"], per_file=True)
        serial = merge_reports([analyze_file(r.files[0]["source"]) for r in reps])
    finally:
        fs.rm(base, recursive=True)
    local = sorted(files)
    assert [r.files[0]["source"] for r in reps] == [f"memory://{base}/{Path(p).name}" for p in local]
    for rep, path in zip(reps, local):
        u = rep.files[0]["source"]
        assert rep.files[0]["error"] is None
        text = json.dumps(rep.to_dict()).replace(json.dumps(u)[1:-1], json.dumps(path)[1:-1])
        assert json.loads(text) == _doc(analyze_file(path))
    assert _doc(tot) == _doc(serial)
