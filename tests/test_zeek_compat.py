"""Connection summaries against Zeek's own baselines (conn.log files and parsed expectations).

Targets: conn_state equal for >= 97% of Zeek's TCP connections, history for >= 90%,
orientation (who is the originator) for >= 97%.  Matching: Zeek splits a 4-tuple into a new
connection after a close where Wireshark (and tcpanalyze's stream numbering) keeps one stream
until a SYN with a new ISN; each Zeek connection is therefore paired with tcpanalyze's
connections on the same address/port pair, in order (the last one when Zeek has more).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpanalyze.engine import Analyzer
from tcpanalyze.pipeline import analyze_source
from tcpanalyze.summary import summarize

TRACES = Path(__file__).resolve().parent / "data" / "traces"


def zeek_conns() -> list[tuple[str, dict]]:
    out = []
    for log in sorted(TRACES.glob("*.zeek-conn*.log")):
        cap = TRACES / log.name.split(".zeek-conn")[0]
        fields = None
        for line in log.read_text().splitlines():
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line and not line.startswith("#") and fields:
                rec = dict(zip(fields, line.split("\t")))
                if rec.get("proto") == "tcp":
                    out.append((cap.name, rec))
    for exp in sorted(TRACES.glob("*.zeek_expected.json")):
        cap = exp.name[: -len(".zeek_expected.json")]
        doc = json.loads(exp.read_text())
        for e in doc.get("expectations", []):
            if e.get("kind") != "conn" or "bpf-or-dynamic-filter" in e.get("flags", []):
                continue
            for rec in e.get("tcp_conns", []):
                out.append((cap, rec))
    return out


def our_summaries(capture: str) -> list[dict]:
    """One record per Zeek connection: a stream Zeek would split contributes each part."""
    a = Analyzer()
    analyze_source(str(TRACES / capture), a)
    out = []
    for c in a.finish():
        rec = summarize(c)
        out.extend(rec.get("zeek") or [rec])
    return out


def test_zeek_agreement():
    expected = zeek_conns()
    assert len(expected) >= 40
    cache: dict[str, dict[frozenset, list[dict]]] = {}   # per capture: our records by unordered endpoints
    seen: dict[tuple, int] = {}
    n = state_ok = hist_ok = orient_ok = 0
    misses = []
    for cap, z in expected:
        if cap not in cache:
            by_pair: dict[frozenset, list[dict]] = {}
            for r in our_summaries(cap):
                by_pair.setdefault(frozenset([(r["orig_h"], r["orig_p"]), (r["resp_h"], r["resp_p"])]), []).append(r)
            cache[cap] = by_pair
        zk = frozenset([(z["id.orig_h"], int(z["id.orig_p"])), (z["id.resp_h"], int(z["id.resp_p"]))])
        cands = cache[cap].get(zk, [])
        n += 1
        if not cands:
            misses.append((cap, z["id.orig_p"], z["id.resp_p"], "no connection"))
            continue
        i = seen.get((cap, zk), 0)
        seen[(cap, zk)] = i + 1
        r = cands[min(i, len(cands) - 1)]
        state_ok += r["conn_state"] == z["conn_state"]
        hist_ok += r["history"] == z["history"]
        orient_ok += (r["orig_h"], r["orig_p"]) == (z["id.orig_h"], int(z["id.orig_p"]))
        if r["conn_state"] != z["conn_state"] or r["history"] != z["history"]:
            misses.append((cap, z["id.orig_p"], z["id.resp_p"], z["conn_state"], z["history"],
                           r["conn_state"], r["history"]))
    report = (f"zeek: {n} connections; conn_state {state_ok / n:.3f}, history {hist_ok / n:.3f}, "
              f"orientation {orient_ok / n:.3f}")
    print(report)
    assert state_ok / n >= 0.97, (report, misses)
    assert hist_ok / n >= 0.90, (report, misses)
    assert orient_ok / n >= 0.97, (report, misses)


SURICATA = sorted(TRACES.glob("*.suricata_expected.json"))

#: Suricata options that change TCP tracking (an IPS that drops packets sees another stream).
CHANGES_TRACKING = ("--simulate-ips",)


def suricata_state(rec: dict) -> str:
    """Suricata's single per-flow tcp.state from tcpanalyze's two endpoint states."""
    o, r = rec["orig_state"], rec["resp_state"]
    done = ("CLOSED", "TIME_WAIT")
    if o in done and r in done:
        return "closed"
    if o == "ESTABLISHED" and r == "ESTABLISHED":
        return "established"
    return {"SYN_SENT": "syn_sent", "SYN_RECEIVED": "syn_recv", "FIN_WAIT_1": "fin_wait1",
            "FIN_WAIT_2": "fin_wait2", "TIME_WAIT": "time_wait", "LAST_ACK": "last_ack",
            "CLOSE_WAIT": "close_wait", "CLOSING": "closing"}.get(o, o.lower())


def _tcp_flow_checks(doc: dict) -> list[dict]:
    return [c for c in doc.get("tcp_relevant_checks", [])
            if c.get("match", {}).get("event_type") == "flow" and "requires" not in c]


CASES = [p for p in SURICATA if _tcp_flow_checks(json.loads(p.read_text()))]


def test_suricata_cases_exist():
    assert len(CASES) >= 5


@pytest.mark.parametrize("exp", CASES, ids=lambda p: p.name.split(".pcap")[0])
def test_suricata_flow_expectations(exp):
    """Final tcp.state / flow.state, flow counts and packets per direction, as Suricata expects."""
    doc = json.loads(exp.read_text())
    args = " ".join(doc.get("args") or [])
    checks = _tcp_flow_checks(doc)
    if any(a in args for a in CHANGES_TRACKING):
        if any(k.startswith(("tcp.state", "flow.")) for c in checks for k in c["match"]):
            # Packet counts still hold in IPS simulation when nothing was dropped.
            checks = [c for c in checks if c["match"].get("flow.action") != "drop"]
    if not checks:
        pytest.skip(f"the Suricata test runs with {args}, which changes TCP tracking")
    capture = exp.name[: -len(".suricata_expected.json")]
    recs = our_summaries(capture)
    flow_total = sum(c["count"] for c in checks if set(c["match"]) <= {"event_type", "proto", "app_proto"})
    if flow_total:
        assert len(recs) == flow_total, (capture, len(recs), flow_total)
    for c in checks:
        m = c["match"]
        sel = recs
        if "tcp.state" in m:
            sel = [r for r in sel if suricata_state(r) == m["tcp.state"]]
        if "flow.state" in m:
            want = m["flow.state"]
            sel = [r for r in sel if (suricata_state(r) == "closed") == (want == "closed")]
        if "flow.pkts_toserver" in m:
            sel = [r for r in sel if r["orig_pkts"] == m["flow.pkts_toserver"]]
        if "flow.pkts_toclient" in m:
            sel = [r for r in sel if r["resp_pkts"] == m["flow.pkts_toclient"]]
        if any(k in m for k in ("tcp.state", "flow.state", "flow.pkts_toserver", "flow.pkts_toclient")):
            assert len(sel) == c["count"], (capture, m, [(suricata_state(r), r["orig_pkts"], r["resp_pkts"]) for r in recs])
