"""Verify backups: every stored file against its manifest hash, then per kind.

What `--deep` adds, by kind (docs/postgres.md, docs/redis.md, docs/hasura-and-search.md):
- base (PostgreSQL physical): pg_verifybackup on the extracted files, then a restore into a
  throwaway instance: pg_amcheck (heap and btree) on every database, row counts compared.
- logical (pg_dump): every dump restored into a scratch cluster, row counts compared with
  those taken in the dump's own snapshot.
- rdb (Redis): the files through redis-check-rdb/aof, loaded by a throwaway redis-server,
  key counts and the recorded sample compared.
- objects (S3): every version's content re-hashed.
- dump (MeiliSearch) and metadata (Hasura): refused (exit 2), see NO_DEEP.
"""

from __future__ import annotations

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import UsageError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import find_backup
from drkit.engines.core.rehash import verify_files
from drkit.engines.core.types import VerifyReport
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.verify import verify_deep, verify_wal
from drkit.engines.postgres.verify_logical import verify_logical_deep

NO_DEEP = {
    BackupKind.DUMP: (
        "verify --deep is not defined for MeiliSearch backups (dumps, snapshots): only a "
        "MeiliSearch server can read one, and drkit does not start one to check; "
        "`drkit verify ID` re-hashes every stored file, and `drkit restore` imports it and "
        "compares every index's document count"
    ),
    BackupKind.METADATA: (
        "verify --deep is not defined for Hasura metadata: it can only be checked against the "
        "database it describes; `drkit verify ID` re-hashes the file, and `drkit restore` "
        "applies it, requires /healthz?strict=true and compares a fresh export with the backup"
    ),
}


def verify_backup(
    ws: Workspace, service: Service, m: Manifest, *, deep: bool, drkit_argv: list[str]
) -> VerifyReport:
    if deep and m.kind in NO_DEEP:
        raise UsageError(NO_DEEP[m.kind])
    started = ws.clock.monotonic()
    results = verify_files(ws, m)
    files_ok = all(r.status is Status.OK for r in results)
    if m.kind is BackupKind.BASE:
        wal = verify_wal(ws, service, m)
        results.append(wal)
        if deep and files_ok and wal.status is Status.OK:
            results.extend(verify_deep(ws, service, m, drkit_argv))
        elif deep:
            results.append(_skipped())
    elif m.kind is BackupKind.LOGICAL and deep:
        results.extend(verify_logical_deep(ws, service, m) if files_ok else [_skipped()])
    elif m.kind is BackupKind.OBJECTS and files_ok:
        from drkit.engines.objects.verify import verify_objects

        results.extend(verify_objects(ws, service, m, deep=deep))
    elif m.kind is BackupKind.RDB and deep:
        if files_ok:
            from drkit.engines.redis.verify import verify_deep as redis_deep

            results.extend(redis_deep(ws, service, m))
        else:
            results.append(_skipped())
    return VerifyReport(m.backup_id, m.service, deep, tuple(results), ws.clock.monotonic() - started)


def _skipped() -> CheckResult:
    return CheckResult("restore", Status.FAILED, "skipped: the backup failed the checks above")


def choose_backup_to_verify(
    ws: Workspace, backup_id: str | None, *, service: str | None = None, deep: bool = False
) -> tuple[Service, Manifest]:
    """The backup `drkit verify` checks: by id, else the newest (of every PostgreSQL service
    unless one is named; the newest *base* backup when deep, the one a restore would use)."""
    names = [service] if service else [s.name for s in ws.stack.services_of_kind("postgres")]
    kind = BackupKind.BASE if (backup_id is None and deep) else None
    manifest = find_backup(ws.repo, ws.stack.name, names, backup_id, kind=kind)
    return ws.stack.services[manifest.service], manifest
