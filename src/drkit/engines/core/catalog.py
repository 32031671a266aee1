"""Which backups exist: a backup exists once its manifest is written, not before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from drkit.adapters.repository.port import Repository
from drkit.domain.backup import MANIFEST_NAME, BackupKind, Manifest
from drkit.domain.errors import IntegrityError, NotFoundError, RepositoryError, UnsupportedFormatError
from drkit.domain.wal import Lsn
from drkit.engines.core.choose import choose_backup
from drkit.engines.core.layout import backups_prefix, manifest_key


@dataclass(frozen=True)
class DamagedBackup:
    """A backup whose manifest cannot be trusted as written: listed with the reason, and
    skipped, so one bad file never blocks the restores of the others."""

    backup_id: str
    reason: str


@dataclass(frozen=True)
class BackupListing:
    complete: tuple[Manifest, ...]
    incomplete: tuple[str, ...]  # backup ids with files but no manifest
    damaged: tuple[DamagedBackup, ...] = ()  # a manifest that is unreadable or inconsistent


def list_backups(repo: Repository, stack: str, service: str) -> BackupListing:
    prefix = backups_prefix(stack, service)
    ids: dict[str, bool] = {}
    for key in repo.list(prefix):
        rest = key[len(prefix) :]
        backup_id, _, name = rest.partition("/")
        ids[backup_id] = ids.get(backup_id, False) or name == MANIFEST_NAME
    complete: list[Manifest] = []
    incomplete: list[str] = []
    damaged: list[DamagedBackup] = []
    read_errors: list[Exception] = []
    for backup_id, listed in sorted(ids.items()):
        try:  # not listed: absent, or not a stored file (a link planted in its place)
            has_manifest = listed or repo.exists(manifest_key(stack, service, backup_id))
        except (RepositoryError, IntegrityError) as exc:
            damaged.append(DamagedBackup(backup_id, exc.message))  # never cleaned up as incomplete
            continue
        if not has_manifest:
            incomplete.append(backup_id)
            continue
        try:
            manifest = read_manifest(repo, stack, service, backup_id)
            check_manifest(manifest, backup_id)
        except NotFoundError:
            continue  # pruned since it was listed
        except (RepositoryError, IntegrityError, UnsupportedFormatError) as exc:
            damaged.append(DamagedBackup(backup_id, exc.message))
            if isinstance(exc.__cause__, OSError):
                read_errors.append(exc)
            continue
        complete.append(manifest)
    if read_errors and len(read_errors) == len(damaged) and not complete:
        raise read_errors[0]  # the repository, not one file, cannot be read: say that
    return BackupListing(tuple(complete), tuple(incomplete), tuple(damaged))


def check_manifest(m: Manifest, backup_id: str) -> None:
    """What a well-formed manifest can still get wrong and would break every restore that
    looks at it later (a naive time cannot be compared; a bad LSN cannot be planned)."""
    problems = []
    if m.backup_id != backup_id:  # (not the stack: a repository may be moved to a new name)
        problems.append(f"it names backup {m.backup_id}, not the one it is stored as")
    if m.started_at.tzinfo is None or m.finished_at.tzinfo is None:
        problems.append("its times have no time zone")
    if m.postgres is not None:
        try:
            for lsn in (m.postgres.start_lsn, m.postgres.stop_lsn):
                Lsn.parse(lsn)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise RepositoryError(f"manifest of {backup_id} is inconsistent: {'; '.join(problems)}")


def read_manifest(repo: Repository, stack: str, service: str, backup_id: str) -> Manifest:
    """The manifest; with a sign_key, the workspace's repository has checked its signature
    before it is parsed (an IntegrityError otherwise: core/signing.py)."""
    key = manifest_key(stack, service, backup_id)
    try:
        raw = repo.get(key)
    except FileNotFoundError as exc:
        raise NotFoundError(f"no backup {backup_id} of {service} in {repo.location}") from exc
    try:
        return Manifest.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise RepositoryError(f"manifest of {backup_id} is unreadable: {detail}") from exc


def find_backup(
    repo: Repository,
    stack: str,
    services: list[str],
    backup_id: str | None,
    *,
    kind: BackupKind | None = None,
    now: datetime | None = None,
) -> Manifest:
    """A backup by id (searching the given services), or the latest one of `kind` whose
    times this host's clock (`now`) can believe (core/choose.py)."""
    found: list[Manifest] = []
    damaged: dict[str, str] = {}
    for service in services:
        listing = list_backups(repo, stack, service)
        found.extend(listing.complete)
        damaged.update((d.backup_id, d.reason) for d in listing.damaged)
    if kind is not None:
        found = [m for m in found if m.kind is kind]
    if backup_id is None:
        when = now or datetime.now(UTC)
        return choose_backup(found, now=when, what="complete backup", where=repo.location).manifest
    for manifest in found:
        if manifest.backup_id == backup_id:
            return manifest
    if backup_id in damaged:
        raise RepositoryError(f"backup {backup_id} is damaged: {damaged[backup_id]}")
    raise NotFoundError(f"no backup {backup_id} in {repo.location}")
