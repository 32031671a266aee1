"""SIGINT and SIGTERM as an exception, so a long operation cleans up after itself.

By default SIGTERM ends Python at once (no `finally` runs) and SIGINT raises
KeyboardInterrupt. Inside `interruptible()` both raise `Interrupted` in the main thread, once:
a second signal while the operation cleans up is noted and ignored, so the cleanup is not
cut short. Outside the main thread (a runbook's worker) it does nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The operation was interrupted by a signal (its name in `signal_name`)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interruptible() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = [False]

    def handler(signum: int, _frame: FrameType | None) -> None:
        if raised[0]:
            return  # already cleaning up: let it finish
        raised[0] = True
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextmanager
def deferred() -> Iterator[None]:
    """Cleanup that must not be cut short: signals inside are ignored (they already asked
    for what is happening: stopping)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
