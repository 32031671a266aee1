"""The Runtime port: start, stop, pause and inspect one service, whatever runs it.

Guarantees:
- `start` returns once the runtime accepted the start (not when the service is healthy:
  health is the engines' job, through probes).
- `stop` returns once the service's process has exited, or raises OperationError.
- `is_running` never raises for a service that is simply down.
- `Fenceable.fence` (every runtime drkit builds has it) stops a lost primary for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Runtime(Protocol):
    @property
    def description(self) -> str:
        """What runs it, for messages: `local pid 123`, `container nchat_postgres`."""
        ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 60.0) -> None: ...

    def is_running(self) -> bool: ...

    def pause(self) -> None: ...

    def unpause(self) -> None: ...


@dataclass(frozen=True)
class Fenced:
    """What a fence did: how the service was stopped, what keeps it stopped across a reboot
    or a daemon restart, whether its process was seen gone, and how to undo the lasting part."""

    how: str  # "stopped (fast)", "killed (immediate)", ...
    lasting: str  # "unit masked", "restart policy no", "" (nothing restarts it by itself)
    process_gone: bool
    undo: str = ""  # the command that lifts the lasting part, for the operator


@runtime_checkable
class Fenceable(Protocol):
    """A runtime that can fence its service: stop it (at once when `immediate`), keep it
    stopped across a reboot or a daemon restart, and check that its process is gone.
    Raises OperationError when it cannot be stopped or kept stopped."""

    def fence(self, timeout: float, *, immediate: bool) -> Fenced: ...
