"""One backup of one service, whatever its kind: PostgreSQL's base or logical backup,
a MeiliSearch snapshot when asked, else the kind's engine from the registry; and several
services one after the other, where one that fails (its server down) does not stop the
others (`backup_each`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drkit.domain.errors import DrkitError, UsageError
from drkit.domain.progress import SILENT, Meter, Progress
from drkit.domain.stack import DATA_IN_DEPENDENCIES, Service, Stack
from drkit.engines.core.commit import BackupResult
from drkit.engines.core.registry import engine_for, has_engine
from drkit.engines.core.workspace import Workspace
from drkit.engines.stack.estimate import backup_estimate

# The kinds of PostgreSQL backup `--type` takes (backup_service dispatches them; check_request
# refuses anything else before a run starts): one list, so a new kind is accepted by both.
POSTGRES_TYPES = ("base", "incremental", "logical")


def backup_targets(services: list[Service]) -> list[Service]:
    """The services drkit can back up, in the order given."""
    return [s for s in services if has_engine(s.kind)]


def backup_service(
    ws: Workspace, service: Service, *, postgres_type: str = "base", progress: Meter | None = None
) -> BackupResult:
    """One backup of one service, whatever its kind."""
    if service.kind == "postgres":
        from drkit.engines.postgres.backup import base_backup, logical_backup
        from drkit.engines.postgres.incremental import incremental_backup

        _check_postgres_type(postgres_type)
        engines = {"base": base_backup, "logical": logical_backup, "incremental": incremental_backup}
        return engines[postgres_type](ws, service, progress=progress)
    if service.kind == "meilisearch" and postgres_type == "snapshot":
        from drkit.engines.search.backup import backup_snapshot

        return backup_snapshot(ws, service, progress=progress)
    return engine_for(service).backup(ws, service, progress=progress)


def choose_services(stack: Stack, names: list[str] | None) -> list[Service]:
    """The services `drkit backup` takes: those named (each must exist), else every service
    drkit can back up."""
    if not names:
        return backup_targets(list(stack.services.values()))
    return stack.require_services(names)


@dataclass(frozen=True)
class ServiceOutcome:
    """How the backup of one service went: its result, or why it failed."""

    service: str
    kind: str
    seconds: float
    result: BackupResult | None = None
    error: str | None = None
    reused: str | None = None  # a set's PostgreSQL part: the recent base backup it reuses

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def backup_id(self) -> str | None:
        return self.result.manifest.backup_id if self.result is not None else self.reused


def backup_each(
    ws: Workspace,
    services: list[Service],
    *,
    postgres_type: str = "base",
    progress: Progress = SILENT,
    on_done: Callable[[ServiceOutcome], None] | None = None,
    before: tuple[ServiceOutcome, ...] = (),
) -> list[ServiceOutcome]:
    """Back up each service in turn. One that fails is recorded with its error and the next
    one goes on (a stopped PostgreSQL does not cost Redis its backup); the caller decides
    what the failures mean. What is wrong with the request itself (a type no service takes,
    a named service with nothing to back up) is refused before anything runs. Ctrl-C stops
    at once. `before`: outcomes of this run so far (a set's PostgreSQL part). `progress`: each
    service's backup is a step, and its bytes a meter against the estimate (stack/estimate.py)."""
    check_request(services, postgres_type)
    out: list[ServiceOutcome] = []
    for service in services:
        started = ws.clock.monotonic()
        result, error = None, None
        try:
            progress.step(f"back up {service.name} ({service.kind}) into {ws.repo.location}")
            total = backup_estimate(ws, service, postgres_type)
            meter = progress.meter(f"backup of {service.name}", total=total)
            result = backup_service(ws, service, postgres_type=postgres_type, progress=meter)
        except Exception as exc:  # one service's failure, expected or not, must not cost the others
            error = describe_error(exc) + _data_elsewhere(service, [*before, *out])
        outcome = ServiceOutcome(service.name, service.kind, ws.clock.monotonic() - started, result, error)
        out.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return out


def check_request(services: list[Service], postgres_type: str) -> None:
    """Refuse, before any backup starts, what no run could do."""
    for service in services:
        if not has_engine(service.kind):
            raise UsageError(f"service {service.name} ({service.kind}) has nothing drkit backs up")
        if service.kind == "postgres":
            _check_postgres_type(postgres_type)


def _check_postgres_type(postgres_type: str) -> None:
    if postgres_type not in POSTGRES_TYPES:
        raise UsageError(
            f"--type must be {', '.join(POSTGRES_TYPES[:-1])} or {POSTGRES_TYPES[-1]} for PostgreSQL, "
            f"not {postgres_type!r}"
        )


def describe_error(exc: Exception) -> str:
    """One line for a failed service: drkit's own message, else the exception's type and text."""
    if isinstance(exc, DrkitError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _data_elsewhere(service: Service, so_far: list[ServiceOutcome]) -> str:
    """Why a service whose data lives in a failed dependency failed too (Hasura's metadata
    is read from PostgreSQL): its data is in that dependency's backups."""
    if service.kind not in DATA_IN_DEPENDENCIES:
        return ""
    down = [o.service for o in so_far if not o.ok and o.service in service.depends_on]
    if not down:
        return ""
    return f" ({service.name} keeps its data in {', '.join(down)}, which failed above)"
