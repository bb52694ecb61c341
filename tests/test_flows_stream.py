"""``flows --format jsonl`` writes each connection's line as the connection leaves the
engine, in stream order; a record that waits for an earlier stream waits on disk."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcpanalyze.api import connection_dicts
from tcpanalyze.commands import flows
from tcpanalyze.commands.flows import _Lines
from tcpanalyze.engine import Config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    # unanswered SYNs stay open to the end of the capture, so the streams after one of
    # them end before it (a second after they close, over the 200 s) and have to wait
    cap = tmp_path_factory.mktemp("flows") / "waits.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(cap), "--conns", "800",
                    "--conn-rate", "4", "--unanswered", "0.05", "--seed", "5"],
                   check=True, capture_output=True, timeout=120)
    return cap


def _expected(cap: Path) -> list[str]:
    return [json.dumps(d, separators=(",", ":")) for d in connection_dicts(str(cap))]


@pytest.mark.parametrize("in_memory", [0, 200_000, flows.K_WAIT_IN_MEMORY])
def test_lines_in_stream_order_with_the_waiting_ones_on_disk(capture, in_memory, monkeypatch):
    monkeypatch.setattr(flows, "K_WAIT_IN_MEMORY", in_memory)
    lines: list[bytes] = []
    it = _Lines(str(capture), Config(), lines.append)
    for _block in it._blocks():
        pass
    it.close()
    expected = _expected(capture)
    assert len(expected) > 500
    assert [line.decode("ascii") for line in lines] == expected
    # records that ended before an earlier stream waited: those beyond the memory budget
    # in the spill file
    if in_memory == 0:
        assert it.waited > 100, it.waited
    elif in_memory == 200_000:
        assert 0 < it.waited < len(expected) - 100, it.waited
    else:
        assert it.waited == 0
    assert not it._spilled and not it._held and it._held_chars == 0


def test_cli_writes_the_same_lines(capture, tmp_path):
    out = tmp_path / "flows.jsonl"
    r = subprocess.run([sys.executable, "-m", "tcpanalyze", "flows", "--format", "jsonl", str(capture),
                        "-o", str(out)], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "".join(line + "\n" for line in _expected(capture))


def test_unreadable_capture_leaves_no_output(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    out = tmp_path / "flows.jsonl"
    r = subprocess.run([sys.executable, "-m", "tcpanalyze", "flows", "--jsonl", str(bad), "-o", str(out)],
                       capture_output=True, timeout=60)
    assert r.returncode == 3
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert not out.exists()
