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
        # run quietly with exit code 0, as a command killed by SIGPIPE prints nothing: click
        # would turn the EPIPE into a silent exit 1.  An output that cannot be written (full
        # disk, missing directory, no permission) is exit code 4 with one line naming it.
        from tcpanalyze.errors import OutputError

        try:
            try:
                rv = super().invoke(ctx)
            except SystemExit:
                _flush_stdout()
                raise
            _flush_stdout()
            return rv
        except BrokenPipeError:
            _stdout_to_devnull()
            raise click.exceptions.Exit(0) from None
        except OutputError as e:
            if e.path == "standard output":
                _stdout_to_devnull()
            click.echo(f"tcpanalyze: error: {e}", err=True)
            raise click.exceptions.Exit(4) from None

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
                2 usage or policy error; 3 unreadable or unsupported input;
                4 the output could not be written.
    """


def _flush_stdout() -> None:
    """Flush stdout inside the command so that a write error there is reported, not lost in
    the interpreter's final flush."""
    from tcpanalyze.errors import OutputError

    out = sys.stdout
    if out is None:
        return
    try:
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError.from_oserror("standard output", e) from None
    except ValueError:              # stdout closed
        pass


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
