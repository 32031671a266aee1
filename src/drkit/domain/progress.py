"""How an engine says what it is doing, without rendering it (the CLI renders: cli/progress.py).

Two calls, both optional to listen to:

    progress.step("restore postgres from 20261125T020000Z-base")     # a step starts, said at once
    advance = progress.meter("extract base backup", total=manifest_bytes)
    advance(done_so_far)                                               # from any thread

`meter` returns the callback type engines already take (`Callable[[int], None]`, the amount
done so far), so a long piece of work passes it straight to the code doing it. A meter ends
when the next step or meter begins, or when the command ends. `total` is an estimate (None:
unknown); a meter may pass it. Engines default to SILENT.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

Meter = Callable[[int], None]  # the amount done so far, monotonic


class Unit(StrEnum):
    BYTES = "bytes"
    WAL = "wal"  # bytes of WAL (an LSN distance)
    ITEMS = "items"  # rows, objects, segments


class Progress(Protocol):
    def step(self, title: str) -> None:
        """A step starts: `title` says what it does, concretely (names, ids)."""

    def meter(self, label: str, *, total: int | None = None, unit: Unit = Unit.BYTES) -> Meter:
        """Long work starts: its amount done is reported to the returned callback."""


class Silent:
    """Listens to nothing: the default for every engine."""

    def step(self, title: str) -> None:
        return None

    def meter(self, label: str, *, total: int | None = None, unit: Unit = Unit.BYTES) -> Meter:
        return no_meter


def no_meter(_done: int) -> None:
    """A meter nobody reads."""
    return None


SILENT: Progress = Silent()
