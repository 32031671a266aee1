"""Wait for a condition with a deadline and backoff; never sleep and hope."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from drkit.domain.errors import OperationError
from drkit.infra.clock import Clock, SystemClock

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    retry_on: tuple[type[BaseException], ...] = (),
    fatal: tuple[type[BaseException], ...] = (),
    interval: float = 0.05,
    max_interval: float = 1.0,
    clock: Clock | None = None,
    error: type[OperationError] = OperationError,
) -> T:
    """Call `probe` until it returns something other than None/False, or raise `error` after
    `timeout`.

    Only the exceptions in `retry_on` mean "not ready yet" (the last one's message is
    reported on timeout); any other exception propagates at once, so a bug is not mistaken
    for a slow server. `fatal` names subclasses of those that must still propagate at once.
    """
    clock = clock or SystemClock()
    deadline = clock.monotonic() + timeout
    last_error = ""
    delay = interval
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
        except fatal:
            raise
        except retry_on as exc:
            last_error = f": {exc}".splitlines()[0]
        if clock.monotonic() >= deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what}{last_error}")
        clock.sleep(delay)
        delay = min(delay * 1.5, max_interval)
