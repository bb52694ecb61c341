"""A new connection on a 4-tuple already used: ``port_reuse`` (a SYN with a new ISN) and
``syn_in_time_wait`` (while an endpoint still held the previous connection in TIME_WAIT).
Both are found as the SYN passes (``Detectors.on_segment``), not when a connection ends."""
from __future__ import annotations

from tcpanalyze.findings.base import Finding, declare_kind, label, _s


def render_port_reuse(f: Finding) -> str:
    t = f.terms
    return (f"port_reuse: SYN with a new ISN on the 4-tuple {t['tuple']} of stream {f.values['previous_stream']} "
            f"(frame {t['frame']}): a new connection")


def render_syn_in_time_wait(f: Finding) -> str:
    v, t = f.values, f.terms
    age = t["age_ns"]
    return (f"syn_in_time_wait: new SYN {t['tuple']} (frame {t['frame']}) while {v['time_wait_holder']} still held "
            f"the previous connection (stream {v['previous_stream']}) in TIME_WAIT"
            + (f" ({age / 1e9:.3f} s of {2 * t['msl_s']:g} s)" if age is not None else ""))


PORT_REUSE = declare_kind("port_reuse", render_port_reuse, severity="info",
                          description="a SYN with a new ISN on the 4-tuple of an earlier connection")
SYN_IN_TIME_WAIT = declare_kind("syn_in_time_wait", render_syn_in_time_wait, severity="warning",
                                description="a new SYN on a 4-tuple whose earlier connection is still in TIME_WAIT")


def reuse_findings(seg, conn, old, in_tw: bool, msl_s: float) -> list[Finding]:
    """The findings of SYN ``seg`` opening ``conn`` on the 4-tuple of ``old`` (the earlier
    connection, None when it is no longer known); ``in_tw``: the engine found the 4-tuple in
    TIME_WAIT.  ``syn_in_time_wait`` first when it applies, then ``port_reuse``."""
    prev = old.stream if old is not None else None
    tup = label(conn, 0) + " -> " + label(conn, 1)
    values = {"previous_stream": prev, "previous_end": old.end_reason if old is not None else None,
              "previous_conn_state": old.zeek.conn_state() if old is not None else None}
    out = []
    if in_tw:
        tw = old.ending.tw_start if old is not None else None
        age = (seg.ts_ns - tw[1]) if tw else None
        holder = label(old, tw[0]) if tw else "?"
        out.append(Finding(
            "syn_in_time_wait", "warning",
            stream=conn.stream, frames=[seg.frame] + ([tw[2]] if tw else []), ts_ns=seg.ts_ns,
            values={**values, "time_wait_holder": holder, "time_wait_age_s": _s(age)},
            terms={"tuple": tup, "frame": seg.frame, "age_ns": age, "msl_s": msl_s}))
    out.append(Finding("port_reuse", "info", stream=conn.stream, frames=[seg.frame], ts_ns=seg.ts_ns,
                       values=values, terms={"tuple": tup, "frame": seg.frame}))
    return out
