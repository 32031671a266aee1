"""How much a backup will read, before it starts: the total its progress is shown against (an
estimate: None when nothing says). A restore knows its own from the manifest."""

from __future__ import annotations

from drkit.adapters.postgres.client import scalar, service_dsn
from drkit.domain.backup import BackupKind
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.workspace import Workspace

KINDS = {"redis": BackupKind.RDB, "meilisearch": BackupKind.DUMP, "hasura": BackupKind.METADATA}
DATABASES_SIZE = "select sum(pg_database_size(datname))::bigint from pg_database where datallowconn"


def backup_estimate(ws: Workspace, service: Service, postgres_type: str = "base") -> int | None:
    """The bytes a backup reads: the previous backup of the same kind (its raw size), else, for
    a PostgreSQL base backup, the size of its databases. Objects backups copy only new
    versions: no estimate."""
    if service.kind == "postgres":
        kind = BackupKind.BASE if postgres_type == "base" else BackupKind.LOGICAL
    else:
        found = KINDS.get(service.kind)
        if found is None:
            return None
        kind = found
    try:
        previous = [m for m in list_backups(ws.repo, ws.stack.name, service.name).complete if m.kind is kind]
    except (DrkitError, OSError):
        previous = []
    if previous:
        return max(previous, key=lambda m: (m.finished_at, m.backup_id)).raw_bytes or None
    if kind is BackupKind.BASE:
        try:
            size = scalar(service_dsn(service), DATABASES_SIZE)
        except (DrkitError, OSError):
            return None
        return int(size) if size else None
    return None
