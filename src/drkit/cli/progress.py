"""Renders what engines report through the progress port (domain/progress.py), one way for
every command:

- on a terminal: each step as a line when it starts; long work as a bar with the amount done
  against the estimated total, the rate and the time left;
- not on a terminal (cron, systemd, a pipe): timestamped lines, and every 30 s a heartbeat
  line saying what is still running (with the amount, the rate and the time left when known);
- `--quiet` or `--output json`: nothing.

Everything goes to stderr: stdout keeps the command's result (its table or its JSON).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TextIO

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from drkit.cli.render import err_console
from drkit.domain.durations import format_duration
from drkit.domain.progress import Meter, Unit
from drkit.domain.sizes import format_size

HEARTBEAT_SECONDS = 30.0


class Mode(StrEnum):
    LIVE = "live"  # a terminal: lines and bars
    LOG = "log"  # no terminal: timestamped lines and a heartbeat
    OFF = "off"  # --quiet, --output json


def mode_for(*, quiet: bool, json: bool) -> Mode:
    if quiet or json:
        return Mode.OFF
    return Mode.LIVE if sys.stdout.isatty() and sys.stderr.isatty() else Mode.LOG


@dataclass
class _Work:
    label: str
    total: int | None
    unit: Unit
    started: float
    done: int = 0


class Reporter:
    """The CLI's side of domain.progress.Progress (steps and meters) for one command."""

    def __init__(
        self,
        mode: Mode,
        *,
        stream: TextIO | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mode = mode
        self._stream = stream
        self._heartbeat = heartbeat
        self._clock = clock
        self._lock = threading.RLock()
        self._step: tuple[str, float] | None = None
        self._work: _Work | None = None
        self._bar: Progress | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the port -------------------------------------------------------------------------

    def step(self, title: str) -> None:
        if self.mode is Mode.OFF:
            return
        with self._lock:
            self._end_work()
            self._step = (title, self._clock())
            self._line(f"▸ {title}")
        self._beat()

    def meter(self, label: str, *, total: int | None = None, unit: Unit = Unit.BYTES) -> Meter:
        if self.mode is Mode.OFF:
            return _ignore
        with self._lock:
            self._end_work()
            work = _Work(label, total if total and total > 0 else None, unit, self._clock())
            self._work = work
            if self.mode is Mode.LIVE:
                self._bar = _bar(label, unit)
                self._bar.start()
                self._bar.add_task(label, total=work.total)
            else:
                about = f" (about {self._amount(work.total, unit)})" if work.total else ""
                self._line(f"{label}: started{about}")
        self._beat()
        return lambda done: self._advance(work, done)

    # -- the rest -------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """A line of its own (what an engine says, `say`)."""
        if self.mode is not Mode.OFF:
            with self._lock:
                self._line(text)

    def close(self) -> None:
        """The command ends: the last meter's summary (unless nothing was done: a refusal
        before the work began says only its error), the heartbeat stopped."""
        self._stop.set()
        with self._lock:
            if self._work is not None and not self._work.done:
                self._work = None
            self._end_work()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _advance(self, work: _Work, done: int) -> None:
        with self._lock:
            work.done = max(work.done, done)
            if self._bar is not None and self._work is work:
                self._bar.update(self._bar.task_ids[0], completed=work.done)

    def _end_work(self) -> None:
        work, self._work = self._work, None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if work is None:
            return
        took = self._clock() - work.started
        rate = f" ({self._amount(int(work.done / took), work.unit)}/s)" if took > 0.5 and work.done else ""
        self._line(f"{work.label}: {self._amount(work.done, work.unit)} in {format_duration(took)}{rate}")

    def _beat(self) -> None:
        if self.mode is not Mode.LOG or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._heartbeats, name="drkit-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeats(self) -> None:
        while not self._stop.wait(self._heartbeat):
            with self._lock:
                line = self._status()
                if line:
                    self._line(line)

    def _status(self) -> str | None:
        now = self._clock()
        work = self._work
        if work is not None:
            took = now - work.started
            done = self._amount(work.done, work.unit)
            if not work.total:
                return f"{work.label}: {done} so far, {format_duration(took)}"
            share = min(100.0, 100.0 * work.done / work.total)
            text = f"{work.label}: {done} of about {self._amount(work.total, work.unit)} ({share:.0f}%)"
            if work.done and took > 0:
                rate = work.done / took
                left = max(0.0, (work.total - work.done) / rate)
                text += f", {self._amount(int(rate), work.unit)}/s, about {format_duration(left)} left"
            return text
        if self._step is not None:
            title, since = self._step
            return f"still running: {title} ({format_duration(now - since)})"
        return None

    def _amount(self, n: int | None, unit: Unit) -> str:
        if n is None:
            return "?"
        return f"{n} {unit.value}" if unit is Unit.ITEMS else format_size(n)

    def _line(self, text: str) -> None:
        if self.mode is Mode.LOG:
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            out = self._stream or sys.stderr
            out.write(f"{stamp} {text}\n")
            out.flush()
        elif self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def _bar(label: str, unit: Unit) -> Progress:
    amounts = (MofNCompleteColumn(),) if unit is Unit.ITEMS else (DownloadColumn(), TransferSpeedColumn())
    columns = (TextColumn(label), BarColumn(), *amounts, TimeRemainingColumn())
    return Progress(*columns, console=err_console, transient=True)


def _ignore(_done: int) -> None:
    return None
