"""Progress on a terminal for long work; silent when not a terminal or in JSON mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from drkit.cli.render import err_console


@contextmanager
def byte_progress(label: str, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    if not enabled or not err_console.is_terminal:
        yield lambda _done: None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done: bar.update(task, completed=done)
