"""Before a failover: is the primary really down? Several failed probes over a window: a
blip must not trigger it. (How far the candidate is behind it: engines/failover/loss.py.)"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from drkit.domain.errors import OperationError
from drkit.infra.clock import Clock
from drkit.infra.hold import hold


def confirm_down(
    is_up: Callable[[], bool],
    *,
    probes: int,
    window: float,
    clock: Clock,
    say: Callable[[str], None],
    failed: tuple[datetime, float] | None = None,
) -> datetime:
    """Probe `probes` times, evenly over `window` seconds; the moment of the first failed
    probe when every one failed. One probe answering means the primary is not down.
    `failed`: a probe that already failed (when and its clock.monotonic()), counted first."""
    interval = window / max(1, probes - 1)
    first: datetime | None = None
    for n in range(1, probes + 1):
        started = clock.monotonic()
        at = clock.now()
        if n == 1 and failed is not None:  # drkit's first look at the primary, just before
            at, started = failed
            first = at
            say(f"probe 1/{probes}: primary down (when drkit started)")
            hold("confirm-down-probe-1")
            clock.sleep(max(0.0, interval - (clock.monotonic() - started)))
            continue
        if is_up():
            raise OperationError(
                f"the primary answered probe {n}/{probes}: not down (a blip does not trigger a failover)"
            )
        first = first or at
        say(f"probe {n}/{probes}: primary down")
        hold(f"confirm-down-probe-{n}")  # tests: act between two probes
        if n < probes:
            clock.sleep(max(0.0, interval - (clock.monotonic() - started)))
    if first is None:
        raise OperationError("no probe ran")
    return first
