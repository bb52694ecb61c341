"""Print, or write into docs/agreement.md, the table of tcpanalyze's agreement with tshark.

It runs the same comparison as tests/test_oracle.py (every oracle file under samples/ and
tests/data/: traces, crafted, real) and prints a Markdown table: rows decoded and
equal per corpus, and per analysis flag the counts, precision and recall.

    python bench/agreement.py                          # print the table
    python bench/agreement.py --write docs/agreement.md  # replace the table between its markers
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from oracle import ALL_FLAGS, Agreement, capture_of, load_oracle, oracle_files, our_rows  # noqa: E402
from test_oracle import CONFIGS  # noqa: E402  (llc.pcap is compared with a longer linger, as the test does)

CORPORA = {"public traces (tests/data/traces)": ROOT / "tests" / "data" / "traces",
           "real-kernel samples (samples)": ROOT / "samples",
           "crafted (tests/data/crafted)": ROOT / "tests" / "data" / "crafted",
           "real-kernel port-reuse captures (tests/data/real)": ROOT / "tests" / "data" / "real"}
BEGIN = "<!-- agreement table: written by bench/agreement.py -->"
END = "<!-- end of agreement table -->"


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.2f}%" if d else "–"


def measure() -> tuple[dict[str, tuple[int, Agreement]], Agreement]:
    per: dict[str, tuple[int, Agreement]] = {}
    total = Agreement()
    for title, root in CORPORA.items():
        ag = Agreement()
        files = oracle_files(root)
        for tsv in files:
            oracle, ours = load_oracle(tsv), our_rows(capture_of(tsv), CONFIGS.get(tsv.name))
            ag.add(tsv.name, oracle, ours)
            total.add(tsv.name, oracle, ours)
        per[title] = (len(files), ag)
    return per, total


def markdown(per: dict[str, tuple[int, Agreement]], total: Agreement) -> str:
    out = ["| corpus | captures | tshark TCP rows | decoded | stream/seq/ack/len/flags/win equal | all analysis flags equal |",
           "|---|---:|---:|---:|---:|---:|"]
    for title, (n, ag) in per.items():
        out.append(f"| {title} | {n} | {ag.oracle_rows:,} | {_pct(ag.matched, ag.oracle_rows)} | "
                   f"{_pct(ag.fields_equal, ag.matched)} | {_pct(ag.rows_all_flags_equal, ag.matched)} |")
    out += ["", "| analysis flag | both | tshark only | tcpanalyze only | precision | recall |",
            "|---|---:|---:|---:|---:|---:|"]
    for f in ALL_FLAGS:
        tp, fp, fn = total.tp[f], total.fp[f], total.fn[f]
        if tp + fp + fn == 0:
            continue
        p = f"{tp / (tp + fp):.4f}" if tp + fp else "–"
        r = f"{tp / (tp + fn):.4f}" if tp + fn else "–"
        out.append(f"| `{f}` | {tp:,} | {fn:,} | {fp:,} | {p} | {r} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="a Markdown file whose table (between the markers) to replace")
    args = ap.parse_args()
    table = markdown(*measure())
    if not args.write:
        sys.stdout.write(table)
        return 0
    text = args.write.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"{args.write}: the markers {BEGIN!r} and {END!r} are missing", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    args.write.write_text(f"{head}{BEGIN}\n{table}{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
