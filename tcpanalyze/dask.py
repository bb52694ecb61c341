"""Beyond one machine: analyse many captures on a Dask cluster (``pip install tcpanalyze[dask]``).

    from dask.distributed import Client
    from tcpanalyze.dask import analyze_many

    client = Client("scheduler:8786")            # or LocalCluster(...); None: the default scheduler
    total = analyze_many(["/data/caps/*.pcap"], client, keep_connections=100)
    print(total.summary["connections"], total.summary["findings"]["by_kind"])

The capture paths go into a Dask bag; each task runs ``session.analyze_file`` on its
file (the workers must see the same names: paths on a shared file system, or URLs such as
``s3://bucket/caps/*.pcap`` that every worker opens through fsspec, see docs/cluster.md) and
returns a ``Report`` (plain picklable data); the reports are added up with
``session.merge_reports`` per partition and then across partitions, in input order,
so the total is the one ``tcpanalyze analyze FILES... --json`` gives for the same files.
Dask is imported only when a function here is called.
"""
from __future__ import annotations

from functools import partial
from typing import Iterable

from tcpanalyze.parallel import expand_inputs
from tcpanalyze.session import AnalyzeOptions, analyze_file, merge_reports


def _options(options, kw: dict):
    if options is not None and kw:
        raise TypeError("give either options= or AnalyzeOptions keyword arguments, not both")
    return options if options is not None else AnalyzeOptions(**kw)


def _merge(reports, keep_connections):
    return merge_reports(list(reports), keep_connections=keep_connections)


def _merge_partials(partials, keep_connections):
    """Aggregate step: merge_reports over the partition totals (skipping empty partitions)."""
    parts = [r for r in partials if r.files]
    return merge_reports(parts, keep_connections=keep_connections)


def report_bag(paths: Iterable[str], options=None, npartitions: int | None = None, **kw):
    """A Dask bag of per-file Reports (lazy).  ``paths`` may hold directories and globs, local
    or as URLs, expanded here (on the client)."""
    import dask.bag as db

    opts = _options(options, kw)
    files = expand_inputs(paths)
    if not files:
        raise ValueError("no capture files")
    n = npartitions or min(len(files), 256)
    return db.from_sequence(files, npartitions=n).map(analyze_file, opts)


def analyze_many(paths: Iterable[str], client=None, *, options=None, npartitions: int | None = None,
                 per_file: bool = False, **kw):
    """Total Report over ``paths`` computed on ``client`` (a ``dask.distributed.Client``; None:
    Dask's default scheduler).  ``kw`` are ``AnalyzeOptions`` fields (``engine``,
    ``thresholds``, ``keep_connections``).  With ``per_file=True`` returns
    ``(reports, total)`` (every per-file Report comes back to the client)."""
    opts = _options(options, kw)
    bag = report_bag(paths, opts, npartitions)
    keep = opts.keep_connections
    if per_file:
        reports = client.compute(bag, sync=True) if client is not None else bag.compute()
        return reports, _merge(reports, keep)
    total = bag.reduction(partial(_merge, keep_connections=keep), partial(_merge_partials, keep_connections=keep),
                          split_every=16)
    if client is not None:
        return client.compute(total, sync=True)
    return total.compute()


__all__ = ["analyze_many", "report_bag"]
