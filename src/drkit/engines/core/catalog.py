"""Which backups exist: a backup exists once its manifest is written, not before."""

from __future__ import annotations

from dataclasses import dataclass

from drkit.adapters.repository.port import Repository
from drkit.domain.backup import MANIFEST_NAME, BackupKind, Manifest
from drkit.domain.errors import NotFoundError, RepositoryError
from drkit.engines.core.layout import backups_prefix, manifest_key


@dataclass(frozen=True)
class BackupListing:
    complete: tuple[Manifest, ...]
    incomplete: tuple[str, ...]  # backup ids with files but no manifest


def list_backups(repo: Repository, stack: str, service: str) -> BackupListing:
    prefix = backups_prefix(stack, service)
    ids: dict[str, bool] = {}
    for key in repo.list(prefix):
        rest = key[len(prefix) :]
        backup_id, _, name = rest.partition("/")
        ids[backup_id] = ids.get(backup_id, False) or name == MANIFEST_NAME
    complete: list[Manifest] = []
    incomplete: list[str] = []
    for backup_id, has_manifest in sorted(ids.items()):
        if not has_manifest:
            incomplete.append(backup_id)
            continue
        complete.append(read_manifest(repo, stack, service, backup_id))
    return BackupListing(tuple(complete), tuple(incomplete))


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
    except (ValueError, KeyError) as exc:
        raise RepositoryError(f"manifest of {backup_id} is unreadable: {exc}") from exc


def find_backup(
    repo: Repository,
    stack: str,
    services: list[str],
    backup_id: str | None,
    *,
    kind: BackupKind | None = None,
) -> Manifest:
    """A backup by id (searching the given services), or the latest one of `kind`."""
    found: list[Manifest] = []
    for service in services:
        found.extend(list_backups(repo, stack, service).complete)
    if kind is not None:
        found = [m for m in found if m.kind is kind]
    if backup_id is None:
        if not found:
            raise NotFoundError(f"no complete backup in {repo.location}")
        return max(found, key=lambda m: (m.finished_at, m.backup_id))
    for manifest in found:
        if manifest.backup_id == backup_id:
            return manifest
    raise NotFoundError(f"no backup {backup_id} in {repo.location}")
