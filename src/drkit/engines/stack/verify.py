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

import contextlib
import json
from dataclasses import dataclass

from drkit.adapters.repository.codec import is_encrypted, sha256
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError, RepositoryError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import find_backup, list_backups
from drkit.engines.core.layout import verified_key
from drkit.engines.core.rehash import verify_files
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.types import VerifyReport
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.chain_verify import verify_chain
from drkit.engines.postgres.verify import verify_deep, verify_wal
from drkit.engines.postgres.verify_logical import verify_logical_deep
from drkit.engines.postgres.wal.archive import archive_for

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
    results += verify_chain(ws, m)  # an incremental: every earlier link of its chain
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


@dataclass(frozen=True)
class RepositoryVerify:
    """`drkit verify --repo NAME`: every backup of one repository (a copy), on its own."""

    location: str
    backups: tuple[VerifyReport, ...]
    sets: tuple[CheckResult, ...]
    incomplete: tuple[str, ...]
    wal: tuple[CheckResult, ...] = ()

    @property
    def ok(self) -> bool:
        checks = (*self.sets, *self.wal)
        return all(r.ok for r in self.backups) and not any(r.failed_critically for r in checks)


def verify_repository(ws: Workspace) -> RepositoryVerify:
    """Every manifest's files re-hashed there, the WAL each base backup needs (and every
    archived segment's content against its recorded hash, when it can be read), the listing
    of each objects backup (when it can be read here), and every set's backups present."""
    reports: list[VerifyReport] = []
    present: dict[str, set[str]] = {}
    incomplete: list[str] = []
    for service in ws.stack.services.values():
        listing = list_backups(ws.repo, ws.stack.name, service.name)
        present[service.name] = {m.backup_id for m in listing.complete}
        incomplete.extend(f"{service.name}/{i}" for i in listing.incomplete)
        reports.extend(_verify_copy(ws, service, m) for m in listing.complete)
    sets = tuple(_set_result(s.set_id, s.backups, present) for s in list_sets(ws))
    wal = tuple(wal_contents(ws, s) for s in ws.stack.services_of_kind("postgres"))
    return RepositoryVerify(ws.repo.location, tuple(reports), sets, tuple(incomplete), wal)


def _verify_copy(ws: Workspace, service: Service, m: Manifest) -> VerifyReport:
    if m.kind is BackupKind.OBJECTS and m.encrypted and not ws.codec.identity:
        started = ws.clock.monotonic()
        unread = CheckResult("objects", Status.WARNING, "encrypted, no identity here: not read", False)
        results = (*verify_files(ws, m), unread)
        return VerifyReport(m.backup_id, m.service, False, results, ws.clock.monotonic() - started)
    return verify_backup(ws, service, m, deep=False, drkit_argv=[])


def _set_result(set_id: str, backups: dict[str, str], present: dict[str, set[str]]) -> CheckResult:
    missing = [f"{svc}/{b}" for svc, b in sorted(backups.items()) if b not in present.get(svc, set())]
    if missing:
        return CheckResult(f"set {set_id}", Status.FAILED, "missing backups: " + ", ".join(missing))
    return CheckResult(f"set {set_id}", Status.OK, f"{len(backups)} backups present")


def wal_contents(ws: Workspace, service: Service) -> CheckResult:
    """Every archived segment with a recorded hash, decoded and re-hashed (those encrypted
    with no identity here are counted, not read)."""
    archive = archive_for(ws, service)
    checked = unread = 0
    for name in sorted(archive.names()):
        recorded = archive.recorded_hash(name)
        key = archive.locate(name)
        if recorded is None or key is None:
            continue
        stored = ws.repo.get(key)
        if is_encrypted(stored, key) and not ws.codec.identity:
            unread += 1
            continue
        try:
            intact = sha256(ws.codec.decode(stored, name=key)) == recorded
        except DrkitError:
            intact = False
        if not intact:
            return CheckResult(
                f"wal of {service.name}", Status.FAILED, f"{key} does not match its recorded SHA-256"
            )
        checked += 1
    detail = f"{checked} segments match their recorded SHA-256"
    if unread:
        return CheckResult(
            f"wal of {service.name}", Status.WARNING, f"{detail}; {unread} encrypted, not read", False
        )
    return CheckResult(f"wal of {service.name}", Status.OK, detail)
