"""Options, error handling and I/O shared by the commands (click only; no rich here)."""
from __future__ import annotations

import codecs
import sys
from contextlib import contextmanager

import click

from tcpanalyze import analysis as A
from tcpanalyze import engine as E
from tcpanalyze.engine import Config
from tcpanalyze.errors import OutputError, SourceError
from tcpanalyze.pipeline import analyze_source
from tcpanalyze.session import engine_kwargs

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4

#: how an error message names stdout
STDOUT = "standard output"


class InputError(click.ClickException):
    """Unreadable or unsupported input: one line on stderr, exit code 3."""

    exit_code = EXIT_INPUT

    def show(self, file=None):
        click.echo(f"tcpanalyze: error: {self.format_message()}", err=True)


class UsageProblem(click.ClickException):
    """A usage-level error (bad capture filter, conflicting options): one line, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None):
        click.echo(f"tcpanalyze: error: {self.format_message()}", err=True)


class TimeWaitLength(click.ParamType):
    """``--time-wait``: a system's TIME_WAIT length (``engine.TIME_WAIT_PRESETS``) or seconds."""

    name = "time_wait"

    def get_metavar(self, param, *args, **kwargs) -> str:
        return "|".join(E.TIME_WAIT_PRESETS) + "|SECONDS"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        v = str(value).strip().lower()
        if v in E.TIME_WAIT_PRESETS:
            return E.TIME_WAIT_PRESETS[v]
        try:
            s = float(v.removesuffix("s"))
        except ValueError:
            s = -1.0
        if not s >= 0 or s == float("inf"):
            self.fail(f"{value!r} is not one of {', '.join(E.TIME_WAIT_PRESETS)} or a number of seconds >= 0",
                      param, ctx)
        return s


def engine_options(f):
    """Thresholds and resource bounds every analysing command accepts."""
    opts = [
        click.option("--fast-rtx-ms", type=click.FloatRange(min=0), default=A.K_FAST_RETRANSMIT_NS / 1e6,
                     show_default=True, help="Fast-retransmission window after >= 2 dup ACKs (Wireshark: 20 ms)."),
        click.option("--ooo-ms", type=click.FloatRange(min=0), default=A.K_OOO_DEFAULT_NS / 1e6, show_default=True,
                     help="Out-of-order window while the iRTT is unknown (Wireshark: 3 ms)."),
        click.option("--time-wait", "time_wait", type=TimeWaitLength(), default=None,
                     help=f"How long a connection stays in TIME_WAIT: linux {E.TIME_WAIT_PRESETS['linux']:g} s "
                          f"(TCP_TIMEWAIT_LEN), windows {E.TIME_WAIT_PRESETS['windows']:g} s, "
                          f"bsd {E.TIME_WAIT_PRESETS['bsd']:g} s (FreeBSD, macOS), rfc "
                          f"{E.TIME_WAIT_PRESETS['rfc']:g} s (2 x MSL of 2 min), or SECONDS.  "
                          f"[default: {E.K_TIME_WAIT}]"),
        click.option("--msl", type=click.FloatRange(min=0), default=None,
                     help="Maximum segment lifetime in seconds: TIME_WAIT lasts 2*MSL (the same as "
                          "--time-wait 2*MSL)."),
        click.option("--max-unacked", type=click.IntRange(min=1), default=A.K_MAX_UNACKED, show_default=True,
                     help="Unacked segments remembered per direction."),
        click.option("--max-connections", type=click.IntRange(min=1), default=E.K_MAX_CONNECTIONS, show_default=True,
                     help="Live connections kept; beyond it the least recently active is evicted (counted)."),
        click.option("--idle-timeout", type=click.FloatRange(min=0), default=E.K_IDLE_TIMEOUT_NS / 1e9,
                     show_default=True, help="Seconds of capture time after which an idle open connection expires (0: never, like Wireshark; "
                     "a later segment then starts a new stream)."),
        click.option("--checksums", type=click.Choice(E.CHECKSUM_MODES), default="ignore", show_default=True,
                     help="TCP checksums: ignore them (as tshark); verify and count bad ones; or drop bad "
                     "segments as Zeek does without -C. Checksums left to the NIC (offload) are counted apart, "
                     "never as bad."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _host_value(ctx, param, value):
    if value is None:
        return None
    from tcpanalyze.session import address_matcher

    try:
        address_matcher(value)
    except ValueError:
        raise click.BadParameter(f"not an IP address or network: {value}") from None
    return value


def filter_options(stream_help: str):
    """--stream, --host (an address or a CIDR network) and --port: the connections selected."""
    opts = [
        click.option("--stream", type=click.IntRange(min=0), default=None, help=stream_help),
        click.option("--host", default=None, callback=_host_value, metavar="ADDR[/PREFIX]",
                     help="Only connections with this address, or an address in this network "
                          "(10.200.0.0/24, fd00::/64), at either end."),
        click.option("--port", type=click.IntRange(0, 65535), default=None,
                     help="Only connections with this port at either end."),
    ]

    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


def no_stream(stream: int, path: str, streams: int | None) -> UsageProblem:
    """The one-line error (exit 2) for a --stream the capture does not have."""
    if streams is None:
        return UsageProblem(f"--stream {stream}: no stream {stream} in {path}")
    return UsageProblem(f"--stream {stream}: no stream {stream} in {path} (it has {streams} stream"
                        f"{'' if streams == 1 else 's'}, numbered from 0)")


def make_config(explain: bool = False, **kw):
    """``engine.Config`` from the engine options; an option not given keeps the engine's default."""
    return Config(explain=explain, **engine_kwargs(pop_engine_kw(kw)))


ENGINE_KEYS = ("fast_rtx_ms", "ooo_ms", "msl", "max_unacked", "max_connections", "idle_timeout", "checksums")


def pop_engine_kw(kw: dict) -> dict:
    """The engine options of ``kw`` (removed from it); ``--time-wait`` becomes ``msl`` (half of
    it), an option not given is left out (the engine's default holds)."""
    tw = kw.pop("time_wait", None)
    out = {k: kw.pop(k) for k in ENGINE_KEYS if k in kw}
    if out.get("msl") is None:
        out.pop("msl", None)
        if tw is not None:
            out["msl"] = tw / 2
    elif tw is not None:
        raise UsageProblem("give --time-wait or --msl, not both (TIME_WAIT lasts 2*MSL)")
    return out


class Output:
    """A text output whose write errors are ``OutputError`` (exit 4, naming the output),
    never an ``OSError`` that could be taken for an input error.  A closed pipe stays a
    ``BrokenPipeError``: the CLI ends quietly when the reader of its output goes away."""

    __slots__ = ("_fh", "name", "_raw")

    def __init__(self, fh, name: str):
        self._fh = fh
        self.name = name
        # the binary file under a UTF-8 text output, for write_bytes
        enc = getattr(fh, "encoding", None)
        self._raw = getattr(fh, "buffer", None) if enc and codecs.lookup(enc).name == "utf-8" else None

    def write(self, s: str) -> int:
        try:
            return self._fh.write(s)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError.from_oserror(self.name, e) from None

    def write_bytes(self, b) -> None:
        """Write UTF-8 bytes: as they are to the binary file under a UTF-8 text output (its
        text written so far first), else decoded, as text."""
        try:
            if self._raw is not None:
                self._fh.flush()
                self._raw.write(b)
            else:
                self._fh.write(str(b, "utf-8"))
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError.from_oserror(self.name, e) from None

    def flush(self) -> None:
        try:
            self._fh.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError.from_oserror(self.name, e) from None

    def close(self) -> None:
        try:
            self._fh.close()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError.from_oserror(self.name, e) from None

    def __getattr__(self, attr):
        return getattr(self._fh, attr)


def stdout() -> Output:
    return Output(sys.stdout, STDOUT)


def open_output(path: str | None):
    """(stream, must_close): stdout for None or '-', else the file (text, UTF-8); writing
    either raises ``OutputError`` on failure."""
    if path is None or path == "-":
        return stdout(), False
    try:
        return Output(open(path, "w", encoding="utf-8", newline="\n"), path), True
    except OSError as e:
        raise OutputError.from_oserror(path, e) from None


@contextmanager
def output_errors(path: str):
    """OSError while a library writes ``path`` (an image, a Parquet file) -> OutputError."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError.from_oserror(path, e) from None


def warn(msg: str) -> None:
    click.echo(f"tcpanalyze: warning: {msg}", err=True)


def run_capture(path: str, analyzer, on_segment=None, progress: bool = False, keep=None):
    """Read one capture through ``analyzer``; report damage on stderr; SourceError -> exit 3.

    Returns the RunStats.  A truncated tail is a warning; corrupt data after which nothing
    could be read sets ``stats.damage.fatal`` (the caller exits 3 after writing its output).
    """
    cb = None
    bar = None
    if progress and sys.stderr.isatty() and path != "-":
        from tcpanalyze.report.progress import ProgressBar

        bar = ProgressBar(path)
        cb = bar.update
    try:
        with input_errors(path):
            stats = analyze_source(path, analyzer, on_segment=on_segment, progress=cb, keep=keep)
    finally:
        if bar is not None:
            bar.close()
    stats_notes(path, stats)
    return stats


def stats_notes(path: str, stats) -> None:
    """Warnings about a capture that was read (damage, truncation, decode errors), on stderr."""
    for w in stats.warnings:
        warn(f"{path}: {w}")
    dmg = stats.damage
    if dmg is not None and not any(str(dmg).startswith(w) for w in stats.warnings):
        # (a region skipped by a resynchronisation was already reported as a warning above)
        cut = not dmg.fatal and "truncated" in str(dmg)
        warn(f"{path}: {dmg}" + ("; analyzed up to the cut" if cut else ""))
    if stats.errors:
        total = sum(stats.errors.values())
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(stats.errors.items()))
        warn(f"{path}: {total} frame(s) could not be decoded ({kinds})")


@contextmanager
def input_errors(path: str):
    """SourceError and OSError while reading ``path`` -> InputError (one line, exit 3)."""
    try:
        yield
    except SourceError as e:
        msg = str(e)
        name = "standard input" if path == "-" else path
        raise InputError(msg if name in msg else f"{name}: {msg}") from None
    except BrokenPipeError:
        raise                      # the reader of our output went away (`| head`): not an input error
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None


def parquet_output(output: str | None) -> str:
    """The file ``--format parquet`` writes (``-o FILE`` is required), once pyarrow is known
    to be importable; a one-line usage error (exit 2) otherwise."""
    if output is None or output == "-":
        raise UsageProblem("--format parquet writes a file: give -o FILE")
    # the Parquet writer builds the API's record types: only a Parquet run pays for them
    from tcpanalyze.parquet import ParquetUnavailable, require_pyarrow
    try:
        require_pyarrow()
    except ParquetUnavailable as e:
        raise UsageProblem(str(e)) from None
    return output
