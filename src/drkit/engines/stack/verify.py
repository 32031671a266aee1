"""Verify backups: everything a restore of one reads, re-read and checked, then per kind.

Without `--deep`: every stored file against its manifest hash; base backups also the tar
index and every WAL segment a restore replays (decoded, against its recorded hash); logical
and Redis backups the layout a restore follows; objects backups every pack and part, each
version against its SHA-256. A backup is recorded as verified (verified.json, which
retention keeps) only when all of that passed and nothing was left unread.

What `--deep` adds, by kind (docs/postgres.md, docs/redis.md, docs/objects.md,
docs/hasura-and-search.md):
- base (PostgreSQL physical): pg_verifybackup on the extracted files, then a restore into a
  throwaway instance: pg_amcheck (heap and btree) on every database, row counts compared.
- logical (pg_dump): every dump restored into a scratch cluster with the real restore's
  pg_restore rules, row counts compared with those taken in the dump's own snapshot.
- rdb (Redis): the files through redis-check-rdb/aof, loaded by a throwaway redis-server,
  key counts and the recorded sample compared.
- objects (S3): each bucket restored into a scratch bucket and compared, then removed.
- dump (MeiliSearch) and metadata (Hasura): refused (exit 2), see NO_DEEP.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from drkit.adapters.repository.port import Stray
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.checks import CheckResult, Status, any_critical_failure
from drkit.domain.errors import RepositoryError, UsageError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.sizes import format_size
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import verified_key
from drkit.engines.core.rehash import verify_files
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.types import VerifyReport
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.chain_verify import verify_chain
from drkit.engines.postgres.verify import verify_deep, verify_tar_index, verify_wal
from drkit.engines.postgres.verify_logical import verify_logical_deep, verify_logical_layout
from drkit.engines.postgres.wal.archive import archive_for
from drkit.engines.postgres.wal_check import WalRehash

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


@dataclass
class SharedReads:
    """What one run has read and checked already, so that backups sharing WAL segments or
    object versions (most do) read each once: per service, a WalRehash and the checked
    object versions."""

    wal: dict[str, WalRehash] = field(default_factory=dict)
    objects: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def wal_of(self, ws: Workspace, service: Service, m: Manifest) -> WalRehash:
        if service.name not in self.wal:
            self.wal[service.name] = WalRehash(
                archive_for(ws, service), m.require_postgres().wal_segment_size
            )
        return self.wal[service.name]


def verify_backup(
    ws: Workspace,
    service: Service,
    m: Manifest,
    *,
    deep: bool,
    drkit_argv: list[str],
    shared: SharedReads | None = None,
    progress: Progress = SILENT,
) -> VerifyReport:
    """Every stored file against the manifest, then per kind everything else a restore of it
    reads (WAL, object packs and parts); `deep` restores it somewhere disposable. The backup
    is recorded as verified only when all of it was read and passed (`VerifyReport.verified`).
    `shared`: what earlier verifies of the same run read (WAL, object versions), not re-read."""
    shared = shared or SharedReads()
    if deep and m.kind in NO_DEEP:
        raise UsageError(NO_DEEP[m.kind])
    started = ws.clock.monotonic()
    files = f"{len(m.files)} file{'' if len(m.files) == 1 else 's'}"
    progress.step(f"re-hash the {files} of {m.backup_id} ({format_size(m.stored_bytes)})")
    results = verify_files(ws, m)
    results += verify_chain(ws, m)  # an incremental: every earlier link of its chain
    files_ok = not any_critical_failure(results)
    if m.kind is BackupKind.BASE:
        before_wal = [verify_tar_index(ws, service, m)] if files_ok else []
        progress.step(f"re-read the WAL a restore of {m.backup_id} replays")
        wal_results = verify_wal(ws, service, m, shared.wal_of(ws, service, m))
        results.extend([*before_wal, *wal_results])
        if deep and files_ok and not any_critical_failure([*before_wal, *wal_results]):
            results.extend(verify_deep(ws, service, m, drkit_argv, progress))
        elif deep:
            results.append(_skipped())
    elif m.kind is BackupKind.LOGICAL:
        layout = verify_logical_layout(m)
        results.append(layout)
        if deep:
            sound = files_ok and layout.status is not Status.FAILED
            if sound:
                progress.step(f"restore the dumps of {m.backup_id} into a scratch cluster and count rows")
            results.extend(verify_logical_deep(ws, service, m) if sound else [_skipped()])
    elif m.kind is BackupKind.OBJECTS:
        from drkit.engines.objects.verify import verify_objects

        memo = shared.objects.setdefault(service.name, {})
        if files_ok:
            progress.step(f"check every object version {m.backup_id} lists{' (re-hashed)' if deep else ''}")
        results.extend(verify_objects(ws, service, m, deep=deep, memo=memo) if files_ok else [_skipped()])
    elif m.kind is BackupKind.RDB:
        from drkit.engines.redis.verify import verify_deep as redis_deep
        from drkit.engines.redis.verify import verify_layout

        results.extend(verify_layout(m))
        if deep and files_ok:
            progress.step(
                f"check {m.backup_id} with redis-check-rdb/aof and load it in a scratch redis-server"
            )
            results.extend(redis_deep(ws, service, m))
        elif deep:
            results.append(_skipped())
    report = VerifyReport(m.backup_id, m.service, deep, tuple(results), ws.clock.monotonic() - started)
    if report.verified:
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


@dataclass(frozen=True)
class RepositoryVerify:
    """`drkit verify --repo NAME`: every backup of one repository (a copy), on its own."""

    location: str
    backups: tuple[VerifyReport, ...]
    sets: tuple[CheckResult, ...]
    incomplete: tuple[str, ...]
    wal: tuple[CheckResult, ...] = ()
    strays: tuple[Stray, ...] = ()  # not blobs: links and special files (damage), leftovers

    @property
    def damage(self) -> tuple[Stray, ...]:
        return tuple(s for s in self.strays if not s.kind.leftover)

    @property
    def ok(self) -> bool:
        checks = (*self.sets, *self.wal)
        healthy = all(r.ok for r in self.backups) and not self.damage
        return healthy and not any(r.failed_critically for r in checks)


def verify_repository(ws: Workspace) -> RepositoryVerify:
    """Every manifest's files re-hashed there, the WAL each base backup needs (and every
    archived segment's content against its recorded hash, when it can be read; each segment
    read once), the packs and parts of each objects backup (when they can be read here), every
    set's backups present, and whatever in the stack's tree is not a blob: links and special
    files (damage: never followed, never copied) and leftovers of killed writes (prune removes
    them)."""
    reports: list[VerifyReport] = []
    present: dict[str, set[str]] = {}
    incomplete: list[str] = []
    shared = SharedReads()
    for service in ws.stack.services.values():
        listing = list_backups(ws.repo, ws.stack.name, service.name)
        present[service.name] = {m.backup_id for m in listing.complete}
        incomplete.extend(f"{service.name}/{i}" for i in listing.incomplete)
        reports.extend(
            verify_backup(ws, service, m, deep=False, drkit_argv=[], shared=shared) for m in listing.complete
        )
    sets = tuple(_set_result(s.set_id, s.backups, present) for s in list_sets(ws))
    pg = ws.stack.services_of_kind("postgres")
    wal_checks = tuple(wal_contents(ws, s, shared.wal.get(s.name)) for s in pg)
    strays = tuple(ws.repo.strays(f"{ws.stack.name}/"))
    return RepositoryVerify(ws.repo.location, tuple(reports), sets, tuple(incomplete), wal_checks, strays)


def _set_result(set_id: str, backups: dict[str, str], present: dict[str, set[str]]) -> CheckResult:
    missing = [f"{svc}/{b}" for svc, b in sorted(backups.items()) if b not in present.get(svc, set())]
    if missing:
        return CheckResult(f"set {set_id}", Status.FAILED, "missing backups: " + ", ".join(missing))
    return CheckResult(f"set {set_id}", Status.OK, f"{len(backups)} backups present")


def wal_contents(ws: Workspace, service: Service, rehash: WalRehash | None = None) -> CheckResult:
    """Every archived WAL file decoded and re-hashed against its recorded SHA-256 (those
    encrypted with no identity here are counted, not read); what the backups' checks read
    already is not read again."""
    archive = archive_for(ws, service)
    found = (rehash or WalRehash(archive)).check(sorted(archive.names()))
    name = f"wal of {service.name}"
    if found.damaged:
        first = found.damaged[0]
        more = f" (and {len(found.damaged) - 1} more)" if len(found.damaged) > 1 else ""
        return CheckResult(name, Status.FAILED, f"{first.problem}{more}")
    detail = f"{found.checked} WAL file(s) re-read and intact"
    if found.unhashed:
        detail += f" ({found.unhashed} with no recorded hash: zstd frame and size only)"
    if found.unread:
        return CheckResult(name, Status.WARNING, f"{detail}; {len(found.unread)} encrypted, not read", False)
    return CheckResult(name, Status.OK, detail)
