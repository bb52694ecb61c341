"""Command-line interface: click only.  Each command lives in ``tcpanalyze/commands/<name>.py``
and is imported when it is used, so ``tcpanalyze --help`` stays fast and imports no scapy,
pyshark, rich tables or matplotlib."""
from __future__ import annotations

import importlib
import sys

import click

from tcpanalyze._version import __version__

#: command name -> (module, one-line help shown by ``--help`` without importing the module)
COMMANDS = {
    "analyze": ("tcpanalyze.commands.analyze", "Analyze capture files: connections, findings, report."),
    "packets": ("tcpanalyze.commands.packets", "Per-packet export: relative SEQ/ACK, window, analysis flags."),
    "flows": ("tcpanalyze.commands.flows", "Connection summaries and both endpoints' state timelines."),
    "check": ("tcpanalyze.commands.check", "CI gate: apply a policy to captures; exit 1 when a rule fails."),
    "ladder": ("tcpanalyze.commands.ladder", "Ladder diagram of one connection (terminal or SVG)."),
    "plot": ("tcpanalyze.commands.plot", "Plots: time-sequence, window, RTT, TIME_WAIT (needs [plot])."),
    "compare": ("tcpanalyze.commands.compare", "Compare tcpanalyze's per-packet analysis with tshark's."),
    "live": ("tcpanalyze.commands.live", "Capture on an interface and analyze live."),
    "interfaces": ("tcpanalyze.commands.live:interfaces", "List capture interfaces."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        modname, _, attr = spec[0].partition(":")
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:  # a command whose module is not present in this build
            if e.name == modname:
                return None
            raise
        return getattr(mod, attr or name)

    def invoke(self, ctx):
        # A reader of our output that goes away (`tcpanalyze flows --jsonl f | head`) ends the
        # run normally: click would turn the EPIPE into a silent exit 1.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _stdout_to_devnull()
            raise click.exceptions.Exit(0) from None

    def format_commands(self, ctx, formatter):
        rows = [(name, spec[1]) for name, spec in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tcpanalyze")
def cli():
    """tcpanalyze: turn packet captures into answers about TCP.

    \b
    Exit codes: 0 ok; 1 check failed (or findings at/above --fail-on);
                2 usage or policy error; 3 unreadable or unsupported input.
    """


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        sys.stdout = None


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="tcpanalyze", standalone_mode=True)
    except BrokenPipeError:  # `tcpanalyze packets f | head`, raised outside a command
        _stdout_to_devnull()
        sys.exit(0)


if __name__ == "__main__":
    main()
