"""TIME_WAIT: ``time_wait_buildup`` (a host holding many connections in TIME_WAIT at once, each
for 2*MSL) and ``server_active_close`` (the listening side closing first, so it holds them),
and the report's ``time_wait`` section (peak, series and ports per host)."""
from __future__ import annotations

from array import array
from bisect import bisect_right

try:
    import cython
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    from tcpanalyze import _cyshim as cython

from tcpanalyze.findings.base import (K_TW_REPORT_HOSTS, K_TW_SERIES_POINTS, K_TW_TOP_PORTS, Finding,
                                      aggregate_detector, declare_kind, _s)
from tcpanalyze.engine import time_wait_name
from tcpanalyze.model import addr_str


@cython.locals(n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t, a=cython.Py_ssize_t,
               b=cython.Py_ssize_t, c=cython.Py_ssize_t, best=cython.Py_ssize_t, peak=cython.Py_ssize_t,
               k=cython.Py_ssize_t, t=cython.longlong, hold=cython.longlong, v=cython.longlong[::1])
def time_wait_profile(starts, first_ns: int, last_ns: int, hold_ns: int, points: int = K_TW_SERIES_POINTS) -> dict:
    """Count of TIME_WAIT periods (each ``hold_ns`` long, from ``starts``) over the capture.

    Returns the peak, when it was first reached, the count at the end of the capture, the
    total, and ``series``: the maximum count in each of ``points`` equal slices of
    [first_ns, last_ns].  A period started at t covers (t, t + hold] like the engine's.
    The count after each start is that start's index past the oldest start still within
    ``hold_ns`` (a pointer that only moves forward); the slices' edges are compared as
    Python numbers (exactly).  Compiled: C loops over the sorted starts.
    """
    st = array("q", sorted(starts))
    n = len(st)
    # a hold longer than any capture (2**62 ns: 146 years) counts as that long: the same counts
    hold = hold_ns if hold_ns < 1 << 62 else 1 << 62
    peak = 0
    peak_ns = None
    if n:
        v = st
        j = 0
        for i in range(n):
            t = v[i]
            while v[j] <= t - hold:
                j += 1
            c = i - j + 1
            if c > peak:
                peak = c
                peak_ns = t
    at_end = n - bisect_right(st, last_ns - hold_ns)
    series = []
    if n == 1 and last_ns > first_ns and points > 0:
        # one period (most client hosts): it counts 1 in every slice it overlaps
        t1 = st[0]
        width = (last_ns - first_ns) / points
        series = [1 if first_ns + k * width - hold_ns < t1 <= first_ns + (k + 1) * width else 0
                  for k in range(points)]
    elif n and last_ns > first_ns and points > 0:
        width = (last_ns - first_ns) / points
        for k in range(points):
            lo = first_ns + k * width
            hi = first_ns + (k + 1) * width
            # count at the slice start, then after each start inside the slice
            a = bisect_right(st, lo)
            best = a - bisect_right(st, lo - hold_ns)
            b = bisect_right(st, hi)
            if a < b:
                j = bisect_right(st, st[a] - hold)
                for i in range(a, b):
                    t = v[i]
                    while v[j] <= t - hold:
                        j += 1
                    c = i + 1 - j
                    if c > best:
                        best = c
            series.append(best)
    elif n:
        series = [peak]
    return {"peak": peak, "peak_ns": peak_ns, "at_end": at_end, "total": n, "series": series}


def time_wait_section(msl_s: float) -> dict:
    """The report's ``time_wait`` section without its hosts: how long a TIME_WAIT lasts
    (``length_s`` = 2*MSL) and the system that holds it that long (``system``, or null)."""
    return {"msl_s": msl_s, "length_s": 2 * msl_s, "system": time_wait_name(2 * msl_s), "hosts": []}


def render_buildup(f: Finding) -> str:
    v = f.values
    top = v["ports"][0] if v["ports"] else None
    return (f"time_wait_buildup: {f.host} held {v['peak']} connections in TIME_WAIT at once "
            f"(> {v['threshold']}; each for {2 * v['msl_s']:g} s), {v['at_end']} at the end of the capture"
            + (f"; most on port {top['port']} ({top['peak']})" if top else "")
            + ("; this host is a server closing first (server_active_close)" if f.terms["server_close"] else ""))


def render_server_close(f: Finding) -> str:
    v = f.values
    n, tw = v["connections"], v["time_wait"]
    head = f"server_active_close: the listening side {f.host}:{f.port} sent the first FIN on {n} connection(s)"
    peak = (f"peak {v['time_wait_peak']} at once on this host"
            + (f" > {f.terms['limit']}" if f.severity == "warning" else ""))
    if tw and not v["time_wait_peak"]:
        # the host is one of those folded into a count past Config.max_tw_hosts
        peak = "this host's peak is not tracked: too many TIME_WAIT hosts"
    hold = f"{f.terms['hold_s']:g} s each"
    if tw == n:
        return f"{head}, so it holds their TIME_WAIT ({hold}; {peak})"
    other = []
    if v["reset"]:
        other.append(f"{v['reset']} reset before the close completed")
    if n - tw - v["reset"]:
        other.append(f"{n - tw - v['reset']} still closing when the capture ended")
    why = ", ".join(other)
    if not tw:
        return (f"{head}; none reached TIME_WAIT ({why}), so it holds none"
                + (f" (other connections: {peak})" if v["time_wait_peak"] else ""))
    return f"{head}; {tw} of them reached TIME_WAIT, {hold} ({why}; {peak})"


TIME_WAIT_BUILDUP = declare_kind(
    "time_wait_buildup", render_buildup, severity="warning",
    description="a host's connections in TIME_WAIT at once exceed --time-wait-peak (each lasts --time-wait)")
SERVER_ACTIVE_CLOSE = declare_kind(
    "server_active_close", render_server_close,
    description="the listening side sent the first FIN (it holds the TIME_WAIT), per server port; warning when "
                "that host's peak is over the threshold")


@aggregate_detector(10)
def time_wait(facts, th, acc, out, extra) -> None:
    first_ns = facts.first_ns or 0
    last_ns = facts.last_ns or first_ns
    hold = int(th.msl_s * 2e9)
    tw = facts.time_wait
    # A cheap pass for every host's peak (most client hosts hold one period), then the full
    # profile for the hosts that are listed (the K_TW_REPORT_HOSTS highest peaks) or over the threshold.
    tw_hosts = []
    peaks = []
    for i, (host, starts) in enumerate(tw.starts.items()):
        pk = 1 if len(starts) == 1 else time_wait_profile(starts, first_ns, last_ns, hold, points=0)["peak"]
        peaks.append((-pk, addr_str(host), i, host, starts))
    peaks.sort()
    wanted = {p[3] for p in peaks[:K_TW_REPORT_HOSTS] if -p[0] > 0} | {p[3] for p in peaks if -p[0] > th.time_wait_peak}
    ports_by_host: dict[bytes, list] = {}
    for (host, port), starts in tw.port_starts.items():
        if host in wanted:
            prof = time_wait_profile(starts, first_ns, last_ns, hold, points=0)
            ports_by_host.setdefault(host, []).append((prof["peak"], port, prof))
    server_close_hosts = {h for (h, _p) in acc.server_close}
    for _npk, hs, _i, host, starts in sorted((p for p in peaks if p[3] in wanted), key=lambda p: p[2]):
        prof = time_wait_profile(starts, first_ns, last_ns, hold)
        ports = sorted(ports_by_host.get(host, ()), key=lambda x: (-x[0], x[1]))[:K_TW_TOP_PORTS]
        entry = {"host": hs, "peak": prof["peak"], "peak_time": _s(prof["peak_ns"]), "at_end": prof["at_end"],
                 "total": prof["total"], "series": prof["series"],
                 "ports": [{"port": p, "peak": pk, "at_end": pr["at_end"], "total": pr["total"]}
                           for pk, p, pr in ports]}
        tw_hosts.append(entry)
        if prof["peak"] > th.time_wait_peak:
            top = ports[0] if ports else None
            out.append(Finding(
                "time_wait_buildup", "warning", host=hs, port=top[1] if top else None, ts_ns=prof["peak_ns"],
                values={k: entry[k] for k in ("peak", "peak_time", "at_end", "total", "ports")}
                | {"threshold": th.time_wait_peak, "msl_s": th.msl_s},
                terms={"server_close": hs in server_close_hosts}))
    tw_peaks = {p[1]: -p[0] for p in peaks}
    tw_hosts.sort(key=lambda e: (-e["peak"], e["host"]))
    tw_hosts = tw_hosts[:max(K_TW_REPORT_HOSTS, sum(1 for e in tw_hosts if e["peak"] > th.time_wait_peak))]

    # servers that close first
    for (hs, port), t in sorted(acc.server_close.items(), key=lambda kv: (-kv[1].connections, kv[0])):
        peak = tw_peaks.get(hs, 0)
        sev = "warning" if peak > th.time_wait_peak else "info"
        out.append(Finding(
            "server_active_close", sev, host=hs, port=port, frames=t.fin_frames,
            values={"connections": t.connections, "time_wait": t.time_wait, "reset": t.reset,
                    "streams": t.streams, "time_wait_peak": peak},
            terms={"limit": th.time_wait_peak, "hold_s": 2 * th.msl_s}))

    section = time_wait_section(th.msl_s)
    section["hosts"] = tw_hosts
    if len(peaks) > len(tw_hosts):
        section["hosts_total"] = len(peaks)
    if tw.folded_hosts:
        # beyond Config.max_tw_hosts the quietest hosts were folded into these counts
        section["untracked_hosts"] = tw.folded_hosts
        section["untracked_periods"] = tw.folded_periods
    extra["time_wait"] = section
