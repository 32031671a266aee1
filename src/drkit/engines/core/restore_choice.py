"""The backup `drkit restore SERVICE` uses for the services without a plan of their own
(PostgreSQL's is engines/postgres/plan.py): the one rule of core/choose.py over the
backups of the kind the service's restore reads."""

from __future__ import annotations

from drkit.domain.backup import BackupKind
from drkit.domain.errors import NotFoundError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.choose import BackupChoice, choose_backup
from drkit.engines.core.types import RestoreOptions
from drkit.engines.core.workspace import Workspace

# What a restore of each kind of service reads, and how messages call it.
RESTORE_KINDS: dict[str, tuple[BackupKind, str]] = {
    "redis": (BackupKind.RDB, "backup"),
    "meilisearch": (BackupKind.DUMP, "dump or snapshot"),
    "hasura": (BackupKind.METADATA, "metadata backup"),
    "s3": (BackupKind.OBJECTS, "objects backup"),
}


def choose_for_restore(ws: Workspace, service: Service, options: RestoreOptions) -> BackupChoice:
    """`choose_backup` over the backups a restore of `service` reads (RESTORE_KINDS)."""
    if service.kind not in RESTORE_KINDS:
        raise NotFoundError(f"{service.name} ({service.kind}) has no backups drkit restores this way")
    kind, label = RESTORE_KINDS[service.kind]
    found = [m for m in list_backups(ws.repo, ws.stack.name, service.name).complete if m.kind is kind]
    return choose_backup(
        found,
        now=ws.clock.now(),
        what=f"{label} of {service.name}",
        where=ws.repo.location,
        backup_id=options.backup_id,
        target_time=options.target_time,
        first_after=kind is BackupKind.OBJECTS,
    )
