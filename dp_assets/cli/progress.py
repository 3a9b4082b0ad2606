"""Progress of long commands (publishing a folder, ``dp test``, ``dp runs prune``, ``dp run``,
``dp backfill``).

On a terminal: a live line with a spinner, the count done (when the total is known) and the time
taken, kept under the lines the command prints, and gone when it ends (rich). Not on a terminal
(CI, a pipe, a test): only the command's own lines, so logs stay clean. Every command ends with
its own one-line summary either way.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # rich is imported only when the live line is shown
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


class Progress:
    def __init__(self, label: str, total: int | None = None, *, enabled: bool | None = None):
        self.label = label
        self.total = total
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self._live: RichProgress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            columns = [SpinnerColumn(), TextColumn("{task.description}")]
            if self.total is not None:
                columns += [BarColumn(), MofNCompleteColumn()]
            self._live = RichProgress(*columns, TimeElapsedColumn(), transient=True)
            self._live.start()
            self._task = self._live.add_task(self.label, total=self.total)
        return self

    def line(self, text: str, *, err: bool = False) -> None:
        """Print a line of the command's output above the live line."""
        if self._live is not None and not err:
            self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(text, err=err)

    def advance(self, steps: int = 1, label: str | None = None) -> None:
        if self._live is not None and self._task is not None:
            self._live.update(self._task, advance=steps, description=label or self.label)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
