"""SIGINT and SIGTERM as an exception, so a long operation cleans up after itself.

By default SIGTERM ends Python at once (no `finally` runs) and SIGINT raises
KeyboardInterrupt. Inside `interruptible()` both raise `Interrupted` in the main thread, once:
a second signal while the operation cleans up is noted and ignored, so the cleanup is not
cut short. Outside the main thread (a runbook's worker) it does nothing.

drkit never holds SIGINT or SIGTERM as SIG_IGN: an ignored signal is inherited through exec,
so every tool and server drkit started would ignore it too, and `Child.stop` (SIGINT first),
the scheduler's stop of a job, or a runtime's stop could then only kill. `take_signals()` at
the entry point turns an inherited SIG_IGN back into the default (a background job of a
non-interactive shell starts with SIGINT ignored: `nohup drkit ... &` in a script), and
`deferred()` ignores with a handler that does nothing, which exec resets for its children.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The operation was interrupted by a signal (its name in `signal_name`)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULTS: dict[int, signal.Handlers | Callable[[int, FrameType | None], None]] = {
    signal.SIGINT: signal.default_int_handler,  # KeyboardInterrupt: `finally` blocks run
    signal.SIGTERM: signal.SIG_DFL,
}


def take_signals() -> None:
    """Stop signals this process inherited as ignored get their defaults back (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s in SIGNALS:
        if signal.getsignal(s) == signal.SIG_IGN:
            signal.signal(s, DEFAULTS[s])


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """A stop asked for while drkit is already stopping: nothing more to do."""


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
        signal.signal(s, _noted)  # not SIG_IGN: the tools it starts would inherit that
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
