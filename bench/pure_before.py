"""Time the pure-Python build against the build from before the core redesign, on the same
work and as shipped.

    python bench/pure_before.py CAPTURE --before DIR [--rounds 4] [--command analyze]

DIR is a source checkout of the build before the redesign, not compiled (for example
``git worktree add /tmp/before 4c61266``): its modules run as plain Python.  This tree runs
with ``TCPANALYZE_PURE=1`` in three ways:

* ``full``: as shipped;
* ``no-diagnosis``: without the transfer diagnosis (``Analyzer(diagnose=False)``), which the
  build before the redesign did not have;
* ``same-work``: also without tombstones: a closed connection stays whole for the linger
  time and is then finalized and dropped, as the build before the redesign did.

Each round runs the four commands one after the other, in the reverse order every other round
(ABBA), each a child process with its output to /dev/null; the table gives the median and the
range of the child's CPU time (user + system) and its largest peak RSS.  Before timing, the
``analyze --json`` documents of ``no-diagnosis`` and ``same-work`` are compared: they are the
same when no packet of the capture comes for a connection after its grace, and only then is
``same-work`` the same work as the build before the redesign."""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("before", "full", "no-diagnosis", "same-work")


def patch(variant: str) -> None:
    """Change the imported ``tcpanalyze`` as ``variant`` says (nothing for ``full`` and
    ``before``)."""
    if variant not in ("no-diagnosis", "same-work"):
        return
    from tcpanalyze import engine
    init = engine.Analyzer.__init__

    def __init__(self, *a, **kw):
        kw["diagnose"] = False
        init(self, *a, **kw)
        if variant == "same-work":
            self.table.grace_ns = self.table.linger_ns

    engine.Analyzer.__init__ = __init__
    if variant == "same-work":
        from tcpanalyze import tomb

        def retire(self, now, finalize):
            for conn in self.past_grace(now):
                self.drop(conn)
                finalize(conn, None)

        def put(self, *_a):
            raise RuntimeError("same-work stored a tombstone: the patched retire was not used")

        engine.FlowTable.retire = retire
        tomb.TombStore.put = put


def _child(variant: str, tree: str, argv: list[str]) -> None:
    """Run the CLI of ``tree`` in this process, changed as ``variant`` says."""
    sys.path.insert(0, tree)
    import tcpanalyze
    if not tcpanalyze.__file__.startswith(tree):
        sys.exit(f"pure_before: imported {tcpanalyze.__file__}, not the tree {tree}")
    if variant != "before":
        from tcpanalyze import _loader
        if _loader.compiled_modules():
            sys.exit("pure_before: this tree loaded compiled modules; TCPANALYZE_PURE=1 is not in effect")
    patch(variant)
    from tcpanalyze.cli import main
    sys.argv = ["tcpanalyze", *argv]
    main()


def _run(variant: str, before: str, argv: list[str], out=subprocess.DEVNULL) -> tuple[float, int]:
    """(CPU seconds, peak RSS in KiB) of one child."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if variant == "before":
        env.pop("TCPANALYZE_PURE", None)
        tree = before
    else:
        env["TCPANALYZE_PURE"] = "1"
        tree = str(REPO)
    cmd = [sys.executable, __file__, "--child", variant, "--tree", tree, "--", *argv]
    p = subprocess.Popen(cmd, stdout=out, env=env)
    _pid, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"pure_before: {variant} failed (status {status})")
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def _digest(path: Path) -> tuple[str, int]:
    """(SHA-256, size) of a file, read in chunks: the parent stays small, and a child's peak
    RSS (``ru_maxrss``) starts from the RSS of the process it was forked from."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        # --child VARIANT --tree TREE -- ARGV...
        _child(sys.argv[2], sys.argv[4], sys.argv[6:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--before", required=True, help="source checkout of the build before the redesign (not compiled)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--command", default="analyze", help="tcpanalyze command to time (default analyze)")
    a = ap.parse_args()
    before = str(Path(a.before).resolve())
    if list(Path(before, "tcpanalyze").glob("*.so")):
        sys.exit(f"pure_before: {before}/tcpanalyze holds compiled modules; use an uncompiled checkout")
    subprocess.run([sys.executable, "-m", "compileall", "-q", f"{before}/tcpanalyze", f"{REPO}/tcpanalyze"],
                   check=False, stdout=subprocess.DEVNULL)
    cap = str(Path(a.capture).resolve())

    with tempfile.TemporaryDirectory() as tmp:
        sums = []
        for v in ("no-diagnosis", "same-work"):
            path = Path(tmp, v + ".json")
            with open(path, "wb") as f:
                _run(v, before, ["analyze", "--json", cap], out=f)
            sums.append(_digest(path))
            path.unlink()
    same = sums[0] == sums[1]
    print(f"analyze --json, no-diagnosis against same-work: {'identical' if same else 'DIFFERENT'}"
          f" ({sums[0][1]:,} bytes)")
    if not same:
        print("  (packets came after a connection's grace: same-work is not the same work here)")

    argv = [*a.command.split(), cap]
    for v in VARIANTS:                       # warm-up: the fused code's cache, page cache
        _run(v, before, argv)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rss: dict[str, int] = {v: 0 for v in VARIANTS}
    for r in range(a.rounds):
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
        for v in order:
            t, m = _run(v, before, argv)
            times[v].append(t)
            rss[v] = max(rss[v], m)
    load = os.getloadavg()[0]
    base = statistics.median(times["before"])
    print(f"\n`{a.command}` on {Path(cap).name}: CPU time (user + system) of {a.rounds} runs each, ABBA order;"
          f" load average {load:.1f} after\n")
    print("| build | median (s) | range (s) | / before | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for v in VARIANTS:
        ts = times[v]
        med = statistics.median(ts)
        print(f"| {v} | {med:.2f} | {min(ts):.2f}-{max(ts):.2f} | {med / base:.2f} | {rss[v] / 1024:.0f} |")


if __name__ == "__main__":
    main()
