"""``tcpanalyze compare``: run Wireshark's own TCP analysis on the same file and list where
tcpanalyze and Wireshark disagree, flag by flag."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import click

from tcpanalyze.analysis import RETRANSMISSION_FAMILY, analysis_names

from tcpanalyze.commands.common import (EXIT_FAIL, InputError, engine_options, make_config, open_output, output_errors,
                                        pop_engine_kw, run_capture)

#: Wireshark analysis fields compared (names without the ``tcp.analysis.`` prefix).
FLAGS = ("retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order", "lost_segment",
         "ack_lost_segment", "duplicate_ack", "zero_window", "zero_window_probe", "zero_window_probe_ack",
         "window_full", "window_update", "keep_alive", "keep_alive_ack", "reused_ports")


def tshark_verdicts(path: str, tshark: str) -> dict[int, set[str]]:
    """Per frame, the analysis flags tshark sets (one tshark run, field output)."""
    cmd = [tshark, "-n", "-r", path, "-Y", "tcp", "-o", "tcp.relative_sequence_numbers:TRUE",
           "-o", "tcp.analyze_sequence_numbers:TRUE", "-o", "tcp.check_checksum:FALSE",
           "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f", "-e", "frame.number"]
    for f in FLAGS:
        cmd += ["-e", f"tcp.analysis.{f}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for line in proc.stdout:
        cols = line.rstrip("\n").split("\t")
        try:
            frame = int(cols[0])
        except ValueError:
            continue
        out[frame] = {f for f, v in zip(FLAGS, cols[1:]) if v}
    err = proc.stderr.read()
    rc = proc.wait()
    if rc != 0 and not out:
        raise InputError(f"tshark failed on {path}: {err.strip().splitlines()[-1] if err.strip() else rc}")
    return out


def pyshark_verdicts(path: str) -> dict[int, set[str]]:
    """The same through pyshark (tshark's PDML, parsed in Python): slow, for small files."""
    import pyshark  # optional path: pyshark drives tshark

    out = {}
    cap = pyshark.FileCapture(path, display_filter="tcp", keep_packets=False,
                              override_prefs={"tcp.relative_sequence_numbers": "TRUE",
                                              "tcp.analyze_sequence_numbers": "TRUE"})
    try:
        for pkt in cap:
            tcp = pkt.tcp
            names = set()
            for f in FLAGS:
                if tcp.get_field(f"analysis_{f}") is not None:
                    names.add(f)
            out[int(pkt.number)] = names
    finally:
        cap.close()
    return out


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--engine", "via", type=click.Choice(["fields", "pyshark"]), default="fields", show_default=True,
              help="How to run Wireshark's analysis: tshark field output (fast) or pyshark (slow, small files).")
@click.option("--tshark", "tshark_path", default=None, help="Path of the tshark binary.")
@click.option("--show", type=click.IntRange(min=0), default=5, show_default=True,
              help="Disagreeing frames listed per flag.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("-o", "--output", default=None, help="Write to this file instead of stdout.")
@engine_options
def compare(file, via, tshark_path, show, as_json, output, **kw):
    """Compare tcpanalyze's per-packet analysis of FILE with Wireshark's (tshark).

    FILE '-' reads standard input (kept in a temporary file: tshark reads it too).
    Exit 0 when every flag agrees on every frame, 1 when some disagree, 3 when tshark cannot
    be run or the file is unreadable, 4 when the output cannot be written."""

    if tshark_path is not None:
        if not shutil.which(tshark_path):
            why = "not an executable file" if os.path.exists(tshark_path) else "No such file or directory"
            raise InputError(f"cannot run tshark {tshark_path}: {why}")
        tshark = tshark_path
    else:
        tshark = shutil.which("tshark")
    if via == "fields" and not tshark:
        raise InputError("tshark is not installed (Debian/Ubuntu: apt-get install tshark); compare needs it")
    if via == "pyshark":
        try:
            import pyshark  # noqa: F401
        except ImportError:
            raise InputError("pyshark is not installed (pip install pyshark)") from None
        if not shutil.which("tshark"):
            raise InputError("tshark is not installed (apt-get install tshark); pyshark needs it")

    if file == "-":
        with _stdin_copy() as path:
            _compare(path, "-", via, tshark, show, as_json, output, kw)
    else:
        _compare(file, file, via, tshark, show, as_json, output, kw)


@contextmanager
def _stdin_copy():
    """Standard input copied to a temporary file (removed afterwards)."""
    fd, path = tempfile.mkstemp(prefix="tcpanalyze-", suffix=".pcap")
    try:
        with output_errors(path), os.fdopen(fd, "wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh, 1 << 20)
        if not os.path.getsize(path):
            raise InputError("standard input: file is empty: not a pcap or pcapng capture")
        yield path
    finally:
        os.unlink(path)


def _compare(path, file, via, tshark, show, as_json, output, kw):
    """Compare the capture at ``path`` (named ``file`` in the output)."""
    ours: dict[int, set[str]] = {}
    why: dict[int, dict] = {}

    def on_seg(seg, a):
        names = set(analysis_names(a.verdict.analysis))
        ours[seg.frame] = names
        if names and a.verdict.reasons:
            why[seg.frame] = dict(a.verdict.reasons)
        if a.verdict.analysis & RETRANSMISSION_FAMILY:
            names.add("retransmission")

    from tcpanalyze.engine import Analyzer   # the engine loads when a comparison runs, not with the CLI

    analyzer = Analyzer(make_config(explain=True, **pop_engine_kw(kw)), keep_timeline=False,
                        on_conn_done=lambda conn: None)     # nothing is kept per connection
    try:
        run_capture(path, analyzer, on_segment=on_seg)
    except InputError as e:
        if path == file:
            raise
        raise InputError(e.format_message().replace(path, "standard input")) from None
    analyzer.finish()
    theirs = tshark_verdicts(path, tshark) if via == "fields" else pyshark_verdicts(path)

    frames = sorted(set(ours) | set(theirs))
    result = {"file": file, "frames": len(frames), "engine": via, "flags": {}}
    all_agree = 0
    for fr in frames:
        all_agree += ours.get(fr, set()) == theirs.get(fr, set())
    result["rows_all_flags_equal"] = all_agree
    disagree_total = 0
    for f in FLAGS:
        both = only_us = only_them = 0
        examples = []
        for fr in frames:
            u = f in ours.get(fr, ())
            t = f in theirs.get(fr, ())
            if u and t:
                both += 1
            elif u or t:
                if u:
                    only_us += 1
                else:
                    only_them += 1
                if len(examples) < show:
                    examples.append({"frame": fr, "tcpanalyze": sorted(ours.get(fr, ())),
                                     "wireshark": sorted(theirs.get(fr, ())),
                                     "reason": why.get(fr, {}).get(f)})
        if both or only_us or only_them:
            result["flags"][f] = {"both": both, "only_tcpanalyze": only_us, "only_wireshark": only_them,
                                  "examples": examples}
            disagree_total += only_us + only_them
    out, close = open_output(output)
    try:
        if as_json:
            out.write(json.dumps(result, indent=2) + "\n")
        else:
            out.write(f"{file}: {len(frames)} TCP frames, all flags equal on {all_agree} "
                      f"({100.0 * all_agree / max(1, len(frames)):.2f}%)\n")
            out.write(f"{'flag':26} {'both':>7} {'only us':>8} {'only ws':>8}\n")
            for f, v in result["flags"].items():
                out.write(f"{f:26} {v['both']:7} {v['only_tcpanalyze']:8} {v['only_wireshark']:8}\n")
            for f, v in result["flags"].items():
                for ex in v["examples"]:
                    out.write(f"  {f}: frame {ex['frame']}: tcpanalyze={','.join(ex['tcpanalyze']) or '-'} "
                              f"wireshark={','.join(ex['wireshark']) or '-'}"
                              + (f" ({ex['reason']})" if ex["reason"] else "") + "\n")
    finally:
        if close:
            out.close()
    sys.exit(EXIT_FAIL if disagree_total else 0)
