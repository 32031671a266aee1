"""Which engine backs up and restores each kind of service: an explicit registry, imported
only when that kind is used (Barman's cloud providers do the same).

Each engine module exposes:

    def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult
    def restore(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult

PostgreSQL has its own richer entry points (base/logical, PITR) in backup_postgres and
restore_postgres.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from drkit.domain.checks import CheckResult
from drkit.domain.errors import UsageError
from drkit.domain.stack import Service
from drkit.engines.core.commit import BackupResult, Progress
from drkit.engines.core.workspace import Workspace

ENGINES: dict[str, str] = {
    "redis": "drkit.engines.redis.backup",
    "s3": "drkit.engines.objects.backup",
    "meilisearch": "drkit.engines.search.engine",
    "hasura": "drkit.engines.hasura.engine",
}


@dataclass(frozen=True)
class RestoreOptions:
    backup_id: str | None = None  # default: the newest (at or before target_time)
    target_time: datetime | None = None  # objects: versions as of this time
    yes: bool = False  # confirmed overwriting a non-empty target
    to: str | None = None  # another target (bucket, directory) instead of the service's own
    prefix: str | None = None  # objects: only keys under this prefix


@dataclass(frozen=True)
class RestoreResult:
    service: str
    backup_id: str
    seconds: float
    detail: str
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)


class ServiceEngine(Protocol):
    def backup(
        self, ws: Workspace, service: Service, *, progress: Progress | None = None
    ) -> BackupResult: ...

    def restore(self, ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult: ...


def has_engine(kind: str) -> bool:
    return kind == "postgres" or kind in ENGINES


def engine_for(service: Service) -> ServiceEngine:
    module = ENGINES.get(service.kind)
    if module is None:
        raise UsageError(f"service {service.name} ({service.kind}) has nothing drkit backs up")
    try:
        loaded: ServiceEngine = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UsageError(f"backups of {service.kind} services are not built yet") from exc
    return loaded


def backup_targets(services: list[Service]) -> list[Service]:
    """The services drkit can back up, in the order given."""
    return [s for s in services if has_engine(s.kind)]


def backup_service(
    ws: Workspace, service: Service, *, postgres_type: str = "base", progress: Progress | None = None
) -> BackupResult:
    """One backup of one service, whatever its kind."""
    if service.kind == "postgres":
        from drkit.engines.postgres.backup import base_backup, logical_backup

        if postgres_type not in ("base", "logical"):
            raise UsageError(f"--type must be base or logical for PostgreSQL, not {postgres_type!r}")
        engine = base_backup if postgres_type == "base" else logical_backup
        return engine(ws, service, progress=progress)
    if service.kind == "meilisearch" and postgres_type == "snapshot":
        from drkit.engines.search.engine import backup_snapshot

        return backup_snapshot(ws, service, progress=progress)
    return engine_for(service).backup(ws, service, progress=progress)
