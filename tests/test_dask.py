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
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
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
