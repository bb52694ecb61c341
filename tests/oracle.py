"""Load the tshark oracle files (``*.tshark.tsv``) and compare tcpanalyze's verdicts with them."""
from __future__ import annotations

import csv
from pathlib import Path

from tcpanalyze.analysis import NAME_TO_BIT, RETRANSMISSION, RETRANSMISSION_FAMILY
from tcpanalyze.engine import Analyzer, Config
from tcpanalyze.pipeline import analyze_source

DATA = Path(__file__).parent / "data"
TRACES = DATA / "traces"

#: Oracle flag columns, in the order of the file, and their names in tcpanalyze.
ORACLE_FLAGS = ("retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order",
                "lost_segment", "ack_lost_segment", "duplicate_ack", "zero_window", "window_full",
                "window_update", "keep_alive", "reused_ports")
EXTRA_FLAGS = ("zero_window_probe", "zero_window_probe_ack", "keep_alive_ack")
ALL_FLAGS = ORACLE_FLAGS + EXTRA_FLAGS


def oracle_files(root: Path = TRACES) -> list[Path]:
    return sorted(root.glob("*.tshark.tsv"))


def capture_of(tsv: Path) -> Path:
    return tsv.with_name(tsv.name[: -len(".tshark.tsv")])


def load_oracle(tsv: Path) -> dict[int, dict]:
    rows = {}
    with open(tsv, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            fr = int(r["frame.number"])
            flags = set(f for f in ORACLE_FLAGS if r.get(f"tcp.analysis.{f}"))
            for f in EXTRA_FLAGS:
                if r.get(f"tcp.analysis.{f}"):
                    flags.add(f)
            if fr in rows:      # a second TCP header in one frame (tunnel/ICMP): keep the first
                continue
            if r["tcp.len"] == "":
                # A TCP header quoted inside an ICMP error: tshark lists it (absolute seq, no
                # length, no analysis); it is a copy, not a segment, and tcpanalyze skips it.
                continue
            rows[fr] = {
                "stream": int(r["tcp.stream"]) if r["tcp.stream"] else None,
                "sport": int(r["tcp.srcport"]), "dport": int(r["tcp.dstport"]),
                "seq": int(r["tcp.seq"] or 0), "ack": int(r["tcp.ack"] or 0), "len": int(r["tcp.len"] or 0),
                "flags": int(r["tcp.flags"], 16) & 0x1FF if r["tcp.flags"] else None,
                "win": int(r["tcp.window_size"]) if r["tcp.window_size"] else None,
                "analysis": flags,
                "dup_ack_num": int(r["tcp.analysis.duplicate_ack_num"] or 0),
            }
    return rows


def our_rows(capture: Path, config: Config | None = None, transform=None) -> dict[int, dict]:
    """Run tcpanalyze on ``capture``; ``transform(seg)`` may rewrite each segment first (property tests)."""
    rows = {}
    a = Analyzer(config or Config(), keep_timeline=False)
    keep = None
    if transform is not None:
        def transformed(seg):       # runs before the engine sees the segment
            transform(seg)
            return True

        keep = transformed

    def on_seg(seg, an):
        bits = an.verdict.analysis
        names = set()
        for name, bit in NAME_TO_BIT.items():
            if bits & bit:
                names.add(name)
        if bits & RETRANSMISSION_FAMILY:
            names.add("retransmission")
        rows[seg.frame] = {"stream": an.verdict.conn.stream, "sport": seg.sport, "dport": seg.dport,
                           "seq": an.verdict.rel_seq, "ack": an.verdict.rel_ack, "len": seg.paylen, "flags": seg.flags,
                           "win": an.verdict.win, "analysis": names, "dup_ack_num": an.verdict.dupack_num}

    analyze_source(str(capture), a, on_segment=on_seg, keep=keep)
    a.finish()
    return rows


FIELDS = ("stream", "seq", "ack", "len", "flags", "win")


class Agreement:
    """Counts over many captures: coverage, field equality, per-flag confusion."""

    def __init__(self):
        self.oracle_rows = 0
        self.matched = 0
        self.fields_equal = 0
        self.field_mismatch: dict[str, int] = {f: 0 for f in FIELDS}
        self.tp = {f: 0 for f in ALL_FLAGS}
        self.fp = {f: 0 for f in ALL_FLAGS}
        self.fn = {f: 0 for f in ALL_FLAGS}
        self.rows_all_flags_equal = 0
        self.examples: dict[str, list] = {}

    def add(self, name: str, oracle: dict[int, dict], ours: dict[int, dict]) -> None:
        self.oracle_rows += len(oracle)
        for fr, o in oracle.items():
            u = ours.get(fr)
            if u is None:
                self._ex("missing", (name, fr))
                continue
            self.matched += 1
            ok = True
            for f in FIELDS:
                if f == "ack" and not (o["flags"] or 0) & 0x10:
                    continue    # no ACK bit: tshark prints the raw field, tcpanalyze 0 (README)
                if o[f] is not None and o[f] != u[f]:
                    ok = False
                    self.field_mismatch[f] += 1
                    self._ex(f"field:{f}", (name, fr, o[f], u[f]))
            self.fields_equal += ok
            oa, ua = o["analysis"], u["analysis"]
            same = True
            for f in ALL_FLAGS:
                if f in oa and f in ua:
                    self.tp[f] += 1
                elif f in oa or f in ua:
                    same = False
                    kind = "fn" if f in oa else "fp"
                    (self.fn if f in oa else self.fp)[f] += 1
                    self._ex(f"{kind}:{f}", (name, fr))
            self.rows_all_flags_equal += same

    def _ex(self, key, val):
        lst = self.examples.setdefault(key, [])
        if len(lst) < 8:
            lst.append(val)

    def f1(self, flag: str) -> float | None:
        tp, fp, fn = self.tp[flag], self.fp[flag], self.fn[flag]
        if tp + fp + fn == 0:
            return None
        return 2 * tp / (2 * tp + fp + fn)

    def table(self) -> str:
        lines = [f"{'flag':26} {'tp':>6} {'fp':>5} {'fn':>5} {'precision':>9} {'recall':>7} {'F1':>6}"]
        for f in ALL_FLAGS:
            tp, fp, fn = self.tp[f], self.fp[f], self.fn[f]
            if tp + fp + fn == 0:
                continue
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / (tp + fn) if tp + fn else 0.0
            lines.append(f"{f:26} {tp:6} {fp:5} {fn:5} {p:9.4f} {r:7.4f} {self.f1(f):6.4f}")
        lines.append(f"rows: oracle {self.oracle_rows}, matched {self.matched}, fields equal {self.fields_equal}, "
                     f"all flags equal {self.rows_all_flags_equal}")
        return "\n".join(lines)
