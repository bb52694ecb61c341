"""Exception hierarchy.

Peer misbehaviour is never an exception (it is a finding); these are for input that
cannot be read or decoded, and for output that cannot be written.  The CLI maps them to
exit codes (docs/cli.md, "Exit codes").
"""


class TcpAnalyzeError(Exception):
    """Base of every error tcpanalyze raises on purpose."""


class DecodeError(TcpAnalyzeError, ValueError):
    """A packet could not be decoded.  ``kind`` is a short counter name, ``offset`` a byte offset in the frame."""

    def __init__(self, kind: str, offset: int = 0, detail: str = ""):
        self.kind = kind
        self.offset = offset
        self.detail = detail
        super().__init__(f"{kind} at byte {offset}" + (f": {detail}" if detail else ""))


class TruncatedError(DecodeError):
    """The frame ends before a header it announces."""


class SourceError(TcpAnalyzeError):
    """A capture source cannot be read at all (not a capture, unsupported, I/O error). Exit code 3."""

    def __init__(self, message: str, offset: int | None = None, frame: int | None = None):
        self.offset = offset
        self.frame = frame
        super().__init__(message)


class CaptureDamage(TcpAnalyzeError):
    """Damage a reader met: stored in ``reader.damage`` (never raised by iteration) after it
    yielded everything readable.

    ``fatal`` is False for a truncated tail (a warning) and True for corrupt data (exit code 3).
    """

    def __init__(self, message: str, offset: int, frame: int, fatal: bool):
        self.offset = offset
        self.frame = frame
        self.fatal = fatal
        super().__init__(message)


class OutputError(TcpAnalyzeError):
    """An output (a file, stdout, an image, a pcap being written) could not be written.
    Exit code 4, whatever the input was.  ``path`` names the output, ``reason`` says why."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write {path}: {reason}")

    @classmethod
    def from_oserror(cls, path: str, e: OSError) -> "OutputError":
        return cls(path, e.strerror or str(e))

    @classmethod
    def temporary(cls, e: OSError) -> "OutputError":
        """A temporary file (spilled records, tombstones) that could not be made or written."""
        import tempfile

        return cls(f"a temporary file in {tempfile.gettempdir()}", e.strerror or str(e))
