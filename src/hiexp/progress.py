"""One look for every progress bar and status line: rich, on stderr, quiet when not a terminal unless asked.

Library modules log through ``logging.getLogger(__name__)``; the ``hiexp`` command calls ``show_logs`` so
that their messages reach the user on this console (a program that imports hiexp decides for itself).
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def progress_bar(transient: bool = False) -> Progress:
    """A rich ``Progress`` with count, elapsed and remaining time, drawn on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


class ConsoleLogHandler(logging.Handler):
    """Log records as plain status lines on the console; warnings and errors marked as such."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = escape(self.format(record))
            if record.levelno >= logging.ERROR:
                message = f"[red]error[/]: {message}"
            elif record.levelno >= logging.WARNING:
                message = f"[yellow]warning[/]: {message}"
            console.print(message)
        except Exception:  # a broken console must not break the work (logging's own rule)
            self.handleError(record)


def show_logs(level: int = logging.INFO) -> None:
    """Show hiexp's log records of ``level`` and above on the console, once per process."""
    logger = logging.getLogger("hiexp")
    logger.setLevel(level)
    if not any(isinstance(h, ConsoleLogHandler) for h in logger.handlers):
        logger.addHandler(ConsoleLogHandler())
