"""One backup of one service, whatever its kind: PostgreSQL's base or logical backup,
a MeiliSearch snapshot when asked, else the kind's engine from the registry."""

from __future__ import annotations

from drkit.domain.errors import UsageError
from drkit.domain.stack import Service, Stack
from drkit.engines.core.commit import BackupResult, Progress
from drkit.engines.core.registry import engine_for, has_engine
from drkit.engines.core.workspace import Workspace


def backup_targets(services: list[Service]) -> list[Service]:
    """The services drkit can back up, in the order given."""
    return [s for s in services if has_engine(s.kind)]


def backup_service(
    ws: Workspace, service: Service, *, postgres_type: str = "base", progress: Progress | None = None
) -> BackupResult:
    """One backup of one service, whatever its kind."""
    if service.kind == "postgres":
        from drkit.engines.postgres.backup import base_backup, logical_backup
        from drkit.engines.postgres.incremental import incremental_backup

        engines = {"base": base_backup, "logical": logical_backup, "incremental": incremental_backup}
        if postgres_type not in engines:
            raise UsageError(
                f"--type must be base, incremental or logical for PostgreSQL, not {postgres_type!r}"
            )
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
    unknown = [n for n in names if n not in stack.services]
    if unknown:
        raise UsageError(f"no service {unknown[0]!r} in {stack.source_path}")
    return [stack.services[n] for n in names]
