"""Which Runtime runs a service: an explicit registry by `runtime.type`, imported lazily.

`local` means pg_ctl for a PostgreSQL service and a plain process (runtime.command)
for anything else; `compose` is one docker container; `systemd` is one unit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from drkit.domain.errors import ConfigError, UsageError
from drkit.domain.stack import Service
from drkit.runtimes.port import Fenceable, Runtime

Builder = Callable[[Service, Path], Runtime]


def _local(service: Service, state_dir: Path) -> Runtime:
    if service.kind == "postgres" and not service.runtime.command:
        from drkit.runtimes.local_postgres import LocalPostgres

        return LocalPostgres(service.runtime)
    from drkit.runtimes.local_process import LocalProcess

    return LocalProcess(service.runtime, name=service.name, state_dir=state_dir)


def _compose(service: Service, state_dir: Path) -> Runtime:
    from drkit.runtimes.compose import ComposeRuntime

    return ComposeRuntime(service.runtime, name=service.name)


def _systemd(service: Service, state_dir: Path) -> Runtime:
    from drkit.runtimes.systemd import SystemdRuntime

    return SystemdRuntime(service.runtime, name=service.name)


RUNTIMES: dict[str, Builder] = {"local": _local, "compose": _compose, "systemd": _systemd}


def runtime_for(service: Service, state_dir: str | Path) -> Runtime:
    """The Runtime for one service; a ConfigError names an unknown runtime type."""
    builder = RUNTIMES.get(service.runtime.type)
    if builder is None:
        known = ", ".join(sorted(RUNTIMES))
        raise ConfigError(
            f"services.{service.name}.runtime.type: unknown runtime {service.runtime.type!r} (known: {known})"
        )
    return builder(service, Path(state_dir))


def fenceable_for(service: Service, state_dir: str | Path) -> Fenceable:
    """The service's runtime, as one that can fence it (every runtime drkit builds can)."""
    runtime = runtime_for(service, state_dir)
    if not isinstance(runtime, Fenceable):
        raise UsageError(f"service {service.name}: its runtime ({runtime.description}) cannot fence it")
    return runtime
