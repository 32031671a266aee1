"""The services that depend on those being restored in place (and are not restored
themselves): stopped first (dependents before
what they need), started again in dependency order with their health checked once it is
back (the source's "stop dependent services, restore, start them in order"). Hasura, auth
and functions must not write into, or cache, a database being replaced under them.

Only the dependents that were running are stopped and started again. When the restore
fails, they are started again too, each until healthy, if what they depend on runs (the
restore refused before touching it, or put its old data back and started it again); else
they stay stopped: the caller names them, and `drkit start` brings them back once the
service is sound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from drkit.domain.errors import DrkitError, OperationError, RolledBackError
from drkit.domain.stack import Stack
from drkit.engines.stack.graph import ServiceGraph
from drkit.engines.stack.start import (
    Prober,
    RuntimeFor,
    ServiceStep,
    StackReport,
    default_prober,
    start_services,
    stop_services,
)


@dataclass
class Paused:
    """What was stopped, and (after the `with`) the report of starting it again."""

    services: tuple[str, ...]
    stopped: StackReport | None = None
    started: StackReport | None = field(default=None)
    resume: bool = True  # the caller sets it False when what it restored is not sound


def running_dependents(stack: Stack, names: Sequence[str], runtime_for: RuntimeFor) -> tuple[str, ...]:
    """The services that need any of `names`, transitively, are not among them, and run now
    (in stack order)."""
    dependents = ServiceGraph.from_stack(stack).with_dependents(names) - set(names)
    return tuple(n for n in stack.services if n in dependents and runtime_for(stack.services[n]).is_running())


@contextmanager
def dependents_paused(
    stack: Stack,
    names: Sequence[str],
    *,
    runtime_for: RuntimeFor,
    prober: Prober = default_prober,
    on_step: Callable[[ServiceStep], None] | None = None,
) -> Iterator[Paused]:
    name = ", ".join(names)
    paused = Paused(running_dependents(stack, names, runtime_for))
    if not paused.services:
        yield paused
        return
    paused.stopped = stop_services(stack, paused.services, runtime_for=runtime_for, on_step=on_step)
    if not paused.stopped.ok:
        failed = ", ".join(s.service for s in paused.stopped.steps if not s.ok)
        raise OperationError(
            f"could not stop {failed}, which depend on {name}: nothing was restored",
            hint="stop them yourself (drkit stop SERVICE), then restore again",
        )
    try:
        yield paused
    except DrkitError as exc:
        if not isinstance(exc, RolledBackError) and not _all_running(stack, names, runtime_for):
            note = f"{', '.join(paused.services)} (which depend on {name}) stay stopped: `drkit start` them"
            exc.hint = f"{exc.hint}; {note}" if exc.hint else note
            raise
        # What they depend on runs as before (refused untouched, or put back): so do they.
        paused.started = start_services(
            stack, paused.services, runtime_for=runtime_for, prober=prober, on_step=on_step
        )
        which = ", ".join(paused.services)
        if paused.started.ok:
            note = f"{which} (which depend on {name}) were started again, healthy"
        else:
            bad = ", ".join(s.service for s in paused.started.failures)
            note = f"{which} (which depend on {name}) were started again; {bad} did not come back healthy"
        exc.hint = f"{exc.hint}; {note}" if exc.hint else note
        raise
    if not paused.resume:
        return
    paused.started = start_services(
        stack, paused.services, runtime_for=runtime_for, prober=prober, on_step=on_step
    )


def _all_running(stack: Stack, names: Sequence[str], runtime_for: RuntimeFor) -> bool:
    try:
        return all(runtime_for(stack.services[n]).is_running() for n in names)
    except DrkitError:
        return False
