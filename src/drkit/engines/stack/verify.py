"""Verify a backup of any kind: every stored file against its manifest hash, then what the
kind adds (PostgreSQL: the WAL it needs and, deep, a real restore; objects: the listing;
Redis, deep: a throwaway server loads it)."""

from __future__ import annotations

import contextlib
import json

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import RepositoryError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import find_backup
from drkit.engines.core.layout import verified_key
from drkit.engines.core.rehash import verify_files
from drkit.engines.core.types import VerifyReport
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.verify import verify_deep, verify_wal


def verify_backup(
    ws: Workspace, service: Service, m: Manifest, *, deep: bool, drkit_argv: list[str]
) -> VerifyReport:
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
    elif m.kind is BackupKind.OBJECTS and files_ok:
        from drkit.engines.objects.verify import verify_objects

        results.extend(verify_objects(ws, service, m, deep=deep))
    elif m.kind is BackupKind.RDB and deep:
        if files_ok:
            from drkit.engines.redis.verify import verify_deep as redis_deep

            results.extend(redis_deep(ws, service, m))
        else:
            results.append(_skipped())
    report = VerifyReport(m.backup_id, m.service, deep, tuple(results), ws.clock.monotonic() - started)
    if report.ok:
        record_verified(ws, m, deep=deep)
    return report


def record_verified(ws: Workspace, m: Manifest, *, deep: bool) -> None:
    """`<backup dir>/verified.json`: `{"verified_at": ISO time, "deep": bool}`, rewritten by
    each successful verify; retention never removes the newest verified backup. Not part of
    the manifest (the backup's files are immutable); a verify that fails leaves it as it was."""
    record = {"verified_at": ws.clock.now().isoformat(), "deep": deep}
    with contextlib.suppress(OSError, RepositoryError):  # a read-only copy: the verify still counts
        ws.repo.put(
            verified_key(m.stack, m.service, m.backup_id), json.dumps(record).encode(), overwrite=True
        )


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
