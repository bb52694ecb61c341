"""A rich Console for command output that ends quietly when its reader goes away."""
from __future__ import annotations

from rich.console import Console


class OutConsole(Console):
    """rich answers a closed pipe (`tcpanalyze analyze f | head`) with ``SystemExit(1)``;
    raise ``BrokenPipeError`` instead so the CLI exits 0 like the other output formats."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError
