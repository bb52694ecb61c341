"""``packets`` and ``flows`` ``--format parquet``: typed columns, the same rows as the text
formats, row groups, and a one-line error (exit 2) without pyarrow or without -o."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpanalyze.cli import cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = Path(__file__).resolve().parent.parent
LOSSY = ROOT / "samples" / "lossy_bulk.pcap"
TW = ROOT / "samples" / "timewait_server_close.pcap"


def _run(*args) -> str:
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_packets_parquet_rows_are_the_tsv_rows(tmp_path):
    out = tmp_path / "p.parquet"
    _run("packets", LOSSY, "--format", "parquet", "-o", out)
    t = pq.read_table(out)
    assert t.schema.field("frame").type == pa.int64() and t.schema.field("time").type == pa.float64()
    assert t.schema.field("analysis").type == pa.list_(pa.string()) and t.schema.field("src").type == pa.string()
    lines = [x.split("\t") for x in _run("packets", LOSSY).splitlines()]
    head, rows = lines[0], lines[1:]
    assert t.num_rows == len(rows) == 4119
    cols = t.to_pydict()
    for name in ("frame", "stream", "sport", "dport", "seq", "ack", "len", "win"):
        assert [str(v) for v in cols[name]] == [r[head.index(name)] for r in rows], name
    assert [",".join(v) for v in cols["analysis"]] == [r[head.index("analysis")] for r in rows]
    assert ["" if v is None else "%.9f" % v for v in cols["ack_rtt"]] == [r[head.index("ack_rtt")] for r in rows]
    assert [f"{v // 10**9}.{v % 10**9:09d}" for v in cols["ts_ns"]] == [r[1] for r in rows]


def test_flows_parquet_rows_are_the_jsonl_records(tmp_path):
    out = tmp_path / "f.parquet"
    _run("flows", TW, "--format", "parquet", "-o", out)
    t = pq.read_table(out)
    assert pa.types.is_struct(t.schema.field("orig").type)
    assert t.schema.field("orig").type.field("rtt").type.field("avg").type == pa.float64()
    recs = [json.loads(x) for x in _run("flows", "--jsonl", TW).splitlines()]
    rows = t.to_pylist()
    assert len(rows) == len(recs) == 600
    for row, rec in zip(rows, recs):
        assert {k: v for k, v in row.items() if v is not None or k in rec} == rec


def test_packets_parquet_in_row_groups(tmp_path):
    import tcpanalyze
    from tcpanalyze.parquet import write_packets

    out = tmp_path / "p.parquet"
    assert write_packets(tcpanalyze.packets(TW), out, row_group_size=1000) == 14029
    assert pq.ParquetFile(out).metadata.num_row_groups == 15


def test_parquet_needs_an_output_file():
    r = CliRunner().invoke(cli, ["flows", str(TW), "--format", "parquet"])
    assert r.exit_code == 2 and "-o FILE" in r.output


@pytest.mark.parametrize("command", ["packets", "flows"])
def test_parquet_without_pyarrow(tmp_path, command):
    code = ("import sys\nsys.modules['pyarrow'] = None\nfrom tcpanalyze.cli import main\n"
            f"main([{command!r}, {str(LOSSY)!r}, '--format', 'parquet', '-o', {str(tmp_path / 'x.parquet')!r}])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "pip install 'tcpanalyze[parquet]'" in r.stderr, r.stderr
    assert not (tmp_path / "x.parquet").exists()
