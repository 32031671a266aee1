"""Which engine backs up and restores each kind of service: an explicit registry, imported
only when that kind is used (Barman's cloud providers do the same).

Each kind names two modules of its package: one with

    def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult

and one with

    def restore(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult

PostgreSQL has its own richer entry points (base/logical backups in `postgres/backup.py`,
PITR in `postgres/restore.py`); `stack/` dispatches to them by kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drkit.domain.errors import UsageError
from drkit.domain.stack import Service
from drkit.engines.core.commit import BackupResult
from drkit.engines.core.types import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace

ENGINES: dict[str, tuple[str, str]] = {
    "redis": ("drkit.engines.redis.backup", "drkit.engines.redis.restore"),
    "s3": ("drkit.engines.objects.backup", "drkit.engines.objects.restore"),
    "meilisearch": ("drkit.engines.search.backup", "drkit.engines.search.restore"),
    "hasura": ("drkit.engines.hasura.backup", "drkit.engines.hasura.restore"),
}


@dataclass(frozen=True)
class ServiceEngine:
    """The backup and restore of one kind, loaded from its package."""

    kind: str
    backup: Callable[..., BackupResult]
    restore: Callable[[Workspace, Service, RestoreOptions], RestoreResult]


def has_engine(kind: str) -> bool:
    return kind == "postgres" or kind in ENGINES


def engine_for(service: Service) -> ServiceEngine:
    modules = ENGINES.get(service.kind)
    if modules is None:
        raise UsageError(f"service {service.name} ({service.kind}) has nothing drkit backs up")
    backup_module, restore_module = (_load(service.kind, m) for m in modules)
    return ServiceEngine(service.kind, backup_module.backup, restore_module.restore)


def _load(kind: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise UsageError(f"backups of {kind} services are not built yet") from exc
        raise
