"""Rich progress bars that cost nothing when they are off.

Bars need ``trainer.progress``, a terminal on stderr and rank 0 (one bar per job, not one
per process). Without a terminal (a batch job's log file, ``nohup``, CI) there are no bars,
but the one-line summary of each epoch is still written to stderr: a job log that stays
silent for hours cannot be told apart from a hung job.
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._plain = enabled and not sys.stderr.isatty()
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=Console(stderr=True), transient=True,
            )

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, description: str, total: int) -> None:
        if self._bar is None:
            return
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(description, total=total, info="")

    def advance(self, info: str = "") -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, info=info)

    def print(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, highlight=False, markup=False)
        elif self._plain:
            print(message, file=sys.stderr, flush=True)
