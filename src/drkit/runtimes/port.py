"""The Runtime port: start, stop, pause and inspect one service, whatever runs it.

Guarantees:
- `start` returns once the runtime accepted the start (not when the service is healthy:
  health is the engines' job, through probes).
- `stop` returns once the service's process has exited, or raises OperationError.
- `is_running` never raises for a service that is simply down.
"""

from __future__ import annotations

from typing import Protocol


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
