"""A progress bar on stderr for long files (only used when stderr is a terminal)."""
from __future__ import annotations

import time


class ProgressBar:
    """Shows nothing for files that finish within ``delay`` seconds."""

    def __init__(self, label: str, delay: float = 0.7):
        self.label = label
        self.t0 = time.monotonic()
        self.delay = delay
        self.progress = None
        self.task = None

    def update(self, done: int, total: int | None) -> None:
        if self.progress is None:
            if time.monotonic() - self.t0 < self.delay:
                return
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
